// Registers the service worker and offers "reload to update" when a new build is waiting.
// The new build's worker activates only when the person says so: a page never runs
// with assets from two builds.

export async function watchForUpdates({ onUpdateReady, onUpdateFailed }) {
  if (!("serviceWorker" in navigator)) return null;
  let updateAccepted = false;

  navigator.serviceWorker.addEventListener("controllerchange", () => {
    if (updateAccepted) location.reload();
  });
  navigator.serviceWorker.addEventListener("message", ({ data }) => {
    if (data?.type === "pyjoy:install-failed") onUpdateFailed(data.message);
  });

  const registration = await navigator.serviceWorker.register("sw.js", { updateViaCache: "none" });
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
