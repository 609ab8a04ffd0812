// The workspaces a person has on this device, and the one open now. A workspace holds its
// installed plugins (each file's text, so it runs offline), their settings
// (api.getConfig/setConfig) and its window layout, saved with every change (store.js).
// Each installed plugin gets an id at install; its settings and window are kept under that
// id, never under the name its file chooses. Settings' keys come from plugins: they are
// read and written as own properties only, so "__proto__" is just a key.
//
//   const workspaces = await Workspaces.open(store, { initial: "default" });
//   const ws = workspaces.current;
//   const entry = await ws.install({ text, url, meta });  ws.plugins;  ws.plugin(entry.id);
//   ws.pluginNamed(name);  await ws.uninstall(entry.id);
//   ws.getConfig(id, key);  await ws.setConfig(id, [[key, value]]);   // a null value removes the key
//   ws.engines;  await ws.rememberEngine(url);  await ws.forgetEngine(url);   // engine URLs, with their tokens
//   ws.replicas(id);  await ws.setReplicas(id, 2);   // the person's replica count on a Ray engine (null: the config's)
//   await workspaces.switchTo("other");  await workspaces.rename(old, new);
//   const undo = await workspaces.remove(name); await undo();
//   workspaces.exportFile(name) -> Blob;  await workspaces.importFile(file)
//
// Changes are made on a copy and kept only once stored, so a failed write (a full disk)
// leaves both the stored and the shown workspace as they were.
import { CODES, PluginError } from "../errors.js";

export const DEFAULT_WORKSPACE = "default";
/** The most replicas a plugin may run on a Ray engine (pyjoy/engine/ray_actors.py MAX_REPLICAS). */
export const MAX_REPLICAS = 64;

/** `count` when it is a replica count (a whole number from 1 to MAX_REPLICAS) for the
 * plugin named `name`; otherwise a PluginError naming the value. */
export function checkReplicas(name, count) {
  if (Number.isInteger(count) && count >= 1 && count <= MAX_REPLICAS) return count;
  const shown = typeof count === "number" ? String(count) : JSON.stringify(count) ?? String(count);
  throw new PluginError(`replicas of ${name}: a whole number from 1 to ${MAX_REPLICAS}, not ${shown}`, { code: CODES.loadFailed });
}
const EXPORT_FORMAT = "pyjoy-workspace";
const EXPORT_VERSION = 2; // 2: plugins have ids, and settings and windows are kept by id (1: by name; still read)

/** A workspace name people can read, type in a URL, and that stays one line. */
export function checkName(name) {
  const clean = String(name ?? "").trim();
  if (!clean) throw new Error("a workspace needs a name");
  if (clean.length > 80) throw new Error("a workspace name has at most 80 characters");
  if (/[\n\r\t]/.test(clean)) throw new Error("a workspace name is one line");
  return clean;
}

/** A new id for an installed plugin. */
export function newPluginId() {
  return `plugin-${crypto.randomUUID()}`;
}

function own(object, key) {
  return object !== null && typeof object === "object" && Object.hasOwn(object, key) ? object[key] : undefined;
}

function setOwn(object, key, value) {
  Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
}

const PLUGIN_ID = /^plugin-[0-9a-f-]{36}$/;

// Records from before plugins had ids (settings and windows by name) get them, as does a
// plugin whose id is not one we give (a hand-made file) or is taken twice; any record gets
// the fields it lacks. Returns true when it changed the record, which is then stored at
// once, so that a plugin's id stays the same each time its workspace opens.
function upgrade(record) {
  const before = JSON.stringify(record);
  record.plugins ??= [];
  record.windows ??= [];
  if (typeof record.settings !== "object" || record.settings === null) record.settings = {};
  const seen = new Set();
  for (const plugin of record.plugins) {
    if (PLUGIN_ID.test(plugin.id) && !seen.has(plugin.id)) {
      seen.add(plugin.id);
      continue;
    }
    plugin.id = newPluginId();
    seen.add(plugin.id);
    const settings = own(record.settings, plugin.name);
    if (settings !== undefined) {
      delete record.settings[plugin.name];
      setOwn(record.settings, plugin.id, settings);
    }
    for (const window of record.windows) if (window.key === plugin.name) window.key = plugin.id;
  }
  return JSON.stringify(record) !== before;
}

function emptyRecord(name) {
  const now = Date.now();
  return { name, created: now, updated: now, plugins: [], settings: {}, windows: [] };
}

export class Workspace {
  #store;
  #onChange;

  constructor(record, store, onChange) {
    this.record = record;
    this.#store = store;
    this.#onChange = onChange;
  }

  get name() {
    return this.record.name;
  }

  /** Installed plugins: [{id, name, type, version, description, tags, icon, permissions, text, url, installed}]. */
  get plugins() {
    return this.record.plugins;
  }

  /** The installed plugin with this id, or null. */
  plugin(id) {
    return this.record.plugins.find((plugin) => plugin.id === id) ?? null;
  }

  /** The installed plugin named `name`, or null (a name is one installed plugin's). */
  pluginNamed(name) {
    return this.record.plugins.find((plugin) => plugin.name === name) ?? null;
  }

  /**
   * Installs a plugin whose file is `text`, with what the list shows (`meta`: name, type,
   * version, description, tags, icon, permissions, from its config). With `id`, it replaces
   * that installed plugin (an update: its settings and window stay); any other of the same
   * name goes. Resolves to the entry.
   */
  async install({ id = null, text, url = null, meta }) {
    const entry = { ...meta, id: id ?? newPluginId(), text, url, installed: Date.now() };
    await this.#change(`plugin "${meta.name}"`, (record) => {
      const index = record.plugins.findIndex((plugin) => plugin.id === entry.id);
      if (index >= 0) record.plugins[index] = entry;
      else record.plugins.push(entry);
      // A name is one installed plugin's: another of this name goes.
      record.plugins = record.plugins.filter((plugin) => plugin.id === entry.id || plugin.name !== meta.name);
    });
    return entry;
  }

  async uninstall(id) {
    const name = this.plugin(id)?.name ?? id;
    await this.#change(`the removal of plugin "${name}"`, (record) => {
      record.plugins = record.plugins.filter((plugin) => plugin.id !== id);
      delete record.settings[id];
      if (record.grants) delete record.grants[id];
      if (record.replicas) delete record.replicas[id];
      record.windows = record.windows.filter((window) => window.key !== id);
    });
  }

  // Settings are text, as in ImJoy (setConfig("n", 1) then getConfig("n") is "1").
  getConfig(id, key) {
    const settings = own(this.record.settings, id) ?? {};
    if (key === undefined || key === null) return Object.fromEntries(Object.entries(settings));
    return own(settings, String(key)) ?? null;
  }

  async setConfig(id, entries) {
    await this.#change(`the settings of "${this.plugin(id)?.name ?? id}"`, (record) => {
      if (own(record.settings, id) === undefined) setOwn(record.settings, id, {});
      const settings = own(record.settings, id);
      for (const [key, value] of entries) {
        // As ImJoy documents setConfig: a null (JavaScript) or None (Python) value removes the key.
        if (value === null || value === undefined) delete settings[String(key)];
        else setOwn(settings, String(key), typeof value === "object" ? JSON.stringify(value) : String(value));
      }
    });
  }

  /** The window layout: [{key (a plugin's id), x, y, width, height, maximized}], in stacking order. */
  get windows() {
    return this.record.windows;
  }

  /** The person's answer (true or false) to a plugin's request to use `what` ("camera"), or null if none is kept. */
  grant(id, what) {
    return own(own(this.record.grants ?? {}, id) ?? {}, what) ?? null;
  }

  /** Keeps the person's answer for a plugin and `what`; null forgets it (asked again next time). */
  async setGrant(id, what, answer) {
    await this.#change(`the permissions of "${this.plugin(id)?.name ?? id}"`, (record) => {
      record.grants ??= {};
      if (own(record.grants, id) === undefined) setOwn(record.grants, id, {});
      const grants = own(record.grants, id);
      if (answer === null) delete grants[what];
      else setOwn(grants, what, Boolean(answer));
    });
  }

  /** The replica count the person chose for a plugin on a Ray engine (ENGINE.md, "On a Ray
   * cluster"; the plugin list's "Replicas"), or null: its config's. A value that is not a
   * whole number from 1 to MAX_REPLICAS (an edited workspace file) reads as null. */
  replicas(id) {
    const count = own(this.record.replicas ?? {}, id);
    return Number.isInteger(count) && count >= 1 && count <= MAX_REPLICAS ? count : null;
  }

  /** Keeps the person's replica count for a plugin; null forgets it (its config's again). */
  async setReplicas(id, count) {
    await this.#change(`the replicas of "${this.plugin(id)?.name ?? id}"`, (record) => {
      record.replicas ??= {};
      if (count === null) delete record.replicas[id];
      else setOwn(record.replicas, id, count);
    });
  }

  /** The engines this workspace connects to when it opens: their URLs, tokens included
   * (secrets: kept in IndexedDB, never in an exported file). */
  get engines() {
    return Array.isArray(this.record.engines) ? this.record.engines.filter((url) => typeof url === "string") : [];
  }

  async rememberEngine(url) {
    if (this.engines.includes(url)) return;
    await this.#change("the engines", (record) => {
      record.engines = [...(Array.isArray(record.engines) ? record.engines : []), url];
    });
  }

  async forgetEngine(url) {
    if (!this.engines.includes(url)) return;
    await this.#change("the engines", (record) => {
      record.engines = record.engines.filter((known) => known !== url);
    });
  }

  async saveWindows(windows) {
    await this.#change("the window layout", (record) => {
      record.windows = windows;
    });
  }

  // One change at a time, each on a copy of the record as the one before it left it: two
  // changes made at once (a camera answer while a window's layout is saved) would otherwise
  // both copy the same record, and the one stored last would undo the other.
  #changing = Promise.resolve();

  #change(what, mutate) {
    const change = this.#changing.then(async () => {
      const next = structuredClone(this.record);
      mutate(next);
      next.updated = Date.now();
      await this.#store.put(next, what);
      this.record = next;
      this.#onChange?.(this);
    });
    this.#changing = change.catch(() => {}); // a failed change (a full disk) keeps the record as it was
    return change;
  }
}

export class Workspaces {
  #store;
  #listeners = new Set();

  static async open(store, { initial } = {}) {
    const workspaces = new Workspaces(store);
    const name = initial ? checkName(initial) : (await store.getState("current")) ?? DEFAULT_WORKSPACE;
    await workspaces.switchTo(name);
    return workspaces;
  }

  constructor(store) {
    this.#store = store;
    this.current = null;
  }

  get store() {
    return this.#store;
  }

  /** Calls listener(workspace) after each change and switch. */
  subscribe(listener) {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #changed = (workspace) => {
    for (const listener of this.#listeners) listener(workspace);
  };

  names() {
    return this.#store.names();
  }

  /** Opens the workspace `name`, creating it (empty) if there is none by that name. */
  async switchTo(name) {
    name = checkName(name);
    let record = await this.#store.get(name);
    if (!record) {
      record = emptyRecord(name);
      await this.#store.put(record);
    } else if (upgrade(record)) {
      // Kept at once so ids stay the same; a full disk must not keep the workspace closed.
      await this.#store.put(record).catch((error) => console.warn(error.message));
    }
    // Which workspace was open last is a convenience: a full disk must not stop the app.
    await this.#store.setState("current", name).catch((error) => console.warn(error.message));
    this.current = new Workspace(record, this.#store, this.#changed);
    this.#changed(this.current);
    return this.current;
  }

  async rename(oldName, newName) {
    newName = checkName(newName);
    if (newName === oldName) return;
    if (await this.#store.get(newName)) throw new Error(`there is already a workspace named "${newName}"`);
    const record = await this.#store.get(oldName);
    if (!record) throw new Error(`no workspace named "${oldName}"`);
    record.name = newName;
    await this.#store.rename(record, oldName);
    if (this.current?.name === oldName) {
      this.current.record = record;
      await this.#store.setState("current", newName);
    }
    this.#changed(this.current);
  }

  /** Deletes a workspace; resolves to undo(), which puts it back as it was. */
  async remove(name) {
    const record = await this.#store.get(name);
    if (!record) throw new Error(`no workspace named "${name}"`);
    await this.#store.setState("trash", record); // kept until the next removal, for undo
    await this.#store.delete(name);
    if (this.current?.name === name) {
      const rest = await this.#store.names();
      await this.switchTo(rest[0] ?? DEFAULT_WORKSPACE);
    } else {
      this.#changed(this.current);
    }
    return async () => {
      await this.#store.put(record);
      await this.switchTo(record.name);
    };
  }

  /** The workspace as a file to keep or to open on another device. */
  async exportFile(name = this.current.name) {
    const { engines: _secret, ...record } = await this.#store.get(name); // engine URLs hold their tokens
    const data = { format: EXPORT_FORMAT, version: EXPORT_VERSION, exported: new Date().toISOString(), workspace: record };
    return new File([JSON.stringify(data, null, 1)], `${name}.pyjoy-workspace.json`, { type: "application/json" });
  }

  /** Opens a workspace file; a workspace of the same name gets a new name, never replaced. */
  async importFile(file) {
    let data;
    try {
      data = JSON.parse(await file.text());
    } catch (error) {
      throw new Error(`${file.name} is not a workspace file: ${error.message}`);
    }
    if (data?.format !== EXPORT_FORMAT || !data.workspace?.name || !Array.isArray(data.workspace.plugins)) {
      throw new Error(`${file.name} is not a PyJoy workspace file (expected "format": "${EXPORT_FORMAT}")`);
    }
    if (data.version > EXPORT_VERSION) throw new Error(`${file.name} is from a newer PyJoy (workspace format ${data.version}; this one reads ${EXPORT_VERSION})`);
    const record = { ...emptyRecord(checkName(data.workspace.name)), ...data.workspace };
    delete record.engines; // a file does not choose where this page connects (and runs code)
    upgrade(record);
    const taken = new Set(await this.#store.names());
    for (let n = 2; taken.has(record.name); n += 1) record.name = `${data.workspace.name} (${n})`;
    await this.#store.put(record);
    return this.switchTo(record.name);
  }
}
