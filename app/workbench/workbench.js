// The workbench's logic: the open workspace's installed plugins, started on demand in the
// plugin host, installed from URLs, manifests, files and the editor, and the links that
// open it (?w=NAME, ?plugin=URL). The sidebar (manager.js) draws what this holds.
//
//   const workbench = await Workbench.start({ build, ui, host: () => pluginHostPromise });
//   const entry = await workbench.install(urlOrText); // parsed, stored in the workspace, started
//   await workbench.getPlugin(name);        // by name: starts an installed plugin if needed
//   await workbench.run(entry.id); await workbench.stop(entry.id); await workbench.remove(entry.id);
//   workbench.list();                       // [{id, name, type, version, state, ...}]
//
// Installed plugins are known by their id (given at install, workspace.js); the host's
// idOf(name) turns names into ids, asking the installer below which names are installed.
import { CODES, PluginError, asPluginError } from "../errors.js";
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

  /** The host's settings for plugins, by plugin id: the open workspace's. */
  get settings() {
    return {
      get: (id, key) => this.workspace.getConfig(id, key),
      set: (id, entries) => this.workspace.setConfig(id, entries),
      workspace: () => this.workspace.name, // ImJoy's api.WORKSPACE
    };
  }

  /**
   * What plugins' installPlugin/uninstallPlugin do: keep the plugin in the workspace, once
   * approve() (which asks the person) has not thrown; and which names are installed.
   */
  get installer() {
    return {
      install: async (source, { approve } = {}) => this.#apiOf((await this.install(source, { approve })).id),
      uninstall: async (name, { approve } = {}) => {
        const entry = this.#installedNamed(name);
        await approve?.(entry);
        await this.remove(entry.id);
      },
      installedId: (name) => this.workspace.pluginNamed(name)?.id ?? null,
      start: (id) => this.#apiOf(id),
    };
  }

  #installedNamed(name) {
    const entry = this.workspace.pluginNamed(name);
    if (!entry) {
      const names = this.workspace.plugins.map((plugin) => plugin.name).join(", ") || "none";
      throw new PluginError(`no plugin named ${name} is installed in workspace "${this.workspace.name}"; installed: ${names}`, { code: CODES.notFound });
    }
    return entry;
  }

  /** Where a plugin's window (by plugin id) was in this workspace, or null. */
  windowLayout(id) {
    return this.workspace.windows.find((window) => window.key === id) ?? null;
  }

  /** The installed plugins with their state here: installed (not started), running, ... */
  list() {
    return this.workspace.plugins.map((entry) => {
      const loaded = this.#hostNow?.plugin(entry.id)?.describe();
      return {
        id: entry.id, name: entry.name, type: entry.type, version: entry.version, description: entry.description,
        tags: entry.tags, icon: entry.icon, url: entry.url,
        state: loaded?.state ?? "installed", error: loaded?.error ?? null,
      };
    });
  }

  /**
   * Parses a plugin (source text, or a URL to fetch) and installs it in the workspace,
   * replacing (as an update, under the same id) an installed one of the same name.
   * approve(config, url, installedEntryOrNull) is asked first and may throw to refuse.
   * Resolves to its entry. A malformed file is a PluginError "plugin-parse-error" (block,
   * line), and nothing is installed.
   */
  async install(urlOrText, { url = null, filename = null, start = true, approve = null } = {}) {
    let text = String(urlOrText);
    let parsed;
    try {
      if (!url && !filename && !/[\n<]/.test(text)) ({ text, url } = await fetchPluginText(text));
      const { parsePlugin } = await parser();
      parsed = parsePlugin(text, { url: url ?? undefined, filename: filename ?? url?.split("/").pop() });
    } catch (error) {
      throw asPluginError(error);
    }
    await approve?.(parsed.config, url, this.workspace.pluginNamed(parsed.config.name));
    const replaced = this.workspace.pluginNamed(parsed.config.name);
    const entry = await this.workspace.install({ id: replaced?.id, text, url, meta: describe(parsed) });
    // A running plugin picks up the new version now; otherwise when it is next started.
    if (start || this.#hostNow?.plugin(entry.id)) await this.start(entry.id);
    return entry;
  }

  /**
   * Starts an installed plugin (again, from its stored file) by its id; resolves to the
   * loaded plugin. Callers asking while it starts share that start instead of making another.
   */
  start(id) {
    if (!this.#starting.has(id)) {
      const starting = this.#start(id).finally(() => this.#starting.delete(id));
      this.#starting.set(id, starting);
    }
    return this.#starting.get(id);
  }

  #starting = new Map(); // id -> the start in progress

  async #start(id) {
    const entry = this.workspace.plugin(id);
    if (!entry) throw new PluginError(`no plugin ${id} is installed in workspace "${this.workspace.name}"`, { code: CODES.notFound });
    const host = await this.host();
    const plugin = await host.load(entry.text, { url: entry.url ?? undefined, id: entry.id, owner: "workspace" });
    this.#changed();
    return plugin;
  }

  /** A plugin's API by name: a loaded one's, or an installed one's (started if needed): the host's getPlugin. */
  async getPlugin(name) {
    return (await this.host()).getPlugin(name);
  }

  // An installed plugin's API: the running one's, the start in progress, or a new start.
  async #apiOf(id) {
    if (this.#starting.has(id)) return (await this.#starting.get(id)).api;
    const running = (await this.host()).plugin(id);
    if (running?.state === "running") return running.api;
    return (await this.start(id)).api;
  }

  /** "Run" in the list: starts the plugin if needed, then calls its run(ctx) if it has one. */
  async run(id, data = {}) {
    const api = await this.#apiOf(id);
    if (typeof api?.run === "function") return api.run({ config: {}, data });
    return undefined;
  }

  async stop(id) {
    const host = await this.host();
    host.terminate(id);
    this.#changed();
  }

  async remove(id) {
    if (this.#hostPromise) (await this.#hostPromise).terminate(id);
    await this.workspace.uninstall(id);
  }

  /** Stops this workspace's plugins and closes every window; opens another, its windows where they were. */
  async switchWorkspace(name) {
    this.#layoutFrozen = true;
    try {
      if (this.#hostPromise) (await this.#hostPromise).terminateAll();
      await this.workspaces.switchTo(name);
    } finally {
      await this.restoreWindows();
    }
  }

  /** Reopens the window plugins whose windows were open when the workspace was last used. */
  async restoreWindows() {
    this.#layoutFrozen = true;
    try {
      const entries = this.workspace.windows.map((window) => this.workspace.plugin(window.key)).filter(Boolean);
      for (const entry of entries) {
        await this.start(entry.id).catch((error) => this.ui.toast(`Could not reopen ${entry.name}: ${error.message}`, "error"));
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
