// A web-worker plugin's worker, started from a data: URL (an opaque origin) by the hidden
// frame that isolates it (frame.js), or by the page. It offers the page a kernel with
// load_plugin(plugin): load its requirements (requirements.js), run the plugin's script (as a classic script, as ImJoy does) with a
// global `api`, and return what it exported. fetch() of PyJoy's own files is answered by
// the page (assets.js).
import { Session } from "../rpc/session.js";
import { PostMessageTransport } from "../rpc/transport.js";
import { assetFetcher } from "./assets.js";
import { PORTS, WORKER_HANDSHAKE } from "./contract.js";
import { createPluginApi, exportOf } from "./plugin-api.js";
import { cacheRequirement, requirementOf } from "./requirements.js";

// A classic worker runs scripts with importScripts and ES modules with import(), which
// Chromium allows in classic workers too: so "mjs:" loads here as in a window.
async function loadRequirement(requirement) {
  const { kind, url } = requirementOf(requirement);
  try {
    if (kind === "cache") await cacheRequirement(url);
    else if (kind === "mjs") await import(url);
    else importScripts(url);
  } catch (error) {
    throw new Error(`requirement ${requirement} could not be loaded: ${error.message}`);
  }
}

function blobURL(text) {
  return URL.createObjectURL(new Blob([text], { type: "text/javascript" }));
}

self.addEventListener("message", function boot({ data, ports }) {
  if (data?.type !== WORKER_HANDSHAKE) return;
  self.removeEventListener("message", boot);
  self.fetch = assetFetcher(ports[PORTS.assets], data.hostOrigin);
  // Across processes (an isolated worker) big buffers go in pieces (rpc/transport.js).
  const session = new Session(new PostMessageTransport(ports[PORTS.rpc], { chunkBytes: data.chunkBytes ?? 0 }));
  const { api, exported } = createPluginApi(session);
  self.api = api;
  session.setRoot({
    async load_plugin(plugin) {
      for (const requirement of plugin.config.requirements ?? []) await loadRequirement(requirement);
      for (const script of plugin.scripts ?? [plugin.script]) {
        // Blank lines first, so that errors name the plugin file's own line numbers.
        const source = "\n".repeat(Math.max(0, script.line - 1)) + script.code;
        // V8 ignores a sourceURL with a space in it (most plugin names), hence encodeURI.
        const url = blobURL(`${source}\n//# sourceURL=${encodeURI(plugin.config.name)}`);
        try {
          if (script.attrs?.type === "module") await import(url);
          else importScripts(url);
        } finally {
          URL.revokeObjectURL(url);
        }
      }
      return exportOf(plugin, exported());
    },
  });
});
