// The plugin host: loads plugins into sandboxes, keeps track of them, and gives each its
// API (host-api.js). One instance per page: `pyjoy.loadPlugin(...)` and the workbench use it.
//
//   const host = new PluginHost({ build, ui, hiddenContainer, windows, settings, installer, windowLayout });
//   const plugin = await host.load(urlOrSource);   // -> Plugin; plugin.api is its export
//   await host.load("https://host/x.imjoy.html@GPU"); // that tag of it (or { tag: "GPU" });
//                                                   // its config `dependencies` load first
//   await host.load(nativeSource, { replicas: 3 });  // as 3 Ray actors on a --ray engine
//   await (await host.getPlugin("Name")).run({});
//   host.list();                                   // [{id, name, type, version, state, error}]
//   host.terminate(host.idOf("Name"));
//   host.onChange(() => ...);                       // after any plugin's state changes
//
// Identity: every plugin has an id the host gives it, and what it owns (settings, windows,
// services, event listeners) is keyed by that id, never by the name its file chooses. An
// installed plugin's id is its workspace entry's (given at install); a plugin loaded by the
// page is "page/NAME", one loaded by plugin P "<P's id>/NAME". Names are for people and for
// ImJoy's API (getPlugin(name)): idOf(name) is the one place a name becomes an id. Among
// loaded plugins a name is one plugin's: the page and the workbench (the person) may replace
// a loaded plugin of that name; a plugin may only replace one it loaded itself, and never
// take an installed plugin's name (PluginError "plugin-name-taken").
//
// The workbench gives it `settings` ({get(id, key?), set(id, [[key, value]]) (a null
// value removes the key), workspace() -> its name}, the workspace's), `installer` ({install(source, {approve}) -> api, uninstall(name, {approve}),
// installedId(name) -> id | null, installed(name) -> {id, name, text, url, tag} | null,
// replicas(id) -> the person's replica count on a Ray engine | null, start(id) -> api}: what plugins' installPlugin and uninstallPlugin do, and which plugins
// are installed, started when asked for or needed as a dependency) and
// `windowLayout` (id -> where its window was). The page gives `codeEditor` ({text, title,
// filename, approve, onClose} -> {window, editor}: the workbench's editor in a window,
// workbench/editor-window.js) for ImJoy's `imjoy/plugin-editor` windows, and `engines`
// (engine.js's Engines) where `native-python` plugins run: each on the first connected
// engine, in a process of its own, with the same API as a web-python plugin; when its
// engine drops and comes back, the plugins that ran there are started again. Plugins reach
// the connection's model service only through engineModel (api.engineModel): each gets
// objects bound to the models it loaded, never the service itself.
import { CODES, PluginError, asPluginError } from "../errors.js";
import { formCallback, uiFields } from "../workbench/forms.js";
import { resolvePlugins, splitTag } from "../workbench/install.js";
import { checkReplicas } from "../workbench/workspace.js";
import { whenQuiet } from "../quiet.js";
import { importsPyjoyOnnx, parsePlugin } from "./format.js";
import { hostApiFor } from "./host-api.js";
import { packageIndex } from "../python/package-index.js";
import { Sandbox } from "./sandbox.js";
import { MAP_GROUPS_IN_FLIGHT, mapGroups } from "../engine.js";

const CONSOLE_LINES_PER_SECOND = 100;
// How long an ended plugin's api.on("close") handlers may run before its sandbox goes
// (ImJoy also gives a plugin one second: imjoy-core jailedPlugin.js terminate()).
export const CLOSE_GRACE_MS = 1000;

// A window plugin whose scripts are Python, and ImJoy's web-python-window (a "window" whose
// language is Python, run in the plugin's frame as imjoy-core's jailed.js ran it), are
// windows whose frame runs Python with PyScript (sandbox/python-window.js).
const SANDBOX_KIND = { "web-python": "web-python", "web-worker": "web-worker", window: "window", iframe: "window", "web-python-window": "window" };
const WINDOW_TYPES = ["window", "iframe", "web-python-window"];
// ImJoy's built-in window types (windows/builtin.js).
const BUILTIN_WINDOWS = new Set(["imjoy/image", "imjoy/image-compare", "imjoy/panel", "imjoy/generic", "imjoy/markdown", "imjoy/files", "imjoy/url_list", "imjoy/joy"]);
const EDITOR_WINDOW = "imjoy/plugin-editor"; // the workbench's editor, in the page (#editorWindow)
const PAGE = "page"; // the owner of what the page's own code (pyjoy.*) loads
/** Models one plugin may hold on an engine's model service at once (the service holds 8 in all). */
export const MAX_ENGINE_MODELS = 4;

function looksLikeURL(text) {
  return !/[\n<]/.test(text) && /^(https?:\/\/|\.{0,2}\/|[\w.-]+\.(py|js|html)(@[^/?#@]+)?$)/i.test(text.trim());
}

// A plugin file's text; a PluginError naming the URL when it cannot be fetched.
async function fetchPluginFile(url, prefix = "") {
  const response = await fetch(url).catch((error) => { throw new PluginError(`${prefix}could not fetch plugin ${url}: ${error.message}`); });
  if (!response.ok) throw new PluginError(`${prefix}could not fetch plugin ${url}: ${response.status} ${response.statusText}`);
  return response.text();
}

// A plugin file parsed; a malformed one is a PluginError "plugin-parse-error" with its block and line.
function parse(text, url, prefix = "", tag = null) {
  try {
    return parsePlugin(text, { url, filename: url?.split("/").pop(), tag: tag ?? undefined });
  } catch (error) {
    throw asPluginError(error, { prefix });
  }
}

export class Plugin {
  constructor({ source, url, text, id, owner = PAGE }) {
    this.source = source;
    this.url = url;
    this.text = text; // the file as loaded, for reload and the editor
    this.config = source.config;
    this.name = source.config.name;
    this.type = source.config.type;
    this.id = id;
    this.settingsId = id; // a window made by createWindow shares its plugin's settings
    this.owner = owner; // who loaded (or opened) it: PAGE, "workspace" or a plugin's id
    this.state = "loading";
    this.started = null; // settles when it has started (or failed to)
    this.api = null;
    this.sandbox = null;
    this.window = null;
    this.error = null;
    this.replicas = null; // the Ray actor count its load chose (host.load's replicas), or null
    this.closeHandlers = new Set(); // api.on("close", handler) / api.onClose(handler)
    this.ended = null; // once it is ended: settles when its sandbox is gone (its close handlers heard)
  }

  describe() {
    // runs: where an engine plugin runs, as the engine's start() said (ENGINE.md): a local process or its Ray actors.
    const runs = this.sandbox?.info?.runs ?? null;
    return { id: this.id, name: this.name, type: this.type, version: this.config.version, state: this.state, error: this.error?.message ?? null, runs, engine: runs ? this.sandbox.engine?.label ?? null : null };
  }
}

export class PluginHost {
  #plugins = new Map(); // id -> Plugin
  #windows = new Map(); // window id -> Plugin (an instance made by createWindow)
  #listeners = new Map(); // event -> Set of {plugin, handler}
  #services = new Map(); // service id -> {...service, id, provider, providerId}
  #spare = null; // {sandbox, index, isolated}: a booted Python sandbox, waiting for the next web-python plugin
  #changeListeners = new Set();
  #windowSerial = 0;
  #builtinScript = null; // the text of windows/builtin.js, fetched once
  #consoleBudgets = new WeakMap(); // plugin -> {second, lines, missed}: log()'s console lines
  #modelServices = new Map(); // Engine -> promise of {sandbox, api, users: model id -> Set of plugins, queue}
  #engineWatchers = new Map(); // plugin -> {handler, connected}: api.engineStatus(onChange)

  constructor({ build, ui, hiddenContainer, windows, settings, installer, windowLayout, consent = async () => false, codeEditor = null, engines = null }) {
    Object.assign(this, { build, ui, hiddenContainer, windows, settings, installer, windowLayout, consent, codeEditor, engines });
    engines?.onReconnect((engine) => this.#restartOn(engine));
    engines?.onChange(() => this.#engineChanged());
    this.events = {
      on: (plugin, event, handler) => this.#subscribers(event).add({ plugin, handler }),
      off: (plugin, event, handler) => {
        for (const entry of this.#subscribers(event)) if (entry.plugin === plugin && (!handler || entry.handler === handler)) this.#subscribers(event).delete(entry);
      },
      emit: (event, data) => Promise.all([...this.#subscribers(event)].map(({ handler }) => handler(data))),
    };
    let serial = 0;
    this.services = {
      // A service's id starts with its provider's id, so no other plugin can replace it;
      // `provider` is the name of the plugin whose code registered it (a window's plugin).
      register: (plugin, service) => {
        const id = `${plugin.id}:${service.id ?? service.name ?? `${service.type ?? "service"}-${++serial}`}`;
        this.#services.set(id, { ...service, id, provider: plugin.config.name, providerId: plugin.id });
        return id;
      },
      // By id, by name, or by the registered object's {id} / {name} / {type, name}.
      unregister: (plugin, service) => {
        const keys = typeof service === "string" ? [service] : [service.id, service.name].filter(Boolean);
        for (const known of [...this.#services.values()]) {
          const matches = known.providerId === plugin.id
            && keys.some((key) => known.id === key || known.id === `${plugin.id}:${key}` || known.name === key);
          if (matches) this.#services.delete(known.id);
        }
      },
      find: (query) => [...this.#services.values()].filter((service) => Object.entries(query).every(([key, value]) => Object.hasOwn(service, key) && service[key] === value)),
      unregisterAll: (providerId) => {
        for (const known of [...this.#services.values()]) if (known.providerId === providerId) this.#services.delete(known.id);
      },
    };
  }

  /** Calls listener() after a plugin loads, stops, crashes or is replaced. */
  onChange(listener) {
    this.#changeListeners.add(listener);
    return () => this.#changeListeners.delete(listener);
  }

  #changed() {
    for (const listener of this.#changeListeners) listener();
  }

  /** Whether a plugin is loading now (started, and not yet running or failed). */
  loading() {
    return [...this.#plugins.values()].some((plugin) => plugin.state === "loading");
  }

  /** The loaded plugin with this id, or null. */
  plugin(id) {
    return this.#plugins.get(id) ?? null;
  }

  /**
   * An engine plugin's `method(item)` for each of `items`, spread over its replicas on a Ray
   * cluster (ENGINE.md, "On a Ray cluster": the engine's map), results in input order;
   * onProgress({done, total}) as they come. Rejects for a plugin that is not on an engine.
   */
  async mapOnEngine(name, method, items, { onProgress = null } = {}) {
    const plugin = this.plugin(this.idOf(name));
    const sandbox = plugin?.sandbox;
    if (!sandbox?.info?.id || !sandbox.engine?.api) throw new Error(`map: no running engine plugin named ${name}`);
    if (!Array.isArray(items)) throw new TypeError("map: items should be an array");
    // Items with more arrays than one message to the engine takes go as several maps, two at
    // a time (as pyjoy/engine/client.py's map; ENGINE.md, map), numbered from their offset.
    const groups = mapGroups(items);
    const done = groups.map(() => 0);
    const results = new Array(items.length);
    let next = 0;
    let failed = false; // a group that failed: the map fails, no further group starts
    const run = async () => {
      while (!failed && next < groups.length) {
        const index = next++;
        const [start, end] = groups[index];
        const progress = onProgress ? (event) => {
          done[index] = event?.done ?? 0;
          onProgress({ done: done.reduce((a, b) => a + b, 0), total: items.length });
        } : null;
        const answers = await sandbox.engine.api.map(sandbox.info.id, method, items.slice(start, end), { progress, offset: start, _rkwargs: true })
          .catch((error) => { failed = true; throw error; });
        answers.forEach((answer, offset) => { results[start + offset] = answer; });
      }
    };
    await Promise.all(Array.from({ length: Math.min(MAP_GROUPS_IN_FLIGHT, groups.length) }, run));
    return results;
  }

  /**
   * The id a name stands for, or null: the loaded plugin's of that name, else the installed
   * one's. This is where names become ids.
   */
  idOf(name) {
    for (const plugin of this.#plugins.values()) if (plugin.name === name) return plugin.id;
    return this.installer?.installedId?.(name) ?? null;
  }

  /** [{id, name, type, version, state, error}] of every plugin this page has loaded. */
  list() {
    return [...this.#plugins.values()].map((plugin) => plugin.describe());
  }

  /**
   * A plugin's api.log / api.error and its output. A plugin may log thousands of lines a
   * second: Messages and toasts batch and bound them (status.js); the browser's console
   * gets at most CONSOLE_LINES_PER_SECOND of each plugin's lines, then how many it missed.
   */
  log(plugin, level, text) {
    if (level === "error") this.ui.toast(`${plugin.name}: ${text}`, "error", undefined, null, plugin);
    else this.ui.log?.(`${plugin.name}: ${text}`, level);
    const second = Math.floor(performance.now() / 1000);
    let budget = this.#consoleBudgets.get(plugin);
    if (budget?.second !== second) {
      if (budget?.missed) console.warn(`[${plugin.name}] ... and ${budget.missed} more lines that second (see Messages)`);
      this.#consoleBudgets.set(plugin, (budget = { second, lines: 0, missed: 0 }));
    }
    if (++budget.lines > CONSOLE_LINES_PER_SECOND) budget.missed += 1;
    else (level === "error" ? console.error : console.log)(`[${plugin.name}] ${text}`);
  }

  /**
   * Loads a plugin from a URL (which may end in ImJoy's ".imjoy.html@tag") or from its
   * source text. A malformed plugin is a PluginError naming the block and line; nothing
   * already loaded is touched.
   * - owner: who loads it: PAGE (the default), "workspace", or the loading Plugin;
   * - id: the id to load it under (an installed plugin's, or a reload's): it replaces
   *   whatever runs under that id or that name, without the checks below, and without its
   *   dependencies (the workbench starts an installed plugin's);
   * - tag: which of its config `tags` to load (else the URL's, else its first);
   * - replicas: how many Ray actors a native-python plugin runs as, in place of its config's
   *   (and of the count kept in the workspace for an installed one): checkReplicas below,
   *   before anything is asked or started; kept for its reloads; its dependencies keep theirs;
   * - approve(config, url, dependencies): asked once the file and its dependencies are read,
   *   before anything starts; it throws (a PluginError "consent-denied") to refuse.
   *   dependencies: [{name, type, url, permissions}], those this load starts anew.
   * Its config `dependencies` are loaded first, as ImJoy's loadPlugin does (imjoy-core
   * reloadPluginRecursively), each for the same owner ("<owner>/NAME"): an installed
   * plugin of a dependency's name is started instead, and one this owner loaded already
   * from the same file and tag is kept. A cycle, or a dependency that cannot be read or
   * started, is a PluginError naming it and the plugin that needed it.
   * A plugin with the name of a loaded one replaces it (a reload) when the same owner
   * loaded it or the page loads it; otherwise it is refused ("plugin-name-taken").
   */
  async load(urlOrSource, { url, id = null, owner = PAGE, approve = null, tag = null, replicas = null } = {}) {
    let text = String(urlOrSource);
    if (!url && looksLikeURL(text)) {
      const named = splitTag(text);
      tag ??= named.tag;
      url = new URL(named.uri, document.baseURI).href;
      text = await fetchPluginFile(url);
    }
    const source = parse(text, url, "", tag);
    const { name } = source.config;
    this.#runnable(source.config);
    if (replicas !== null) this.checkReplicas(source.config, replicas);
    const ownerId = typeof owner === "string" ? owner : owner.id;
    if (!id) this.#idFor(name, ownerId); // refused before anyone is asked
    const dependencies = id || !source.config.dependencies.length ? [] : await this.#dependenciesOf(source, text, url, ownerId);
    const asked = dependencies.filter((dependency) => !dependency.installedId && !dependency.loaded);
    await approve?.(source.config, url, asked.map(({ config, url: from }) => ({ name: config.name, type: config.type, url: from, permissions: config.permissions ?? [] })));
    id ??= this.#idFor(name, ownerId); // again: the question may have taken a while
    const started = []; // the dependencies this load started anew: they go if a later one fails
    for (const dependency of dependencies) {
      try {
        if (dependency.loaded) continue;
        if (dependency.installedId) await this.installer.start(dependency.installedId);
        else started.push(await this.#loadOne(dependency.source, dependency.text, dependency.url, this.#idFor(dependency.config.name, ownerId), ownerId));
      } catch (error) {
        for (const plugin of started) this.terminate(plugin.id);
        throw new PluginError(`${dependency.neededBy} needs the plugin ${dependency.config.name}, which could not start: ${error.message}`, { code: error.code ?? CODES.loadFailed });
      }
    }
    return this.#loadOne(source, text, url, id, ownerId, replicas);
  }

  /**
   * A replica count chosen for a plugin before it starts (load's and the workbench's
   * install's `replicas`; ENGINE.md, "On a Ray cluster"), or a PluginError naming what is
   * wrong: the count (a whole number from 1 to MAX_REPLICAS), a plugin that is not
   * native-python (replicas are Ray actors on an engine), or a connected engine without Ray
   * (it runs each plugin as one local process, and refuses a count: server.py start).
   */
  checkReplicas(config, count) {
    checkReplicas(config.name, count);
    if (config.type !== "native-python") {
      throw new PluginError(`replicas of ${config.name}: replicas are Ray actors of a native-python plugin on an engine started with --ray; ${config.name} is a ${config.type} plugin, which runs in the browser`);
    }
    const engine = this.engines?.connected();
    if (engine && !engine.info?.cluster) {
      throw new PluginError(`replicas of ${config.name}: replicas need an engine on a Ray cluster (pyjoy engine --ray); engine ${engine.label} runs each plugin as one local process`);
    }
  }

  // A plugin's type is one PyJoy runs (in a sandbox, or native-python on a connected
  // engine), or a PluginError saying what it needs.
  #runnable({ name, type }) {
    if (type === "native-python" && !this.engines?.connected()) {
      throw new PluginError(`plugin ${name} is a ${type} plugin: it needs the PyJoy engine (pyjoy engine), which is not connected; connect one (Engines… in the workspace menu, ?engine=URL, or pyjoy.connectEngine(url))`);
    }
    if (!SANDBOX_KIND[type] && type !== "native-python") throw new PluginError(`plugin ${name} is a ${type} plugin, which PyJoy cannot run`);
  }

  // A plugin's dependencies, each after what it needs: [{source, text, url, config,
  // neededBy, installedId (an installed one's, started instead), loaded (this owner's,
  // from the same file and tag, running: kept)}]. The names they take are checked here,
  // before anyone is asked.
  async #dependenciesOf(source, text, url, ownerId) {
    const plan = await resolvePlugins(text, {
      url, tag: source.config.tag, // parsed as load() parsed it: by its URL, else by its text
      installed: (name) => this.installer?.installed?.(name) ?? null, verb: "loaded",
    });
    const neededBy = new Map(); // dependency name -> the first plugin that needs it
    for (const [name, item] of plan) for (const need of item.needs) if (!neededBy.has(need)) neededBy.set(need, name);
    return [...plan.values()].slice(0, -1).map(({ parsed, text: depText, url: depURL, tag }) => {
      const { config } = parsed;
      const installedId = this.installer?.installedId?.(config.name) ?? null;
      const current = this.#plugins.get(`${ownerId}/${config.name}`);
      const loaded = !installedId && current?.state === "running" && current.text === depText && current.config.tag === tag;
      try {
        this.#runnable(config);
        if (!installedId) this.#idFor(config.name, ownerId);
      } catch (error) {
        throw new PluginError(`${neededBy.get(config.name)} needs the plugin ${config.name}, which could not be loaded: ${error.message}`, { code: error.code ?? CODES.loadFailed });
      }
      return { source: parsed, text: depText, url: depURL, config, neededBy: neededBy.get(config.name), installedId, loaded };
    });
  }

  // Starts a parsed plugin under `id`, ending what ran under that id or its name first.
  async #loadOne(source, text, url, id, ownerId, replicas = null) {
    const { name } = source.config;
    const plugin = new Plugin({ source, url, text, id, owner: ownerId });
    plugin.replicas = replicas;
    // What ran under this id (a reload) or this name (replaced) ends first.
    for (const previous of new Set([this.#plugins.get(id), this.#plugins.get(this.idOf(name))])) {
      if (!previous) continue;
      this.#plugins.delete(previous.id);
      previous.state = "stopped";
      this.#end(previous, "replaced by a new version");
    }
    this.#plugins.set(id, plugin);
    this.#changed();
    plugin.started = this.#start(plugin);
    try {
      await plugin.started;
    } catch (error) {
      plugin.state = "crashed";
      plugin.error = asPluginError(error, { prefix: `plugin ${name} failed to load: ` });
      this.#end(plugin, "failed to load", { keepWindow: true }); // its window shows what went wrong
      this.#changed();
      throw plugin.error;
    }
    this.#changed();
    return plugin;
  }

  // The id a plugin named `name` loads under for this owner, or a PluginError saying why
  // this owner may not take that name.
  #idFor(name, ownerId) {
    const installed = this.installer?.installedId?.(name) ?? null;
    if (ownerId === PAGE) return installed ?? `${PAGE}/${name}`;
    const loader = this.#plugins.get(ownerId)?.name ?? ownerId;
    if (installed) {
      throw new PluginError(`plugin ${loader} cannot load a plugin named "${name}": a plugin of that name is installed in this workspace, and a plugin may not load another under its name`, { code: CODES.nameTaken });
    }
    const current = this.#plugins.get(this.idOf(name));
    if (current && current.owner !== ownerId) {
      throw new PluginError(`plugin ${loader} cannot load a plugin named "${name}": one of that name is already loaded, and only whoever loaded it may replace it`, { code: CODES.nameTaken });
    }
    return `${ownerId}/${name}`;
  }

  async #start(plugin, { container } = {}) {
    const kind = SANDBOX_KIND[plugin.type];
    if (kind === "window" && plugin.type !== "iframe" && !container) {
      // Closed by its button (or terminate): the window stays, hidden, until the plugin has ended.
      plugin.window = this.windows.open({
        title: plugin.name, key: plugin.id, layout: this.windowLayout(plugin.id),
        onClose: () => {
          if (this.#plugins.get(plugin.id) === plugin) this.terminate(plugin.id);
          return plugin.ended;
        },
      });
      container = plugin.window.body;
    }
    // A plugin's print() and stderr reach Messages under its name (ImJoy showed them too).
    const onOutput = (output) => this.log(plugin, output.type === "stderr" ? "error" : "info", output.text);
    const python = kind === "window" && plugin.config.lang === "python"; // a Python window
    const sandbox = plugin.type === "native-python" ? await this.#startOnEngine(plugin, onOutput)
      : kind === "web-python" ? await this.#takePython(plugin.config.isolated === true, importsPyjoyOnnx(plugin.source))
      : await Sandbox.create({
        build: this.build, kind, container: container ?? this.hiddenContainer,
        permissions: plugin.config.permissions ?? [], onOutput, python, preloadOnnx: python && importsPyjoyOnnx(plugin.source),
        consent: (what) => this.consent(plugin, what), // the person's answer (workbench.consent)
      });
    if (plugin.state === "stopped") { // stopped or replaced while its sandbox (or engine process) started
      sandbox.terminate("stopped while it started");
      throw new PluginError(`plugin ${plugin.name} was stopped while it started`, { code: CODES.loadFailed });
    }
    sandbox.onOutput = onOutput; // a spare Python sandbox was booted before its plugin was known
    plugin.sandbox = sandbox;
    // The sandbox has ended itself (its calls failed at once); say so where the plugin was.
    sandbox.onCrash((message) => {
      if (plugin.sandbox !== sandbox || plugin.state === "stopped") return;
      plugin.state = "crashed";
      plugin.error = new PluginError(message, { code: CODES.crashed });
      this.#closeWindowsOf(plugin);
      // What it held on the engine goes now, not when the person removes it: a crashed
      // plugin's models would fill the service's MAX_MODELS slots for the others.
      this.#releaseModels(plugin);
      this.#engineWatchers.delete(plugin);
      this.ui.toast(`Plugin ${plugin.name} crashed: ${message}`, "error");
      plugin.window?.body.replaceChildren(Object.assign(document.createElement("p"), {
        className: "plugin-crashed", textContent: `${plugin.name} crashed: ${message}`,
      }));
      this.#changed();
    });
    try {
      plugin.api = await this.#run(sandbox, hostApiFor(plugin, this), plugin.source);
    } catch (error) {
      throw new PluginError(`plugin ${plugin.name} failed to load: ${error.message}`, { traceback: error.traceback });
    }
    plugin.state = "running";
    this.#prepareSpare();
  }

  // How every plugin starts in its sandbox (or engine process): the host's root to it, its
  // scripts run, its setup(). Answers its API.
  async #run(sandbox, root, source) {
    await sandbox.session.setRoot(root);
    const api = await sandbox.kernel.load_plugin(source);
    if (typeof api.setup === "function") await api.setup();
    return api;
  }

  /**
   * The first connected engine's model service (ENGINE.md, "The model service"): started
   * once per connection and loaded as a native-python plugin is (#run), but never listed
   * among the plugins, so no plugin can getPlugin it: plugins use it through engineModel.
   */
  modelService() {
    const engine = this.engines?.connected();
    if (!engine) return Promise.reject(new PluginError("no PyJoy engine is connected, so there is no model service to run the model on; connect one (Engines… in the workspace menu, ?engine=URL, or pyjoy.connectEngine(url))", { code: CODES.notFound }));
    let service = this.#modelServices.get(engine);
    if (!service) {
      service = this.#startModels(engine);
      this.#modelServices.set(engine, service);
      const forget = () => { if (this.#modelServices.get(engine) === service) this.#modelServices.delete(engine); };
      service.then((started) => started.sandbox.onCrash(forget), forget);
    }
    return service;
  }

  async #startModels(engine) {
    const name = `PyJoy models (${engine.label})`;
    const say = (level) => (...args) => this.ui.log?.(`${name}: ${args.join(" ")}`, level);
    let sandbox;
    try {
      sandbox = await engine.startModels({ onOutput: (output) => say(output.type === "stderr" ? "error" : "info")(output.text) });
      const api = await this.#run(sandbox, { log: say("info"), error: say("error") }, null);
      return { sandbox, api, users: new Map(), queue: Promise.resolve() };
    } catch (error) {
      sandbox?.terminate("failed to start");
      throw new PluginError(`the model service of engine ${engine.label} could not start: ${error.remoteMessage ?? error.message}`, { code: CODES.loadFailed });
    }
  }

  /**
   * api.engineModel({data, integrity, name}) for `plugin`: loads the model on the engine's
   * model service and answers an object bound to it. The service's model ids are shared by
   * whoever loads the same bytes, so the host counts who holds each: a model is unloaded
   * when the last plugin holding it ends. Loads and unloads of one service take turns.
   */
  async engineModel(plugin, { data, integrity, name = null } = {}) {
    const service = await this.modelService();
    const turn = service.queue.then(async () => {
      const held = [...service.users.values()].filter((users) => users.has(plugin)).length;
      if (held >= MAX_ENGINE_MODELS) throw new PluginError(`api.engineModel: plugin ${plugin.name} holds ${MAX_ENGINE_MODELS} models on the engine already; that is the most one plugin may hold`);
      const model = await service.api.load(data, integrity, name === null ? null : String(name));
      if (!service.users.has(model.id)) service.users.set(model.id, new Set());
      service.users.get(model.id).add(plugin);
      return model;
    });
    service.queue = turn.catch(() => {});
    let model;
    try {
      model = await turn;
    } catch (error) {
      throw error instanceof PluginError ? error : new PluginError(`api.engineModel: ${error.remoteMessage ?? error.message}`);
    }
    const live = (call) => {
      if (service.sandbox.state !== "running") throw new PluginError(`${call}: the engine's model service has ended (the engine was disconnected, or the service stopped); call api.engineModel again`, { code: CODES.crashed });
      if (!service.users.get(model.id)?.has(plugin)) throw new PluginError(`${call}: model ${model.name} is no longer loaded for plugin ${plugin.name}`, { code: CODES.notFound });
      return service.api;
    };
    const { id, inputs, outputs, provider, reason } = model;
    return {
      id, name: model.name, inputs, outputs, provider, reason,
      run: (inputs) => live("run").run(id, inputs),
      runBatch: (batch) => live("runBatch").run_batch(id, batch),
      // The service's facts, with only this model among its models.
      info: async () => {
        const facts = await live("info").info();
        return { ...facts, models: facts.models.filter((known) => known.id === id) };
      },
    };
  }

  // What a plugin holds on the engines' model services goes with it; a model nobody holds
  // any more is unloaded.
  #releaseModels(plugin) {
    for (const pending of this.#modelServices.values()) {
      pending.then((service) => {
        service.queue = service.queue.then(async () => {
          for (const [id, users] of [...service.users]) {
            if (!users.delete(plugin) || users.size) continue;
            service.users.delete(id);
            if (service.sandbox.state === "running") await service.api.unload(id).catch(() => {});
          }
        });
      }, () => {});
    }
  }

  /**
   * api.engineStatus(onChange): {connected}; onChange({connected}) is called whenever that
   * changes, until the plugin ends (one handler per plugin: the latest given).
   */
  engineStatus(plugin, onChange = null) {
    const connected = Boolean(this.engines?.connected());
    if (typeof onChange === "function") this.#engineWatchers.set(plugin, { handler: onChange, connected });
    return { connected };
  }

  #engineChanged() {
    const connected = Boolean(this.engines?.connected());
    for (const watcher of this.#engineWatchers.values()) {
      if (watcher.connected === connected) continue;
      watcher.connected = connected;
      Promise.resolve().then(() => watcher.handler({ connected })).catch(() => {}); // a plugin's failure is its own
    }
  }

  // A native-python plugin's process on the first connected engine (engine.js): its install
  // progress in the status bar and Messages, its output in Messages under its name.
  async #startOnEngine(plugin, onOutput) {
    const engine = this.engines?.connected();
    if (!engine) throw new PluginError(`plugin ${plugin.name} is a native-python plugin: it needs the PyJoy engine (pyjoy engine), which is not connected; connect one (Engines… in the workspace menu, ?engine=URL, or pyjoy.connectEngine(url))`);
    plugin.engine = engine;
    const stages = { environment: 0.2, install: 0.5, ready: 1 };
    let progressed = false;
    const onProgress = ({ stage, message }) => {
      progressed = true;
      const text = `installing: ${String(message ?? stage)}`;
      this.ui.progress(`${plugin.name}: ${text}`, stages[stage] ?? 0.1);
      this.ui.log?.(`${plugin.name}: ${text}`, "info");
    };
    const tag = typeof plugin.config.tag === "string" ? plugin.config.tag : null;
    // The count its load chose (the engine refuses one without Ray), else the person's count kept for an
    // installed plugin (the plugin list's "Replicas"), on a Ray engine only (elsewhere it runs as one process).
    const replicas = plugin.replicas ?? (engine.info?.cluster ? this.installer?.replicas?.(plugin.id) ?? null : null);
    try {
      const sandbox = await engine.startPlugin(plugin.text, { tag, replicas, onProgress, onOutput });
      if (progressed) this.ui.progress(`${plugin.name}: environment ready`, 1); // the bar ends full
      return sandbox;
    } catch (error) {
      if (progressed) this.ui.status(`${plugin.name}: not started`); // the bar goes; the error says why
      // The engine's errors by their type (ENGINE.md): a malformed file is a parse error.
      const code = error?.remoteType === "PluginFileError" ? CODES.parseError : CODES.loadFailed;
      throw new PluginError(`plugin ${plugin.name} failed to start on engine ${engine.label}: ${error.remoteMessage ?? error.message}`, { code, traceback: error?.traceback });
    }
  }

  // An engine came back after a drop: the engine ended the plugins of the old connection, so
  // those that ran there and ended with it start again (not those that crashed before).
  #restartOn(engine) {
    const again = [...this.#plugins.values()].filter((plugin) => plugin.engine === engine && plugin.state === "crashed" && engine.endedWithConnection(plugin.sandbox?.crashedAt ?? null));
    if (!again.length) return;
    this.ui.toast(`Engine ${engine.label} is back: starting ${again.map((plugin) => plugin.name).join(", ")} again`, "info");
    for (const plugin of again) this.reload(plugin.id).catch((error) => this.ui.toast(`${plugin.name} could not start again: ${error.message}`, "error"));
  }

  // Python takes a second or more to boot: keep one sandbox booted for the next plugin, of
  // the kind (in the page, or isolated in a frame) the last web-python plugin asked for.
  // A spare booted before the person set another package index would fetch from the old
  // one; a spare that failed to boot, or died while it waited, is never handed out: the
  // plugin gets a fresh sandbox instead (its own boot's error, if that fails too).
  // preloadOnnx: the plugin imports pyjoy.onnx, so onnxruntime-web starts loading now: in a
  // fresh sandbox while Python boots (python/boot.js), in a spare through its kernel.
  async #takePython(isolated, preloadOnnx = false) {
    const spare = this.#spare;
    this.#spare = null;
    this.#spareKind = isolated;
    if (spare && spare.index === packageIndex(this.build) && spare.isolated === isolated) {
      const sandbox = await spare.sandbox.catch(() => null);
      if (sandbox?.state === "running") {
        if (preloadOnnx) sandbox.kernel.preload_onnx().catch(() => {}); // its load_model tells any error
        return sandbox;
      }
      sandbox?.terminate("a spare that died while it waited");
    } else {
      spare?.sandbox.then((sandbox) => sandbox.terminate(), () => {});
    }
    return this.#bootPython(isolated, preloadOnnx).sandbox;
  }

  #spareKind = false; // isolated or not: what the last web-python plugin asked for

  #bootPython(isolated, preloadOnnx = false) {
    const index = packageIndex(this.build); // what Sandbox.create gives the worker
    const sandbox = Sandbox.create({ build: this.build, kind: "web-python", isolated, preloadOnnx, container: this.hiddenContainer, onOutput: (output) => console.log(output.text) });
    sandbox.catch(() => {});
    return { sandbox, index, isolated };
  }

  // The spare boots once the page is quiet (quiet.js): booted as a plugin loaded, it took the
  // cores from that plugin's first work (an isolated plugin's first inference 1.54 s against
  // 1.38 without it, bench/onnx_first.py's plugin; 2 cores).
  #spareWaiting = false;
  #prepareSpare() {
    if (this.#spare || this.#spareWaiting || ![...this.#plugins.values()].some((plugin) => plugin.type === "web-python")) return;
    this.#spareWaiting = true;
    whenQuiet({ subscribe: (listener) => this.onChange(listener), busy: () => this.loading() }).then(() => {
      this.#spareWaiting = false;
      this.#spare ??= this.#bootPython(this.#spareKind);
    });
  }

  /**
   * A plugin's API, by name: a loaded one's (one still starting, once started), or an
   * installed one's, started now if it is not running.
   */
  async getPlugin(name) {
    const id = this.idOf(name);
    const plugin = this.#plugins.get(id);
    if (plugin?.state === "loading") await plugin.started?.catch(() => {});
    if (plugin?.state === "running") return plugin.api;
    if (id && this.installer?.installedId?.(name) === id) return this.installer.start(id);
    if (!plugin) {
      const loaded = [...this.#plugins.values()].map((known) => known.name);
      throw new PluginError(`no plugin named ${name} is installed or loaded; loaded: ${loaded.join(", ") || "none"}`, { code: CODES.notFound });
    }
    throw new PluginError(`plugin ${name} is ${plugin.state}${plugin.error ? `: ${plugin.error.message}` : ""}`, { code: CODES.crashed });
  }

  /** Ends a plugin, even one stuck in an endless loop, with the windows it made; it can be loaded again. */
  terminate(id) {
    const plugin = this.#plugins.get(id);
    if (!plugin) return false;
    plugin.state = "stopped";
    this.#plugins.delete(id);
    this.#end(plugin, "terminated");
    this.ui.forget?.(plugin); // its toasts and dialogs, shown or waiting
    this.#changed();
    return true;
  }

  /**
   * The person took back a plugin's permission to use `device` ("camera", "microphone"):
   * whatever the plugin (or a window it made) has open of it ends now (plugins/media.js).
   */
  revoke(id, device) {
    for (const plugin of [...this.#plugins.values(), ...this.#windows.values()]) {
      if (plugin.settingsId === id) plugin.sandbox?.media?.revoke(device);
    }
  }

  /** Ends every plugin and closes every window (a workspace switch). */
  terminateAll() {
    for (const id of [...this.#plugins.keys()]) this.terminate(id);
    for (const instance of [...this.#windows.values()]) instance.window.close();
  }

  // What a plugin (or a window instance) holds goes with it: its sandbox, its window, the
  // windows it made, its event listeners and its services.
  // A plugin that is stopped (not crashed) first hears of it through its close handlers, for
  // at most CLOSE_GRACE_MS; what it made meanwhile goes too. Its window is hidden at once,
  // but its frame (where a window plugin's handlers run) stays until then: plugin.ended
  // settles when the sandbox is gone, and the window area removes the window then.
  #end(plugin, reason, { keepWindow = false } = {}) {
    const release = () => {
      this.#closeWindowsOf(plugin);
      for (const subscribers of this.#listeners.values()) for (const entry of subscribers) if (entry.plugin === plugin) subscribers.delete(entry);
      this.services.unregisterAll(plugin.id);
      this.#engineWatchers.delete(plugin);
      this.#releaseModels(plugin);
    };
    const handlers = [...plugin.closeHandlers];
    plugin.closeHandlers.clear();
    release();
    if (!handlers.length || plugin.state !== "stopped" || !plugin.sandbox) {
      plugin.sandbox?.terminate(reason);
      plugin.ended = Promise.resolve();
    } else {
      const told = Promise.allSettled(handlers.map((handler) => Promise.resolve().then(() => handler())));
      plugin.ended = Promise.race([told, new Promise((resolve) => setTimeout(resolve, CLOSE_GRACE_MS))]).then(() => {
        plugin.sandbox.terminate(reason);
        release();
      });
    }
    if (!keepWindow) plugin.window?.close(); // its onClose answers plugin.ended
  }

  #closeWindowsOf(plugin) {
    for (const instance of [...this.#windows.values()]) if (instance.owner === plugin.id) instance.window.close();
  }

  /** Loads a plugin again, under its id, from its source (or its URL, fetched anew). */
  async reload(id) {
    const plugin = this.#plugins.get(id);
    if (!plugin) throw new PluginError(`no plugin ${id} is loaded`, { code: CODES.notFound });
    return this.load(plugin.url ?? plugin.text, { id: plugin.id, owner: plugin.owner, tag: plugin.config.tag, replicas: plugin.replicas });
  }

  /**
   * createWindow/showDialog: a new instance of a window plugin, shown in a window; returns
   * the instance's API after its run({data, config}). The window closes when its maker ends.
   * As imjoy-core's pluginManager.createWindow: a string is {src} when it is source text or
   * a URL, else {type}; `type` names a loaded window plugin or one of ImJoy's built-in
   * windows ("imjoy/image", ...: windows/builtin.js, run in a sandbox like any window);
   * `src` is a window plugin's source text or .imjoy.html URL, or a page's URL (shown in a
   * nested frame of the sandbox, so it gets no more than a plugin would). A `ui` without a
   * type is a form window, "imjoy/joy", as in imjoy-core. "imjoy/plugin-editor" is the
   * workbench's editor; `approveInstall` asks the person before what it holds is installed.
   */
  async createWindow(caller, config = {}, { approveInstall = null } = {}) {
    if (typeof config === "string") config = /\n|^https?:\/\//i.test(config) ? { src: config } : { type: config };
    if (typeof config !== "object" || config === null) throw new PluginError(`createWindow: expected a config object or a string, not ${typeof config}`);
    if (config.type === EDITOR_WINDOW) return this.#editorWindow(caller, config, approveInstall);
    const { template, data, runConfig = config.config ?? {} } = await this.#windowTemplate(caller, config);
    const instance = new Plugin({ source: template.source, url: template.url, text: template.text, id: `${template.id}#${++this.#windowSerial}`, owner: caller.id });
    instance.name = String(config.name ?? template.name);
    instance.settingsId = template.settingsId;
    instance.windowType = template.windowType ?? template.name;
    const closeListeners = new Set();
    instance.window = this.windows.open({
      title: instance.name,
      onClose: () => {
        instance.state = "stopped";
        this.#windows.delete(instance.id);
        this.#end(instance, "window closed");
        for (const listener of closeListeners) listener();
        return instance.ended;
      },
    });
    this.#windows.set(instance.id, instance);
    try {
      await this.#start(instance, { container: instance.window.body });
      if (typeof instance.api.run === "function") await instance.api.run({ data: data ?? {}, config: runConfig });
    } catch (error) {
      instance.window.close();
      throw asPluginError(error);
    }
    // What ImJoy gives for a window: its plugin's API, plus close() and on("close"); `id`
    // lets api.updateWindow find it again. close() resolves once the window's own close
    // handlers have run and it is gone (ImJoy's resolves after their 800 ms).
    instance.handle = {
      ...instance.api,
      id: instance.id,
      close: () => instance.window.close(),
      on: (event, handler) => event === "close" && closeListeners.add(handler),
      off: (event, handler) => closeListeners.delete(handler),
    };
    return instance.handle;
  }

  // {template: {source, url, text, id, settingsId, name, windowType}, data, runConfig?} for
  // createWindow's config; runConfig is what the window's run() gets as its config.
  async #windowTemplate(caller, config) {
    // As imjoy-core pluginManager.createWindow: a config with a ui and no type is "imjoy/joy".
    const type = config.type === undefined || config.type === null ? (config.ui !== undefined ? "imjoy/joy" : undefined) : String(config.type);
    if (type?.startsWith("imjoy/")) {
      if (!BUILTIN_WINDOWS.has(type)) throw new PluginError(`createWindow: no built-in window ${type}; PyJoy has ${[...BUILTIN_WINDOWS, EDITOR_WINDOW].join(", ")}`, { code: CODES.notFound });
      const template = await this.#builtinWindow(caller, type);
      if (type !== "imjoy/joy") return { template, data: config.data };
      // The ui is read here (a bad one is createWindow's error); the form's changes reach the
      // caller's callbacks through the host (forms.js formCallback).
      const fields = uiFields(config.ui ?? config.config?.ui, `createWindow ${config.name ?? ""}`.trim());
      return { template, data: config.data, runConfig: { ...(config.config ?? {}), fields, onChange: formCallback(config) } };
    }
    if (config.src !== undefined && config.src !== null) {
      const src = String(config.src);
      const pluginURL = !src.includes("\n") && /\.imjoy\.html([?#]|$)/i.test(src);
      if (!src.includes("\n") && !pluginURL) {
        if (!/^https?:\/\//i.test(src)) throw new PluginError(`createWindow: src must be a window plugin's source, an .imjoy.html URL or an http(s) page URL, not ${JSON.stringify(src.slice(0, 100))}`);
        return { template: await this.#builtinWindow(caller, "url", src), data: { src } };
      }
      const url = pluginURL ? new URL(src, document.baseURI).href : undefined;
      const text = pluginURL ? await fetchPluginFile(url, "createWindow: ") : src;
      const source = parse(text, url, "createWindow: ");
      const { name, type: kind, permissions = [] } = source.config;
      if (!WINDOW_TYPES.includes(kind)) throw new PluginError(`createWindow: ${name} is a ${kind} plugin, not a window plugin`);
      // Permissions are asked for when a plugin is loaded or installed, not here.
      if (permissions.length) throw new PluginError(`createWindow: the window plugin ${name} asks for permissions (${permissions.join(", ")}); load it with api.loadPlugin first, then createWindow({type: "${name}"})`, { code: CODES.consentDenied });
      const id = `${caller.id}/${name}`;
      return { template: { source, url, text, id, settingsId: id, name }, data: config.data };
    }
    const template = this.#plugins.get(this.idOf(type)); // loaded: createWindow starts none
    if (!template || !WINDOW_TYPES.includes(template.type)) {
      throw new PluginError(`createWindow: ${type ? `no window plugin named ${type}` : "config.type must name a window plugin (or imjoy/image, imjoy/markdown, ...), or config.src a plugin or page"}`, { code: CODES.notFound });
    }
    return { template, data: config.data };
  }

  /**
   * ImJoy's "imjoy/plugin-editor" (data: {id, code, name}): the workbench's editor, in the
   * page, where a plugin cannot reach it. Its window object has ImJoy's run({data: {code}})
   * (replaces the code, as its data) and PyJoy's getCode() and setCode(code); it has no
   * save or install: Save and Run are the person's clicks, and what they install is asked
   * about first, as api.installPlugin is (approveInstall, host-api.js).
   */
  async #editorWindow(caller, config, approveInstall) {
    if (!this.codeEditor) throw new PluginError(`createWindow: ${EDITOR_WINDOW} needs the workbench's editor, which this page has not`, { code: CODES.notFound });
    if (typeof approveInstall !== "function") throw new PluginError(`createWindow: ${EDITOR_WINDOW} needs a consent question for what it installs`);
    const codeOf = (data, given) => {
      const code = data?.code;
      if (code === undefined || code === null) return given;
      if (typeof code !== "string") throw new TypeError(`createWindow: ${EDITOR_WINDOW}'s data.code must be a plugin's source text, not ${typeof code}`);
      return code;
    };
    const text = codeOf(config.data, null);
    // The text picks the file format (a front-matter .py or .js plugin, else ImJoy's).
    const filename = /^\s*# ---/.test(text ?? "") ? "plugin.py" : /^\s*\/\/ ---/.test(text ?? "") ? "plugin.js" : "plugin.imjoy.html";
    const instance = { id: `${caller.id}/${EDITOR_WINDOW}#${++this.#windowSerial}`, owner: caller.id, name: String(config.name ?? config.data?.name ?? "Plugin editor"), windowType: EDITOR_WINDOW };
    const closeListeners = new Set();
    const { window, editor } = await this.codeEditor({
      text, filename: text === null ? null : filename, title: instance.name, approve: approveInstall,
      onClose: () => {
        this.#windows.delete(instance.id);
        for (const listener of closeListeners) listener();
      },
    });
    instance.window = window;
    instance.handle = {
      id: instance.id,
      run: (context = {}) => void (context?.data && editor.setText(codeOf(context.data, editor.getText()))),
      getCode: () => editor.getText(),
      setCode: (code) => editor.setText(codeOf({ code }, "")),
      close: () => window.close(),
      on: (event, handler) => event === "close" && closeListeners.add(handler),
      off: (event, handler) => closeListeners.delete(handler),
    };
    this.#windows.set(instance.id, instance);
    return instance.handle;
  }

  // A built-in window as a window plugin: the build's windows/builtin.js, told its type.
  async #builtinWindow(caller, type, src = null) {
    this.#builtinScript ??= fetch(this.build.windows).then((response) => {
      if (!response.ok) throw new Error(`${this.build.windows} answered ${response.status}`);
      return response.text();
    });
    const code = `${await this.#builtinScript.catch((error) => {
      this.#builtinScript = null;
      throw new PluginError(`createWindow: PyJoy's built-in windows could not be read: ${error.message}`);
    })}\npyjoyBuiltinWindow(${JSON.stringify(type)});`;
    const script = { lang: "javascript", code, line: 1, attrs: {} };
    const name = src ? src.split(/[?#]/)[0] : type;
    const source = {
      format: "imjoy", config: { name, type: "window", version: "0.1.0", requirements: [], permissions: [], defaults: {} },
      script, scripts: [script], window: null, windows: [], style: null, styles: [], links: [], docs: null, attachments: {},
    };
    const id = `${caller.id}/${type}`;
    return { source, url: null, text: code, id, settingsId: id, name, windowType: type };
  }

  /** api.updateWindow(window or its name, {data, ...}): as win.run(config) (older ImJoy plugins). */
  async updateWindow(caller, query, config = {}) {
    const id = typeof query === "object" && query !== null ? query.id : undefined;
    const known = id ? this.#windows.get(String(id)) : null;
    const instance = known?.owner === caller.id ? known : null; // by id: only the caller's own windows
    const handle = instance?.handle ?? await this.getWindow(caller, query);
    if (typeof handle.run !== "function") throw new PluginError("updateWindow: that window has no run function");
    return handle.run(config);
  }

  /** A window by its name, or ({type}) the first window of that window plugin; the caller's own first. */
  async getWindow(caller, query) {
    const open = [...this.#windows.values()].filter((known) => known.handle);
    open.sort((a, b) => Number(b.owner === caller.id) - Number(a.owner === caller.id));
    const instance = typeof query === "object" && query !== null
      ? open.find((known) => (query.name ? known.name === query.name : known.windowType === query.type))
      : open.find((known) => known.name === String(query));
    if (!instance) throw new PluginError(`no window ${JSON.stringify(query)}; open: ${open.map((known) => known.name).join(", ") || "none"}`, { code: CODES.notFound });
    return instance.handle;
  }

  #subscribers(event) {
    if (!this.#listeners.has(event)) this.#listeners.set(event, new Set());
    return this.#listeners.get(event);
  }
}
