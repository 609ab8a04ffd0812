// The console's Python worker (same origin as the page: it runs only what the person types
// in the console). It boots Python, then offers the page a kernel over RPC
// (pyjoy/plugin/kernel.py), and hands the page its memory snapshot's bytes. Its
// configuration comes in self.name.
import { bootPython, describeError } from "./python/boot.js";

const config = JSON.parse(self.name);
const post = (message) => self.postMessage(message);

bootPython({ config, fetch: (url) => fetch(url), importModule: (url) => import(url), post }).then(
  ({ pyodide, via, phases, python, snapshot }) => {
    pyodide.pyimport("pyjoy.plugin.kernel").serve(self);
    // The snapshot's verified bytes, no longer needed here, go to the page (moved, not
    // copied), which boots sandboxes' Python from them (python/kept-snapshot.js).
    const bytes = snapshot?.byteOffset === 0 && snapshot.byteLength === snapshot.buffer.byteLength ? snapshot.buffer : null;
    self.postMessage({ type: "ready", python, via, phases, snapshot: bytes }, bytes ? [bytes] : []);
  },
  (error) => post({ type: "failed", error: describeError(error) }),
);
