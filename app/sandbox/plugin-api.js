// The `api` a JavaScript plugin sees, in its sandbox (a window's frame or a worker).
// Plugin scripts run before the page's API has arrived, so every call waits for it;
// `api.export(obj)` is local and names what the plugin offers.

export function createPluginApi(session) {
  let host = null;
  let exported = null;
  const hostReady = session.remoteRoot.then((root) => (host = root));
  const api = new Proxy(
    {},
    {
      get(_target, name) {
        if (name === "export") return (value) => void (exported = value);
        // These act on the plugin's own side of the connection.
        if (name === "registerCodec") return (codec) => session.registerCodec(codec);
        if (name === "disposeObject") return (value) => session.dispose(value);
        if (typeof name !== "string" || name === "then") return undefined; // not a thenable
        if (host && name in host && typeof host[name] !== "function") return host[name];
        return async (...args) => {
          const root = await hostReady;
          if (typeof root[name] !== "function") throw new TypeError(`the PyJoy API has no function ${name}`);
          return root[name](...args);
        };
      },
    },
  );
  return { api, exported: () => exported };
}
