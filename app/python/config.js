// Python's boot configuration for a worker (python/boot.js), made from the build's
// configuration: its URLs made absolute against the page. Shared by the shell's console
// (runtime.js) and the plugin host (plugins/sandbox.js), which must not need the shell.
//
//   worker.postMessage({..., config: pythonConfig(build)});

import { buildIndex, packageIndex } from "./package-index.js";

function absolute(url) {
  return new URL(url, document.baseURI).href;
}

/** The worker configuration for Python: the build's URLs, made absolute. */
export function pythonConfig(build) {
  const { pyodide } = build;
  return {
    indexURL: absolute(pyodide.indexURL),
    lockFileURL: absolute(pyodide.lockFileURL),
    packageBaseUrl: absolute(pyodide.packageBaseUrl),
    snapshotURL: absolute(pyodide.snapshotURL),
    snapshotBytes: pyodide.snapshotBytes,
    snapshotIntegrity: pyodide.snapshotIntegrity,
    runtimeURL: absolute(pyodide.runtimeURL),
    runtimeIntegrity: pyodide.runtimeIntegrity,
    appURL: absolute("."), // Python's PYJOY_APP_URL: what relative URLs of PyJoy's files are relative to (pyjoy.onnx)
    onnxWebURL: absolute(build.onnxWeb), // pyjoy/onnx/web.js, loaded as Python boots where the plugin imports pyjoy.onnx
    version: pyodide.version,
    // Where the lock's packages that dist/ does not vendor come from: the build's index, or
    // the person's mirror (package-index.js), read as each worker starts.
    buildIndex: buildIndex(build),
    packageIndex: packageIndex(build),
  };
}
