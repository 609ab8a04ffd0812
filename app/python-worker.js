// The console's Python worker (same origin as the page: it runs only what the person types
// in the console). It boots Python, then offers the page a kernel over RPC
// (pyjoy/plugin/kernel.py). Its configuration comes in self.name.
import { bootPython, describeError } from "./python/boot.js";

const config = JSON.parse(self.name);
const post = (message) => self.postMessage(message);

bootPython({ config, fetch: (url) => fetch(url), importModule: (url) => import(url), post }).then(
  ({ pyodide, via, phases, python }) => {
    pyodide.pyimport("pyjoy.plugin.kernel").serve(self);
    post({ type: "ready", python, via, phases });
  },
  (error) => post({ type: "failed", error: describeError(error) }),
);
