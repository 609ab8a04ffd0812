// A web plugin's requirement, read as imjoy-rpc's loaders read it (loadRequirementsInWindow,
// loadRequirementsInWebworker): "css:" a stylesheet, "js:" a classic script, "mjs:" an ES
// module, "cache:" only cached; unprefixed, by the URL's ending (.css, .mjs, else a script).
// The config checks (plugins/config.js) already refused what a plugin's type cannot load.
//
//   requirementOf("mjs:https://x/y.js") -> { kind: "mjs", url: "https://x/y.js" }
//   await cacheRequirement(url)          // what "cache:" does here (below)
//   await loadInWorker(requirement, importScripts)  // in a plugin's worker (JS or Python)

export function requirementOf(requirement) {
  const prefixed = /^(js|mjs|css|cache):(.*)$/is.exec(requirement);
  if (prefixed) return { kind: prefixed[1].toLowerCase(), url: prefixed[2].trim() };
  const url = requirement.trim();
  const path = url.split(/[?#]/)[0];
  return { kind: /\.css$/i.test(path) ? "css" : /\.mjs$/i.test(path) ? "mjs" : "js", url };
}

// ImJoy put a "cache:" URL in its service worker's cache for offline use, without running
// it. A sandbox has an opaque origin and no service worker, so the closest honest thing is
// to fetch it once, not run it, and let the browser's HTTP cache keep what it keeps: a
// later fetch of it may be quicker, but it is not made available offline. A failure only
// warns: nothing depends on a cached file having been cached.
export async function cacheRequirement(url) {
  try {
    const response = await fetch(url);
    await response.arrayBuffer();
    if (!response.ok) console.warn(`cache: requirement ${url} answered ${response.status}`);
  } catch (error) {
    console.warn(`cache: requirement ${url} could not be fetched: ${error.message}`);
  }
}

// In a plugin's classic worker (js-worker.js, and python-worker.js, where Python reaches
// what a script defines through `js`): "js:" with importScripts, as imjoy-rpc's
// loadRequirementsInWebworker and ImJoy's web-python runtime did, "mjs:" with import(),
// which Chromium allows in classic workers too, "cache:" only cached. A worker has no page
// to style, so "css:" is refused here (the config check refuses it for web-worker plugins;
// the Python kernel skips it with a line saying so). importScripts is passed in: the
// Python worker hides its own from Pyodide's probe.
export async function loadInWorker(requirement, importScripts) {
  const { kind, url } = requirementOf(requirement);
  try {
    if (kind === "css") throw new Error("a worker has no page to style");
    if (kind === "cache") await cacheRequirement(url);
    else if (kind === "mjs") await import(url);
    else importScripts(url);
  } catch (error) {
    throw new Error(`requirement ${requirement} could not be loaded: ${error.message}`);
  }
}
