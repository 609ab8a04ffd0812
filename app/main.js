// The shell's entry: starts Python in its worker at once, wires the page, registers the
// service worker, and exposes window.pyjoy, the embedding API for other pages and tests.
import { mountConsole } from "./console.js";
import { CODES, PluginError, asPluginError } from "./errors.js";
import { PythonRuntime } from "./runtime.js";
import { createOfflineStatus, createStatus } from "./status.js";
import { mountViews } from "./ui/views.js";
import { whenQuiet } from "./quiet.js";
import { offlineReadiness, watchForUpdates } from "./updates.js";

const build = JSON.parse(document.getElementById("pyjoy-build").textContent);
const runtime = new PythonRuntime(build);
const status = createStatus(document);
const chip = document.getElementById("runtime-chip");
const showView = mountViews(document);

// The workbench (workspaces in IndexedDB, the plugin list, windows) loads once the shell
// has painted, so its work never delays the first frame; the plugin host (and its YAML
// parser) only when a plugin first starts, so the page's first script stays small and the
// Python worker starts sooner.
const params = new URL(location.href).searchParams;
const painted = new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve)));
// The engines this page connects to (engine.js): native-python plugins run there.
const enginesReady = painted.then(() => import("./engine.js")).then(({ Engines }) => new Engines({
  onNotice: (engine, text) => status.log(`Engine ${engine.label}: ${text}`, "error"),
}));
let enginesUI = null; // workbench/engines.js, once the workbench is up
let windowArea = null; // ui/windows.js, once the workbench is up
const workbenchReady = painted.then(() => Promise.all([
  import("./workbench/workbench.js"), import("./workbench/manager.js"), import("./ui/windows.js"),
  import("./ui/dialog.js"), import("./ui/files.js"), import("./workbench/engines.js"), enginesReady, import("./workbench/workflow-panel.js"),
])).then(async ([{ Workbench }, { mountManager }, { createWindowArea }, { dialogs }, { chooseFiles, download }, { mountEngines }, engines, { mountWorkflows }]) => {
  const ui = {
    toast: (text, kind, duration, action, source) => status.toast(text, kind, duration, action, source),
    status: (text) => status.show(text),
    log: (text, kind) => status.log(text, kind),
    forget: (source) => { // a plugin was ended: its toasts and dialogs go
      status.forget(source);
      dialogs.forget(source);
    },
    progress: (label, fraction) => status.show(fraction >= 1 ? `${label}: done` : label, fraction >= 1 ? null : fraction),
    dialogs,
    chooseFiles,
    download,
  };
  let workbench;
  const windows = windowArea = createWindowArea(document.getElementById("windows"), {
    onLayout: (layout) => workbench?.saveLayout(layout),
    onOpen: () => showView("windows"), // on a phone, a new window is what the person wants to see
  });
  const host = () => import("./plugins/host.js").then(({ PluginHost }) => new PluginHost({
    build, ui, windows,
    hiddenContainer: document.getElementById("sandboxes"),
    settings: workbench.settings,
    installer: workbench.installer,
    windowLayout: (name) => workbench.windowLayout(name),
    consent: (plugin, what) => workbench.consent(plugin, what),
    codeEditor: (options) => import("./workbench/editor-window.js")
      .then(({ openEditorWindow }) => openEditorWindow({ windows, workbench, status, ...options })),
    engines,
  }));
  const builtinManifest = new URL("plugins/manifest.imjoy.json", document.baseURI).href;
  workbench = await Workbench.start({ ui, host, workspace: params.get("w"), builtinManifest });
  enginesUI = mountEngines(document, { workbench, engines, dialogs, status });
  mountManager(document, { workbench, engines, status, dialogs, windows, show: showView, builtinManifest, actions: {
    engines: () => enginesUI.dialog(),
    "package-index": () => import("./workbench/package-index.js").then(({ packageIndexDialog }) => packageIndexDialog({ build, dialogs, status })),
  } });
  mountWorkflows(document, { workbench, tools: workflowTools, api, status, dialogs, chooseFiles, download });
  window.pyjoy.timings.workbenchReady = Math.round(performance.now());
  workbench.restoreWindows();
  // ?engine=URL connects first, so that ?plugin= can be a native-python plugin.
  const engineConnected = params.has("engine")
    ? enginesUI.connect(params.get("engine"), { keep: true }).catch((error) => status.toast(`Could not connect the engine: ${error.message}`, "error"))
    : null;
  if (params.has("plugin")) Promise.resolve(engineConnected).then(() => openSharedPlugin(workbench, dialogs, params.get("plugin"), params.get("replicas")));
  if (params.has("workflow")) Promise.resolve(engineConnected).then(() => openSharedWorkflow(workbench, dialogs, params.get("workflow")));
  // ?docs=PAGE#HEADING opens the Docs view there.
  if (params.has("docs")) docs().then((viewer) => viewer.open(params.get("docs") || null, decodeURIComponent(location.hash.slice(1)) || null)).catch(docsFailed);
  return workbench;
});
workbenchReady.catch((error) => status.toast(`The workbench could not start: ${error.message}`, "error"));

// The Docs view (docs/viewer.js), loaded when first opened: the header's Docs button, ?docs=.
let docsViewer = null;
const docs = () => (docsViewer ??= Promise.all([workbenchReady, import("./docs/viewer.js")])
  .then(([, module]) => module.docsViewer({ windows: windowArea, onOpen: () => showView("windows") })));
const docsFailed = (error) => status.toast(`The docs could not be opened: ${error.message}`, "error");
document.getElementById("docs-button").addEventListener("click", () => docs().then((viewer) => viewer.open()).catch(docsFailed));
// Other parts of the page (the editor's Guide button) ask for a page: {detail: {page, anchor}}.
window.addEventListener("pyjoy-docs", ({ detail }) => docs().then((viewer) => viewer.open(detail?.page ?? null, detail?.anchor ?? null)).catch(docsFailed));
const pluginHost = () => workbenchReady.then((workbench) => workbench.host());

// ?plugin=URL: install that plugin with its dependencies (asking first, naming them all,
// since it is code from elsewhere) and run it. As ImJoy's ?plugin= (Imjoy.vue, through
// imjoy-core getPluginFromUrl), a URL ending in ".imjoy.html@TAG" or "owner/repo:Name@TAG"
// picks one of the plugin's tags. &replicas=N: a native-python plugin's Ray actors on a
// --ray engine from its first start, kept in the workspace (checked as pyjoy.installPlugin's).
async function openSharedPlugin(workbench, dialogs, spec, replicasParam = null) {
  const declined = new Error("declined");
  // Digits are a count; anything else goes as it was written, for the error to name it.
  const replicas = replicasParam === null ? null : /^\d+$/.test(replicasParam) ? Number(replicasParam) : replicasParam;
  try {
    const { dependenciesText, dependencySource, fetchPluginText, permissionsOf, splitTag } = await import("./workbench/install.js");
    const named = splitTag(spec);
    const { url, tag } = /^[^/:@\s]+\/[^/:@\s]+(@[^:]+)?:/.test(spec) ? await dependencySource(spec) : { url: named.uri, tag: named.tag };
    const fetched = await fetchPluginText(url);
    let type = null;
    const installed = await workbench.install(fetched.text, {
      url: fetched.url,
      tag,
      start: false,
      replicas,
      async approve(config, _url, replaced, dependencies) {
        const { name, type: kind } = config;
        type = kind;
        if (replaced?.text === fetched.text && (replaced.tag ?? null) === config.tag && !dependencies.length) { // installed as it is
          if (replicas === null || workbench.workspace.replicas(replaced.id) === replicas) return;
          const question = `Run ${name} as ${replicas} Ray actors from now on (kept in workspace "${workbench.workspace.name}"), as the link asks?`;
          if (!(await dialogs.confirm("Replicas", question))) throw declined;
          return;
        }
        const asks = permissionsOf(config);
        const needs = dependenciesText(dependencies);
        const variant = `${config.tags.length > 1 ? ` (its tag ${config.tag})` : ""}${replicas === null ? "" : ` as ${replicas} Ray actors`}`;
        const question = replaced
          ? `A different version of ${name} is installed${replaced.url ? ` (from ${replaced.url})` : ""}. Replace it with the one from ${fetched.url}${variant}? ${asks} ${needs}`
          : `Install the ${kind} plugin ${name}${variant} from ${fetched.url} into workspace "${workbench.workspace.name}"? ${asks} ${needs} Plugins run in a sandbox, but only install plugins you trust.`;
        if (!(await dialogs.confirm(replaced ? "Update plugin" : "Install plugin", question.replace(/  +/g, " ")))) throw declined;
      },
    });
    await workbench.run(installed.id);
    if (type === "window" || type === "web-python-window") showView("windows");
    status.show(`${installed.name} is running`);
  } catch (error) {
    if (error === declined) return;
    status.toast(`Could not open the shared plugin ${spec}: ${error.message}`, "error");
  }
}

// Workflows (workbench/workflows.js): the open workspace's saved ones, and a runner whose
// ops start their installed plugin when it is not running (so a saved workflow runs offline).
// The host is started only when a workflow runs (findOp), as for any plugin's first start.
async function workflowTools() {
  const [workbench, module] = await Promise.all([workbenchReady, import("./workbench/workflows.js")]);
  const findOp = async (plugin, op) => {
    const host = await workbench.host();
    const id = host.idOf(plugin);
    if (!id || !host.plugin(id)) await workbench.getPlugin(plugin);
    return module.opFinder(host)(plugin, op);
  };
  return { module, workbench, findOp, shelf: module.workflowShelf(workbench.workspaces.store, workbench.workspace.name) };
}

// ?workflow=JSON: a shared workflow, untrusted: validated (a clear error names what is
// wrong), and the plugins it needs that are not installed are installed from its sources
// only once the person agrees; then it is saved in the open workspace. It runs no code itself.
async function openSharedWorkflow(workbench, dialogs, param) {
  try {
    const { module, shelf } = await workflowTools();
    const workflow = module.decodeWorkflow(param);
    const missing = module.pluginsOf(workflow).filter((name) => !workbench.workspace.pluginNamed(name));
    const unknown = missing.filter((name) => !workflow.sources?.[name]);
    if (unknown.length) throw new Error(`it needs the plugins ${unknown.join(", ")}, which are not installed and it says not where to get them from`);
    const needs = missing.length
      ? ` It needs plugins that are not installed: ${missing.map((name) => `${name} (from ${workflow.sources[name]})`).join(", ")}. They will be installed into workspace "${workbench.workspace.name}". Plugins run in a sandbox, but only install plugins you trust.`
      : " Every plugin it needs is installed.";
    const steps = workflow.steps.map((step) => `${step.op} (${step.plugin})`).join(" → ");
    if (!(await dialogs.confirm("Open workflow", `Open the shared workflow "${workflow.name}": ${steps}?${needs}`))) return;
    const { fetchPluginText } = await import("./workbench/install.js");
    for (const name of missing) {
      const fetched = await fetchPluginText(workflow.sources[name]);
      await workbench.install(fetched.text, {
        url: fetched.url,
        start: false,
        approve(config) {
          if (config.name !== name) throw new Error(`${workflow.sources[name]} holds the plugin ${config.name}, not ${name}`);
        },
      });
    }
    await shelf.save(workflow);
    window.dispatchEvent(new CustomEvent("pyjoy-workflows"));
    status.toast(`Workflow "${workflow.name}" opened and saved in workspace "${workbench.workspace.name}"`);
  } catch (error) {
    status.toast(`Could not open the shared workflow: ${error.message}`, "error");
  }
}

// The page itself, as a caller of the plugin API (pyjoy.api): the person's own code, so
// it is not asked what plugins are asked (host-api.js).
// Its id "page" is the host's owner for what the page loads (plugins/host.js).
const page = { id: "page", name: "PyJoy", type: "page", config: { name: "PyJoy", version: build.version }, source: { attachments: {} } };
let pageApi = null;
const api = new Proxy({}, {
  get: (_target, name) => typeof name !== "string" || name === "then" ? undefined : async (...args) => {
    pageApi ??= Promise.all([pluginHost(), import("./plugins/host-api.js")]).then(([host, { hostApiFor }]) => hostApiFor(page, host, { asPerson: true }));
    const calls = await pageApi;
    if (!Object.hasOwn(calls, name)) throw new TypeError(`pyjoy.api has no function ${name}`);
    return calls[name](...args);
  },
});

// Every error of the embedding API is one of errors.js's family, with its code.
const rethrow = (error) => { throw asPluginError(error); };

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
  /**
   * Loads a plugin from a URL or its source for this page only; resolves to its API (a proxy).
   * replicas: a native-python plugin's count of Ray actors on a --ray engine, from its first start.
   */
  loadPlugin: async (urlOrSource, { replicas = null } = {}) => (await (await pluginHost()).load(urlOrSource, { replicas }).catch(rethrow)).api,
  /** Installs a plugin into the open workspace (kept, offline too) and starts it; its API. replicas: as
   * loadPlugin's, kept in the workspace (the plugin list's Replicas). */
  installPlugin: async (urlOrSource, { replicas = null } = {}) => (await workbenchReady).installer.install(urlOrSource, { replicas }).catch(rethrow),
  /** Removes an installed plugin from the open workspace. */
  uninstallPlugin: async (name) => (await workbenchReady).installer.uninstall(name).catch(rethrow),
  /** A plugin's API by name: a loaded one's, or an installed one's, started if needed. */
  getPlugin: async (name) => (await workbenchReady).getPlugin(name).catch(rethrow),
  /** [{name, type, version, state, error}]: the workspace's plugins, then any loaded only here. */
  plugins: async () => {
    const workbench = await workbenchReady;
    const loaded = workbench.hostStarted ? (await workbench.host()).list() : [];
    const installed = workbench.list();
    const describe = ({ name, type, version, state, error }) => ({ name, type, version, state, error });
    return [...installed, ...loaded.filter((plugin) => !installed.some((known) => known.id === plugin.id))].map(describe);
  },
  /** Ends a plugin (even one stuck in a loop); it can be started again. */
  terminatePlugin: async (name) => {
    const host = await pluginHost();
    return host.terminate(host.idOf(name));
  },
  /** Starts a plugin again: an installed one from its stored file, else from its URL or source. */
  reloadPlugin: async (name) => {
    const workbench = await workbenchReady;
    const host = await pluginHost();
    const id = host.idOf(name);
    if (workbench.workspace.plugin(id)) return (await workbench.start(id).catch(rethrow)).api;
    if (host.plugin(id)) return (await host.reload(id).catch(rethrow)).api;
    throw new PluginError(`no plugin named ${name} is installed or loaded`, { code: CODES.notFound });
  },
  /**
   * Connects an engine (`pyjoy engine` prints its URL, ws://HOST:PORT/?token=...) and
   * remembers it in the open workspace; resolves to {url (without its token), state,
   * reason, info}. Rejects with an EngineError on a wrong token or an unreachable engine.
   */
  connectEngine: async (url) => {
    await workbenchReady;
    return (await enginesUI.connect(url)).describe();
  },
  /**
   * An engine plugin's `method(item)` for each of `items`, spread over its replicas on a Ray
   * cluster (`pyjoy engine --ray`, config "replicas": N), results in input order;
   * `onProgress({done, total})` as they come.
   */
  mapOnEngine: async (name, method, items, { onProgress } = {}) => (await pluginHost()).mapOnEngine(name, method, items, { onProgress }),
  /** [{url (without its token), state, reason, info}] of the engines this page knows. */
  engines: async () => (await enginesReady).list(),
  /** The Pyodide package index Python workers started from now on use (ends in "/"). */
  packageIndex: () => import("./python/package-index.js").then(({ packageIndex }) => packageIndex(build)),
  /**
   * Sets the package index (an http(s) URL of a mirror of the build's; null: the build's)
   * for Python workers started from now on, app-wide; resolves to it. The page's own API:
   * plugins have no way to call it.
   */
  setPackageIndex: (url) => import("./python/package-index.js").then(({ setPackageIndex }) => setPackageIndex(build, url)),
  /** The open workspace's name. */
  workspace: async () => (await workbenchReady).workspace.name,
  /**
   * Runs a workflow ({name, version, steps: [{plugin, op, params}], input}) on `input` (an
   * ndarray, or null for the workflow's input op); resolves to [{plugin, op, output, image}]
   * per step. A failing step rejects with a WorkflowStepError: .step, .plugin, .op, .outputs.
   * onProgress({step, of, state, output, error}) as each step starts, ends or fails.
   */
  runWorkflow: async (workflow, input = null, { onProgress } = {}) => {
    const { module, findOp } = await workflowTools();
    return module.runWorkflow(module.parseWorkflow(workflow), input, { findOp, onProgress });
  },
  /** Saves a workflow in the open workspace (by its name); resolves to it, validated. */
  saveWorkflow: async (workflow) => {
    const saved = await (await workflowTools()).shelf.save(workflow);
    window.dispatchEvent(new CustomEvent("pyjoy-workflows"));
    return saved;
  },
  /** The open workspace's saved workflows. */
  workflows: async () => (await workflowTools()).shelf.list(),
  /** A URL that opens this page with the workflow (?workflow=). */
  workflowURL: async (workflow) => `${location.origin}${location.pathname}?workflow=${(await workflowTools()).module.encodeWorkflow(workflow)}`,
  /** The API the host gives plugins, callable from the page: each call returns a promise. */
  api,
  /** Opens the Docs view at a page (docs/index.json's names; default the first) and heading. */
  openDocs: async (page = null, anchor = null) => (await docs()).open(page, anchor),
};

// Offline readiness: the service worker's caching as progress in the status bar, then
// "Ready offline"; pyjoy.offlineReady resolves then (at once where the cache is complete).
const offlineStatus = createOfflineStatus(document);
window.pyjoy.offlineReady = offlineReadiness({ onProgress: (progress) => offlineStatus.progress(progress) });
window.pyjoy.offlineReady.then(() => offlineStatus.ready(), () => offlineStatus.failed());

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

// The service worker's first install downloads the whole build (29 MB: Python, the model,
// onnxruntime-web, ...), hashes it and stores it: on a first visit that competes for the
// network and the CPU with Python's own start and with any plugin opened meanwhile (the
// Image Recognition window opened at once after Python was up answered its first
// recognition in 1.53 s beside that install, 1.08 s without: bench/vision.py). So it
// registers once Python is up (or after 10 s) and then the page is quiet (quiet.js: no
// plugin loading for 2 s, 30 s at most). A later visit's registration only looks for an
// update, which waits alike.
const updateBanner = document.getElementById("update-banner");
const pythonSettled = runtime.ready.then(() => {}, () => {});
async function registerServiceWorker() {
  await Promise.race([pythonSettled, new Promise((resolve) => setTimeout(resolve, 10_000))]);
  const workbench = await workbenchReady.catch(() => null);
  if (workbench) {
    await whenQuiet({
      subscribe: (listener) => workbench.subscribe(listener), // the workspace's changes, and every plugin's
      busy: async () => workbench.hostStarted && (await workbench.host().then((host) => host.loading(), () => false)),
    });
  }
  return watchForUpdates({
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
  });
}
registerServiceWorker().catch((error) => status.toast(`Offline use is unavailable: ${error.message}`, "error"));

// Interactive means wired and painted: stamp after the frame that shows the shell.
requestAnimationFrame(() => setTimeout(() => (window.pyjoy.timings.shellInteractive = Math.round(performance.now()))));
