// Boots Pyodide in a worker, from the build's memory snapshot when it can. Shared by the
// console's worker (same origin, real fetch) and plugin workers in sandboxes (assets come
// from the page through an asset port): each passes its own `fetch` and `importModule`.
//
//   const { pyodide, via, phases } = await bootPython({ config, fetch, importModule, importAsm, post });
//
// fetch: a fetch for PyJoy's files; where it has a bytes(url, {integrity}) method (a
// sandbox's, sandbox/assets.js) the snapshot and the runtime come through that.
// config: {indexURL, lockFileURL, packageBaseUrl, snapshotURL, snapshotBytes,
// snapshotIntegrity, runtimeURL, runtimeIntegrity, appURL, onnxWebURL, buildIndex,
// packageIndex, preloadOnnx?} with absolute URLs. post(message)
// reports {type: "progress" | "notice" | "stdout" | "stderr"} to whoever shows them;
// output is batched and bounded on the way (output.js).

import { checkIntegrity } from "./integrity.js";
import { boundedOutput } from "./output.js";

// Fetches one of PyJoy's files whole and checks its hash. SubtleCrypto checks it here
// where there is one; elsewhere the page does (plugins/sandbox.js, serveAssets).
async function download(fetchAsset, url, { expectedBytes = 0, integrity, post }) {
  const checkHere = Boolean(integrity && globalThis.crypto?.subtle);
  const asked = checkHere || !integrity ? {} : { integrity };
  // A sandbox's files come whole from the page as an ArrayBuffer: read through a Response,
  // the 31 MB snapshot held the worker's thread ~290 ms, against ~50 with its hash
  // (Chromium tracing, load average 5).
  const bytes = fetchAsset.bytes ? new Uint8Array(await fetchAsset.bytes(url, asked)) : await streamed(fetchAsset, url, asked, expectedBytes, post);
  if (checkHere) await checkIntegrity(bytes, integrity, url);
  return bytes;
}

// Reads a download as it arrives so the page can show a progress bar (fetch()'s own
// integrity option would hold the whole body back until the end).
async function streamed(fetchAsset, url, init, expectedBytes, post) {
  const response = await fetchAsset(url, init);
  if (!response.ok) throw new Error(`${url} answered ${response.status} ${response.statusText}`);
  const total = expectedBytes || Number(response.headers.get("Content-Length")) || 0;
  const reader = response.body.getReader();
  const chunks = [];
  let loaded = 0;
  let lastReport = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    if (post && loaded - lastReport > 1 << 20) {
      lastReport = loaded;
      post({ type: "progress", phase: "download", loaded, total });
    }
  }
  const bytes = new Uint8Array(loaded);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  post?.({ type: "progress", phase: "download", loaded, total: loaded });
  return bytes;
}

// A mirror (python/package-index.js) serves the build's wheels from another place: the
// lock's URLs at the build's index are pointed at it; their sha256 stay the build's.
function pointLockAt(pyodide, from, to) {
  if (!from || !to || from === to) return;
  for (const entry of Object.values(pyodide.lockfile.packages)) {
    if (entry.file_name.startsWith(from)) entry.file_name = to + entry.file_name.slice(from.length);
  }
}

// Starts fetching urls now; until the returned function is called, the global fetch
// answers each of them once with that response. Pyodide fetches its own files with the
// global fetch, and only once loadPyodide runs, after pyodide.mjs has come and been
// imported (in a sandbox a round trip through the page: plugins/sandbox.js).
function fetchEarly(fetchAsset, urls) {
  const early = new Map(urls.map((url) => [url, fetchAsset(url)]));
  for (const response of early.values()) response.catch(() => {}); // handled where Pyodide awaits it
  const globalFetch = globalThis.fetch;
  globalThis.fetch = (input, init) => {
    const url = input instanceof Request ? input.url : String(input); // Pyodide's are absolute
    const response = early.get(url);
    if (!response || init?.integrity) return globalFetch(input, init);
    early.delete(url);
    return response;
  };
  return () => (globalThis.fetch = globalFetch);
}

// The plugin imports pyjoy.onnx (plugins/host.js): pyjoy/onnx/web.js is imported now and
// loads onnxruntime-web while Python boots (first visit, the model's first inference: 1.43
// -> 1.33 s in an isolated worker, 1.64 -> 1.57 s in a Python window, bench/onnx_first.py).
// pyjoy/onnx/web.py takes this module from globalThis.pyjoyOnnxWeb (one module: its
// runtimes and sessions shared).
function preloadOnnx(importModule, config) {
  const module = importModule(config.onnxWebURL);
  module.then((web) => web.preload(config.appURL), () => {}); // a failed import: web.py imports its own copy
  globalThis.pyjoyOnnxWeb = module;
}

// Python from the snapshot; from scratch where the snapshot cannot be restored.
async function restore(loadPyodide, options, snapshot, post) {
  try {
    const pyodide = await loadPyodide({ ...options, _loadSnapshot: snapshot });
    // The snapshot was made on Node, without a browser's language; set LANG as Pyodide
    // does at a cold start.
    const lang = `${(navigator.language ?? "C").replace("-", "_")}.UTF-8`;
    const globals = pyodide.toPy({ lang });
    pyodide.runPython("import os\nos.environ['LANG'] = lang", { globals });
    globals.destroy();
    return { pyodide, via: "snapshot" };
  } catch (error) {
    // A snapshot that cannot be restored costs speed, not the session.
    post({ type: "notice", message: `Python's memory snapshot could not be used (${error.message}); starting Python from scratch.` });
    return { pyodide: await loadPyodide(options), via: "cold" };
  }
}

export async function bootPython({ config, fetch: fetchAsset, importModule, importAsm = false, post }) {
  const started = performance.now();
  const phases = {};
  const mark = (phase) => (phases[phase] = Math.round(performance.now() - started));

  // The snapshot is the largest download: start it before anything else.
  const snapshot = download(fetchAsset, config.snapshotURL, {
    expectedBytes: config.snapshotBytes, integrity: config.snapshotIntegrity, post,
  }).finally(() => {
    mark("download");
    post({ type: "progress", phase: "start" });
  });
  snapshot.catch(() => {}); // handled where loadPyodide awaits it
  const runtime = download(fetchAsset, config.runtimeURL, { integrity: config.runtimeIntegrity });
  runtime.catch(() => {});
  if (config.preloadOnnx) preloadOnnx(importModule, config);

  // Pyodide's files, all at once beside the snapshot rather than one after another.
  const endEarly = fetchEarly(fetchAsset, [
    `${config.indexURL}pyodide.asm.wasm`, `${config.indexURL}python_stdlib.zip`, config.lockFileURL,
  ]);
  // A sandbox must import pyodide.asm.mjs through its importModule; loadPyodide awaits this
  // promise where it would import the file itself. Elsewhere Pyodide imports it, later.
  const createPyodideModule = importAsm
    ? importModule(`${config.indexURL}pyodide.asm.mjs`).then((module) => module.default)
    : undefined;
  createPyodideModule?.catch(() => {});
  const output = boundedOutput(post);
  const options = {
    indexURL: config.indexURL,
    lockFileURL: config.lockFileURL,
    packageBaseUrl: config.packageBaseUrl,
    createPyodideModule,
    stdout: (text) => output.write("stdout", text),
    stderr: (text) => output.write("stderr", text),
  };
  let restored;
  try {
    const { loadPyodide } = await importModule(`${config.indexURL}pyodide.mjs`);
    mark("module");
    restored = await restore(loadPyodide, options, snapshot, post);
    mark("restored");
  } finally {
    endEarly(); // what Python fetches from now on goes the usual way
  }
  const { pyodide, via } = restored;
  pointLockAt(pyodide, config.buildIndex, config.packageIndex);
  // The snapshot holds pyjoy's modules already imported; their files back tracebacks
  // and anything imported later.
  const sitePackages = pyodide.runPython("import sysconfig; sysconfig.get_path('purelib')");
  pyodide.unpackArchive(await runtime, "zip", { extractDir: sitePackages });
  // The app's address, for Python code that names PyJoy's files by relative URLs (pyjoy.onnx).
  if (config.appURL) {
    const globals = pyodide.toPy({ url: config.appURL });
    pyodide.runPython("import os\nos.environ['PYJOY_APP_URL'] = url", { globals });
    globals.destroy();
  }
  mark("ready");
  const python = pyodide.runPython("import sys; '.'.join(map(str, sys.version_info[:3]))");
  // The snapshot's bytes are copied into Python's memory: the caller may hand them on
  // (the console's worker gives them to the page, python/kept-snapshot.js).
  return { pyodide, via, phases, python, snapshot: via === "snapshot" ? await snapshot : null };
}

// Python errors reach the page with Python's type, its last line and the traceback.
export function describeError(error) {
  if (error?.constructor?.name === "PythonError") {
    const lines = error.message.trim().split("\n");
    return { type: error.type, message: lines[lines.length - 1], traceback: error.message };
  }
  return { type: error?.name ?? "Error", message: String(error?.message ?? error), traceback: error?.stack ?? "" };
}
