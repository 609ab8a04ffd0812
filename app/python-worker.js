// The Python worker's bootstrap: loads Pyodide, restoring the build's memory snapshot
// when it can (a start without Python's own initialisation), then runs what the page
// sends. Its configuration comes in self.name; see runtime.js for the messages.

const config = JSON.parse(self.name);
const started = performance.now();
const phases = {};

function mark(phase) {
  phases[phase] = Math.round(performance.now() - started);
}

function post(message) {
  self.postMessage(message);
}

// Reads a download as it arrives so the page can show a progress bar, then checks its
// hash: fetch()'s own integrity option would hold the whole body back until the end.
async function download(url, expectedBytes, integrity) {
  const response = await fetch(url);
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
    if (loaded - lastReport > 1 << 20) {
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
  post({ type: "progress", phase: "download", loaded, total: loaded });
  if (integrity && (await sri(bytes)) !== integrity) throw new Error(`${url} is damaged: its sha256 does not match the build's`);
  return bytes;
}

async function sri(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return `sha256-${btoa(String.fromCharCode(...digest))}`;
}

async function startPython() {
  // The snapshot is the largest download: start it before anything else.
  const snapshot = download(config.snapshotURL, config.snapshotBytes, config.snapshotIntegrity).finally(() => {
    mark("download");
    post({ type: "progress", phase: "start" });
  });
  snapshot.catch(() => {}); // handled where loadPyodide awaits it
  const { loadPyodide } = await import(`${config.indexURL}pyodide.mjs`);
  mark("module");
  const options = {
    indexURL: config.indexURL,
    lockFileURL: config.lockFileURL,
    packageBaseUrl: config.packageBaseUrl,
    stdout: (text) => post({ type: "stdout", text }),
    stderr: (text) => post({ type: "stderr", text }),
  };
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

function failuresOf(action) {
  const failures = [];
  return {
    options: {
      messageCallback: () => {},
      errorCallback: (message) => failures.push(message),
    },
    // loadPackage resolves even when a fetch failed; it only tells errorCallback.
    check() {
      if (failures.length) throw new Error(`${action} failed: ${failures.join("; ")}`);
    },
  };
}

async function loadPackages(pyodide, names) {
  const report = failuresOf(`loading ${names.join(", ")}`);
  await pyodide.loadPackage(names, report.options);
  report.check();
  return names;
}

async function runPython(pyodide, code) {
  const report = failuresOf("loading the packages this code imports");
  await pyodide.loadPackagesFromImports(code, report.options);
  report.check();
  return pyodide.runPythonAsync(code);
}

// Python values become structured-cloneable JS values; what cannot cross becomes its repr.
function toPlain(value) {
  if (value === undefined || value === null || typeof value !== "object" || typeof value.toJs !== "function") {
    return value;
  }
  try {
    return value.toJs({ dict_converter: Object.fromEntries, create_pyproxies: false });
  } catch {
    return value.toString();
  } finally {
    value.destroy();
  }
}

// Drops the frames of Pyodide's own runner, so a traceback starts at the user's code.
function userTraceback(traceback) {
  const lines = traceback.split("\n");
  const kept = [];
  let internal = false;
  for (const line of lines) {
    if (line.startsWith("  File ")) internal = line.includes("/_pyodide/");
    if (!internal) kept.push(line);
  }
  return kept.join("\n");
}

function describe(error) {
  if (error?.constructor?.name === "PythonError") {
    const lines = error.message.trim().split("\n");
    return { type: error.type, message: lines[lines.length - 1], traceback: userTraceback(error.message) };
  }
  return { type: error?.name ?? "Error", message: String(error?.message ?? error), traceback: error?.stack ?? "" };
}

function reply(id, value) {
  try {
    post({ type: "result", id, value });
  } catch {
    post({ type: "result", id, value: String(value) }); // not structured-cloneable
  }
}

const booting = startPython().then(
  ({ pyodide, via }) => {
    const python = pyodide.runPython("import sys; '.'.join(map(str, sys.version_info[:3]))");
    mark("ready");
    post({ type: "ready", python, via, phases });
    return pyodide;
  },
  (error) => {
    post({ type: "failed", error: describe(error) });
    throw error;
  },
);

self.addEventListener("message", async ({ data }) => {
  const pyodide = await booting;
  try {
    if (data.type === "run") reply(data.id, toPlain(await runPython(pyodide, data.code)));
    else if (data.type === "load-packages") reply(data.id, await loadPackages(pyodide, data.names));
  } catch (error) {
    post({ type: "error", id: data.id, error: describe(error) });
  }
});
