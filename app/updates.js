// Registers the service worker and offers "reload to update" when a new build is waiting.
// The new build's worker activates only when the person says so: a page never runs
// with assets from two builds. Also says when the app works offline (offlineReadiness).

// Rejected when watchForUpdates cannot register the service worker: the app then never
// works offline, and offlineReadiness says so. (The failure itself is reported by main.js.)
let registrationFailed;
const registrationFailure = new Promise((_resolve, reject) => (registrationFailed = reject));
registrationFailure.catch(() => {});

export async function watchForUpdates({ onUpdateReady, onUpdateFailed }) {
  if (!("serviceWorker" in navigator)) return null;
  let updateAccepted = false;

  navigator.serviceWorker.addEventListener("controllerchange", () => {
    if (updateAccepted) location.reload();
  });
  navigator.serviceWorker.addEventListener("message", ({ data }) => {
    if (data?.type === "pyjoy:install-failed") onUpdateFailed(data.message);
  });

  let registration;
  try {
    registration = await navigator.serviceWorker.register("sw.js", { updateViaCache: "none" });
  } catch (error) {
    registrationFailed(error);
    throw error;
  }
  const offer = (worker) =>
    onUpdateReady(() => {
      updateAccepted = true;
      worker.postMessage({ type: "skip-waiting" });
    });

  if (registration.waiting && navigator.serviceWorker.controller) offer(registration.waiting);
  registration.addEventListener("updatefound", () => {
    const worker = registration.installing;
    worker?.addEventListener("statechange", () => {
      // Without a controller this is the first install: nothing to update from.
      if (worker.state === "installed" && navigator.serviceWorker.controller) offer(worker);
    });
  });

  const check = () => registration.update().catch(() => {}); // offline: try again later
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") check();
  });
  setInterval(check, 30 * 60 * 1000);
  return registration;
}

/**
 * Resolves once this app works offline: at once where a service worker already controls
 * the page (a worker activates only after its install cached the whole build), else once
 * the first install has cached it all and its worker is active. Rejects, naming the file,
 * if the build could not be cached. onProgress({done, total, complete, update}) follows
 * the bytes stored (the files' sizes in the build's manifest), as the service worker
 * stores each file, for the first install and for an update alike.
 */
export function offlineReadiness({ onProgress }) {
  if (!("serviceWorker" in navigator)) return Promise.reject(new Error("this browser has no service workers"));
  const container = navigator.serviceWorker;
  const controlled = Boolean(container.controller);
  return new Promise((resolve, reject) => {
    container.addEventListener("message", ({ data }) => {
      if (data?.type === "pyjoy:caching") onProgress({ done: data.done, total: data.total, complete: data.complete, update: Boolean(container.controller) });
      if (data?.type === "pyjoy:install-failed" && !container.controller) reject(new Error(data.message));
    });
    if (controlled) return resolve();
    registrationFailure.catch((error) => reject(new Error(`the service worker could not be registered: ${error.message}`)));
    // The registration happens later (main.js waits for Python): ready resolves then, or
    // at once where an earlier visit left an active worker (a reload that bypassed it).
    container.ready.then(({ active }) => {
      if (active.state === "activated") return resolve();
      active.addEventListener("statechange", () => {
        if (active.state === "activated") resolve();
      });
    });
    // A page opened while a worker was caching asks how far it got.
    container.getRegistration().then((registration) => registration?.installing?.postMessage({ type: "pyjoy:caching?" }));
  });
}
