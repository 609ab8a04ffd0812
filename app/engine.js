// The page's engines: connections to `pyjoy engine` processes (pyjoy/engine/ENGINE.md), each
// one WebSocket carrying the engine's own channel and a channel per plugin it runs.
//
//   const engines = new Engines({ onNotice: (engine, text) => ... });
//   const engine = await engines.connect("ws://127.0.0.1:9527/?token=...");  // rejects: wrong token, unreachable
//   engines.list();             // [{url (no token), state, reason, info}]
//   engines.connected();        // the first connected Engine, or null
//   engines.onChange(() => ...);
//   engines.onReconnect((engine) => ...);  // connected afresh after a drop: its plugins are to start again
//   engines.onResume((engine) => ...);     // a dropped connection resumed: its plugins ran on
//   const started = await engine.startPlugin(text, { tag, onProgress, onOutput });
//   // started: a sandbox for plugins/host.js: {session, kernel, onCrash, terminate, onOutput}
//   const models = await engine.startModels({ onOutput });  // the model service's, likewise
//   engines.remove(url);        // disconnects it, and it reconnects no more
//
// States: "connecting" (the first try), "connected", "reconnecting" (it was connected and
// the connection dropped: tried again with backoff, and once back, `onReconnect` listeners
// run, so the host starts again the plugins that ran there), "refused" (close code 4401:
// the token is wrong; not tried again) and "unreachable" (no WebSocket handshake: a browser
// cannot tell an engine that is not there from one that refused this page's Origin; tried
// again with backoff). `reason` says why, in words.
//
// A connection that drops is resumed first (ENGINE.md, "A page that drops"): within the
// engine's grace period the page reconnects with its resume key and each side sends what
// the other missed, so the plugins run on, their calls in flight complete, and no
// `onReconnect` listener runs. Refused (the period passed, what was missed is no longer
// kept, the engine restarted), the plugins' sessions end and the page connects afresh, as above.
//
// A plugin's channel moves to a direct socket once the plugin runs (ENGINE.md, "The direct
// socket"): a second WebSocket, `/plugin?token=&plugin=&ticket=`, with a one-time ticket the
// engine's direct(id) hands this connection, which the engine passes to the plugin's process.
// Until the process's hello comes on it the channel is not used; a socket that closes before
// (a plugin that cannot take it) leaves the channel on the main socket (the relay). One that
// drops later is re-opened with a new ticket and `received=`, and each side sends what the
// other missed, as a main socket's resume does.
import { ChannelSocket, SplitChannel } from "./rpc/websocket.js";
import { Session } from "./rpc/session.js";

const CLOSE_WRONG_TOKEN = 4401;
const CLOSE_RESUME_REFUSED = 4410;
/** Waits between tries to reconnect, then the last one again and again. */
const BACKOFF_MS = [250, 500, 1000, 2000, 4000, 8000, 15000];
/** How long before its connection drops a stopping engine may end its plugins. */
const STOPPING_MS = 5000;
export const UNREACHABLE = "refused (is this page's origin allowed? see pyjoy engine --allow-origin) or unreachable";

/** A map's items go in groups of at most this many bytes of arrays, this many groups at a time (ENGINE.md, map). */
export const MAP_GROUP_BYTES = 15 * 2 ** 20;
export const MAP_GROUPS_IN_FLIGHT = 2;
/** The most bytes of arrays one message to the engine's own channel holds (pyjoy/engine/wire.py). */
export const MAX_ENGINE_MESSAGE_BYTES = 16 * 2 ** 20;

/** The bytes of arrays (ArrayBuffers, typed arrays, ndarrays) a value sends as buffers. */
function bufferBytes(value) {
  if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) return value.byteLength;
  if (Array.isArray(value)) return value.reduce((sum, each) => sum + bufferBytes(each), 0);
  if (value && typeof value === "object") return Object.values(value).reduce((sum, each) => sum + bufferBytes(each), 0);
  return 0;
}

/**
 * [[start, end]] of consecutive items, as few groups as hold at most `limit` bytes of arrays
 * each (an item bigger than that alone), of about equal bytes, as pyjoy/engine/client.py's
 * map_groups; throws naming an item over the engine's bound.
 */
export function mapGroups(items, limit = MAP_GROUP_BYTES) {
  const sizes = items.map(bufferBytes);
  sizes.forEach((bytes, index) => {
    if (bytes > MAX_ENGINE_MESSAGE_BYTES) {
      throw new RangeError(`map: item ${index} holds ${bytes} bytes of arrays, over the ${MAX_ENGINE_MESSAGE_BYTES} the engine takes in one message: split it, or pass where to read it (a file on the engine)`);
    }
  });
  const total = sizes.reduce((a, b) => a + b, 0);
  if (total <= limit) return [[0, items.length]];
  const target = total / Math.ceil(total / limit); // the total over as few groups as can hold it
  const groups = [];
  let start = 0;
  let size = 0;
  sizes.forEach((bytes, index) => {
    if (index > start && (size + bytes > limit || size >= target)) {
      groups.push([start, index]);
      start = index;
      size = 0;
    }
    size += bytes;
  });
  groups.push([start, items.length]);
  return groups;
}

/** An engine could not be reached or refused the page: the message says which. */
export class EngineError extends Error {
  constructor(message, { code = "engine-unreachable" } = {}) {
    super(message);
    this.name = "EngineError";
    this.code = code; // "engine-refused" (a wrong token), "engine-unreachable", "engine-url"
  }
}

/** The URL without its token: what the page shows and what plugins are told (api.ENGINE_URL). */
export function engineLabel(url) {
  const parsed = new URL(url);
  parsed.search = "";
  parsed.hash = "";
  return parsed.href;
}

function checkURL(url) {
  let parsed;
  try {
    parsed = new URL(String(url).trim());
  } catch {
    throw new EngineError(`not an engine URL: ${JSON.stringify(String(url).slice(0, 200))}; pyjoy engine prints one (ws://HOST:PORT/?token=...)`, { code: "engine-url" });
  }
  if (!["ws:", "wss:"].includes(parsed.protocol)) {
    throw new EngineError(`an engine URL starts with ws:// or wss://, not ${parsed.protocol}//; pyjoy engine prints one (ws://HOST:PORT/?token=...)`, { code: "engine-url" });
  }
  return parsed.href;
}

export class Engine {
  state = "connecting";
  reason = null;
  droppedAt = null; // when the connection last dropped (Date.now())
  info = null; // the engine's info(): {engine, python, platform}
  api = null; // the engine channel's root: start, stop, list, info
  #socket = null;
  #attempt = 0;
  #timer = null;
  #removed = false;
  #wasConnected = false;
  #firstTry; // settles with the first try's outcome
  #settleFirst;
  #listeners;

  constructor(url, listeners) {
    this.url = url;
    this.label = engineLabel(url);
    this.#listeners = listeners;
    this.#firstTry = new Promise((resolve, reject) => { this.#settleFirst = { resolve, reject }; });
    this.#firstTry.catch(() => {});
    this.#open();
  }

  /** Resolves once connected the first time; rejects with an EngineError if that try failed. */
  get ready() {
    return this.#firstTry;
  }

  describe() {
    return { url: this.label, state: this.state, reason: this.reason, info: this.info };
  }

  #set(state, reason = null) {
    this.state = state;
    this.reason = reason;
    this.#listeners.changed(this);
  }

  #open() {
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (error) { // a URL the browser will not open (ws:// from an https page, far away)
      this.#set("refused", `the browser will not open it: ${error.message}`);
      this.#settleFirst.reject(new EngineError(`engine ${this.label}: ${this.reason}`, { code: "engine-refused" }));
      return;
    }
    let opened = false;
    const socket = new ChannelSocket(ws, {
      onNotice: (text) => this.#listeners.notice(this, text),
      onClose: (event, resumable) => this.#closed(socket, event, opened, resumable),
    });
    this.#socket = socket;
    ws.addEventListener("open", () => { opened = true; });
    const session = new Session(socket.channel("engine"));
    session.remoteRoot.then(async (api) => {
      if (this.#socket !== socket) return;
      this.api = api;
      this.info = await api.info().catch(() => null);
      if (this.#socket !== socket) return;
      this.#attempt = 0;
      const again = this.#wasConnected;
      this.#wasConnected = true;
      this.#set("connected");
      this.#settleFirst.resolve(this);
      if (again) this.#listeners.reconnected(this);
    }, () => {});
  }

  #closed(socket, event, opened, resumable) {
    if (this.#socket !== socket) return;
    if (resumable && !this.#removed) {
      this.#set("reconnecting", `the connection closed (code ${event.code}): resuming it`);
      const graceEnds = Date.now() + socket.grace * 1000;
      this.#attempt = 0;
      this.#timer = setTimeout(() => this.#resume(socket, graceEnds), BACKOFF_MS[0]);
      return;
    }
    this.api = null;
    if (this.#removed) return;
    if (this.state === "connected" || this.state === "reconnecting") this.droppedAt = Date.now();
    let error;
    if (event.code === CLOSE_WRONG_TOKEN) {
      this.#set("refused", "refused: wrong token");
      error = new EngineError(`engine ${this.label} refused the connection: wrong token (the URL's token must be the one pyjoy engine printed at its start)`, { code: "engine-refused" });
    } else {
      const why = opened ? `the connection closed (code ${event.code}${event.reason ? `: ${event.reason}` : ""})` : UNREACHABLE;
      this.#set(this.#wasConnected ? "reconnecting" : "unreachable", why);
      error = new EngineError(`engine ${this.label}: ${why}`);
    }
    this.#settleFirst.reject(error);
    if (this.state === "refused") return;
    const wait = BACKOFF_MS[Math.min(this.#attempt, BACKOFF_MS.length - 1)];
    this.#attempt += 1;
    this.#timer = setTimeout(() => this.#open(), wait);
  }

  // One try to resume `socket`'s connection on a new WebSocket; tried again until graceEnds.
  #resume(socket, graceEnds) {
    if (this.#socket !== socket || this.#removed) return;
    const url = `${this.url}${this.url.includes("?") ? "&" : "?"}resume=${encodeURIComponent(socket.resumeKey)}&received=${socket.received}`;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (error) {
      this.#giveUp(socket, `could not resume: ${error.message}`);
      return;
    }
    ws.binaryType = "arraybuffer";
    let answered = false;
    ws.addEventListener("message", ({ data }) => { // the first frame: the engine's hello
      if (answered) return;
      answered = true;
      if (this.#socket !== socket || this.#removed) {
        ws.close(1000, "the page disconnected");
        return;
      }
      let hello = null;
      try {
        hello = JSON.parse(data).hello;
      } catch { /* not a hello */ }
      const problem = Number.isSafeInteger(hello?.received) ? socket.resume(ws, hello.received) : "the engine did not answer with its hello";
      if (problem) {
        ws.close(1000, "could not resume");
        this.#giveUp(socket, `could not resume: ${problem}`);
        return;
      }
      this.#attempt = 0;
      this.#set("connected");
      this.#listeners.resumed(this);
    });
    ws.addEventListener("close", (event) => {
      if (answered) return;
      answered = true;
      if (event.code === CLOSE_RESUME_REFUSED || event.code === CLOSE_WRONG_TOKEN || Date.now() >= graceEnds) {
        this.#giveUp(socket, event.code === CLOSE_RESUME_REFUSED ? event.reason : `not resumed within the grace period (${socket.grace} s)`);
        return;
      }
      const wait = BACKOFF_MS[Math.min(this.#attempt, BACKOFF_MS.length - 1)];
      this.#attempt += 1;
      this.#timer = setTimeout(() => this.#resume(socket, graceEnds), Math.min(wait, Math.max(0, graceEnds - Date.now())));
    });
  }

  // The resume failed: the plugins' sessions end (the host starts them again once connected
  // afresh, as after any drop).
  #giveUp(socket, why) {
    if (this.#socket !== socket) return;
    this.api = null;
    this.droppedAt = Date.now();
    this.#set("reconnecting", why);
    socket.fail(`the engine's connection dropped and was not resumed: ${why}`);
    this.#attempt = 0;
    this.#open();
  }

  /**
   * Whether a plugin that ended at `time` ended with this engine's connection: at the drop,
   * or while the engine stopped (it ends its plugins first: SIGTERM, SIGKILL after 3 s).
   */
  endedWithConnection(time) {
    return this.droppedAt !== null && time !== null && time <= this.droppedAt + 1000 && time >= this.droppedAt - STOPPING_MS;
  }

  /** Disconnects, and reconnects no more. */
  close() {
    this.#removed = true;
    clearTimeout(this.#timer);
    this.#socket?.close(1000, "the page disconnected");
    this.#set("disconnected");
  }

  /**
   * The engine's file service (ENGINE.md, "Files"): op (url, upload_url, path, list,
   * remove) with ImJoy's args; pluginId: the asking native-python plugin's id on this
   * engine (its relative paths are its folder's), else null. URLs come back as paths.
   */
  async files(op, args, pluginId = null) {
    if (this.state !== "connected" || !this.api) throw new EngineError(`engine ${this.label} is ${this.state}${this.reason ? ` (${this.reason})` : ""}`);
    return this.api.files(op, args, pluginId);
  }

  /** A path on this engine's HTTP server (its files' URLs) as a URL the browser can fetch. */
  httpUrl(path) {
    return new URL(path, this.url.replace(/^ws/, "http")).href;
  }

  /**
   * Starts a native-python plugin here (ENGINE.md, "A plugin's channel"): resolves to what
   * plugins/host.js runs a plugin in, once its process is up; its kernel's load_plugin()
   * runs the plugin. onProgress({stage, message}): install progress; onOutput({type, text}):
   * its stdout and stderr lines. replicas: its count of Ray actors in place of its config's
   * (a --ray engine only; ENGINE.md, "On a Ray cluster").
   */
  async startPlugin(text, { tag = null, replicas = null, onProgress = () => {}, onOutput = () => {} } = {}) {
    const count = replicas === null ? {} : { replicas };
    return this.#launch(onOutput, (api, callbacks) => api.start(text, { tag, ...count, progress: (event) => onProgress(event ?? {}), ...callbacks, _rkwargs: true }));
  }

  /**
   * This connection's model service (ENGINE.md, "The model service"), started as a plugin
   * is and resolving to the same kind of sandbox; plugins/host.js loads its channel once per
   * connection (engine.models() answers the running one, whose channel is open already).
   */
  async startModels({ onOutput = () => {} } = {}) {
    return this.#launch(onOutput, (api, callbacks) => api.models({ ...callbacks, _rkwargs: true }));
  }

  // start(call): the engine's answer {id, ...} to call(api, {output, exited}); then its channel.
  async #launch(onOutput, start) {
    const api = this.api;
    const socket = this.#socket;
    if (this.state !== "connected" || !api) throw new EngineError(`engine ${this.label} is ${this.state}${this.reason ? ` (${this.reason})` : ""}`);
    const sandbox = new EngineSandbox(this);
    sandbox.onOutput = onOutput;
    const info = await start(api, {
      output: (line) => sandbox.onOutput({ type: line?.stream === "stderr" ? "stderr" : "stdout", text: String(line?.text ?? "") }),
      exited: (event) => sandbox.crash(String(event?.reason ?? "its process exited")),
    });
    const direct = await this.#openDirect(info.id, null).catch(() => null);
    const channel = direct ? new SplitChannel(direct.channel("plugin"), socket.channel(info.id)) : socket.channel(info.id);
    sandbox.direct = direct;
    sandbox.attach(info, new Session(channel));
    return sandbox;
  }

  // The plugin's direct socket, once its process said hello on it; null where it cannot be
  // had (the channel then stays on the relay). `socket`: the one to resume (after a drop).
  async #openDirect(id, socket) {
    const api = this.api;
    if (!api) return null;
    const { ticket, path } = await api.direct(id);
    const url = new URL(this.url);
    url.pathname = path;
    url.searchParams.set("plugin", id);
    url.searchParams.set("ticket", ticket);
    if (socket) url.searchParams.set("received", String(socket.received));
    const ws = new WebSocket(url.href);
    ws.binaryType = "arraybuffer";
    return new Promise((resolve) => {
      let answered = false;
      const answer = (value) => {
        if (answered) return;
        answered = true;
        resolve(value);
      };
      // No time limit: a process that has not said hello is not ready for its root either
      // (and giving up while its hello travels would leave the two sides on different paths).
      if (socket) {
        ws.addEventListener("message", ({ data }) => {
          if (answered) return;
          let hello = null;
          try {
            hello = JSON.parse(data).hello;
          } catch { /* not a hello */ }
          const problem = Number.isSafeInteger(hello?.received) ? socket.resume(ws, hello.received) : "the plugin did not answer with its hello";
          if (problem) ws.close(1000, "could not resume");
          answer(problem ? null : socket);
        });
        ws.addEventListener("close", () => answer(null));
        return;
      }
      const direct = new ChannelSocket(ws, {
        endsChannels: false,
        only: "plugin",
        onNotice: (text) => this.#listeners.notice(this, text),
        onHello: () => answer(direct),
        onClose: (event, resumable) => {
          if (!answered) answer(null);
          else if (resumable) this.#reopenDirect(id, direct, Date.now() + Math.max(direct.grace, 1) * 1000);
        },
      });
    });
  }

  // A direct socket dropped: opened again (a new ticket, and what each side missed) until the
  // grace period ends; the main socket may be down too (it resumes first). Given up, the
  // plugin's channel fails.
  async #reopenDirect(id, socket, until) {
    const main = this.#socket;
    for (let attempt = 0; Date.now() < until && !this.#removed && this.#socket === main; attempt += 1) {
      if (this.state === "connected" && this.api) {
        try {
          if (await this.#openDirect(id, socket)) return;
        } catch { /* the plugin is gone, or the engine refused: tried again until the period ends */ }
      }
      await new Promise((resolve) => setTimeout(resolve, BACKOFF_MS[Math.min(attempt, 3)]));
    }
    socket.fail(`the plugin's direct socket dropped and could not be opened again`);
  }
}

/** A plugin running on an engine, with the shape of plugins/sandbox.js's Sandbox. */
class EngineSandbox {
  session = null;
  kernel = null;
  info = null;
  direct = null; // the plugin's direct socket (a ChannelSocket), or null: its channel is on the relay
  state = "starting";
  crashedAt = null;
  onOutput = () => {};
  #onCrash = new Set();

  constructor(engine) {
    this.engine = engine;
  }

  attach(info, session) {
    this.info = info;
    this.session = session;
    // The process's root comes once the page's has (ENGINE.md): load_plugin waits for it.
    this.kernel = { load_plugin: async () => (await session.remoteRoot).load_plugin() };
    this.state = "running";
    // The session closes when the process exits (the engine's `close`, naming the plugin and
    // its status) or the connection drops: the plugin is then over.
    session.closed.then((reason) => this.crash(reason.replace(/^the other side closed: /, "")));
  }

  crash(message) {
    if (this.state === "crashed" || this.state === "terminated") return;
    this.state = "crashed";
    this.crashedAt = Date.now();
    this.session?.close(message);
    this.direct?.close(1000, "the plugin ended");
    for (const listener of this.#onCrash) listener(message);
  }

  onCrash(listener) {
    this.#onCrash.add(listener);
  }

  terminate(reason = "terminated") {
    if (this.state === "crashed" || this.state === "terminated") return;
    this.state = "terminated";
    this.session?.close(reason);
    this.direct?.close(1000, reason.slice(0, 100));
    if (this.info && this.engine.api) this.engine.api.stop(this.info.id).catch(() => {});
  }
}

export class Engines {
  #engines = new Map(); // url -> Engine
  #changeListeners = new Set();
  #reconnectListeners = new Set();
  #resumeListeners = new Set();
  #onNotice;

  constructor({ onNotice = () => {} } = {}) {
    this.#onNotice = onNotice;
  }

  #hooks = {
    changed: () => { for (const listener of this.#changeListeners) listener(); },
    notice: (engine, text) => this.#onNotice(engine, text),
    reconnected: (engine) => { for (const listener of this.#reconnectListeners) listener(engine); },
    resumed: (engine) => { for (const listener of this.#resumeListeners) listener(engine); },
  };

  /**
   * Connects to an engine (or the one already known by that URL); resolves once connected.
   * Rejects with an EngineError on a wrong token or an unreachable engine, which is then
   * forgotten unless `keep` (a remembered engine: tried again with backoff).
   */
  async connect(url, { keep = false } = {}) {
    url = checkURL(url);
    let engine = this.#engines.get(url);
    if (!engine) {
      engine = new Engine(url, this.#hooks);
      this.#engines.set(url, engine);
      this.#hooks.changed();
    }
    try {
      return await engine.ready;
    } catch (error) {
      if (!keep && engine.state !== "connected") this.remove(url);
      throw error;
    }
  }

  /** Disconnects an engine (by its URL, with or without its token) and forgets it. */
  remove(url) {
    for (const [key, engine] of this.#engines) {
      if (key === url || engine.label === url) {
        this.#engines.delete(key);
        engine.close();
        this.#hooks.changed();
        return true;
      }
    }
    return false;
  }

  /** The Engine objects, in the order they were added. */
  all() {
    return [...this.#engines.values()];
  }

  /** [{url (without its token), state, reason, info}]. */
  list() {
    return this.all().map((engine) => engine.describe());
  }

  /** The engine known by this URL (with or without its token), or null. */
  find(url) {
    // ImJoy's file_manager URLs name an engine by its http:// address: the same host and port.
    const host = (text) => { try { return new URL(text).host; } catch { return null; } };
    return this.all().find((engine) => engine.url === url || engine.label === url)
      ?? this.all().find((engine) => /^(http|ws)s?:/.test(url) && host(url) === host(engine.url)) ?? null;
  }

  /** The first connected engine, or null. */
  connected() {
    return this.all().find((engine) => engine.state === "connected") ?? null;
  }

  onChange(listener) {
    this.#changeListeners.add(listener);
    return () => this.#changeListeners.delete(listener);
  }

  /** listener(engine) after a connection that dropped was resumed (its plugins ran on). */
  onResume(listener) {
    this.#resumeListeners.add(listener);
    return () => this.#resumeListeners.delete(listener);
  }

  /** listener(engine) after an engine that dropped is connected again afresh. */
  onReconnect(listener) {
    this.#reconnectListeners.add(listener);
    return () => this.#reconnectListeners.delete(listener);
  }
}
