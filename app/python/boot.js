// Boots Pyodide in a worker, from the build's memory snapshot when it can. Shared by the
// console's worker (same origin, real fetch) and plugin workers in sandboxes (assets come
// from the page through an asset port): each passes its own `fetch` and `importModule`.
//
//   const { pyodide, via, phases } = await bootPython({ config, fetch, importModule, importAsm, post });
//
// config: {indexURL, lockFileURL, packageBaseUrl, snapshotURL, snapshotBytes,
// snapshotIntegrity, runtimeURL, runtimeIntegrity, appURL, buildIndex, packageIndex} with
// absolute URLs. post(message)
// reports {type: "progress" | "notice" | "stdout" | "stderr"} to whoever shows them;
// output is batched and bounded on the way (output.js).

import { boundedOutput } from "./output.js";

async function sri(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return `sha256-${btoa(String.fromCharCode(...digest))}`;
}

// Reads a download as it arrives so the page can show a progress bar, then checks its
// hash: fetch()'s own integrity option would hold the whole body back until the end.
async function download(fetchAsset, url, { expectedBytes = 0, integrity, post }) {
  // Where there is no SubtleCrypto (a sandbox is not a secure context), the fetch itself
  // checks the hash (the page does it for a sandbox: sandbox/assets.js).
  const checkHere = Boolean(integrity && globalThis.crypto?.subtle);
  const response = await fetchAsset(url, integrity && !checkHere ? { integrity } : {});
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
  if (checkHere && (await sri(bytes)) !== integrity) throw new Error(`${url} is damaged: its sha256 does not match the build's`);
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

  const { loadPyodide } = await importModule(`${config.indexURL}pyodide.mjs`);
  // A sandbox must import pyodide.asm.mjs through its importModule; loadPyodide awaits this
  // promise where it would import the file itself. Elsewhere Pyodide imports it, later.
  const createPyodideModule = importAsm
    ? importModule(`${config.indexURL}pyodide.asm.mjs`).then((module) => module.default)
    : undefined;
  createPyodideModule?.catch(() => {});
  mark("module");
  const output = boundedOutput(post);
  const options = {
    indexURL: config.indexURL,
    lockFileURL: config.lockFileURL,
    packageBaseUrl: config.packageBaseUrl,
    createPyodideModule,
    stdout: (text) => output.write("stdout", text),
    stderr: (text) => output.write("stderr", text),
  };
  let pyodide;
  let via = "snapshot";
  try {
    pyodide = await loadPyodide({ ...options, _loadSnapshot: snapshot });
    // The snapshot was made on Node, without a browser's language; set LANG as Pyodide
    // does at a cold start.
    const lang = `${(navigator.language ?? "C").replace("-", "_")}.UTF-8`;
    const globals = pyodide.toPy({ lang });
    pyodide.runPython("import os\nos.environ['LANG'] = lang", { globals });
    globals.destroy();
  } catch (error) {
    // A snapshot that cannot be restored costs speed, not the session.
    post({ type: "notice", message: `Python's memory snapshot could not be used (${error.message}); starting Python from scratch.` });
    pyodide = await loadPyodide(options);
    via = "cold";
  }
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
  return { pyodide, via, phases, python };
}

// Python errors reach the page with Python's type, its last line and the traceback.
export function describeError(error) {
  if (error?.constructor?.name === "PythonError") {
    const lines = error.message.trim().split("\n");
    return { type: error.type, message: lines[lines.length - 1], traceback: error.message };
  }
  return { type: error?.name ?? "Error", message: String(error?.message ?? error), traceback: error?.stack ?? "" };
}
