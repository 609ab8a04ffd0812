// The workspaces a person has on this device, and the one open now. A workspace holds its
// installed plugins (each file's text, so it runs offline), their settings
// (api.getConfig/setConfig) and its window layout, saved with every change (store.js).
//
//   const workspaces = await Workspaces.open(store, { initial: "default" });
//   const ws = workspaces.current;
//   await ws.install({ text, url, meta });  ws.plugins;  await ws.uninstall(name);
//   ws.getConfig(plugin, key);  await ws.setConfig(plugin, key, value);
//   await workspaces.switchTo("other");  await workspaces.rename(old, new);
//   const undo = await workspaces.remove(name); await undo();
//   workspaces.exportFile(name) -> Blob;  await workspaces.importFile(file)
//
// Changes are made on a copy and kept only once stored, so a failed write (a full disk)
// leaves both the stored and the shown workspace as they were.

export const DEFAULT_WORKSPACE = "default";
const EXPORT_FORMAT = "pyjoy-workspace";
const EXPORT_VERSION = 1;

/** A workspace name people can read, type in a URL, and that stays one line. */
export function checkName(name) {
  const clean = String(name ?? "").trim();
  if (!clean) throw new Error("a workspace needs a name");
  if (clean.length > 80) throw new Error("a workspace name has at most 80 characters");
  if (/[\n\r\t]/.test(clean)) throw new Error("a workspace name is one line");
  return clean;
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

  /** Installed plugins: [{name, type, version, description, tags, icon, text, url, installed}]. */
  get plugins() {
    return this.record.plugins;
  }

  plugin(name) {
    return this.record.plugins.find((plugin) => plugin.name === name) ?? null;
  }

  /**
   * Installs (or updates, by name) a plugin whose file is `text`, with what the list
   * shows (`meta`: name, type, version, description, tags, icon, from its config).
   */
  async install({ text, url = null, meta }) {
    const entry = { ...meta, text, url, installed: Date.now() };
    await this.#change(`plugin "${meta.name}"`, (record) => {
      const index = record.plugins.findIndex((plugin) => plugin.name === meta.name);
      if (index >= 0) record.plugins[index] = entry;
      else record.plugins.push(entry);
    });
    return entry;
  }

  async uninstall(name) {
    await this.#change(`the removal of plugin "${name}"`, (record) => {
      record.plugins = record.plugins.filter((plugin) => plugin.name !== name);
      delete record.settings[name];
      record.windows = record.windows.filter((window) => window.plugin !== name);
    });
  }

  // Settings are text, as in ImJoy (setConfig("n", 1) then getConfig("n") is "1").
  getConfig(plugin, key) {
    const settings = this.record.settings[plugin] ?? {};
    return key === undefined || key === null ? { ...settings } : settings[key] ?? null;
  }

  async setConfig(plugin, entries) {
    await this.#change(`the settings of "${plugin}"`, (record) => {
      const settings = (record.settings[plugin] ??= {});
      for (const [key, value] of entries) settings[key] = typeof value === "object" && value !== null ? JSON.stringify(value) : String(value);
    });
  }

  /** The window layout: [{plugin, x, y, width, height, maximized}], in stacking order. */
  get windows() {
    return this.record.windows;
  }

  async saveWindows(windows) {
    await this.#change("the window layout", (record) => {
      record.windows = windows;
    });
  }

  async #change(what, mutate) {
    const next = structuredClone(this.record);
    mutate(next);
    next.updated = Date.now();
    await this.#store.put(next, what);
    this.record = next;
    this.#onChange?.(this);
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
    const record = await this.#store.get(name);
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
    const taken = new Set(await this.#store.names());
    for (let n = 2; taken.has(record.name); n += 1) record.name = `${data.workspace.name} (${n})`;
    await this.#store.put(record);
    return this.switchTo(record.name);
  }
}
