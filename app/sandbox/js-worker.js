// A web-worker plugin's worker, started by the page from a data: URL (an opaque origin).
// It offers the page a kernel with load_plugin(plugin): run the plugin's script (as a
// classic script, as ImJoy does) with a global `api`, and return what it exported.
import { Session } from "../rpc/session.js";
import { PostMessageTransport } from "../rpc/transport.js";
import { createPluginApi } from "./plugin-api.js";

function blobURL(text) {
  return URL.createObjectURL(new Blob([text], { type: "text/javascript" }));
}

self.addEventListener("message", function boot({ data, ports }) {
  if (data?.type !== "pyjoy:boot") return;
  self.removeEventListener("message", boot);
  const session = new Session(new PostMessageTransport(ports[0]));
  const { api, exported } = createPluginApi(session);
  self.api = api;
  session.setRoot({
    async load_plugin(plugin) {
      for (const url of plugin.config.requirements ?? []) importScripts(url.replace(/^(js|cache):/, ""));
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
      const offered = exported();
      if (!offered) throw new Error(`plugin ${plugin.config.name} did not call api.export(...)`);
      return offered;
    },
  });
});
