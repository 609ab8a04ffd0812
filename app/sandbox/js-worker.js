// A web-worker plugin's worker, started from a data: URL (an opaque origin) by the hidden
// frame that isolates it (frame.js), or by the page. It offers the page a kernel with
// load_plugin(plugin): load its requirements (requirements.js), run the plugin's scripts
// (worker-scripts.js: classic scripts, as ImJoy does) with a global `api`, and return what
// it exported. fetch() of PyJoy's own files is answered by
// the page (assets.js).
import { Session } from "../rpc/session.js";
import { PostMessageTransport } from "../rpc/transport.js";
import { assetFetcher } from "./assets.js";
import { PORTS, WORKER_HANDSHAKE } from "./contract.js";
import { createPluginApi, exportOf } from "./plugin-api.js";
import { loadInWorker } from "./requirements.js";
import { runWorkerScript } from "./worker-scripts.js";

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
      for (const requirement of plugin.config.requirements ?? []) await loadInWorker(requirement, importScripts);
      for (const script of plugin.scripts ?? [plugin.script]) await runWorkerScript(script, plugin.config.name, importScripts);
      return exportOf(plugin, exported());
    },
  });
});
