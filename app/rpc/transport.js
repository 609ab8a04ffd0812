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

/** The key that marks an RPC message on a shared postMessage channel. */
export const ENVELOPE = "_pyjoy_rpc";

export class PostMessageTransport {
  #endpoint;
  #handler = null;
  #early = [];
  #closed = false;
  #listener = (event) => this.#receive(event.data);

  /** @param {MessagePort | Worker | DedicatedWorkerGlobalScope} endpoint */
  constructor(endpoint) {
    this.#endpoint = endpoint;
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
   * here. Throws when closed, or when the message cannot be cloned (DataCloneError).
   * @param {object} message
   * @param {Transferable[]} [transfer]
   */
  send(message, transfer = []) {
    if (this.#closed) throw new Error("the RPC transport is closed");
    this.#endpoint.postMessage({ [ENVELOPE]: message }, transfer);
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
    if (this.#closed || data === null || typeof data !== "object" || !Object.hasOwn(data, ENVELOPE)) return;
    const message = data[ENVELOPE];
    if (this.#handler) this.#handler(message);
    else this.#early.push(message);
  }
}
