// A web-python plugin's worker, started by the page from a data: URL (an opaque origin).
// Files of our origin come from the page through the asset port (assets.js); boot
// progress, output and the outcome go to the status port; once Python is up,
// pyjoy/plugin/kernel.py serves the page over the RPC port (contract.js has the channels).
// The kernel is handed this worker's JavaScript loaders: a plugin's js:/mjs:/cache:
// requirements (requirements.js) and its <script lang="javascript"> blocks
// (worker-scripts.js) run here, in the worker's global scope, where Python reaches what
// they define through `js`, as in ImJoy's web-python runtime. That is no power the
// plugin's Python lacks: it can run any JavaScript here already (pyodide.code.run_js), and
// this worker has the opaque origin of its data: URL.
import { bootPython, describeError } from "../python/boot.js";
import { chunkingEndpoint } from "../rpc/transport.js";
import { assetFetcher } from "./assets.js";
import { PORTS, STATUS, WORKER_HANDSHAKE } from "./contract.js";
import { loadInWorker } from "./requirements.js";
import { runWorkerScript } from "./worker-scripts.js";

self.addEventListener("message", function boot({ data, ports }) {
  if (data?.type !== WORKER_HANDSHAKE) return;
  self.removeEventListener("message", boot);
  const [rpcPort, statusPort, assetPort] = [ports[PORTS.rpc], ports[PORTS.status], ports[PORTS.assets]];
  // {type: "stdout" | "stderr", text} among them: Python's output (boot.js).
  const post = (message) => statusPort.postMessage(message);
  // Pyodide fetches its files with the global fetch: route ours through the page.
  const fetchAsset = assetFetcher(assetPort, data.hostOrigin, data.config?.packageIndex);
  self.fetch = fetchAsset;
  // This is a classic worker (what a data: URL script starts as), which Pyodide refuses
  // by probing importScripts. It needs nothing a module worker has
  // that this one lacks (dynamic import works), so the probe is made to fail; the
  // plugin's own scripts still load with the real one.
  const importScripts = self.importScripts.bind(self);
  self.importScripts = () => {
    throw new TypeError("importScripts is not available in PyJoy's Python sandbox");
  };
  const importModule = async (url) => {
    const text = await (await fetchAsset(url)).text();
    return import(URL.createObjectURL(new Blob([text], { type: "text/javascript" })));
  };
  bootPython({ config: data.config, fetch: fetchAsset, importModule, importAsm: true, post }).then(
    ({ pyodide, via, phases, python }) => {
      const javascript = {
        loadRequirement: (requirement) => loadInWorker(requirement, importScripts),
        runScript: (code, line, name, type) => runWorkerScript({ code, line, attrs: { type } }, name, importScripts),
      };
      // In a frame of its own (isolated), this worker is another process than the page: big
      // buffers come and go in pieces (data.chunkBytes; PROTOCOL.md, Chunks).
      const rpc = data.chunkBytes ? chunkingEndpoint(rpcPort, { chunkBytes: data.chunkBytes }) : rpcPort;
      pyodide.pyimport("pyjoy.plugin.kernel").serve(rpc, javascript);
      post({ type: STATUS.ready, python, via, phases });
    },
    (error) => post({ type: STATUS.failed, error: describeError(error) }),
  );
});
