// Subresource-integrity hashes ("sha256-<base64>") checked with SubtleCrypto, after the
// bytes are in: by the page for what it serves a sandbox (plugins/sandbox.js) and by
// python/boot.js where it has SubtleCrypto. fetch()'s own integrity option is not used:
// on the 31 MB snapshot it cost ~200 ms more than reading the body and hashing it
// (Chromium 156, measured for bench/python_window.py).

/** The "sha256-<base64>" of bytes (an ArrayBuffer or a view). */
export async function sri(bytes) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return `sha256-${btoa(String.fromCharCode(...digest))}`;
}

/** Throws an Error naming `what` unless bytes match integrity ("sha256-<base64>", one hash). */
export async function checkIntegrity(bytes, integrity, what) {
  if (!/^sha256-[A-Za-z0-9+/]{43}=$/.test(integrity)) throw new Error(`${what}: its integrity should be one "sha256-<base64>" hash, not ${JSON.stringify(integrity).slice(0, 80)}`);
  if ((await sri(bytes)) !== integrity) throw new Error(`${what} is damaged: its sha256 does not match the build's`);
}
