// Files from PyJoy's own origin, for code in a sandbox. A sandbox has an opaque origin:
// it can neither read our storage nor be served by our service worker, so the page answers
// its requests for our files (plugins/sandbox.js, serveAssets) over a MessagePort, from
// the service worker's cache when offline. Wheels at the package index (packageIndex, from
// the worker's boot configuration: python/package-index.js) go through the page too, so
// they are cached for offline use like the build's; other origins are fetched directly.
//
// The messages: contract.js, "assets". The page checks integrity when a request names
// one (python/boot.js checks its own downloads where it has SubtleCrypto).
//
//   const fetchAsset = assetFetcher(port, hostOrigin, packageIndex);
//   await fetchAsset(url, {integrity})  // a Response, as fetch gives
//   await fetchAsset.bytes(url, {integrity})  // an ArrayBuffer (one of our files only)

export function assetFetcher(port, hostOrigin, packageIndex = null) {
  const pending = new Map();
  let nextId = 0;
  port.addEventListener("message", ({ data }) => {
    const request = pending.get(data?.id);
    if (!request) return;
    pending.delete(data.id);
    if (data.error) request.reject(new TypeError(`${request.url}: ${data.error}`));
    else request.resolve(data);
  });
  port.start();

  const ask = (url, integrity) =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { url, resolve, reject });
      port.postMessage({ id, url, integrity });
    });

  const realFetch = globalThis.fetch.bind(globalThis);
  async function fetchAsset(input, init = {}) {
    const url = new URL(input instanceof Request ? input.url : String(input), hostOrigin);
    const indexWheel = Boolean(packageIndex) && url.href.startsWith(packageIndex) && url.pathname.endsWith(".whl");
    if (url.origin !== hostOrigin && !indexWheel) return realFetch(input, init);
    // Pyodide asks for its packages with an integrity hash; the page keeps that check.
    const reply = await ask(url.href, init.integrity);
    return new Response(reply.body, {
      status: reply.status,
      statusText: reply.statusText,
      headers: { "Content-Type": reply.contentType },
    });
  }
  // One of our files as the ArrayBuffer the page sent, for python/boot.js: making a
  // Response of the 31 MB snapshot and reading it back costs far more (boot.js, download).
  fetchAsset.bytes = async (url, { integrity } = {}) => {
    const reply = await ask(new URL(url, hostOrigin).href, integrity);
    if (reply.status < 200 || reply.status > 299) throw new Error(`${url} answered ${reply.status} ${reply.statusText}`);
    return reply.body;
  };
  return fetchAsset;
}
