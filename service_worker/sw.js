// PyJoy's service worker. It keeps one build's files in a cache named after the build,
// so a page never gets files of two builds, and keeps each Pyodide package once loaded.
// The build replaces the BUILD value below with this build's id and precache list.
// While it caches the build it tells the pages how far it got, in bytes of the build's
// manifest, as each file is stored ({type: "pyjoy:caching", build, done, total, complete});
// a page may ask ({type: "pyjoy:caching?"}) and is answered the same way.

const BUILD = /* pyjoy:build */ null;

importScripts(...BUILD.workbox);

const { PrecacheController, PrecacheRoute } = workbox.precaching;
const { registerRoute } = workbox.routing;
const { CacheFirst } = workbox.strategies;

const BUILD_CACHE_PREFIX = "pyjoy-build-";
const PACKAGES_CACHE = "pyjoy-packages";

// Each file's size over the wire (its .gz copy's where it has one: site.py), by URL
// (Workbox's cache keys add a query).
const sizes = new Map(BUILD.precache.map(({ url, size }) => [new URL(url, self.location.href).href, size]));
const caching = { type: "pyjoy:caching", build: BUILD.id, done: 0, total: [...sizes.values()].reduce((a, b) => a + b, 0), complete: false };
let installing = false; // a precached file fetched again later (a lost entry) is not progress

let lastFailedURL = null;
const precache = new PrecacheController({
  cacheName: BUILD_CACHE_PREFIX + BUILD.id,
  plugins: [
    { fetchDidFail: async ({ request }) => void (lastFailedURL = request.url) },
    {
      // Called once a file is in the cache: real progress, not a timer.
      cacheDidUpdate: async ({ request }) => {
        if (!installing) return;
        const url = new URL(request.url);
        url.search = "";
        caching.done += sizes.get(url.href) ?? 0;
        await tellPages(caching);
      },
    },
  ],
});
precache.addToCacheList(BUILD.precache.map(({ size, ...entry }) => entry));

async function tellPages(message) {
  for (const page of await self.clients.matchAll({ includeUncontrolled: true })) page.postMessage(message);
}

self.addEventListener("install", (event) => {
  installing = true;
  event.waitUntil(
    precache.install(event).then(async () => {
      installing = false;
      caching.complete = true;
      await tellPages(caching);
    }, async (error) => {
      installing = false;
      await caches.delete(precache.strategy.cacheName); // what it holds is never used
      const file = lastFailedURL ? new URL(lastFailedURL).pathname : "a file";
      // A fetch that fails its integrity check rejects like a network error.
      await tellPages({
        type: "pyjoy:install-failed",
        build: BUILD.id,
        message: `${file} could not be downloaded intact (${error.message})`,
      });
      throw error;
    }),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      await precache.activate(event);
      for (const name of await caches.keys()) {
        if (name.startsWith(BUILD_CACHE_PREFIX) && name !== precache.strategy.cacheName) await caches.delete(name);
      }
      await self.clients.claim();
    })(),
  );
});

self.addEventListener("message", (event) => {
  if (event.data?.type === "skip-waiting") self.skipWaiting();
  // A page that opened while the build was being cached asks how far it got.
  if (event.data?.type === "pyjoy:caching?") event.source?.postMessage(caching);
});

// The shell's own URLs; query strings (?plugin=, ?w=) address the same page.
registerRoute(new PrecacheRoute(precache, { ignoreURLParametersMatching: [/.*/], directoryIndex: "index.html" }));

// Wheels are named by version and checked against the lock's sha256 when loaded, so a
// cached copy is never stale: keep each one that was fetched, from dist/ or the index.
registerRoute(({ url }) => url.pathname.endsWith(".whl"), new CacheFirst({ cacheName: PACKAGES_CACHE }));
