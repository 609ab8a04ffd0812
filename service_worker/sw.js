// PyJoy's service worker. It keeps one build's files in a cache named after the build,
// so a page never gets files of two builds, and keeps each Pyodide package once loaded.
// The build replaces the BUILD value below with this build's id and precache list.

const BUILD = /* pyjoy:build */ null;

importScripts(...BUILD.workbox);

const { PrecacheController, PrecacheRoute } = workbox.precaching;
const { registerRoute } = workbox.routing;
const { CacheFirst } = workbox.strategies;

const BUILD_CACHE_PREFIX = "pyjoy-build-";
const PACKAGES_CACHE = "pyjoy-packages";

let lastFailedURL = null;
const precache = new PrecacheController({
  cacheName: BUILD_CACHE_PREFIX + BUILD.id,
  plugins: [{ fetchDidFail: async ({ request }) => void (lastFailedURL = request.url) }],
});
precache.addToCacheList(BUILD.precache);

async function tellPages(message) {
  for (const page of await self.clients.matchAll({ includeUncontrolled: true })) page.postMessage(message);
}

self.addEventListener("install", (event) => {
  event.waitUntil(
    precache.install(event).catch(async (error) => {
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
});

// The shell's own URLs; query strings (?plugin=, ?w=) address the same page.
registerRoute(new PrecacheRoute(precache, { ignoreURLParametersMatching: [/.*/], directoryIndex: "index.html" }));

// Wheels are named by version and checked against the lock's sha256 when loaded, so a
// cached copy is never stale: keep each one that was fetched, from dist/ or the index.
registerRoute(({ url }) => url.pathname.endsWith(".whl"), new CacheFirst({ cacheName: PACKAGES_CACHE }));
