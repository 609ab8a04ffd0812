// Files from PyJoy's own origin, for code in a sandbox. A sandbox has an opaque origin:
// it can neither read our storage nor be served by our service worker, so the page answers
// its requests for our files (plugins/sandbox.js, serveAssets) over a MessagePort, from
// the service worker's cache when offline. Wheels at the package index (packageIndex, from
// the worker's boot configuration: python/package-index.js) go through the page too, so
// they are cached for offline use like the build's; other origins are fetched directly.
//
// The messages: contract.js, "assets". The page checks integrity: a sandbox is not a
// secure context and has no SubtleCrypto.

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
  return async function fetchAsset(input, init = {}) {
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
  };
}
