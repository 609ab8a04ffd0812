// The little of IndexedDB that PyScript's package cache uses (@webreflection/idb-map:
// open, one object store, get/getKey/getAllKeys/put/delete/clear/count), held in memory.
// A sandbox has an opaque origin, where the real one is a SecurityError; PyScript opens
// its cache while it boots even when told to keep nothing (python-window.js), and stops
// if that fails. Nothing here is kept past the frame, and nothing of the page's is reachable.
//
//   Object.defineProperty(globalThis, "indexedDB", { value: memoryIndexedDB(), configurable: true });

// A request whose onsuccess is called, as IndexedDB's are, after the caller has set it.
function request(result) {
  const pending = { result, onsuccess: null, onerror: null };
  setTimeout(() => pending.onsuccess?.({ target: pending, type: "success" }));
  return pending;
}

function objectStore(entries) {
  return {
    get: (key) => request(entries.get(key)),
    getKey: (key) => request(entries.has(key) ? key : undefined),
    getAllKeys: () => request([...entries.keys()]),
    count: () => request(entries.size),
    put: (value, key) => (entries.set(key, value), request(key)),
    delete: (key) => (entries.delete(key), request(undefined)),
    clear: () => (entries.clear(), request(undefined)),
  };
}

export function memoryIndexedDB() {
  const databases = new Map();
  return {
    open(name) {
      if (!databases.has(name)) databases.set(name, new Map());
      const stores = databases.get(name);
      const database = {
        get objectStoreNames() {
          return [...stores.keys()];
        },
        createObjectStore: (store) => stores.set(store, new Map()),
        transaction: (store) => ({ objectStore: () => objectStore(stores.get(store) ?? stores.set(store, new Map()).get(store)) }),
        close() {},
      };
      return request(database);
    },
  };
}
