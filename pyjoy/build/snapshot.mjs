// Makes the memory snapshot the Python worker restores at start (Pyodide's
// `_loadSnapshot`), so a start skips Python's own initialisation (about 3 s here).
// Usage: node snapshot.mjs PYODIDE_DIR RUNTIME_ZIP WARMUP_PY OUT_FILE
import { readFileSync, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const [pyodideDir, runtimeZip, warmupFile, outFile] = process.argv.slice(2);
const { loadPyodide } = await import(pathToFileURL(`${pyodideDir}/pyodide.mjs`).href);
const pyodide = await loadPyodide({
  indexURL: `${pyodideDir}/`,
  _makeSnapshot: true,
  // What a browser's Pyodide reports; on Node it would be this script's path, baked into
  // sys.executable of every restored Python.
  _sysExecutable: "./this.program",
  stdout: () => {},
});
// pyjoy's runtime, where the worker unpacks it too (python/boot.js).
const sitePackages = pyodide.runPython("import sysconfig; sysconfig.get_path('purelib')");
pyodide.unpackArchive(new Uint8Array(readFileSync(runtimeZip)), "zip", { extractDir: sitePackages });
pyodide.runPython(readFileSync(warmupFile, "utf8"));
writeFileSync(outFile, pyodide.makeMemorySnapshot());
