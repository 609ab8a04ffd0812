// A web-python plugin's worker, started by the page from a data: URL (an opaque origin).
// Files of our origin come from the page through the asset port (assets.js); once Python
// is up, pyjoy/plugin/kernel.py serves the page over the RPC port.
import { bootPython, describeError } from "../python/boot.js";
import { assetFetcher } from "./assets.js";

self.addEventListener("message", function boot({ data, ports }) {
  if (data?.type !== "pyjoy:boot") return;
  self.removeEventListener("message", boot);
  const [rpcPort, assetPort] = ports;
  const post = (message) => rpcPort.postMessage(message);
  // Pyodide fetches its files with the global fetch: route ours through the page.
  const fetchAsset = assetFetcher(assetPort, data.hostOrigin);
  self.fetch = fetchAsset;
  // This is a classic worker (what a data: URL script starts as), which Pyodide refuses
  // by probing importScripts. It needs nothing a module worker has
  // that this one lacks (dynamic import works), so the probe is made to fail.
  self.importScripts = () => {
    throw new TypeError("importScripts is not available in PyJoy's Python sandbox");
  };
  const importModule = async (url) => {
    const text = await (await fetchAsset(url)).text();
    return import(URL.createObjectURL(new Blob([text], { type: "text/javascript" })));
  };
  bootPython({ config: data.config, fetch: fetchAsset, importModule, importAsm: true, post }).then(
    ({ pyodide, via, phases, python }) => {
      pyodide.pyimport("pyjoy.plugin.kernel").serve(rpcPort);
      post({ type: "ready", python, via, phases });
    },
    (error) => post({ type: "failed", error: describeError(error) }),
  );
});
