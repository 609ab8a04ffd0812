// RPC sessions over one WebSocket: the page's side of the engine's wire (pyjoy/engine/ENGINE.md,
// "Frames" and "Limits and errors"; mirrors pyjoy/engine/wire.py + mux.py).
//
//   const socket = new ChannelSocket(ws, { onNotice: (text) => ..., onClose: (event) => ... });
//   const session = new Session(socket.channel("engine"));   // session.js, unchanged
//   socket.channel(pluginId);                                  // a plugin's channel
//   socket.close();
//
// A message is one text frame, {channel, message, buffers: [size, ...]}, in which each
// ArrayBuffer is replaced by {_pyjoy_rpc_buffer: index}, then each buffer in binary pieces
// of at most PIECE_BYTES. A channel's transport has PostMessageTransport's shape (send,
// onMessage, close), so the session never sees the socket. Sending waits while the socket
// holds more than HIGH_WATER_BYTES unsent, so a 64 MB array does not queue in one go; a
// message's frames are never split by another's. Receiving checks the same bounds as
// wire.Incoming, with the same numbers: a bad frame fails the call it carries (the
// session answers it, or fails the pending call), or becomes a notice; the socket stays.
//
// Resuming (ENGINE.md, "A page that drops"): the engine's first frame is its hello,
// {hello: {resume, grace, received}} (onHello). With a resume key, each text frame the page
// sends starts a numbered message and the latest are kept (while the socket is up those of
// KEEP_MESSAGE_BYTES at most, while it is down all; KEEP_BYTES in all), and the page counts the engine's messages it read whole (`received`).
// A socket that drops then leaves the channels open (`resumable`; onClose says so): while
// it is down, messages are kept and not written; `resume(ws, engineReceived)` goes on on a
// new socket, sending what the engine missed, or `fail(reason)` ends every channel.
//
// A plugin's direct socket (ENGINE.md, "The direct socket") is a ChannelSocket too, with the
// one channel "plugin"; `new SplitChannel(direct.channel("plugin"), socket.channel(id))`
// sends on it and hears both (the engine's own `close` for the plugin comes on the main one).
import { RPCError } from "./codec.js";
import { Inbox } from "./transport.js";

export const MAX_FRAME_BYTES = 16 * 2 ** 20;
export const PIECE_BYTES = 4 * 2 ** 20;
export const MAX_BUFFERS = 1000;
export const MAX_MESSAGE_BYTES = 2 * 2 ** 30;
export const PLACEHOLDER = "_pyjoy_rpc_buffer";
/** With a resume key: the most bytes of buffers a message sent on an open socket holds to be
 * kept for a resend (one sent while it is down is kept whatever its size), and
 * the most bytes of kept messages in all (the oldest go first); as pyjoy/engine/mux.py. */
export const KEEP_MESSAGE_BYTES = 256 * 2 ** 10;
export const KEEP_BYTES = 64 * 2 ** 20;
/** Close codes after which a connection is not resumed: the page closed it, a wrong token, a resume refused. */
const FINAL_CODES = new Set([1000, 4401, 4410]);
/** Past this many bytes unsent in the socket, senders wait. */
export const HIGH_WATER_BYTES = 16 * 2 ** 20;
/** Messages kept for a channel nobody opened yet (the engine sends only on channels the page
 * asked for, so a few at most), and how many such channels. */
const EARLY_MESSAGES = 1000;
const EARLY_CHANNELS = 64;
/** The deepest JSON tree walked for placeholders: far beyond what the codec reads (200). */
const MAX_DEPTH = 1000;

class Channel {
  #socket;
  #inbox = new Inbox(EARLY_MESSAGES);
  closed = false;

  constructor(socket, name) {
    this.#socket = socket;
    this.name = name;
  }

  get onMessage() {
    return this.#inbox.handler;
  }

  set onMessage(handler) {
    this.#inbox.handler = handler;
  }

  /** Sends one message; a promise while it waits for the socket (messages after it wait too). */
  send(message, transfer = []) {
    if (this.closed) throw new Error(`channel ${this.name} is closed`);
    return this.#socket.send(this.name, message, transfer);
  }

  deliver(message, problem) {
    if (this.closed) return;
    this.#inbox.deliver(message, problem);
  }

  close() {
    this.closed = true;
    this.#inbox.clear();
    this.#socket.forget(this.name, this);
  }
}

/** A plugin's channel carried by its direct socket: sends there, receives from both sockets. */
export class SplitChannel {
  constructor(direct, relay) {
    this.direct = direct;
    this.relay = relay;
    this.name = relay.name;
  }

  get closed() {
    return this.direct.closed && this.relay.closed;
  }

  get onMessage() {
    return this.relay.onMessage;
  }

  set onMessage(handler) {
    this.direct.onMessage = handler;
    this.relay.onMessage = handler;
  }

  send(message, transfer = []) {
    return this.direct.send(message, transfer);
  }

  close() {
    this.direct.close();
    this.relay.close();
  }
}

export class ChannelSocket {
  #ws;
  #channels = new Map(); // name -> Channel
  #ended = new Set(); // names of channels closed here: what still comes for them is dropped
  #sending = null; // the send waiting for room, which later sends wait for
  #incoming = new Incoming();
  #onNotice;
  #onHello;
  #onClose;
  #endsChannels;
  #only; // the one channel a plugin's direct socket carries; null: any
  #refused = 0; // messages for other channels, dropped (the first few said in a notice)
  resumeKey = null; // from the engine's hello: a secret, as the token
  grace = 0; // seconds
  received = 0; // the engine's messages read whole
  resumable = false; // the socket dropped and the engine keeps the connection for a while
  #sent = 0; // the number of the last message sent
  #kept = []; // [{number, text, buffers | null, size}], oldest first
  #keptBytes = 0;
  #keeping = true; // until a hello without a resume key (messages go before the hello comes)

  /**
   * @param {WebSocket} ws  open or opening; its binaryType becomes "arraybuffer"
   * @param {{onNotice?: (text: string) => void, onClose?: (event: CloseEvent, resumable: boolean) => void,
   *   onHello?: (hello: object) => void}} [options]
   *   onNotice: the engine's {"error"} notices and frames that fit no call
   *   only: the one channel name this socket carries (a plugin's direct socket: "plugin"); a
   *   message for another is dropped, never kept nor delivered (a plugin writes this socket's frames)
   *   endsChannels: false for a plugin's direct socket, which its process closes when it ends:
   *   the engine's `close` on the main socket then says why (with its exit status)
   */
  constructor(ws, { onNotice = () => {}, onClose = () => {}, onHello = () => {}, endsChannels = true, only = null } = {}) {
    this.#endsChannels = endsChannels;
    this.#only = only;
    this.#onNotice = onNotice;
    this.#onHello = onHello;
    this.#onClose = onClose;
    this.#listen(ws);
  }

  #listen(ws) {
    this.#ws = ws;
    ws.binaryType = "arraybuffer";
    ws.addEventListener("message", ({ data }) => {
      if (this.#ws === ws) this.#receive(data);
    });
    ws.addEventListener("close", (event) => {
      if (this.#ws !== ws) return;
      if (this.#incoming.reading) this.received -= 1; // cut short: the engine sends it again
      this.#incoming = new Incoming();
      this.resumable = this.resumeKey !== null && !FINAL_CODES.has(event.code);
      if (!this.resumable && this.#endsChannels) this.fail(`the engine's connection closed (code ${event.code}${event.reason ? `: ${event.reason}` : ""})`);
      this.#onClose(event, this.resumable);
    });
  }

  /** Ends every session on it: their pending calls fail with `reason`. */
  fail(reason) {
    this.resumable = false;
    this.#keeping = false;
    this.#kept = [];
    this.#keptBytes = 0;
    for (const channel of [...this.#channels.values()]) channel.deliver({ type: "close", reason });
  }

  /**
   * Goes on on `ws` (its hello said the engine read `engineReceived` of this page's messages):
   * sends the ones after. Returns why it cannot (they are no longer kept), or null.
   */
  resume(ws, engineReceived) {
    const first = this.#kept.length ? this.#kept[0].number : this.#sent + 1;
    let problem = null;
    if (!Number.isSafeInteger(engineReceived) || engineReceived < 0 || engineReceived > this.#sent) problem = `the engine says it received ${engineReceived} of ${this.#sent} messages`;
    else if (engineReceived + 1 < first) problem = `messages ${engineReceived + 1} to ${first - 1}, which the engine missed, are no longer kept`;
    else if (this.#kept.some((kept) => kept.number > engineReceived && !kept.buffers)) problem = `a message the engine missed held more than ${KEEP_MESSAGE_BYTES} bytes and was not kept`;
    if (problem) return problem;
    this.resumable = false;
    this.#listen(ws);
    const missed = this.#kept.filter((kept) => kept.number > engineReceived);
    const sending = (this.#sending ?? Promise.resolve()).catch(() => {}).then(async () => {
      for (const kept of missed) await this.#writeWhenRoom(kept.text, kept.buffers);
    });
    this.#sending = sending.catch(() => {});
    return null;
  }

  /** The transport of a channel, made on first use (what came for it before is kept). */
  channel(name) {
    let channel = this.#channels.get(name);
    this.#ended.delete(name);
    if (!channel || channel.closed) {
      channel = new Channel(this, name);
      this.#channels.set(name, channel);
    }
    return channel;
  }

  forget(name, channel) {
    if (this.#channels.get(name) !== channel) return;
    this.#channels.delete(name);
    this.#ended.add(name);
  }

  close(code = 1000, reason = "") {
    this.resumeKey = null;
    if (this.resumable) this.fail(`the engine's connection closed: ${reason || "the page closed it"}`); // down already: no close event comes
    this.#ws.close(code, reason);
  }

  send(channel, message, transfer) {
    const down = this.#ws.readyState !== WebSocket.OPEN;
    if (down && !this.resumable) throw new Error("the engine is not connected");
    const moved = new Set(transfer);
    const [tree, buffers] = split(message, moved);
    const text = JSON.stringify({ channel, message: tree, buffers: buffers.map((buffer) => buffer.byteLength) });
    this.#keep(text, buffers, down);
    if (down) return undefined; // kept: sent on the resume
    const size = buffers.reduce((sum, buffer) => sum + buffer.byteLength, text.length);
    if (!this.#sending && this.#ws.bufferedAmount + size <= HIGH_WATER_BYTES) {
      this.#write(text, buffers);
      return undefined;
    }
    const sending = (this.#sending ?? Promise.resolve()).then(() => this.#writeWhenRoom(text, buffers));
    const queued = sending.catch(() => {}).then(() => {
      if (this.#sending === queued) this.#sending = null;
    });
    this.#sending = queued;
    return sending;
  }

  // Numbers the message and keeps a copy (the sender may change its buffers once sent).
  #keep(text, buffers, down) {
    if (!this.#keeping) return;
    this.#sent += 1;
    const bytes = buffers.reduce((sum, buffer) => sum + buffer.byteLength, 0);
    const kept = down || bytes <= KEEP_MESSAGE_BYTES ? buffers.map((buffer) => buffer.slice(0)) : null;
    const size = text.length + (kept ? bytes : 0);
    this.#kept.push({ number: this.#sent, text, buffers: kept, size });
    this.#keptBytes += size;
    while (this.#keptBytes > KEEP_BYTES && this.#kept.length > 1) this.#keptBytes -= this.#kept.shift().size;
  }

  #write(text, buffers) {
    this.#ws.send(text);
    for (const buffer of buffers) {
      for (let offset = 0; offset < buffer.byteLength; offset += PIECE_BYTES) {
        this.#ws.send(new Uint8Array(buffer, offset, Math.min(PIECE_BYTES, buffer.byteLength - offset)));
      }
    }
  }

  async #writeWhenRoom(text, buffers) {
    const ws = this.#ws;
    if (!(await this.#room(ws))) return;
    ws.send(text);
    for (const buffer of buffers) {
      for (let offset = 0; offset < buffer.byteLength; offset += PIECE_BYTES) {
        if (!(await this.#room(ws))) return;
        ws.send(new Uint8Array(buffer, offset, Math.min(PIECE_BYTES, buffer.byteLength - offset)));
      }
    }
  }

  // A WebSocket has no event for "sent": its bufferedAmount is polled. False when the socket
  // dropped and the message is kept for a resume (it is sent again whole).
  async #room(ws) {
    while (ws.readyState === WebSocket.OPEN && ws.bufferedAmount > HIGH_WATER_BYTES) {
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    if (ws.readyState === WebSocket.OPEN && this.#ws === ws) return true;
    if (this.resumeKey !== null) return false;
    throw new Error("the engine's connection closed while a message was sent");
  }

  #receive(data) {
    if (typeof data === "string") this.received += 1;
    for (const item of this.#incoming.feed(data)) {
      if (item.hello !== undefined) {
        this.received -= 1; // not a numbered message
        this.resumeKey = typeof item.hello.resume === "string" ? item.hello.resume : null;
        this.grace = Number(item.hello.grace) || 0;
        if (this.resumeKey === null) {
          this.#keeping = false;
          this.#kept = [];
          this.#keptBytes = 0;
        }
        this.#onHello(item.hello);
      } else if (item.notice !== undefined) this.#onNotice(item.notice);
      else if (item.error) {
        const target = typeof item.channel === "string" ? this.#channels.get(item.channel) : null;
        if (target && item.message && typeof item.message === "object") target.deliver(item.message, new RPCError(item.error));
        else this.#onNotice(`the engine sent a frame that could not be read: ${item.error}`);
      } else if (this.#only !== null && item.channel !== this.#only) {
        this.#refused += 1;
        if (this.#refused <= 3) this.#onNotice(`a plugin's direct socket sent a message for channel ${JSON.stringify(String(item.channel).slice(0, 40))}: it carries only its own channel; dropped${this.#refused === 3 ? " (further ones dropped without a word)" : ""}`);
      } else if (this.#ended.has(item.channel)) {
        continue; // e.g. the `close` of a plugin this page stopped
      } else {
        if (!this.#channels.has(item.channel) && this.#channels.size >= EARLY_CHANNELS) {
          this.#onNotice(`the engine sent a message for channel ${JSON.stringify(item.channel.slice(0, 40))}, which this page never opened`);
          continue;
        }
        let message;
        try {
          message = restore(item.message, item.buffers);
        } catch (error) {
          this.channel(item.channel).deliver(item.message, error);
          continue;
        }
        this.channel(item.channel).deliver(message);
      }
    }
  }
}

// The message with each buffer (an ArrayBuffer, or a view's bytes) replaced by a placeholder,
// and the buffers, each once. Buffers the sender moves (`moved`: the session's transfer list)
// are taken, as postMessage would: the sender's copy is detached at once. JSON has no NaN
// or infinity: a message holding one cannot be sent.
function split(message, moved) {
  const buffers = [];
  const seen = new Map();
  const walk = (value, depth) => {
    if (depth > MAX_DEPTH) throw new RPCError("message too deep to send");
    if (typeof value === "number" && !Number.isFinite(value)) {
      throw new RPCError(`cannot send ${value}: JSON carries no NaN or infinity; send such numbers in an array`);
    }
    if (value === null || typeof value !== "object") return value;
    if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) {
      let index = seen.get(value);
      if (index === undefined) {
        let buffer = value;
        if (ArrayBuffer.isView(value)) buffer = value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength);
        else if (moved.has(value)) buffer = value.transfer();
        index = buffers.length;
        seen.set(value, index);
        buffers.push(buffer);
      }
      return { [PLACEHOLDER]: index };
    }
    if (Array.isArray(value)) return value.map((item) => walk(item, depth + 1));
    const copy = {};
    for (const [key, item] of Object.entries(value)) {
      Object.defineProperty(copy, key, { value: walk(item, depth + 1), enumerable: true, writable: true, configurable: true });
    }
    return copy;
  };
  return [walk(message, 0), buffers];
}

// The message with each placeholder replaced by its buffer; an RPCError for a bad one. The
// tree came from JSON.parse: no shared parts, so each value is walked once.
function restore(tree, buffers) {
  if (!buffers.length) return tree;
  const walk = (value, depth) => {
    if (value === null || typeof value !== "object") return value;
    if (depth > MAX_DEPTH) throw new RPCError("message too deep to read");
    if (Array.isArray(value)) {
      for (let index = 0; index < value.length; index += 1) value[index] = walk(value[index], depth + 1);
      return value;
    }
    const keys = Object.keys(value);
    if (keys.length === 1 && keys[0] === PLACEHOLDER) {
      const index = value[PLACEHOLDER];
      if (!Number.isInteger(index) || index < 0 || index >= buffers.length) {
        throw new RPCError(`a buffer placeholder names buffer ${JSON.stringify(index)}; the message has ${buffers.length}`);
      }
      return buffers[index];
    }
    for (const key of keys) value[key] = walk(value[key], depth + 1);
    return value;
  };
  return walk(tree, 0);
}

function sizesProblem(sizes) {
  if (!Array.isArray(sizes) || !sizes.every((n) => Number.isSafeInteger(n) && n >= 0)) return '"buffers" should be a list of sizes (integers from 0)';
  if (sizes.length > MAX_BUFFERS) return `a message of ${sizes.length} buffers is over the limit of ${MAX_BUFFERS}`;
  const total = sizes.reduce((sum, n) => sum + n, 0);
  if (total > MAX_MESSAGE_BYTES) return `a message of ${total} bytes of buffers is over the limit of ${MAX_MESSAGE_BYTES}`;
  return null;
}

/**
 * Frames into messages, within the bounds (wire.Incoming with join=True). feed(frame)
 * returns what the frame completed: {channel, message, buffers} for a message,
 * {notice} for the engine's {"error"}, {error, channel?, message?} for a frame or message
 * that cannot be used (its remaining pieces are then dropped until the next text frame).
 */
export class Incoming {
  #current = null; // {channel, message, buffers: [ArrayBuffer]}
  #sizes = []; // of the buffers still to come, the one being read first
  #bytes = null; // the buffer being joined (a Uint8Array), or null while it has one piece
  #first = null; // its first piece, kept as it is while it is the only one
  #got = 0;
  #dropping = false;

  /** Whether a message waits for pieces. */
  get reading() {
    return this.#current !== null;
  }

  feed(frame) {
    if (typeof frame === "string") {
      const out = [];
      if (this.#current) out.push(this.#fail(`a message came before the ${this.#sizes.length} buffer(s) still announced by the one before it`));
      this.#dropping = false;
      const item = this.#text(frame);
      if (item) out.push(item);
      return out;
    }
    return this.#binary(frame);
  }

  #fail(why) {
    const current = this.#current;
    this.#current = null;
    this.#dropping = true;
    this.#bytes = this.#first = null;
    this.#got = 0;
    return current ? { error: why, channel: current.channel, message: current.message } : { error: why };
  }

  #text(text) {
    if (text.length > MAX_FRAME_BYTES) return this.#fail(`a text frame of ${text.length} characters is over the limit of ${MAX_FRAME_BYTES} bytes`);
    let header;
    try {
      header = JSON.parse(text);
    } catch (error) {
      return this.#fail(`a text frame that is not JSON: ${error.message}`);
    }
    const isObject = header !== null && typeof header === "object" && !Array.isArray(header);
    if (isObject && !Object.hasOwn(header, "channel") && typeof header.error === "string") return { notice: header.error };
    if (isObject && !Object.hasOwn(header, "channel") && header.hello !== null && typeof header.hello === "object") return { hello: header.hello };
    const channel = isObject ? header.channel : undefined;
    const message = isObject ? header.message : undefined;
    if (!isObject || typeof channel !== "string" || message === null || typeof message !== "object" || Array.isArray(message)) {
      this.#dropping = true;
      return { error: 'a message should be {"channel": string, "message": object, "buffers": [sizes]}', channel: typeof channel === "string" ? channel : null, message };
    }
    const sizes = header.buffers ?? [];
    const problem = sizesProblem(sizes);
    if (problem) {
      this.#dropping = true;
      return { error: problem, channel, message };
    }
    this.#current = { channel, message, buffers: [] };
    this.#sizes = [...sizes];
    return this.#bufferDone();
  }

  #binary(piece) {
    if (!this.#current) return this.#dropping ? [] : [{ error: `a binary frame of ${piece.byteLength} bytes that no message announced` }];
    if (piece.byteLength > MAX_FRAME_BYTES) return [this.#fail(`a binary frame of ${piece.byteLength} bytes is over the limit of ${MAX_FRAME_BYTES}`)];
    const size = this.#sizes[0];
    if (!piece.byteLength || this.#got + piece.byteLength > size) {
      return [this.#fail(`a piece of ${piece.byteLength} bytes does not fit buffer ${this.#current.buffers.length} (${this.#got} of its ${size} bytes came before it)`)];
    }
    if (this.#got === 0 && piece.byteLength === size) this.#first = piece; // one piece: the buffer itself
    else {
      if (!this.#bytes) {
        try {
          this.#bytes = new Uint8Array(size);
        } catch {
          return [this.#fail(`a buffer of ${size} bytes could not be allocated`)];
        }
      }
      this.#bytes.set(new Uint8Array(piece), this.#got);
    }
    this.#got += piece.byteLength;
    if (this.#got < size) return [];
    this.#current.buffers.push(this.#first ?? this.#bytes.buffer);
    this.#sizes.shift();
    this.#bytes = this.#first = null;
    this.#got = 0;
    const done = this.#bufferDone();
    return done ? [done] : [];
  }

  // Takes the empty buffers next (they have no frames); the message once it is whole.
  #bufferDone() {
    while (this.#sizes.length && this.#sizes[0] === 0) {
      this.#sizes.shift();
      this.#current.buffers.push(new ArrayBuffer(0));
    }
    if (this.#sizes.length) return null;
    const done = this.#current;
    this.#current = null;
    return done;
  }
}
