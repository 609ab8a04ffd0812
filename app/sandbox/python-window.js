// A Python window plugin's frame (a `window` plugin whose <script> is lang="python", or
// ImJoy's `web-python-window`): its Python runs here, on the frame's own thread, with
// PyScript (@pyscript/core, vendored by the build), so that Python builds the window's DOM
// with pyscript.web, pyscript.display, when and js. frame.js calls startPythonWindow
// instead of starting a JavaScript plugin's session when the page's handshake says
// {python: {config, pyscript}} (contract.js).
//
// The runtime is PyJoy's own: PyScript's `interpreter` names a module whose loadPyodide is
// python/boot.js's bootPython, which restores the build's memory snapshot from the vendored
// Pyodide, fetching every file over the asset port (this frame has an opaque origin and no
// service worker: the page answers, offline too). PyScript wants that module's URL to look
// like http(s) (a blob: URL reads to it as a version number), so an import map gives the
// blob: module an https name under the reserved .invalid domain, never fetched.
// Once Python is up, a PyScript script serves the page over the RPC port with the same
// kernel a web-python worker runs (pyjoy/plugin/kernel.py): the same `api`, `load_plugin`,
// requirements and tracebacks. Python's output goes to the status port, as a worker's does.
import { bootPython, describeError } from "../python/boot.js";
import { FRAME_CHUNK_BYTES, chunkingEndpoint } from "../rpc/transport.js";
import { STATUS } from "./contract.js";
import { memoryIndexedDB } from "./memory-idb.js";

// The https name the import map gives the runtime module (see the top of this file).
const RUNTIME_NAME = "https://pyjoy.invalid/pyodide/pyodide.mjs";
// How the runtime module finds this frame's boot function: read once, then deleted.
const BOOT = Symbol.for("pyjoy.python-window.boot");

// PyScript runs this once Python is up: the kernel takes the RPC port (a JS module,
// `_pyjoy_window`, registered by loadPyodide below), then the page is told Python is ready.
const BOOTSTRAP = `
import _pyjoy_window
try:
    import pyscript
    from pyjoy.plugin.kernel import serve
    serve(_pyjoy_window.rpc, _pyjoy_window.javascript)
except BaseException:
    import traceback
    _pyjoy_window.failed(traceback.format_exc())
    raise
_pyjoy_window.ready()
`;

// A module of ours, fetched over the asset port (a sandbox cannot import our URLs itself).
async function importAsset(fetchAsset, url) {
  const response = await fetchAsset(url);
  if (!response.ok) throw new Error(`${url} answered ${response.status} ${response.statusText}`);
  return importText(await response.text());
}

async function importText(text) {
  const url = URL.createObjectURL(new Blob([text], { type: "text/javascript" }));
  try {
    return await import(url);
  } finally {
    URL.revokeObjectURL(url);
  }
}

/**
 * Boots Python with PyScript in this frame and serves the page over rpcPort.
 * javascript: the loaders the kernel uses here ({loadRequirement, runScript, loadWindow, page}).
 */
export async function startPythonWindow({ rpcPort, fetchAsset, post, python, javascript: loaders }) {
  const { config, pyscript } = python;
  // display() without a target writes into the element PyScript made for the bootstrap
  // script, at the end of <body> when it ran: after the plugin's HTML goes in, it goes last again.
  const javascript = {
    ...loaders,
    async loadWindow(html, styles) {
      const output = [...document.body.children].filter((element) => element.localName === "script-py");
      await loaders.loadWindow(html, styles);
      document.body.append(...output);
    },
  };
  const started = performance.now();
  const importModule = (url) => importAsset(fetchAsset, url);
  const fail = (error) => post({ type: STATUS.failed, error: describeError(error) });

  // PyScript opens an IndexedDB package cache as it boots; an opaque origin has no
  // IndexedDB (a SecurityError), so until Python is loaded it gets one in memory, and
  // then the frame's own (which refuses, as every sandbox's does) is back.
  const ownIndexedDB = Object.getOwnPropertyDescriptor(globalThis, "indexedDB");
  const restoreIndexedDB = () => {
    if (ownIndexedDB) Object.defineProperty(globalThis, "indexedDB", ownIndexedDB);
    else delete globalThis.indexedDB;
  };
  Object.defineProperty(globalThis, "indexedDB", { value: memoryIndexedDB(), configurable: true });

  // Python boots while PyScript loads (1 MB of JavaScript, fetched through the page), not
  // after it, when PyScript asks for it.
  const booting = bootPython({ config, fetch: fetchAsset, importModule, importAsm: true, post });
  booting.catch(fail);
  // PyScript's loadPyodide: ours. PyScript's own options (its indexURL, derived from the
  // runtime's name, and its stdout/stderr, the console) are not used: Python's output goes
  // where a web-python plugin's goes.
  globalThis[BOOT] = async function loadPyodide() {
    restoreIndexedDB(); // PyScript has opened its cache by now
    const { pyodide, python, via, phases } = await booting;
    pyodide.registerJsModule("_pyjoy_window", {
      // This frame is another process than the page: big buffers come and go in pieces.
      rpc: chunkingEndpoint(rpcPort, { chunkBytes: FRAME_CHUNK_BYTES }),
      javascript,
      boot: { python, via, phases }, // via: "snapshot", or "cold" where it could not be restored
      failed: (traceback) => post({ type: STATUS.failed, error: { type: "PythonError", message: "PyScript could not start the plugin's kernel", traceback } }),
      ready: () => post({ type: STATUS.ready, python, via, phases: { ...phases, pyscript: Math.round(performance.now() - started) } }),
    });
    return pyodide;
  };
  const runtime = `const boot = globalThis[Symbol.for(${JSON.stringify(BOOT.description)})];
delete globalThis[Symbol.for(${JSON.stringify(BOOT.description)})];
export const version = ${JSON.stringify(config.version)};
export const loadPyodide = boot;`;
  const runtimeURL = URL.createObjectURL(new Blob([runtime], { type: "text/javascript" }));
  const importMap = document.createElement("script");
  importMap.type = "importmap";
  importMap.textContent = JSON.stringify({ imports: { [RUNTIME_NAME]: runtimeURL } });
  document.head.append(importMap);

  // PyScript reads its configuration when its module is imported, so the script goes in first.
  // packages_cache "never": PyScript keeps no package cache (the kernel installs packages).
  // PyScript's plugins for its own elements (<py-editor>, <py-terminal>, pygame) are not
  // part of a plugin's window: left out, they cost nothing at boot.
  const script = document.createElement("script");
  script.type = "py";
  const plugins = ["!py-editor", "!py-terminal", "!py-game", "!codemirror", "!donkey"];
  script.setAttribute("config", JSON.stringify({ interpreter: RUNTIME_NAME, packages_cache: "never", plugins }));
  // PyScript loads the plugins of its MicroPython type too, by that type's configuration.
  const micropython = document.createElement("mpy-config");
  micropython.textContent = JSON.stringify({ plugins });
  micropython.hidden = true;
  document.head.append(micropython);
  script.textContent = BOOTSTRAP;
  document.head.append(script);

  try {
    await importAsset(fetchAsset, pyscript);
  } catch (error) {
    restoreIndexedDB();
    fail(new Error(`PyScript could not be loaded: ${error.message}`));
  }
}
