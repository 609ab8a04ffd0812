// Moves RPC messages over postMessage: a MessagePort, a Worker, or a worker's own global
// scope (`self` inside the worker). The session never sees how messages travel; the
// transport never looks inside them (PROTOCOL.md, "Transport").
//
//   const transport = new PostMessageTransport(worker);   // or a port, or self
//   transport.onMessage = (message) => { ... };           // each RPC message received
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

export class PostMessageTransport {
  #endpoint;
  #handler = null;
  #early = [];
  #closed = false;
  #listener = (event) => this.#receive(event.data);
  #chunkBytes;
  #sending = null; // the chunked send in progress, which later messages wait for
  #nextBuffer = 0;
  #assembling = new Map(); // buffer id -> {bytes: Uint8Array, received}

  /**
   * @param {MessagePort | Worker | DedicatedWorkerGlobalScope} endpoint
   * @param {{chunkBytes?: number}} [options] chunkBytes: send buffers larger than this in
   *   pieces of this size, one task each (0, the default: never)
   */
  constructor(endpoint, { chunkBytes = 0 } = {}) {
    this.#endpoint = endpoint;
    this.#chunkBytes = chunkBytes;
    endpoint.addEventListener("message", this.#listener);
    // A MessagePort delivers to addEventListener listeners only once started (setting
    // onmessage would start it implicitly; we do not take over onmessage).
    if (typeof endpoint.start === "function") endpoint.start();
  }

  /** @returns {((message: object) => void) | null} */
  get onMessage() {
    return this.#handler;
  }

  /** Sets the handler for received RPC messages; hands over any that came before it. */
  set onMessage(handler) {
    this.#handler = handler;
    const early = this.#early;
    this.#early = [];
    for (const message of early) handler?.(message);
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
    this.#early = [];
    if (typeof MessagePort !== "undefined" && this.#endpoint instanceof MessagePort) this.#endpoint.close();
  }

  #receive(data) {
    // Only objects carrying the envelope key are ours; see the note at the top.
    if (this.#closed || data === null || typeof data !== "object") return;
    if (Object.hasOwn(data, CHUNK)) return this.#receiveChunk(data);
    if (!Object.hasOwn(data, ENVELOPE)) return;
    let message = data[ENVELOPE];
    if (Array.isArray(data[CHUNKED])) message = this.#restoreBuffers(message, data[CHUNKED]);
    if (this.#handler) this.#handler(message);
    else this.#early.push(message);
  }

  #receiveChunk({ [CHUNK]: { buffer, offset, size }, bytes }) {
    let entry = this.#assembling.get(buffer);
    if (!entry) this.#assembling.set(buffer, (entry = { bytes: new Uint8Array(size), received: 0 }));
    entry.bytes.set(new Uint8Array(bytes), offset);
    entry.received += bytes.byteLength;
  }

  #restoreBuffers(message, ids) {
    const buffers = new Map();
    for (const id of ids) {
      const entry = this.#assembling.get(id);
      this.#assembling.delete(id);
      // A piece missing means a broken sender: the message still arrives, and the session
      // answers it with an error naming the buffer.
      if (entry && entry.received === entry.bytes.byteLength) buffers.set(id, entry.bytes.buffer);
    }
    return restoreBuffers(message, buffers);
  }
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

function restoreBuffers(value, buffers) {
  if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index += 1) value[index] = restoreBuffers(value[index], buffers);
    return value;
  }
  if (value === null || typeof value !== "object" || Object.getPrototypeOf(value) !== Object.prototype) return value;
  if (Object.hasOwn(value, PLACEHOLDER)) {
    const id = value[PLACEHOLDER];
    if (!buffers.has(id)) return { _rtype: "error", type: "RPCError", message: `buffer ${id} of this message did not arrive whole`, traceback: "" };
    return buffers.get(id);
  }
  for (const key of Object.keys(value)) value[key] = restoreBuffers(value[key], buffers);
  return value;
}
