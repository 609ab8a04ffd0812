// One side of an RPC connection: calls, results, errors and the lifetimes of functions
// sent across (PROTOCOL.md, "Messages" and "Remote functions and their lifetimes").
// Mirrors pyjoy/rpc/session.py.
//
//   const session = new Session(new PostMessageTransport(worker));
//   await session.setRoot({ log: (text) => console.log(text) });   // our API, for the other side
//   const plugin = await session.remoteRoot;                        // theirs
//   await plugin.run({ image });                                    // a call: a promise of the result
//   session.dispose(plugin);                                        // optional: GC releases too
//   session.close("plugin unloaded");
//
// Functions we send stay in the store (id -> function, with how many times each was sent)
// until the other side releases them. Functions we receive become proxies, one per id
// while it lives, held weakly; when a proxy is garbage collected its id is released with
// the number of times we received it, so an id sent again meanwhile stays alive.

import { BUILTIN_RTYPES, RPCError, decode, decodeBounds, encode, encodeError } from "./codec.js";

// Defined in codec.js (decoding raises it too), as in Python; importable from here as before.
export { RPCError };

export class Session {
  #transport;
  #codecs = new Map(); // name -> Codec (codec.js)
  #decoding = { codecs: this.#codecs, proxy: (id, name) => this.#proxy(id, name) };

  // Functions we sent: id -> {fn, count (times sent, less what was released), pinned}.
  #store = new Map();
  #ids = new Map(); // function -> its id, so a function sent twice keeps one id
  #nextTarget = 0;

  // Functions we received: id -> {ref: WeakRef(proxy), record}; a record {id, count,
  // disposed} belongs to one proxy, and is what the registry hands back when that proxy dies.
  #proxies = new Map();
  #records = new WeakMap(); // proxy -> record
  #registry = new FinalizationRegistry((record) => this.#collected(record));
  #releases = null; // Map id -> count, waiting to go out as one release message

  #pending = new Map(); // call id -> {resolve, reject}
  #nextCall = 0;
  #outbox = Promise.resolve(); // messages leave in the order they were made
  #remoteRoot;
  #rootWaiter; // {resolve, reject} until the first root arrives, then null
  #closedReason = null;
  #whenClosed;
  #markClosed;

  /**
   * @param {{send(message: object, transfer: Transferable[]): (Promise<void> | undefined),
   *          onMessage: Function, close(): void}} transport  e.g. a PostMessageTransport
   *          (transport.js); a promise from send means "posted once it settles"
   * @param {{codecs?: import("./codec.js").Codec[]}} [options]
   */
  constructor(transport, { codecs = [] } = {}) {
    this.#transport = transport;
    for (const codec of codecs) this.registerCodec(codec);
    this.#remoteRoot = new Promise((resolve, reject) => { this.#rootWaiter = { resolve, reject }; });
    this.#remoteRoot.catch(() => {}); // a session closed before a root is not an unhandled error
    this.#whenClosed = new Promise((resolve) => { this.#markClosed = resolve; });
    transport.onMessage = (message, problem) => this.#receive(message, problem);
  }

  /** The other side's latest root (its API): waits for the first; a later root replaces it. */
  get remoteRoot() {
    return this.#remoteRoot;
  }

  /** Resolves with the reason once the session is closed, from either side. */
  get closed() {
    return this.#whenClosed;
  }

  /**
   * Sends our root (our API) to the other side. Its functions are pinned: they live as
   * long as the session. Resolves once the message is sent.
   */
  async setRoot(value) {
    await this.#post(async (job) => ({ type: "root", value: await encode(value, job) }), { pin: true });
  }

  /** The same as setRoot, by the name a plugin uses (`api.export`). */
  export(value) {
    return this.setRoot(value);
  }

  /** Adds a custom wire form: {name, type, encoder, decoder} (see codec.js). */
  registerCodec(codec) {
    if (!codec || typeof codec.name !== "string" || !codec.name) throw new TypeError("registerCodec needs {name, type, encoder, decoder} with a name");
    if (BUILTIN_RTYPES.has(codec.name)) throw new TypeError(`codec name ${codec.name} is a built-in _rtype; choose another name`);
    if (codec.encoder && typeof codec.type !== "function") throw new TypeError(`codec ${codec.name}: an encoder needs a type (a class) to match values`);
    this.#codecs.set(codec.name, codec);
  }

  /**
   * Releases received functions now instead of at garbage collection: a proxy, or every
   * proxy inside an object or array (a remote interface). Calling one afterwards fails.
   */
  dispose(value) {
    const seen = new Set();
    const visit = (item) => {
      if (item === null || (typeof item !== "object" && typeof item !== "function") || seen.has(item)) return;
      seen.add(item);
      const record = this.#records.get(item);
      if (record) {
        if (record.disposed) return;
        record.disposed = true;
        this.#registry.unregister(record);
        if (this.#proxies.get(record.id)?.record === record) this.#proxies.delete(record.id);
        this.#queueRelease(record.id, record.count);
      } else if (typeof item === "object" && !ArrayBuffer.isView(item) && !(item instanceof ArrayBuffer)) {
        for (const member of Object.values(item)) visit(member);
      }
    };
    visit(value);
    this.#flushReleases();
  }

  /** The spec's (and ImJoy's) name for dispose. */
  disposeObject(value) {
    this.dispose(value);
  }

  /**
   * Sizes for leak tests and diagnostics; reading them changes nothing.
   * @returns {{stored: number, pinned: number, proxies: number, pending: number}}
   *   stored: functions we sent that the other side still holds (roots included);
   *   pinned: those of them that are roots; proxies: remote ids with a proxy here (until its
   *   FinalizationRegistry callback has run); pending: our calls not yet answered.
   */
  stats() {
    let pinned = 0;
    for (const entry of this.#store.values()) if (entry.pinned) pinned++;
    return { stored: this.#store.size, pinned, proxies: this.#proxies.size, pending: this.#pending.size };
  }

  /** Tells the other side we are going away, fails our pending calls, empties the store. */
  close(reason = "closed") {
    if (this.#closedReason !== null) return;
    try {
      this.#transport.send({ type: "close", reason: String(reason) }, [])?.catch(() => {});
    } catch {
      // The channel is already gone: there is nobody left to tell.
    }
    this.#shutdown(String(reason));
  }

  // Sending ------------------------------------------------------------------------------

  // Builds a message (async: encoding may read blobs) and sends it after every message
  // built before it. Functions encoded are counted as sent while it is built, so a release
  // arriving meanwhile cannot drop them; if it is never sent, the counts are taken back.
  #post(build, { pin = false } = {}) {
    const job = { codecs: this.#codecs, transfer: new Set(), sent: [], method: (fn) => this.#keep(fn, job) };
    const built = this.#closedReason === null ? build(job) : Promise.reject(this.#closedError());
    built.catch(() => {}); // handled below, in order
    const sent = this.#outbox.then(() => built).then(async (message) => {
      if (this.#closedReason !== null) throw this.#closedError();
      const chunked = this.#transport.send(message, [...job.transfer]);
      if (chunked) await chunked; // big buffers going in pieces (transport.js)
      if (pin) for (const id of job.sent) this.#store.get(id).pinned = true;
    }).catch((error) => {
      for (const id of job.sent) this.#release(id, 1); // never sent: take the counts back
      throw error;
    });
    this.#outbox = sent.catch(() => {});
    return sent;
  }

  #keep(fn, job) {
    let id = this.#ids.get(fn);
    if (id === undefined) {
      id = String(++this.#nextTarget);
      this.#ids.set(fn, id);
      this.#store.set(id, { fn, count: 0, pinned: false });
    }
    this.#store.get(id).count++;
    job.sent.push(id);
    return id;
  }

  #release(id, count) {
    const entry = this.#store.get(id);
    if (!entry) return;
    entry.count -= count;
    if (entry.count <= 0 && !entry.pinned) {
      this.#store.delete(id);
      this.#ids.delete(entry.fn);
    }
  }

  // Calls a remote function: what a proxy does.
  #call(record, args) {
    if (this.#closedReason !== null) return Promise.reject(this.#closedError());
    if (record.disposed) return Promise.reject(new RPCError(`the remote function ${record.id} was disposed; it can no longer be called`));
    const id = String(++this.#nextCall);
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      // kwargs stay empty: a call into Python passes keywords as a last {_rkwargs: true} object.
      this.#post(async (job) => ({ type: "call", id, target: record.id, args: await encode(args, job), kwargs: {} }))
        .catch((error) => { if (this.#pending.delete(id)) reject(error); });
    });
  }

  #proxy(id, name) {
    const entry = this.#proxies.get(id);
    const live = entry?.ref.deref();
    if (live) {
      entry.record.count++;
      return live;
    }
    // A new record even if an older proxy for this id awaits collection: that one's count
    // is released on its own when its callback runs.
    const record = { id, count: 1, disposed: false };
    const proxy = { [name]: (...args) => this.#call(record, args) }[name]; // named like the remote function
    this.#proxies.set(id, { ref: new WeakRef(proxy), record });
    this.#records.set(proxy, record);
    this.#registry.register(proxy, record, record);
    return proxy;
  }

  #collected(record) {
    if (this.#proxies.get(record.id)?.record === record) this.#proxies.delete(record.id);
    if (!record.disposed) this.#queueRelease(record.id, record.count);
  }

  // Proxies tend to die together (one GC pass): their releases go as one message.
  #queueRelease(id, count) {
    if (this.#closedReason !== null) return;
    if (!this.#releases) {
      this.#releases = new Map();
      setTimeout(() => this.#flushReleases(), 0);
    }
    this.#releases.set(id, (this.#releases.get(id) ?? 0) + count);
  }

  #flushReleases() {
    const releases = this.#releases;
    this.#releases = null;
    if (!releases?.size || this.#closedReason !== null) return;
    this.#post(async () => ({ type: "release", targets: Object.fromEntries(releases) })).catch(() => {});
  }

  // Receiving ----------------------------------------------------------------------------

  // `problem`: the transport could not deliver the message whole (a buffer sent ahead of it
  // in pieces did not arrive, or it is too large): a call is answered with it, an answer
  // fails its call with it, as a malformed message would.
  #receive(message, problem) {
    if (this.#closedReason !== null) return;
    try {
      if (problem) throw problem;
      this.#dispatch(message);
    } catch (error) {
      // A malformed message or an unknown target: answer a call with the error, drop the
      // rest, and carry on either way.
      const { type, id } = message !== null && typeof message === "object" ? message : {};
      if (type === "call" && typeof id === "string") this.#answer(id, { error });
      else if ((type === "result" || type === "error") && this.#pending.has(id)) {
        this.#pending.get(id).reject(error);
        this.#pending.delete(id);
      } else console.warn("pyjoy rpc: ignored a message:", error.message, message);
    }
  }

  #dispatch(message) {
    if (message === null || typeof message !== "object") throw new RPCError(`malformed message: expected an object, got ${typeof message}`);
    switch (message.type) {
      case "call": return this.#onCall(message);
      case "result":
      case "error": return this.#onAnswer(message);
      case "release": return this.#onRelease(message);
      case "root": return this.#onRoot(message);
      case "close": return this.#shutdown(message.reason ? `the other side closed: ${message.reason}` : "the other side closed");
      default: throw new RPCError(`malformed message: unknown type ${JSON.stringify(message.type)}`);
    }
  }

  // A missing id, args or kwargs reads as null, [] and {} (as in session.py).
  #onCall({ id = null, target, args = [], kwargs = {} }) {
    if (id !== null && typeof id !== "string") throw new RPCError("malformed call: id must be a string or null");
    if (typeof target !== "string") throw new RPCError("malformed call: target must be a string");
    if (args !== null && !Array.isArray(args)) throw new RPCError("malformed call: args must be an array");
    if (kwargs !== null && (typeof kwargs !== "object" || Array.isArray(kwargs))) throw new RPCError("malformed call: kwargs must be an object");
    // Decoded before the target is looked up, so that the proxies in the arguments of a call
    // that fails are still counted, and released: the caller's functions do not leak.
    const bounds = decodeBounds();
    const decoded = decode(args ?? [], this.#decoding, bounds);
    // JS has no keyword arguments: they come as one last object marked the ImJoy way.
    if (kwargs && Object.keys(kwargs).length) decoded.push({ ...decode(kwargs, this.#decoding, bounds), _rkwargs: true });
    const entry = this.#store.get(target);
    if (!entry) throw new RPCError(`unknown target ${JSON.stringify(target)}: never sent, or already released`);
    this.#run(id, entry.fn, decoded);
  }

  async #run(id, fn, args) {
    let outcome;
    try {
      outcome = { value: await fn(...args) }; // sync or async functions alike
    } catch (error) {
      outcome = { error };
    }
    if (id === null) {
      if ("error" in outcome) console.warn("pyjoy rpc: a call without reply failed:", outcome.error);
      return;
    }
    this.#answer(id, outcome);
  }

  // Sends a call's result or error; a result that cannot be encoded becomes an error.
  #answer(id, outcome) {
    const reply = (job) => ("error" in outcome
      ? { type: "error", id, error: encodeError(outcome.error) }
      : encode(outcome.value, job).then((value) => ({ type: "result", id, value })));
    this.#post(async (job) => reply(job)).catch((error) => {
      if (this.#closedReason !== null || "error" in outcome) return;
      const failure = new TypeError(`could not send the result: ${error.message}`);
      this.#post(async () => ({ type: "error", id, error: encodeError(failure) })).catch(() => {});
    });
  }

  #onAnswer(message) {
    if (typeof message.id !== "string") throw new RPCError(`malformed ${message.type}: id must be a string`);
    const pending = this.#pending.get(message.id);
    this.#pending.delete(message.id);
    let outcome;
    try { // decoded even when nobody waits, so that the proxies in it are counted and released
      if (message.type === "result") outcome = { value: decode(message.value, this.#decoding) };
      else {
        const error = decode(message.error, this.#decoding);
        outcome = { error: error instanceof Error ? error : new RPCError("malformed error reply: 'error' should be an error value") };
      }
    } catch (error) {
      outcome = { error };
    }
    if (!pending) return; // an answer to a call we no longer wait for (closed, or not ours)
    if ("error" in outcome) pending.reject(outcome.error);
    else pending.resolve(outcome.value);
  }

  #onRelease({ targets }) {
    if (targets === null || typeof targets !== "object" || Array.isArray(targets)) throw new RPCError("malformed release: targets must be an object {id: count}");
    for (const [id, count] of Object.entries(targets)) {
      if (Number.isInteger(count) && count > 0) this.#release(id, count);
    }
  }

  #onRoot({ value }) {
    const root = decode(value, this.#decoding);
    this.#rootWaiter?.resolve(root);
    this.#rootWaiter = null;
    this.#remoteRoot = Promise.resolve(root);
  }

  #shutdown(reason) {
    if (this.#closedReason !== null) return;
    this.#closedReason = reason;
    const error = this.#closedError();
    for (const { reject } of this.#pending.values()) reject(error);
    this.#pending.clear();
    this.#rootWaiter?.reject(error);
    this.#rootWaiter = null;
    this.#store.clear();
    this.#ids.clear();
    this.#proxies.clear();
    this.#releases = null;
    try {
      this.#transport.close();
    } finally {
      this.#markClosed(reason);
    }
  }

  #closedError() {
    return new RPCError(`the RPC session is closed: ${this.#closedReason}`);
  }
}
