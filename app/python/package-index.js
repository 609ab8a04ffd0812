// The Pyodide package index Python workers fetch packages from: the build's (build.py
// --package-index), or a mirror the person set in the workbench's "Package index…"
// (a site without internet points at its own). App-wide, in this page's localStorage: a
// mirror is usually site-wide, and plugins, in opaque-origin sandboxes, can neither read
// nor write the page's storage; nothing in the plugin API sets it (a plugin that could
// would choose the code every Python plugin runs: a supply-chain attack).
//
//   packageIndex(build)            // the index workers started now use (ends in "/")
//   setPackageIndex(build, url)    // checks url (http(s) only); throws an Error saying why
//   setPackageIndex(build, null)   // back to the build's
//
// The lock file stays the build's: a mirror must serve the same wheels, which Pyodide
// checks by sha256 (python/boot.js points the lock's index URLs at the mirror).

const KEY = "pyjoy:package-index";

function withSlash(url) {
  return url.endsWith("/") ? url : `${url}/`;
}

/** The build's own package index. */
export function buildIndex(build) {
  return withSlash(build.packageIndex);
}

/** url as a package index (ends in "/"), or an Error that says what is wrong with it. */
export function checkIndex(text) {
  const given = String(text ?? "").trim();
  let url;
  try {
    url = new URL(given);
  } catch {
    throw new Error(`"${given}" is not a URL: a package index is an http:// or https:// address, like https://mirror.example.org/pyodide/full/`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new Error(`${given}: a package index must be an http:// or https:// URL, not ${url.protocol}`);
  }
  if (url.search || url.hash) throw new Error(`${given}: a package index URL has no query or #fragment (wheels are named after it)`);
  if (url.username || url.password) throw new Error(`${given}: a package index URL must not hold a user name or password`);
  return withSlash(url.href);
}

/** The index Python workers started now fetch packages from. */
export function packageIndex(build) {
  let chosen = null;
  try {
    chosen = localStorage.getItem(KEY);
  } catch {
    // storage refused (a private window's policy): the build's
  }
  if (!chosen) return buildIndex(build);
  try {
    return checkIndex(chosen);
  } catch {
    return buildIndex(build); // a value not written by setPackageIndex
  }
}

/** Sets the index for workers started from now on (null: the build's); returns it. */
export function setPackageIndex(build, url) {
  if (url === null || url === undefined || String(url).trim() === "" || checkIndex(url) === buildIndex(build)) {
    localStorage.removeItem(KEY);
    return buildIndex(build);
  }
  const index = checkIndex(url);
  localStorage.setItem(KEY, index);
  return index;
}
