// Moves RPC messages over postMessage: a MessagePort, a Worker, or a worker's own global
// scope (`self` inside the worker). The session never sees how messages travel; the
// transport never looks inside them (PROTOCOL.md, "Transport").
//
//   const transport = new PostMessageTransport(worker);   // or a port, or self
//   transport.onMessage = (message, problem) => { ... };  // each RPC message received (problem: an
//                                                         // RPCError when it arrived broken)
//   transport.send(message, [buffer, ...]);               // buffers are moved, not copied
//   transport.close();
//
// Why an envelope: a Worker's channel is shared. python-worker.js posts its own boot and
// runPython messages there ({type: "result", id, value} among them), which look exactly
// like RPC messages. So every RPC message travels as {_pyjoy_rpc: message}, and anything
// else on the channel (event.data without that key) is left alone for its own listeners.
//
// Messages that arrive before `onMessage` is set are kept and handed over when it is, so a
// worker can open its transport first thing and build its session later (after Python
// has booted) without losing the host's first messages.
//
// Why chunks (option `chunkBytes`, for ports to a sandboxed frame): Chromium runs such a
// frame in another process, so a "transferred" buffer is copied there, synchronously, in
// one piece: a 64 MB message stalled the page for 150 to 800 ms. Buffers over
// `chunkBytes` go ahead in pieces instead, one task each, and the message follows with a
// placeholder where each buffer was; the receiver reassembles them (PROTOCOL.md,
// "Chunks"). Workers in the page's process need none of this: transfer moves them free.
//
// Receiving pieces is bounded, since a sender may be hostile or broken: a buffer claims at
// most MAX_CHUNKED_BUFFER_BYTES, all buffers being assembled at most
// MAX_ASSEMBLING_BYTES together and MAX_ASSEMBLING_BUFFERS in number; pieces must come in
// order and inside their buffer; a buffer with no new piece for CHUNK_TIMEOUT_MS is
// dropped. A buffer refused or dropped is freed at once, and its message, when it comes,
// is handed on with an RPCError saying why (`onMessage(message, error)`), which the
// session answers as the error of that call.

import { RPCError } from "./codec.js";

/** The key that marks an RPC message on a shared postMessage channel. */
export const ENVELOPE = "_pyjoy_rpc";
/** A piece of a buffer sent ahead of its message: {_pyjoy_rpc_chunk: {buffer, offset, size}, bytes}. */
export const CHUNK = "_pyjoy_rpc_chunk";
/** In the envelope of a message whose big buffers went ahead: their ids. */
export const CHUNKED = "_pyjoy_rpc_chunked";
/** Where a buffer that went ahead sits in its message: {_pyjoy_rpc_buffer: id}. */
export const PLACEHOLDER = "_pyjoy_rpc_buffer";

/** The chunk size for ports to sandboxed frames: small enough that no piece stalls a frame. */
export const FRAME_CHUNK_BYTES = 1 << 20;

/** The largest buffer a receiver assembles from pieces: 2 GiB, half of what a Python
 * plugin's WASM heap (4 GiB) can hold, so the most any plugin can send and keep a copy of;
 * and within what Chromium allocates as one ArrayBuffer. */
export const MAX_CHUNKED_BUFFER_BYTES = 2 ** 31;
/** The most bytes being assembled at once, all buffers of all messages: two of the
 * largest. A sender posts one message at a time, so this is reached only by a sender
 * that claims sizes it never sends. */
export const MAX_ASSEMBLING_BYTES = 2 ** 32;
/** The most buffers being assembled at once: one message's big buffers go ahead of it,
 * and a message holds a few; a thousand is far beyond that. */
export const MAX_ASSEMBLING_BUFFERS = 1000;
/** How long a buffer may wait for its next piece. A sender posts its pieces one task
 * apart (milliseconds for 1 MiB); a minute without one means it stopped or is broken. */
export const CHUNK_TIMEOUT_MS = 60_000;
/** How many reasons for refused buffers are kept for their messages (oldest dropped). */
const REFUSALS_KEPT = 100;

/**
 * A transport's received messages on their way to its `onMessage` handler: those that come
 * before a handler is set wait for it (at most `limit` of them; past that they are dropped).
 */
export class Inbox {
  #handler = null;
  #early = [];
  #limit;

  constructor(limit = Infinity) {
    this.#limit = limit;
  }

  get handler() {
    return this.#handler;
  }

  /** Sets the handler and hands it the messages that came before it. */
  set handler(handler) {
    this.#handler = handler;
    const early = this.#early;
    this.#early = [];
    for (const [message, problem] of early) handler?.(message, problem);
  }

  deliver(message, problem) {
    if (this.#handler) this.#handler(message, problem);
    else if (this.#early.length < this.#limit) this.#early.push([message, problem]);
  }

  clear() {
    this.#early = [];
  }
}

export class PostMessageTransport {
  #endpoint;
  #inbox = new Inbox();
  #closed = false;
  #listener = (event) => this.#receive(event.data);
  #chunkBytes;
  #sending = null; // the chunked send in progress, which later messages wait for
  #nextBuffer = 0;
  #assembling = new Map(); // buffer id -> {bytes: Uint8Array, received, last (Date.now())}
  #assemblingBytes = 0; // the sizes of the buffers in #assembling, summed
  #refused = new Map(); // buffer id -> why it was refused or dropped, for its message
  #sweep = null; // the timer that drops buffers past the timeout
  #chunkTimeoutMs;

  /**
   * @param {MessagePort | Worker | DedicatedWorkerGlobalScope} endpoint
   * @param {{chunkBytes?: number, chunkTimeoutMs?: number}} [options] chunkBytes: send
   *   buffers larger than this in pieces of this size, one task each (0, the default:
   *   never); chunkTimeoutMs: drop a buffer being received after this long without a piece
   *   (CHUNK_TIMEOUT_MS; tests make it short)
   */
  constructor(endpoint, { chunkBytes = 0, chunkTimeoutMs = CHUNK_TIMEOUT_MS } = {}) {
    this.#endpoint = endpoint;
    this.#chunkBytes = chunkBytes;
    this.#chunkTimeoutMs = chunkTimeoutMs;
    endpoint.addEventListener("message", this.#listener);
    // A MessagePort delivers to addEventListener listeners only once started (setting
    // onmessage would start it implicitly; we do not take over onmessage).
    if (typeof endpoint.start === "function") endpoint.start();
  }

  /** @returns {((message: object, problem?: Error) => void) | null} */
  get onMessage() {
    return this.#inbox.handler;
  }

  /** Sets the handler for received RPC messages; hands over any that came before it. A
   * message that arrived broken comes with an RPCError as the second argument. */
  set onMessage(handler) {
    this.#inbox.handler = handler;
  }

  /**
   * Posts one message; the buffers in `transfer` move to the other side and are detached
   * here at once. Throws when closed, or when the message cannot be cloned
   * (DataCloneError). When buffers go in chunks it returns a promise, settled once the
   * whole message is posted; messages sent meanwhile wait their turn.
   * @param {object} message
   * @param {Transferable[]} [transfer]
   * @returns {Promise<void> | undefined}
   */
  send(message, transfer = []) {
    if (this.#closed) throw new Error("the RPC transport is closed");
    const big = this.#chunkBytes ? transfer.filter((item) => item instanceof ArrayBuffer && item.byteLength > this.#chunkBytes) : [];
    if (!big.length && !this.#sending) {
      this.#endpoint.postMessage({ [ENVELOPE]: message }, transfer);
      return undefined;
    }
    // Take every buffer now (transfer() moves memory without a copy), so the sender's
    // buffers are detached at once, as with any send, and nobody changes them meanwhile.
    // Big ones become placeholders; the others travel in the message as usual.
    const replacements = new Map();
    const taken = [];
    const rest = [];
    for (const item of transfer) {
      if (!(item instanceof ArrayBuffer)) rest.push(item);
      else if (big.includes(item)) {
        const id = String(this.#nextBuffer++);
        taken.push([id, item.transfer()]);
        replacements.set(item, { [PLACEHOLDER]: id });
      } else {
        const moved = item.transfer();
        replacements.set(item, moved);
        rest.push(moved);
      }
    }
    const wire = replacements.size ? replaceBuffers(message, replacements) : message;
    const sending = (this.#sending ?? Promise.resolve()).then(() => this.#postChunked(wire, rest, taken));
    const queued = sending.catch(() => {}).then(() => {
      if (this.#sending === queued) this.#sending = null;
    });
    this.#sending = queued;
    return sending;
  }

  async #postChunked(message, transfer, taken) {
    const step = this.#chunkBytes;
    for (const [id, buffer] of taken) {
      for (let offset = 0; offset < buffer.byteLength; offset += step) {
        if (this.#closed) throw new Error("the RPC transport is closed");
        const bytes = buffer.slice(offset, offset + step);
        this.#endpoint.postMessage({ [CHUNK]: { buffer: id, offset, size: buffer.byteLength }, bytes }, [bytes]);
        await nextTask(); // let the page draw and handle input between pieces
      }
    }
    if (this.#closed) throw new Error("the RPC transport is closed");
    const envelope = { [ENVELOPE]: message };
    if (taken.length) envelope[CHUNKED] = taken.map(([id]) => id);
    this.#endpoint.postMessage(envelope, transfer);
  }

  /**
   * Stops listening. A MessagePort is closed too: it was made for this transport. A Worker
   * or a worker's global scope is left running, since others share it.
   */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#endpoint.removeEventListener("message", this.#listener);
    this.#inbox.clear();
    this.#assembling.clear();
    this.#assemblingBytes = 0;
    this.#refused.clear();
    clearTimeout(this.#sweep);
    if (typeof MessagePort !== "undefined" && this.#endpoint instanceof MessagePort) this.#endpoint.close();
  }

  #receive(data) {
    // Only objects carrying the envelope key are ours; see the note at the top.
    if (this.#closed || data === null || typeof data !== "object") return;
    if (Object.hasOwn(data, CHUNK)) return this.#receiveChunk(data);
    if (!Object.hasOwn(data, ENVELOPE)) return;
    let message = data[ENVELOPE];
    let problem;
    if (Object.hasOwn(data, CHUNKED)) [message, problem] = this.#restoreBuffers(message, data[CHUNKED]);
    this.#inbox.deliver(message, problem);
  }

  #receiveChunk(data) {
    const { buffer: id, offset, size } = data[CHUNK] ?? {};
    const { bytes } = data;
    if (typeof id !== "string") return console.warn("pyjoy rpc: ignored a piece without a buffer id");
    if (this.#refused.has(id)) return; // the rest of a buffer already refused
    let entry = this.#assembling.get(id);
    const refuse = (why) => {
      if (entry) this.#drop(id);
      this.#refuse(id, why);
    };
    if (!(bytes instanceof ArrayBuffer) || !bytes.byteLength) return refuse("a piece that is not a non-empty ArrayBuffer");
    if (!entry) {
      if (!Number.isSafeInteger(size) || size <= 0) return refuse(`a size of ${JSON.stringify(size)}`);
      if (size > MAX_CHUNKED_BUFFER_BYTES) return refuse(`a size of ${size} bytes, over the limit of ${MAX_CHUNKED_BUFFER_BYTES}`);
      if (this.#assembling.size >= MAX_ASSEMBLING_BUFFERS) return refuse(`more than the ${MAX_ASSEMBLING_BUFFERS} buffers a receiver assembles at once`);
      if (this.#assemblingBytes + size > MAX_ASSEMBLING_BYTES) return refuse(`${size} bytes more than the ${MAX_ASSEMBLING_BYTES} bytes a receiver assembles at once`);
      entry = { bytes: null, received: 0, last: 0 };
      try {
        entry.bytes = new Uint8Array(size);
      } catch {
        return refuse(`${size} bytes, which could not be allocated`);
      }
      this.#assembling.set(id, entry);
      this.#assemblingBytes += size;
      this.#sweep ??= setTimeout(() => this.#sweepStale(), this.#chunkTimeoutMs);
    }
    if (size !== entry.bytes.byteLength) return refuse(`a piece claiming a size of ${JSON.stringify(size)}, not ${entry.bytes.byteLength}`);
    if (offset !== entry.received) return refuse(`a piece at offset ${JSON.stringify(offset)} where ${entry.received} was next (pieces come in order)`);
    if (offset + bytes.byteLength > size) return refuse(`a piece of ${bytes.byteLength} bytes at ${offset}, past its end (${size} bytes)`);
    entry.bytes.set(new Uint8Array(bytes), offset);
    entry.received += bytes.byteLength;
    entry.last = Date.now();
  }

  #drop(id) {
    this.#assemblingBytes -= this.#assembling.get(id).bytes.byteLength;
    this.#assembling.delete(id);
  }

  #refuse(id, why) {
    this.#refused.delete(id); // re-inserted last: the oldest reasons go first
    this.#refused.set(id, why);
    if (this.#refused.size > REFUSALS_KEPT) this.#refused.delete(this.#refused.keys().next().value);
  }

  // Drops the buffers that had no piece for the timeout; runs while any are assembled.
  #sweepStale() {
    this.#sweep = null;
    const now = Date.now();
    for (const [id, entry] of this.#assembling) {
      if (now - entry.last >= this.#chunkTimeoutMs) {
        this.#drop(id);
        this.#refuse(id, `no piece for ${this.#chunkTimeoutMs / 1000} s: the sender stopped`);
      }
    }
    if (this.#assembling.size) this.#sweep = setTimeout(() => this.#sweepStale(), this.#chunkTimeoutMs);
  }

  /** Buffers being assembled (count, bytes), for tests and diagnostics. */
  stats() {
    return { assembling: this.#assembling.size, assemblingBytes: this.#assemblingBytes };
  }

  // The message with its buffers back in place, and an RPCError when one of them is missing
  // (refused, dropped, or never sent): a broken sender. The message is still handed on, so
  // that the session answers its call with that error.
  #restoreBuffers(message, ids) {
    if (!Array.isArray(ids) || ids.length > MAX_ASSEMBLING_BUFFERS) return [message, new RPCError("malformed chunked message: its buffer ids should be a list")];
    const buffers = new Map();
    const missing = [];
    for (const id of ids) {
      const entry = this.#assembling.get(id);
      if (entry) this.#drop(id);
      if (entry && entry.received === entry.bytes.byteLength) buffers.set(id, entry.bytes.buffer);
      else {
        const why = this.#refused.get(id) ?? (entry ? `${entry.received} of its ${entry.bytes.byteLength} bytes came` : "no piece of it came");
        missing.push(`buffer ${JSON.stringify(id)} of this message did not arrive whole: ${why}`);
      }
      this.#refused.delete(id);
    }
    if (missing.length) return [message, new RPCError(missing.join("; "))];
    return [restoreBuffers(message, buffers), undefined];
  }
}

/** Where a message arrived broken: the text of its RPCError, beside the envelope (chunkingEndpoint). */
export const PROBLEM = "_pyjoy_rpc_problem";

/**
 * A port as Python's transport (pyjoy/rpc/pyodide_transport.py) uses one (postMessage,
 * addEventListener, removeEventListener), whose messages go through a PostMessageTransport:
 * so a Python sandbox in another process than the page (a Python window, an isolated
 * web-python worker) sends and takes big buffers in pieces with this file's one
 * implementation of chunks and of their bounds (PROTOCOL.md, "Chunks"). What arrives before
 * the first listener is kept for it (the transport's inbox), as a port not yet started keeps
 * it; a message that arrived broken carries its RPCError's text under PROBLEM.
 */
export function chunkingEndpoint(port, options) {
  const transport = new PostMessageTransport(port, options);
  const listeners = new Set();
  return {
    pyjoyEndpoint: true, // pyodide_transport.py closes it as it closes a MessagePort
    postMessage(data, transfer = []) {
      const sent = transport.send(data[ENVELOPE], [...transfer]);
      sent?.catch((error) => console.warn(`pyjoy rpc: a message in pieces was not sent: ${error.message}`));
    },
    addEventListener(type, listener) {
      if (type !== "message") return;
      listeners.add(listener);
      transport.onMessage ??= (message, problem) => {
        const data = problem ? { [ENVELOPE]: message, [PROBLEM]: problem.message } : { [ENVELOPE]: message };
        for (const each of listeners) each({ data });
      };
    },
    removeEventListener(type, listener) {
      listeners.delete(listener);
    },
    close() {
      transport.close();
    },
  };
}

// A task boundary that does not wait like setTimeout's 4 ms clamp does, and lets input
// and drawing run first (a MessageChannel message is an ordinary task).
function nextTask() {
  return new Promise((resolve) => {
    const { port1, port2 } = new MessageChannel();
    port1.onmessage = () => {
      port1.close();
      resolve();
    };
    port2.postMessage(null);
  });
}

// A copy of message's tree with each buffer in `replacements` replaced. Messages are trees
// of plain values and buffers (PROTOCOL.md, "Transport"); blobs and views are kept as
// they are.
function replaceBuffers(value, replacements) {
  if (value instanceof ArrayBuffer) return replacements.has(value) ? replacements.get(value) : value;
  if (Array.isArray(value)) return value.map((item) => replaceBuffers(item, replacements));
  if (value === null || typeof value !== "object" || ArrayBuffer.isView(value) || Object.getPrototypeOf(value) !== Object.prototype) return value;
  const copy = {};
  for (const [key, item] of Object.entries(value)) {
    // defineProperty: a key "__proto__" stays an own property, as structured clone keeps it.
    Object.defineProperty(copy, key, { value: replaceBuffers(item, replacements), enumerable: true, writable: true, configurable: true });
  }
  return copy;
}

// Puts each buffer back where its placeholder is, in place. Each object is walked once
// (`seen`): structured clone keeps shared references and cycles, and a walk that followed
// every path of a hostile message could take 2^30 steps. A placeholder naming no buffer of
// this message is left as it is: where buffers go (`_rvalue`), the codec refuses it.
function restoreBuffers(value, buffers, seen = new Set()) {
  if (value === null || typeof value !== "object" || seen.has(value)) return value;
  seen.add(value);
  if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index += 1) value[index] = restoreBuffers(value[index], buffers, seen);
    return value;
  }
  if (Object.getPrototypeOf(value) !== Object.prototype) return value;
  if (Object.hasOwn(value, PLACEHOLDER)) return buffers.get(value[PLACEHOLDER]) ?? value;
  for (const key of Object.keys(value)) value[key] = restoreBuffers(value[key], buffers, seen);
  return value;
}
