// The plugin host: loads plugins into sandboxes, keeps track of them, and gives each its
// API (host-api.js). One instance per page: `pyjoy.loadPlugin(...)` and the workbench use it.
//
//   const host = new PluginHost({ build, ui, hiddenContainer, windows, settings, installer, windowLayout });
//   const plugin = await host.load(urlOrSource);   // -> Plugin; plugin.api is its export
//   await (await host.getPlugin("Name")).run({});
//   host.list();                                   // [{name, type, version, state}]
//   host.terminate("Name");
//   host.onChange(() => ...);                       // after any plugin's state changes
//
// The workbench gives it `settings` ({get(plugin, key?), set(plugin, [[key, value]])}, the
// workspace's), `installer` ({install(source) -> api, uninstall(name)}: what plugins'
// installPlugin/uninstallPlugin do) and `windowLayout` (name -> where its window was).
import { parsePlugin } from "./format.js";
import { hostApiFor } from "./host-api.js";
import { Sandbox } from "./sandbox.js";

/** A plugin that could not be loaded or started: says which, and why. */
export class PluginError extends Error {
  constructor(message, { traceback, block, line } = {}) {
    super(message);
    this.name = "PluginError";
    Object.assign(this, { traceback, block, line });
  }
}

const SANDBOX_KIND = { "web-python": "web-python", "web-worker": "web-worker", window: "window", iframe: "window" };

function looksLikeURL(text) {
  return !/[\n<]/.test(text) && /^(https?:\/\/|\.{0,2}\/|[\w.-]+\.(py|js|html)$)/i.test(text.trim());
}

export class Plugin {
  constructor({ source, url, text }) {
    this.source = source;
    this.url = url;
    this.text = text; // the file as loaded, for reload and the editor
    this.config = source.config;
    this.name = source.config.name;
    this.type = source.config.type;
    this.state = "loading";
    this.api = null;
    this.sandbox = null;
    this.window = null;
    this.error = null;
  }

  describe() {
    return { name: this.name, type: this.type, version: this.config.version, state: this.state, error: this.error?.message ?? null };
  }
}

export class PluginHost {
  #plugins = new Map(); // name -> Plugin
  #windows = new Map(); // window name -> {plugin, api}
  #listeners = new Map(); // event -> Set of {plugin, handler}
  #services = [];
  #spare = null; // a booted Python sandbox, waiting for the next web-python plugin
  #changeListeners = new Set();

  constructor({ build, ui, hiddenContainer, windows, settings, installer, windowLayout }) {
    Object.assign(this, { build, ui, hiddenContainer, windows, settings, installer, windowLayout });
    this.logs = []; // {plugin, level, text, time}
    this.events = {
      on: (plugin, event, handler) => this.#subscribers(event).add({ plugin, handler }),
      off: (plugin, event, handler) => {
        for (const entry of this.#subscribers(event)) if (entry.plugin === plugin && (!handler || entry.handler === handler)) this.#subscribers(event).delete(entry);
      },
      emit: (event, data) => Promise.all([...this.#subscribers(event)].map(({ handler }) => handler(data))),
    };
    let serial = 0;
    this.services = {
      register: (plugin, service) => {
        const id = `${plugin.name}:${service.id ?? service.name ?? `${service.type ?? "service"}-${++serial}`}`;
        const entry = { ...service, id, provider: plugin.name };
        this.#services = this.#services.filter((known) => known.id !== id).concat(entry);
        return id;
      },
      // By id, by name, or by the registered object's {id} / {name} / {type, name}.
      unregister: (plugin, service) => {
        const keys = typeof service === "string" ? [service] : [service.id, service.name].filter(Boolean);
        const matches = (known) => known.provider === plugin.name
          && keys.some((key) => known.id === key || known.id === `${plugin.name}:${key}` || known.name === key);
        this.#services = this.#services.filter((known) => !matches(known));
      },
      find: (query) => this.#services.filter((service) => Object.entries(query).every(([key, value]) => service[key] === value)),
      unregisterAll: (provider) => {
        this.#services = this.#services.filter((known) => known.provider !== provider);
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

  /** The loaded plugin by name, or null. */
  plugin(name) {
    return this.#plugins.get(name) ?? null;
  }

  /** [{name, type, version, state, error}] of every plugin this page has loaded. */
  list() {
    return [...this.#plugins.values()].map((plugin) => plugin.describe());
  }

  log(plugin, level, text) {
    this.logs.push({ plugin: plugin.name, level, text, time: Date.now() });
    (level === "error" ? console.error : console.log)(`[${plugin.name}] ${text}`);
    if (level !== "error") this.ui.log?.(`${plugin.name}: ${text}`, level);
    if (level === "error") this.ui.toast(`${plugin.name}: ${text}`, "error");
  }

  /**
   * Loads a plugin from a URL or from its source text. A malformed plugin is a
   * PluginError naming the block and line; nothing already loaded is touched. A plugin
   * with the name of a loaded one replaces it (a reload).
   */
  async load(urlOrSource, { url } = {}) {
    let text = String(urlOrSource);
    if (!url && looksLikeURL(text)) {
      url = new URL(text, document.baseURI).href;
      const response = await fetch(url).catch((error) => { throw new PluginError(`could not fetch plugin ${url}: ${error.message}`); });
      if (!response.ok) throw new PluginError(`could not fetch plugin ${url}: ${response.status} ${response.statusText}`);
      text = await response.text();
    }
    let source;
    try {
      source = parsePlugin(text, { url, filename: url?.split("/").pop() });
    } catch (error) {
      throw new PluginError(error.message, { block: error.block, line: error.line });
    }
    const plugin = new Plugin({ source, url, text });
    if (!SANDBOX_KIND[plugin.type]) {
      throw new PluginError(`plugin ${plugin.name} is a ${plugin.type} plugin: it needs the PyJoy engine (pyjoy engine), which is not connected`);
    }
    const previous = this.#plugins.get(plugin.name);
    previous?.sandbox?.terminate("replaced by a new version");
    previous?.window?.close();
    this.#plugins.set(plugin.name, plugin);
    this.#changed();
    try {
      await this.#start(plugin);
    } catch (error) {
      plugin.state = "crashed";
      plugin.error = error;
      plugin.sandbox?.terminate("failed to load");
      this.#changed();
      throw error instanceof PluginError ? error : new PluginError(`plugin ${plugin.name} failed to load: ${error.message}`, { traceback: error.traceback });
    }
    this.#changed();
    return plugin;
  }

  async #start(plugin, { container } = {}) {
    const kind = SANDBOX_KIND[plugin.type];
    if (kind === "window" && plugin.type === "window" && !container) {
      plugin.window = this.windows.open({ title: plugin.name, key: plugin.name, layout: this.windowLayout(plugin.name), onClose: () => this.terminate(plugin.name) });
      container = plugin.window.body;
    }
    const sandbox = kind === "web-python" ? await this.#takePython()
      : await Sandbox.create({
        build: this.build, kind, container: container ?? this.hiddenContainer,
        permissions: plugin.config.permissions ?? [], onOutput: (output) => this.log(plugin, output.type === "stderr" ? "error" : "info", output.text),
      });
    plugin.sandbox = sandbox;
    // The sandbox has ended itself (its calls failed at once); say so where the plugin was.
    sandbox.onCrash((message) => {
      plugin.state = "crashed";
      plugin.error = new PluginError(message);
      this.ui.toast(`Plugin ${plugin.name} crashed: ${message}`, "error");
      plugin.window?.body.replaceChildren(Object.assign(document.createElement("p"), {
        className: "plugin-crashed", textContent: `${plugin.name} crashed: ${message}`,
      }));
      this.#changed();
    });
    await sandbox.session.setRoot(hostApiFor(plugin, this));
    try {
      plugin.api = await sandbox.kernel.load_plugin(plugin.source);
      if (typeof plugin.api.setup === "function") await plugin.api.setup();
    } catch (error) {
      throw new PluginError(`plugin ${plugin.name} failed to load: ${error.message}`, { traceback: error.traceback });
    }
    plugin.state = "running";
    this.#prepareSpare();
  }

  // Python takes a second or more to boot: keep one sandbox booted for the next plugin.
  async #takePython() {
    const spare = this.#spare ?? this.#bootPython();
    this.#spare = null;
    return spare;
  }

  #bootPython() {
    const sandbox = Sandbox.create({ build: this.build, kind: "web-python", container: this.hiddenContainer, onOutput: (output) => console.log(output.text) });
    sandbox.catch(() => {});
    return sandbox;
  }

  #prepareSpare() {
    if (this.#spare || ![...this.#plugins.values()].some((plugin) => plugin.type === "web-python")) return;
    const boot = () => (this.#spare ??= this.#bootPython());
    if ("requestIdleCallback" in window) requestIdleCallback(boot, { timeout: 5000 });
    else setTimeout(boot, 500);
  }

  /** The API of a loaded plugin, by name. */
  async getPlugin(name) {
    const plugin = this.#plugins.get(name);
    if (!plugin) throw new PluginError(`no plugin named ${name} is loaded; loaded: ${[...this.#plugins.keys()].join(", ") || "none"}`);
    if (plugin.state !== "running") throw new PluginError(`plugin ${name} is ${plugin.state}${plugin.error ? `: ${plugin.error.message}` : ""}`);
    return plugin.api;
  }

  /** Ends a plugin, even one stuck in an endless loop; it can be loaded again. */
  terminate(name) {
    const plugin = this.#plugins.get(name);
    if (!plugin) return false;
    plugin.state = "stopped";
    this.#plugins.delete(name);
    plugin.sandbox?.terminate("terminated");
    plugin.window?.close();
    for (const subscribers of this.#listeners.values()) for (const entry of subscribers) if (entry.plugin === plugin) subscribers.delete(entry);
    this.services.unregisterAll(plugin.name);
    this.#changed();
    return true;
  }

  /** Loads a plugin again from its source (or its URL, fetched anew). */
  async reload(name) {
    const plugin = this.#plugins.get(name);
    if (!plugin) throw new PluginError(`no plugin named ${name} is loaded`);
    return this.load(plugin.url ?? plugin.text);
  }

  /**
   * createWindow/showDialog: a new instance of a window plugin ({type: name, name, data}),
   * shown in a window; returns the instance's API after its run({data, config}).
   */
  async createWindow(caller, config = {}) {
    const template = this.#plugins.get(config.type);
    if (!template || !["window", "iframe"].includes(template.type)) {
      throw new PluginError(`createWindow: ${config.type ? `no window plugin named ${config.type}` : "config.type must name a window plugin"}`);
    }
    const instance = new Plugin({ source: template.source, url: template.url, text: template.text });
    instance.name = config.name ?? template.name;
    const closeListeners = new Set();
    instance.window = this.windows.open({
      title: instance.name,
      onClose: () => {
        instance.sandbox?.terminate("window closed");
        this.#windows.delete(instance.name);
        for (const listener of closeListeners) listener();
      },
    });
    await this.#start(instance, { container: instance.window.body });
    if (typeof instance.api.run === "function") await instance.api.run({ data: config.data ?? {}, config: config.config ?? {} });
    // What ImJoy gives for a window: its plugin's API, plus close() and on("close").
    instance.handle = {
      ...instance.api,
      close: () => instance.window.close(),
      on: (event, handler) => event === "close" && closeListeners.add(handler),
      off: (event, handler) => closeListeners.delete(handler),
    };
    this.#windows.set(instance.name, instance);
    return instance.handle;
  }

  /** A window by its name, or ({type}) the first window of that window plugin. */
  async getWindow(query) {
    const instance = typeof query === "object" && query !== null
      ? [...this.#windows.values()].find((known) => (query.name ? known.name === query.name : known.source.config.name === query.type))
      : this.#windows.get(query);
    if (!instance) throw new PluginError(`no window ${JSON.stringify(query)}; open: ${[...this.#windows.keys()].join(", ") || "none"}`);
    return instance.handle;
  }

  #subscribers(event) {
    if (!this.#listeners.has(event)) this.#listeners.set(event, new Set());
    return this.#listeners.get(event);
  }
}
