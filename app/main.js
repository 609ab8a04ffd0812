// The shell's entry: starts Python in its worker at once, wires the page, registers the
// service worker, and exposes window.pyjoy, the embedding API for other pages and tests.
import { mountConsole } from "./console.js";
import { PythonRuntime } from "./runtime.js";
import { createStatus } from "./status.js";
import { watchForUpdates } from "./updates.js";

const build = JSON.parse(document.getElementById("pyjoy-build").textContent);
const runtime = new PythonRuntime(build);
const status = createStatus(document);
const chip = document.getElementById("runtime-chip");

window.pyjoy = {
  build: build.build,
  version: build.version,
  /** Resolves to {python, via, ms, phases} once Python answers. */
  ready: runtime.ready,
  /** Runs Python in the worker; resolves to the value of the last expression. */
  runPython: (code) => runtime.runPython(code),
  /** Loads Pyodide packages by name from the lock (vendored or the package index). */
  loadPackage: (names) => runtime.loadPackage(names),
  /** Milliseconds since navigation start at each boot milestone. */
  timings: {},
};

runtime.subscribe((message) => {
  if (message.type === "progress" && message.phase === "download") {
    const megabytes = (n) => (n / 1e6).toFixed(1);
    status.show(`Loading Python: ${megabytes(message.loaded)} of ${megabytes(message.total)} MB`, message.total ? message.loaded / message.total : 0);
  } else if (message.type === "progress" && message.phase === "start") {
    status.show("Starting Python…", 1);
  } else if (message.type === "notice") {
    status.toast(message.message, "info");
  }
});

runtime.ready.then(
  ({ python, ms, via }) => {
    window.pyjoy.timings.pythonReady = Math.round(performance.now());
    const shortVersion = python.split(".").slice(0, 2).join(".");
    status.show(`Python ${shortVersion} ready in ${ms} ms${via === "cold" ? " (without its snapshot)" : ""}`);
    chip.textContent = `Python ${shortVersion}`;
    chip.dataset.state = "ready";
  },
  (error) => {
    status.show(`Python could not start: ${error.message}`);
    status.toast(`Python could not start: ${error.message}. Reload to try again.`, "error");
    chip.textContent = "Python failed";
    chip.dataset.state = "failed";
  },
);

status.show("Starting Python…", 0);
mountConsole(document, runtime);

const updateBanner = document.getElementById("update-banner");
watchForUpdates({
  onUpdateReady(accept) {
    updateBanner.hidden = false;
    document.getElementById("update-button").onclick = accept;
  },
  onUpdateFailed(message) {
    if (navigator.serviceWorker.controller) {
      status.toast(`Update not installed: ${message}. PyJoy keeps running this version.`, "error");
    } else {
      status.toast(`PyJoy could not be saved for offline use: ${message}. It tries again on the next visit.`, "error");
    }
  },
}).catch((error) => status.toast(`Offline use is unavailable: ${error.message}`, "error"));

// Interactive means wired and painted: stamp after the frame that shows the shell.
requestAnimationFrame(() => setTimeout(() => (window.pyjoy.timings.shellInteractive = Math.round(performance.now()))));
