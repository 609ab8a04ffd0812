// A plugin's JavaScript <script> block, run in a plugin's classic worker (js-worker.js; and
// python-worker.js for a web-python plugin's javascript blocks) as a classic script, or as
// a module for type="module", so its top-level declarations are the worker's globals.
//
//   await runWorkerScript({code, line, attrs}, "Plugin Name", importScripts)
//
// importScripts is passed in: the Python worker hides its own from Pyodide's probe.
export async function runWorkerScript(script, name, importScripts) {
  // Blank lines first, so that errors name the plugin file's own line numbers.
  const source = "\n".repeat(Math.max(0, (script.line ?? 1) - 1)) + script.code;
  // V8 ignores a sourceURL with a space in it (most plugin names), hence encodeURI.
  const url = URL.createObjectURL(new Blob([`${source}\n//# sourceURL=${encodeURI(name)}`], { type: "text/javascript" }));
  try {
    if (script.attrs?.type === "module") await import(url);
    else importScripts(url);
  } finally {
    URL.revokeObjectURL(url);
  }
}
