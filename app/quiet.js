// Waiting for a quiet page: no plugin loading for a while. Heavy work in the background (the
// service worker's first install: main.js; a spare Python's boot: plugins/host.js) waits for
// it, so that it never shares the cores with a plugin that is starting, nor with what that
// plugin does first (loading its model, its first runs). On 2 cores either one, started as
// a plugin loaded, made that plugin's first answer 0.16-0.45 s later (README, the vision
// and onnx_first benchmarks).
//
//   await whenQuiet({ subscribe, busy });
//
// subscribe(listener) -> unsubscribe: calls listener whenever a plugin's state changes;
// busy() -> whether a plugin is loading now (or a promise of it). Resolves once QUIET_MS
// have passed since the last change and nothing is loading then, or after MAX_WAIT_MS
// whatever happens (a plugin stuck loading never holds the work back for good).

const QUIET_MS = 2_000;
const MAX_WAIT_MS = 30_000;

export function whenQuiet({ subscribe, busy }) {
  return new Promise((resolve) => {
    let timer = null;
    let done = false;
    const cap = setTimeout(finish, MAX_WAIT_MS);
    const unsubscribe = subscribe(wait);
    function wait() {
      clearTimeout(timer);
      if (!done) timer = setTimeout(settle, QUIET_MS);
    }
    async function settle() {
      if (await busy()) wait();
      else finish();
    }
    function finish() {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(cap);
      unsubscribe();
      resolve();
    }
    wait();
  });
}
