// The workbench's logic: the open workspace's installed plugins, started on demand in the
// plugin host, installed from URLs, manifests, files and the editor, and the links that
// open it (?w=NAME, ?plugin=URL). The sidebar (manager.js) draws what this holds.
//
//   const workbench = await Workbench.start({ build, ui, host: () => pluginHostPromise });
//   const entry = await workbench.install(urlOrText); // parsed, stored in the workspace, started
//   await workbench.getPlugin(name);        // by name: starts an installed plugin if needed
//   await workbench.run(entry.id); await workbench.stop(entry.id); await workbench.remove(entry.id);
//   // a plugin's config `dependencies` are installed with it (after the same approve) and
//   // started before it; a cycle or a dependency that fails is an error naming both
//   await workbench.install(url, { approve: (config, url, installed, dependencies) => ... });
//   await workbench.install("https://host/x.imjoy.html@GPU");  // or { tag: "GPU" }: one of its config `tags`, kept in its entry
//   await workbench.switchTag(entry.id, "CPU");  // installs it again with another of its tags
//   await workbench.install(url, { replicas: 3 });  // a native-python plugin's Ray actors, from its first start
//   await workbench.setReplicas(entry.id, 3);   // its replica count on a Ray engine (null: its config's); started again if running
//   workbench.list();                       // [{id, name, type, version, state, ...}]
//
// Installed plugins are known by their id (given at install, workspace.js); the host's
// idOf(name) turns names into ids, asking the installer below which names are installed.
import { CODES, PluginError } from "../errors.js";
import { describe, fetchManifest, resolvePlugins } from "./install.js";
import { memoryStore, openStore } from "./store.js";
import { Workspaces, checkReplicas } from "./workspace.js";

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
      // replicas: the page's (pyjoy.installPlugin); plugins' installPlugin never passes it (host-api.js)
      install: async (source, { approve, replicas = null } = {}) => this.#apiOf((await this.install(source, { approve, replicas })).id),
      uninstall: async (name, { approve } = {}) => {
        const entry = this.#installedNamed(name);
        await approve?.(entry);
        await this.remove(entry.id);
      },
      installedId: (name) => this.workspace.pluginNamed(name)?.id ?? null,
      installed: (name) => this.workspace.pluginNamed(name), // {id, name, text, url, tag}: what a plugin's loads resolve names with
      replicas: (id) => this.workspace.replicas(id), // the person's replica count on a Ray engine, or null
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

  /**
   * Whether the person lets a plugin use `what` ("camera", "microphone": the page's relay):
   * asked once per plugin and workspace ("Plugin X wants to use your camera"), the answer
   * kept in the workspace by plugin id until revoked (revoke(), in the plugin's menu). A
   * plugin that is not installed here (loaded for the page) is asked once per visit.
   */
  consent(plugin, what) {
    const id = plugin.settingsId ?? plugin.id; // a plugin's windows ask as the plugin
    const installed = this.workspace.plugin(id);
    const kept = installed ? this.workspace.grant(id, what) : this.#visitGrants.get(`${id}\n${what}`) ?? null;
    if (kept !== null) return Promise.resolve(kept);
    const key = `${this.workspace.name}\n${id}\n${what}`;
    if (!this.#asking.has(key)) {
      const asking = this.ui.dialogs.confirm(`Use your ${what}`, `Plugin ${plugin.name} wants to use your ${what}. Allow it? (PyJoy remembers your answer for this plugin in workspace "${this.workspace.name}"; the plugin's menu changes it.)`, { ok: "Allow", cautious: true, owner: plugin })
        .then(async (answer) => {
          if (installed) await this.workspace.setGrant(id, what, answer);
          else this.#visitGrants.set(`${id}\n${what}`, answer);
          return answer;
        }).finally(() => this.#asking.delete(key));
      this.#asking.set(key, asking);
    }
    return this.#asking.get(key);
  }

  #visitGrants = new Map(); // "id\nwhat" -> answer, for plugins not installed here
  #asking = new Map(); // questions being asked, so that two requests get one

  /**
   * Forgets the answer kept for a plugin and `what`: its next request asks again; what it
   * has open of `what` (a camera's or microphone's stream) ends now.
   */
  async revoke(id, what) {
    this.#hostNow?.revoke(id, what);
    await this.workspace.setGrant(id, what, null);
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
        tags: entry.tags, tag: entry.tag ?? null, icon: entry.icon, url: entry.url,
        state: loaded?.state ?? "installed", error: loaded?.error ?? null, runs: loaded?.runs ?? null, engine: loaded?.engine ?? null,
        replicas: this.workspace.replicas(entry.id), // the person's count, or null
        configReplicas: entry.replicas ?? null, // its config's (entries installed before it was kept: null)
      };
    });
  }

  /**
   * Parses a plugin (source text, or a URL to fetch, which may end in "@tag") and installs
   * it in the workspace, replacing (as an update, under the same id) an installed one of the
   * same name, with its config's `dependencies` (ImJoy installs those first: imjoy-core,
   * PluginManager.installPlugin). `tag` picks one of the plugin's tags (its config `tags`;
   * else the URL's, else the one it was installed with, else its first); the entry keeps it,
   * so every start loads that tag. approve(config, url, installedEntryOrNull, dependencies)
   * is asked first, once for the plugin and all its dependencies ([{name, type, url,
   * permissions, replaces}], those not already installed as they are), and may throw to
   * refuse: nothing is then installed. `replicas`: how many Ray actors a native-python
   * plugin runs as (ENGINE.md, "On a Ray cluster"), kept in the workspace as setReplicas
   * keeps it, so that its first start has them; checked before anything is asked or
   * installed (host.checkReplicas: a whole number from 1 to MAX_REPLICAS, a native-python
   * plugin, an engine on Ray). Resolves to its entry. A malformed file is a
   * PluginError "plugin-parse-error" (block, line), and nothing is installed; so is a
   * dependency that cannot be fetched or parsed (the error names it and the plugin that
   * needs it), an unknown tag (named, with the plugin's tags), and a dependency cycle.
   */
  async install(urlOrText, { url = null, filename = null, tag = null, start = true, approve = null, replicas = null } = {}) {
    const plan = await resolvePlugins(String(urlOrText), { url, filename, tag, installed: (name) => this.workspace.pluginNamed(name) });
    const { parsed, url: mainURL } = [...plan.values()].pop();
    const asInstalled = (item, entry) => entry?.text === item.text && (entry.tag ?? null) === item.tag;
    const dependencies = [...plan.values()].slice(0, -1)
      .map((item) => ({ ...item, installed: this.workspace.pluginNamed(item.parsed.config.name) }))
      .filter((item) => !asInstalled(item, item.installed))
      .map(({ parsed: { config }, url: from, installed }) => ({
        name: config.name, type: config.type, url: from, permissions: config.permissions ?? [], replaces: installed ?? null,
      }));
    if (replicas !== null) (await this.host()).checkReplicas(parsed.config, replicas);
    await approve?.(parsed.config, mainURL, this.workspace.pluginNamed(parsed.config.name), dependencies);
    let entry;
    for (const item of plan.values()) {
      const replaced = this.workspace.pluginNamed(item.parsed.config.name);
      const isMain = item.parsed === parsed;
      if (!isMain && asInstalled(item, replaced)) continue; // a dependency already installed as it is
      const meta = { ...describe(item.parsed), dependencies: item.needs };
      entry = await this.workspace.install({ id: replaced?.id, text: item.text, url: item.url, meta });
      // A running dependency picks up its new version now.
      if (!isMain && this.#hostNow?.plugin(entry.id)) await this.start(entry.id);
    }
    if (replicas !== null) await this.workspace.setReplicas(entry.id, replicas);
    // A running plugin picks up the new version now; otherwise when it is next started.
    if (start || this.#hostNow?.plugin(entry.id)) await this.start(entry.id);
    return entry;
  }

  /**
   * The replica count a plugin runs with on a Ray engine (ENGINE.md, "On a Ray cluster"): the
   * person's choice (`count`, 1 to MAX_REPLICAS; null: the plugin's config's), kept in the
   * workspace; a running plugin starts again with it, one not running has it when it starts.
   */
  async setReplicas(id, count) {
    const entry = this.workspace.plugin(id);
    if (!entry) throw new PluginError(`no plugin ${id} is installed in workspace "${this.workspace.name}"`, { code: CODES.notFound });
    if (count !== null) checkReplicas(entry.name, count);
    await this.workspace.setReplicas(id, count);
    if (this.#hostNow?.plugin(id)?.state === "running") await this.start(id);
  }

  /** Installs an installed plugin again with another of its tags (the person's choice in its menu). */
  async switchTag(id, tag) {
    const entry = this.workspace.plugin(id);
    if (!entry) throw new PluginError(`no plugin ${id} is installed in workspace "${this.workspace.name}"`, { code: CODES.notFound });
    return this.install(entry.text, { url: entry.url, filename: entry.url ? null : `${entry.name}.imjoy.html`, tag, start: false });
  }

  /**
   * Starts an installed plugin (again, from its stored file) by its id; resolves to the
   * loaded plugin. Callers asking while it starts share that start instead of making another.
   * chain: the names of the plugins whose start needs this one (a dependency cycle is refused).
   */
  start(id, chain = []) {
    if (!this.#starting.has(id)) {
      const starting = this.#start(id, chain).finally(() => this.#starting.delete(id));
      this.#starting.set(id, starting);
    }
    return this.#starting.get(id);
  }

  #starting = new Map(); // id -> the start in progress

  async #start(id, chain = []) {
    const entry = this.workspace.plugin(id);
    if (!entry) throw new PluginError(`no plugin ${id} is installed in workspace "${this.workspace.name}"`, { code: CODES.notFound });
    await this.#startDependencies(entry, chain);
    const host = await this.host();
    const plugin = await host.load(entry.text, { url: entry.url ?? undefined, id: entry.id, owner: "workspace", tag: entry.tag ?? null });
    this.#changed();
    return plugin;
  }

  // ImJoy starts a plugin's dependencies before it (PluginManager.reloadPluginRecursively):
  // each installed one that is not running, by its name; chain refuses a cycle.
  async #startDependencies(entry, chain) {
    const path = [...chain, entry.name];
    for (const name of entry.dependencies ?? []) {
      const dependency = this.workspace.pluginNamed(name);
      if (!dependency) {
        throw new PluginError(`${entry.name} needs the plugin ${name}, which is not installed in workspace "${this.workspace.name}"; install ${entry.name} again to install it`);
      }
      // Checked before waiting on a start in progress, which in a cycle would wait on itself.
      if (path.includes(name)) throw new PluginError(`dependency cycle: ${[...path, name].join(" needs ")}`);
      if (this.#hostNow?.plugin(dependency.id)?.state === "running") continue;
      try {
        // Through start(), so that a plugin started meanwhile that needs it too (or a window
        // restored at load) waits for this start rather than making a second one, which
        // would replace this one while it loads.
        await this.start(dependency.id, path);
      } catch (error) {
        if (/^dependency cycle/.test(error.message)) throw error;
        throw new PluginError(`${entry.name} needs the plugin ${dependency.name}, which could not start: ${error.message}`, { code: error.code ?? CODES.loadFailed });
      }
    }
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
