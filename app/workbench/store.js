// Workspaces on this device, in IndexedDB (through `idb`, a small promise wrapper).
// Each workspace is one record: its installed plugins (their files' text, so they run
// offline), their settings, and its window layout. A write is one transaction: when
// storage is full or denied, the transaction fails whole and what was stored stays as it
// was; the caller gets a StorageError saying so.
//
//   const store = await openStore();
//   await store.put(record); await store.get(name); await store.names();
//   await store.delete(name); await store.getState("current"); await store.setState("current", name);
import { openDB } from "idb";

const DB_NAME = "pyjoy";
const DB_VERSION = 1;

/** Storage failed (full, denied, or unavailable): nothing already stored was lost. */
export class StorageError extends Error {
  constructor(what, cause) {
    const full = cause?.name === "QuotaExceededError";
    super(full
      ? `Storage is full: could not save ${what}. Nothing already saved was lost; remove plugins or workspaces you no longer need, then try again.`
      : `Could not save ${what}: ${cause?.message ?? cause}. Nothing already saved was lost.`);
    this.name = "StorageError";
    this.code = "storage-error"; // errors.js's CODES.storage
    this.full = full;
    this.cause = cause;
  }
}

export async function openStore() {
  const db = await openDB(DB_NAME, DB_VERSION, {
    upgrade(database) {
      database.createObjectStore("workspaces", { keyPath: "name" });
      database.createObjectStore("state"); // small values by key: "current", "trash"
    },
  });
  // Ask once to be kept when the browser clears storage under pressure; a refusal only
  // means the browser may evict us, so it is noted, not fatal.
  const persisted = navigator.storage?.persist ? await navigator.storage.persist().catch(() => false) : false;
  return new Store(db, persisted);
}

/** A store kept in memory only: used when IndexedDB is unavailable (denied, or broken). */
export function memoryStore() {
  const workspaces = new Map();
  const state = new Map();
  return {
    persistent: false,
    persisted: false,
    get: async (name) => structuredClone(workspaces.get(name)),
    names: async () => [...workspaces.keys()].sort(),
    put: async (record) => void workspaces.set(record.name, structuredClone(record)),
    rename: async (record, oldName) => {
      workspaces.delete(oldName);
      workspaces.set(record.name, structuredClone(record));
    },
    delete: async (name) => void workspaces.delete(name),
    getState: async (key) => structuredClone(state.get(key)),
    setState: async (key, value) => void state.set(key, structuredClone(value)),
  };
}

class Store {
  persistent = true;

  constructor(db, persisted) {
    this.db = db;
    this.persisted = persisted;
  }

  get(name) {
    return this.db.get("workspaces", name);
  }

  async names() {
    return (await this.db.getAllKeys("workspaces")).sort();
  }

  async put(record, what = `workspace "${record.name}"`) {
    await this.#write(what, async (tx) => tx.objectStore("workspaces").put(record));
  }

  /** Renames in one transaction: the record under its new name, the old one gone. */
  async rename(record, oldName) {
    await this.#write(`workspace "${record.name}"`, async (tx) => {
      const workspaces = tx.objectStore("workspaces");
      await workspaces.put(record);
      await workspaces.delete(oldName);
    });
  }

  async delete(name) {
    await this.#write(`the removal of workspace "${name}"`, (tx) => tx.objectStore("workspaces").delete(name));
  }

  getState(key) {
    return this.db.get("state", key);
  }

  async setState(key, value) {
    await this.#write(key, (tx) => tx.objectStore("state").put(value, key));
  }

  async #write(what, work) {
    const tx = this.db.transaction(["workspaces", "state"], "readwrite");
    try {
      await Promise.all([work(tx), tx.done]);
    } catch (error) {
      try { tx.abort(); } catch { /* already over */ }
      throw new StorageError(what, error);
    }
  }
}
