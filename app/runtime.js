// The page's side of the console's Python worker: starts it, follows its boot, and talks
// to its kernel (pyjoy/plugin/kernel.py) over RPC. Python never runs on this thread.
//
// Besides RPC messages, the worker posts {type: "progress", phase, loaded, total},
// {type: "ready", python, via, phases, snapshot}, {type: "failed", error}, {type: "notice", message}
// and {type: "stdout" | "stderr", text}; subscribe() hands these to the page.
import { PythonError } from "./errors.js";
import { Session } from "./rpc/session.js";
import { PostMessageTransport } from "./rpc/transport.js";
import { pythonConfig } from "./python/config.js";
import { keepSnapshot } from "./python/kept-snapshot.js";

// Errors from the kernel come as RemoteError; the embedding API names them PythonError.
function asPythonError(error) {
  if (error?.name !== "RemoteError") throw error;
  const lines = (error.message ?? "").trim().split("\n");
  const last = lines[lines.length - 1];
  const message = last.startsWith(`${error.remoteType}:`) ? last : `${error.remoteType}: ${last}`;
  throw new PythonError({ type: error.remoteType, message, traceback: error.traceback });
}

export class PythonRuntime {
  #worker;
  #session;
  #listeners = new Set();

  constructor(build) {
    const started = performance.now();
    // The worker reads its configuration from its name: available synchronously at its
    // start, so loading begins without waiting for a first message.
    const config = pythonConfig(build);
    this.#worker = new Worker(new URL(build.worker, document.baseURI).href, { type: "module", name: JSON.stringify(config) });
    this.#session = new Session(new PostMessageTransport(this.#worker));
    const booted = new Promise((resolve, reject) => {
      this.#worker.addEventListener("message", ({ data }) => {
        if (data?.type === "ready") {
          // The snapshot's bytes, verified by the worker: sandboxes boot from copies of them.
          keepSnapshot({ url: config.snapshotURL, integrity: config.snapshotIntegrity, bytes: data.snapshot });
          resolve(data);
        } else if (data?.type === "failed") reject(new PythonError(data.error));
        else if (data?.type) for (const listener of this.#listeners) listener(data);
      });
      this.#worker.addEventListener("error", (event) => {
        reject(new Error(`the Python worker failed to start: ${event.message || "its script did not load"}`));
      });
    });
    this.kernel = booted.then(() => this.#session.remoteRoot);
    this.ready = this.kernel.then(async () => {
      const { python, via, phases } = await booted;
      return { python, via, phases, ms: Math.round(performance.now() - started) };
    });
    this.ready.catch(() => {}); // a failed start is reported through ready's own users
  }

  /** Calls listener(message) for progress, notices and output; returns an unsubscribe. */
  subscribe(listener) {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Runs Python code (top-level await allowed); resolves to its last expression's value. */
  async runPython(code) {
    const kernel = await this.kernel;
    return kernel.run_python(String(code)).catch(asPythonError);
  }

  /** Loads Pyodide packages by name; rejects naming each package that failed to load. */
  async loadPackage(names) {
    const kernel = await this.kernel;
    return kernel.load_packages([].concat(names)).catch(asPythonError);
  }
}
