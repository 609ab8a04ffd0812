// The workbench's logic: the open workspace's installed plugins, started on demand in the
// plugin host, installed from URLs, manifests, files and the editor, and the links that
// open it (?w=NAME, ?plugin=URL). The sidebar (manager.js) draws what this holds.
//
//   const workbench = await Workbench.start({ build, ui, host: () => pluginHostPromise });
//   await workbench.install(urlOrText);     // parsed, stored in the workspace, started
//   await workbench.getPlugin(name);        // starts an installed plugin if needed
//   workbench.list();                       // [{name, type, version, state, ...}]
import { describe, fetchManifest, fetchPluginText } from "./install.js";
import { memoryStore, openStore } from "./store.js";
import { Workspaces } from "./workspace.js";

const parser = () => import("../plugins/format.js");

export class Workbench {
  #host;
  #hostPromise = null;
  #hostNow = null; // the host once created, for reading plugin states without waiting
  #listeners = new Set();
  #layoutFrozen = false; // while a workspace closes and opens, its windows come and go

  /**
   * Opens the workspace store (IndexedDB; in memory, with a warning, where it is
   * unavailable) and the workspace the URL names (?w=) or the last one used.
   */
  static async start({ ui, host, workspace = null, builtinManifest = null }) {
    let store;
    try {
      store = await openStore();
    } catch (error) {
      store = memoryStore();
      ui.toast(`Storage is unavailable (${error.message}): this session's workspaces will not be kept.`, "error");
    }
    const firstVisit = (await store.names()).length === 0;
    const workspaces = await Workspaces.open(store, { initial: workspace });
    const workbench = new Workbench({ ui, host, workspaces });
    // A first visit starts with the built-in plugins installed (not started), so the
    // camera's image recognition is one tap away, offline too.
    if (firstVisit && builtinManifest) await workbench.installBuiltins(builtinManifest);
    return workbench;
  }

  async installBuiltins(manifestURL) {
    try {
      const { plugins } = await fetchManifest(manifestURL);
      for (const plugin of plugins) await this.install(plugin.uri, { start: false });
    } catch (error) {
      this.ui.toast(`The built-in plugins could not be installed: ${error.message}`, "error");
    }
  }

  constructor({ ui, host, workspaces }) {
    this.ui = ui;
    this.#host = host;
    this.workspaces = workspaces;
    workspaces.subscribe(() => this.#changed());
  }

  /** True once the plugin host exists (a plugin was started or asked for). */
  get hostStarted() {
    return this.#hostPromise !== null;
  }

  get workspace() {
    return this.workspaces.current;
  }

  /** The plugin host, created on first use (it loads the parser and the sandboxes' code). */
  host() {
    this.#hostPromise ??= this.#host().then((host) => {
      this.#hostNow = host;
      host.onChange(() => this.#changed());
      return host;
    });
    return this.#hostPromise;
  }

  /** Calls listener() whenever the workspace or a plugin's state changes. */
  subscribe(listener) {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #changed() {
    for (const listener of this.#listeners) listener();
  }

  /** The host's settings for plugins: the open workspace's. */
  get settings() {
    return {
      get: (plugin, key) => this.workspace.getConfig(plugin, key),
      set: (plugin, entries) => this.workspace.setConfig(plugin, entries),
    };
  }

  /** What installPlugin/uninstallPlugin do: keep the plugin in the workspace. */
  get installer() {
    return {
      install: async (source) => (await this.getPlugin((await this.install(source)).name)),
      uninstall: (name) => this.remove(name),
    };
  }

  /** Where a plugin's window was in this workspace, or null. */
  windowLayout(name) {
    return this.workspace.windows.find((window) => window.key === name) ?? null;
  }

  /** The installed plugins with their state here: installed (not started), running, ... */
  list() {
    return this.workspace.plugins.map((entry) => {
      const loaded = this.#hostNow?.plugin(entry.name)?.describe();
      return {
        name: entry.name, type: entry.type, version: entry.version, description: entry.description,
        tags: entry.tags, icon: entry.icon, url: entry.url,
        state: loaded?.state ?? "installed", error: loaded?.error ?? null,
      };
    });
  }

  /**
   * Parses a plugin (source text, or a URL to fetch) and installs it in the workspace,
   * replacing an installed one of the same name. Resolves to its entry. A malformed file
   * is the parser's PluginFormatError (block, line), and nothing is installed.
   */
  async install(urlOrText, { url = null, filename = null, start = true } = {}) {
    let text = String(urlOrText);
    if (!url && !filename && !/[\n<]/.test(text)) ({ text, url } = await fetchPluginText(text));
    const { parsePlugin } = await parser();
    const parsed = parsePlugin(text, { url: url ?? undefined, filename: filename ?? url?.split("/").pop() });
    const entry = await this.workspace.install({ text, url, meta: describe(parsed) });
    // A running plugin picks up the new version now; otherwise when it is next started.
    if (start || this.#hostNow?.plugin(entry.name)) await this.start(entry.name);
    return entry;
  }

  /**
   * Starts an installed plugin (again, from its stored file); resolves to the loaded
   * plugin. Callers asking while it starts share that start instead of making another.
   */
  start(name) {
    if (!this.#starting.has(name)) {
      const starting = this.#start(name).finally(() => this.#starting.delete(name));
      this.#starting.set(name, starting);
    }
    return this.#starting.get(name);
  }

  #starting = new Map(); // name -> the start in progress

  async #start(name) {
    const entry = this.workspace.plugin(name);
    if (!entry) throw new Error(`no plugin named ${name} is installed in workspace "${this.workspace.name}"`);
    const host = await this.host();
    const plugin = await host.load(entry.text, { url: entry.url ?? undefined });
    this.#changed();
    return plugin;
  }

  /** A plugin's API: a running one's, or an installed one's once started. */
  async getPlugin(name) {
    if (this.#starting.has(name)) return (await this.#starting.get(name)).api;
    const host = await this.host();
    if (host.plugin(name)?.state === "running") return host.getPlugin(name);
    if (this.workspace.plugin(name)) return (await this.start(name)).api;
    return host.getPlugin(name); // loaded for this page only, or an error naming what is there
  }

  /** "Run" in the list: starts the plugin if needed, then calls its run(ctx) if it has one. */
  async run(name, data = {}) {
    const api = await this.getPlugin(name);
    if (typeof api?.run === "function") return api.run({ config: {}, data });
    return undefined;
  }

  async stop(name) {
    const host = await this.host();
    host.terminate(name);
    this.#changed();
  }

  async remove(name) {
    if (this.#hostPromise) (await this.#hostPromise).terminate(name);
    await this.workspace.uninstall(name);
  }

  /** Stops this workspace's plugins and opens another; its windows come back where they were. */
  async switchWorkspace(name) {
    this.#layoutFrozen = true;
    try {
      if (this.#hostPromise) {
        const host = await this.#hostPromise;
        for (const plugin of host.list()) host.terminate(plugin.name);
      }
      await this.workspaces.switchTo(name);
    } finally {
      await this.restoreWindows();
    }
  }

  /** Reopens the window plugins whose windows were open when the workspace was last used. */
  async restoreWindows() {
    this.#layoutFrozen = true;
    try {
      const names = this.workspace.windows.map((window) => window.key).filter((name) => this.workspace.plugin(name));
      for (const name of names) {
        await this.start(name).catch((error) => this.ui.toast(`Could not reopen ${name}: ${error.message}`, "error"));
      }
    } finally {
      this.#layoutFrozen = false;
    }
  }

  /** Keeps the window layout the window area reports (not while a workspace changes). */
  async saveLayout(windows) {
    if (this.#layoutFrozen) return;
    const mine = windows.filter((window) => this.workspace.plugin(window.key));
    if (JSON.stringify(mine) === JSON.stringify(this.workspace.windows)) return;
    await this.workspace.saveWindows(mine).catch((error) => this.ui.toast(error.message, "error"));
  }
}
