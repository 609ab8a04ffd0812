// The `api` a JavaScript plugin sees, in its sandbox (a window's frame or a worker).
// Plugin scripts run before the page's API has arrived, so every call waits for it;
// `api.export(obj)` is local and names what the plugin offers.
//
// A plugin that calls the host in a loop without awaiting would send calls faster than the
// page can answer them, and the page would fall behind for good. So at most MAX_IN_FLIGHT
// calls are on their way at once; later ones wait here, in order, until earlier ones are
// answered, and past MAX_WAITING waiting calls a call is refused at once (the same bound as
// Python plugins': pyjoy/plugin/api.py).

export const MAX_IN_FLIGHT = 128;
export const MAX_WAITING = 10_000;

export function createPluginApi(session) {
  let host = null;
  let exported = null;
  const hostReady = session.remoteRoot.then((root) => (host = root));
  let inFlight = 0;
  const waiting = []; // resolve functions of calls waiting for a slot, oldest first
  let firstWaiting = 0; // waiting[firstWaiting] is next (shift() on a long array is slow)

  async function callHost(name, args) {
    if (inFlight < MAX_IN_FLIGHT) inFlight += 1;
    else if (waiting.length - firstWaiting >= MAX_WAITING) {
      throw new Error(`api.${name}: ${MAX_WAITING} calls to PyJoy already wait for the page to answer earlier ones; await your calls (a loop of calls not awaited floods the page)`);
    } else await new Promise((resolve) => waiting.push(resolve)); // the slot is handed over
    try {
      const root = await hostReady;
      if (typeof root[name] !== "function") throw new TypeError(`the PyJoy API has no function ${name}`);
      return await root[name](...args);
    } finally {
      if (firstWaiting < waiting.length) {
        const next = waiting[firstWaiting];
        firstWaiting += 1;
        if (firstWaiting > MAX_WAITING) {
          waiting.splice(0, firstWaiting);
          firstWaiting = 0;
        }
        next();
      } else inFlight -= 1;
    }
  }

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
        return (...args) => callHost(name, args);
      },
    },
  );
  return { api, exported: () => exported };
}

// What load_plugin answers once a plugin's scripts ran: its export. A `passive` plugin
// need not export (ImJoy's docs runner marks code without `api.export(` passive, and such a
// plugin only runs its code): as imjoy-core (jailedPlugin.js _setupViaEngine) it gets an
// API with nothing but a setup that does nothing; one that exported anyway keeps its export.
export function exportOf(plugin, offered) {
  if (offered) return offered;
  if (plugin.config.passive) return { passive: true, setup: async () => {} };
  throw new Error(`plugin ${plugin.config.name} did not call api.export(...)`);
}
