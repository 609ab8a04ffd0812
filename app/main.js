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

// The plugin host (and its YAML parser) loads on first use, so the
// page's first script stays small and the Python worker starts sooner.
let hostLoading = null;
function pluginHost() {
  hostLoading ??= Promise.all([import("./plugins/host.js"), import("./ui/dialog.js"), import("./ui/files.js"), import("./ui/windows.js")])
    .then(([{ PluginHost }, { dialogs }, { chooseFiles, download }, { createWindowArea }]) => new PluginHost({
      build,
      ui: {
        toast: (text, kind, duration) => status.toast(text, kind, duration),
        status: (text) => status.show(text),
        progress: (label, fraction) => status.show(fraction >= 1 ? `${label}: done` : label, fraction >= 1 ? null : fraction),
        dialogs,
        chooseFiles,
        download,
      },
      hiddenContainer: document.getElementById("sandboxes"),
      windows: createWindowArea(document.getElementById("windows")),
    }));
  return hostLoading;
}
// The page itself, as a caller of the plugin API (pyjoy.api).
const page = { name: "PyJoy", type: "page", config: { name: "PyJoy", version: build.version }, source: { attachments: {} } };
let pageApi = null;
const api = new Proxy({}, {
  get: (_target, name) => typeof name !== "string" || name === "then" ? undefined : async (...args) => {
    pageApi ??= Promise.all([pluginHost(), import("./plugins/host-api.js")]).then(([host, { hostApiFor }]) => hostApiFor(page, host));
    return (await pageApi)[name](...args);
  },
});

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
  /** Loads a plugin from a URL or its source; resolves to its exported API (a proxy). */
  loadPlugin: async (urlOrSource) => (await (await pluginHost()).load(urlOrSource)).api,
  /** The exported API of a loaded plugin, by name. */
  getPlugin: async (name) => (await pluginHost()).getPlugin(name),
  /** [{name, type, version, state, error}] of the loaded plugins. */
  plugins: async () => (hostLoading ? (await hostLoading).list() : []),
  /** Ends a plugin (even one stuck in a loop); it can be loaded again. */
  terminatePlugin: async (name) => (await pluginHost()).terminate(name),
  /** Loads a plugin again from its URL or source. */
  reloadPlugin: async (name) => (await (await pluginHost()).reload(name)).api,
  /** The API the host gives plugins, callable from the page: each call returns a promise. */
  api,
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
