// The main thread's side of the Python worker: starts it, follows its boot, and sends
// it code to run. Python never runs on this thread.
//
// Worker -> page messages: {type: "progress", phase, loaded, total}, {type: "ready", python,
// via, phases}, {type: "failed", error}, {type: "notice", message}, {type: "stdout" | "stderr",
// text}, {type: "result", id, value} and {type: "error", id, error}.
// Page -> worker: {type: "run", id, code} and {type: "load-packages", id, names}.

export class PythonError extends Error {
  constructor({ type, message, traceback }) {
    super(message);
    this.name = "PythonError";
    this.pythonType = type; // e.g. "ZeroDivisionError"
    this.traceback = traceback; // Python's own traceback text, when the error came from Python
  }
}

function absolute(url) {
  return new URL(url, document.baseURI).href;
}

export class PythonRuntime {
  #worker;
  #pending = new Map();
  #nextId = 1;
  #listeners = new Set();

  constructor(build) {
    const started = performance.now();
    const pyodide = build.pyodide;
    // The worker reads its configuration from its name: available synchronously at its
    // start, so loading begins without waiting for a first message.
    const config = {
      indexURL: absolute(pyodide.indexURL),
      lockFileURL: absolute(pyodide.lockFileURL),
      packageBaseUrl: absolute(pyodide.packageBaseUrl),
      snapshotURL: absolute(pyodide.snapshotURL),
      snapshotBytes: pyodide.snapshotBytes,
      snapshotIntegrity: pyodide.snapshotIntegrity,
    };
    this.#worker = new Worker(absolute(build.worker), { type: "module", name: JSON.stringify(config) });
    this.ready = new Promise((resolve, reject) => {
      this.#worker.addEventListener("message", ({ data }) => {
        if (data.type === "ready") {
          resolve({ python: data.python, via: data.via, ms: Math.round(performance.now() - started), phases: data.phases });
        } else if (data.type === "failed") {
          reject(new PythonError(data.error));
        }
      });
      this.#worker.addEventListener("error", (event) => {
        reject(new Error(`the Python worker failed to start: ${event.message || "its script did not load"}`));
      });
    });
    this.ready.catch(() => {}); // a failed start is reported through ready's own users
    this.#worker.addEventListener("message", ({ data }) => this.#receive(data));
  }

  /** Calls listener(message) for progress, notices and output; returns an unsubscribe. */
  subscribe(listener) {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Runs Python code (top-level await allowed); resolves to its last expression's value. */
  runPython(code) {
    return this.#request({ type: "run", code: String(code) });
  }

  /** Loads Pyodide packages by name; rejects naming each package that failed to load. */
  loadPackage(names) {
    return this.#request({ type: "load-packages", names: [].concat(names) });
  }

  async #request(message) {
    await this.ready;
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ ...message, id });
    });
  }

  #receive(data) {
    if (data.type === "result" || data.type === "error") {
      const pending = this.#pending.get(data.id);
      this.#pending.delete(data.id);
      if (data.type === "result") pending?.resolve(data.value);
      else pending?.reject(new PythonError(data.error));
      return;
    }
    for (const listener of this.#listeners) listener(data);
  }
}
