// The build's memory snapshot (31 MB), kept in the page for a while after the console's
// Python booted from it, so that a sandbox's Python boots from a copy of it (plugins/sandbox.js,
// serveAssets) instead of the page fetching it again: before the service worker controls
// the page that means inflating it from the HTTP cache and hashing it, ~300 ms of a
// sandbox's ~700 (measured: bench/python_window.py). The console's worker verified these
// bytes against the build's integrity and hands them over once Python no longer needs
// them (python-worker.js, runtime.js). Kept KEEP_MS after their last use, then dropped:
// they cost the page 31 MB of memory.
//
//   keepSnapshot({url, integrity, bytes});  snapshotCopy(url, integrity) -> ArrayBuffer | null

const KEEP_MS = 120_000;

let kept = null; // {url, integrity, bytes: ArrayBuffer}
let timer = null;

function keepFor() {
  clearTimeout(timer);
  timer = setTimeout(() => (kept = null), KEEP_MS);
}

/** Keeps the snapshot's verified bytes (an ArrayBuffer) for sandboxes that boot soon. */
export function keepSnapshot({ url, integrity, bytes }) {
  if (!(bytes instanceof ArrayBuffer) || !url || !integrity) return;
  kept = { url, integrity, bytes };
  keepFor();
}

/**
 * A copy of the kept snapshot when url is its URL and integrity (if any) its hash, to
 * transfer to a sandbox; null otherwise (the caller fetches it).
 */
export function snapshotCopy(url, integrity = "") {
  if (!kept || kept.url !== url || (integrity && integrity !== kept.integrity)) return null;
  keepFor();
  return kept.bytes.slice(0);
}
