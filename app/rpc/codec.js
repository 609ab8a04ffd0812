// Values to wire form and back: the "Values" table of PROTOCOL.md, for JavaScript.
// Mirrors pyjoy/rpc/codec.py. The session supplies the context: where functions are kept
// (its store) and where remote functions come from (its proxies).
//
//   const job = { codecs, method: (fn, name) => id, transfer: new Set() };
//   const wire = await encode(value, job);        // job.transfer: the buffers to move
//   const value = decode(wire, { codecs, proxy: (id, name) => fn });
//
// Encoding is async only because a Blob's bytes must be read (blob.arrayBuffer()) and a
// custom encoder may be async; everything else is walked synchronously, so a large array
// of numbers costs no promise per item. Decoding is synchronous, and bounded
// (PROTOCOL.md, "Bounds"): structured clone keeps shared references, so a small message
// can stand for a tree of 2^30 values; decode counts the values it walks and the depth it
// is at, and refuses a value past MAX_DECODE_VALUES or MAX_DECODE_DEPTH with an RPCError.

/**
 * @typedef {object} Codec  a custom wire form, e.g. for an app's own image type
 * @property {string} name  its `_rtype`; not one of BUILTIN_RTYPES
 * @property {Function} [type]  values that are `instanceof type` are encoded with it
 * @property {(value: any) => object} [encoder]  returns a plain object (or a promise of one),
 *   sent with its members encoded and `_rtype` set to `name`
 * @property {(members: object) => any} [decoder]  gets that object decoded, `_rtype`
 *   removed; synchronous
 */

/** The `_rtype`s of the Values table; a codec cannot take one of these names. */
export const BUILTIN_RTYPES = new Set(["memoryview", "typedarray", "ndarray", "blob", "error", "method"]);

/** Element types of typedarray and ndarray wire forms (`_rdtype`). */
export const DTYPES = {
  int8: Int8Array, uint8: Uint8Array, int16: Int16Array, uint16: Uint16Array,
  int32: Int32Array, uint32: Uint32Array, int64: BigInt64Array, uint64: BigUint64Array,
  float32: Float32Array, float64: Float64Array, bool: Uint8Array,
};

// By Symbol.toStringTag, which subclasses keep. A DataView has no element type: bytes.
const DTYPE_OF_VIEW = {
  Int8Array: "int8", Uint8Array: "uint8", Uint8ClampedArray: "uint8", Int16Array: "int16",
  Uint16Array: "uint16", Int32Array: "int32", Uint32Array: "uint32", BigInt64Array: "int64",
  BigUint64Array: "uint64", Float32Array: "float32", Float64Array: "float64", DataView: "uint8",
};

// The bounds of decoding, the same numbers as pyjoy/rpc/codec.py (see the reasons there).
/** The most values (items of arrays and objects, shared ones each time) one message decodes to:
 * at 0.03 to 0.3 us a value here, at most about a third of a second of the page's time. */
export const MAX_DECODE_VALUES = 1_000_000;
/** The deepest nesting decoded: far beyond real values, well within either half's stack. */
export const MAX_DECODE_DEPTH = 200;
/** The most dimensions of an ndarray (numpy's limit is 64; 32 before numpy 2). */
export const MAX_NDIM = 32;

/** A failure of the protocol itself: a closed session, an unknown target, a bad message or
 * wire value. Python has the same class name (pyjoy/rpc/codec.py). */
export class RPCError extends Error {
  constructor(message) {
    super(message);
    this.name = "RPCError";
  }
}

/** How an exception from the other side arrives: rejected calls, or a value sent as is.
 * Its message names the type, "ValueError: bad value", as Pyodide's and imjoy-rpc's errors
 * show a Python exception (and String(error) a JS one); `remoteMessage` is the sender's text
 * alone. `code` is "remote-error", the same in Python, for callers that sort errors by code. */
export class RemoteError extends Error {
  constructor(type, message, traceback) {
    super(message ? `${type}: ${message}` : type);
    this.name = "RemoteError";
    this.code = "remote-error";
    this.remoteType = type; // the sender's class name, e.g. "ZeroDivisionError", "TypeError"
    this.remoteMessage = message; // the sender's message, without the type
    this.traceback = traceback; // the sender's traceback (Python) or stack (JS)
  }
}

// Methods of interfaces are sent bound to their object (a plugin's `this.state` works when
// called remotely); the bound function is kept per object and member so that sending the
// same object again reuses the same store id.
const BOUND = new WeakMap();

/**
 * @param {any} value
 * @param {{codecs: Map<string, Codec>, method: (fn: Function, name: string) => string,
 *          transfer: Set<ArrayBuffer>}} job
 * @returns {Promise<any>} the wire form; job.transfer holds every buffer in it
 */
export async function encode(value, job) {
  const pending = [];
  const wire = walk(value, { ...job, pending }, new Set());
  // Blob reads and async encoders fill their places in the tree; they may add more.
  while (pending.length) await Promise.all(pending.splice(0));
  return wire;
}

function walk(value, job, path) {
  if (value === null || value === undefined) return null;
  const kind = typeof value;
  if (kind === "string" || kind === "number" || kind === "boolean" || kind === "bigint") return value;
  if (kind === "symbol") throw unsupported(value);
  const codec = codecFor(value, job.codecs);
  if (codec) return encodeCustom(codec, value, job);
  if (kind === "function") return { _rtype: "method", _rtarget: job.method(value, value.name), _rname: value.name };
  if (path.has(value)) throw new TypeError("cannot send a value that contains itself (a cycle)");
  path.add(value);
  try {
    return encodeObject(value, job, path);
  } finally {
    path.delete(value);
  }
}

function encodeObject(value, job, path) {
  if (Array.isArray(value)) return Array.from(value, (item) => walk(item, job, path));
  if (ArrayBuffer.isView(value)) {
    const _rdtype = DTYPE_OF_VIEW[value[Symbol.toStringTag] ?? "DataView"];
    if (!_rdtype) throw unsupported(value);
    return { _rtype: "typedarray", _rvalue: viewBuffer(value, job), _rdtype };
  }
  if (value instanceof ArrayBuffer) return { _rtype: "memoryview", _rvalue: ownBuffer(value, job) };
  if (typeof SharedArrayBuffer !== "undefined" && value instanceof SharedArrayBuffer) {
    // Shared memory cannot be transferred; the other side gets a copy of its bytes.
    return { _rtype: "memoryview", _rvalue: viewBuffer(new Uint8Array(value), job) };
  }
  if (value instanceof Blob) return encodeBlob(value, job);
  // An image's pixels, as ImJoy's ndarray (RGBA). Copied: an ImageData is usually still
  // on screen or in use, and moving its buffer would empty it.
  if (typeof ImageData !== "undefined" && value instanceof ImageData) {
    return encodeNdarray({ _rtype: "ndarray", _rvalue: value.data.slice().buffer, _rshape: [value.height, value.width, 4], _rdtype: "uint8" }, job);
  }
  if (value instanceof Error) return encodeError(value);
  const proto = Object.getPrototypeOf(value);
  if (proto === Object.prototype || proto === null) {
    if (value._rtype === "ndarray") return encodeNdarray(value, job);
    if (!Object.values(value).some((member) => typeof member === "function")) {
      const out = {};
      for (const key of Object.keys(value)) put(out, key, walk(value[key], job, path));
      return out;
    }
    return encodeInterface(value, Object.keys(value), job, path);
  }
  // Built-ins without a wire form (Map, Date, Promise, ...) are errors, not interfaces of
  // their methods; instances of the program's own classes are interfaces.
  if (isNative(value.constructor)) throw unsupported(value);
  return encodeInterface(value, publicMembers(value), job, path);
}

function encodeInterface(object, keys, job, path) {
  const out = {};
  for (const key of keys) {
    if (key === "_rintf") continue;
    const member = object[key];
    if (typeof member === "function" && !codecFor(member, job.codecs)) {
      put(out, key, { _rtype: "method", _rtarget: job.method(bound(object, key, member), key), _rname: key });
    } else {
      put(out, key, walk(member, job, path));
    }
  }
  out._rintf = true;
  return out;
}

// A class instance's own enumerable fields and its methods up the prototype chain (to the
// first built-in class: an EventTarget subclass does not send addEventListener), without
// names starting with "_" (as for Python objects) and without the constructor.
function publicMembers(object) {
  const keys = new Set(Object.keys(object));
  for (let proto = Object.getPrototypeOf(object); proto && !isNative(proto.constructor); proto = Object.getPrototypeOf(proto)) {
    for (const key of Object.getOwnPropertyNames(proto)) {
      const descriptor = Object.getOwnPropertyDescriptor(proto, key);
      if (key !== "constructor" && typeof descriptor.value === "function") keys.add(key);
    }
  }
  return [...keys].filter((key) => !key.startsWith("_"));
}

function isNative(constructor) {
  return typeof constructor !== "function" || /\[native code\]\s*\}$/.test(Function.prototype.toString.call(constructor));
}

function bound(object, key, fn) {
  let members = BOUND.get(object);
  if (!members) BOUND.set(object, (members = new Map()));
  let entry = members.get(key);
  if (entry?.fn !== fn) {
    entry = { fn, bound: { [key]: (...args) => fn.apply(object, args) }[key] };
    members.set(key, entry);
  }
  return entry.bound;
}

function encodeNdarray(value, job) {
  const { _rdtype, _rshape } = value;
  const Type = DTYPES[_rdtype];
  if (!Type) throw new TypeError(`cannot send an ndarray of _rdtype ${JSON.stringify(_rdtype)}: expected one of ${Object.keys(DTYPES).join(" ")}`);
  if (!Array.isArray(_rshape) || !_rshape.every((n) => Number.isInteger(n) && n >= 0)) {
    throw new TypeError(`cannot send an ndarray with _rshape ${JSON.stringify(_rshape)}: expected an array of sizes`);
  }
  const buffer = ArrayBuffer.isView(value._rvalue) ? viewBuffer(value._rvalue, job) : value._rvalue;
  if (!(buffer instanceof ArrayBuffer)) throw new TypeError("cannot send an ndarray whose _rvalue is not an ArrayBuffer or a typed array");
  const bytes = _rshape.reduce((a, b) => a * b, 1) * Type.BYTES_PER_ELEMENT;
  if (buffer.byteLength !== bytes) {
    throw new TypeError(`cannot send an ndarray of shape [${_rshape}] ${_rdtype} (${bytes} bytes) with a buffer of ${buffer.byteLength} bytes`);
  }
  return { _rtype: "ndarray", _rvalue: ownBuffer(buffer, job), _rshape: [..._rshape], _rdtype };
}

function encodeBlob(blob, job) {
  const wire = { _rtype: "blob", _rvalue: null, type: blob.type, name: typeof File !== "undefined" && blob instanceof File ? blob.name : null };
  job.pending.push(blob.arrayBuffer().then((buffer) => { wire._rvalue = ownBuffer(buffer, job); }));
  return wire;
}

/**
 * The wire form of what a function threw: a RemoteError passed on keeps the type and
 * traceback it came with; anything thrown that is not an Error goes as an Error with its
 * text. It never throws: a message or stack that cannot be read (a throwing getter or
 * toString) is replaced by a note saying so, so that the call is still answered.
 */
export function encodeError(error) {
  if (error instanceof RemoteError) return { _rtype: "error", type: String(error.remoteType), message: String(error.remoteMessage), traceback: String(error.traceback) };
  if (!(error instanceof Error)) return { _rtype: "error", type: "Error", message: readable(() => String(error), "the thrown value"), traceback: "" };
  const type = readable(() => String(error.name || "Error"), null) ?? readable(() => error.constructor.name, null) ?? "Error";
  return { _rtype: "error", type, message: readable(() => String(error.message), `the ${type}'s message`), traceback: readable(() => String(error.stack ?? ""), null) ?? "" };
}

// read(), or a note that `what` could not be read (or `what` itself when it is null).
function readable(read, what) {
  try {
    return read();
  } catch (failure) {
    if (what === null) return null;
    let reason = "";
    try { reason = `: ${failure?.name}: ${failure?.message}`; } catch { /* nothing more to say */ }
    return `<${what} could not be read${reason}>`;
  }
}

function encodeCustom(codec, value, job) {
  const result = codec.encoder(value);
  if (typeof result?.then !== "function") return customWire(codec, result, job);
  const slot = {}; // filled in place once the encoder resolves
  job.pending.push(Promise.resolve(result).then((resolved) => Object.assign(slot, customWire(codec, resolved, job))));
  return slot;
}

function customWire(codec, result, job) {
  const proto = result !== null && typeof result === "object" ? Object.getPrototypeOf(result) : undefined;
  if (proto !== Object.prototype && proto !== null) {
    throw new TypeError(`codec ${codec.name}: the encoder returned ${result === null ? "null" : typeof result}, not a plain object`);
  }
  const out = { _rtype: codec.name };
  for (const key of Object.keys(result)) if (key !== "_rtype") put(out, key, walk(result[key], job, new Set()));
  return out;
}

function codecFor(value, codecs) {
  for (const codec of codecs.values()) if (codec.type && codec.encoder && value instanceof codec.type) return codec;
  return null;
}

// The buffer of a view, moved when the view spans all of it, else a copy of its bytes.
// Views of shared memory are always copied: a SharedArrayBuffer cannot be transferred.
function viewBuffer(view, job) {
  const { buffer, byteOffset, byteLength } = view;
  if (buffer instanceof ArrayBuffer && byteOffset === 0 && byteLength === buffer.byteLength) return ownBuffer(buffer, job);
  return ownBuffer(new Uint8Array(buffer, byteOffset, byteLength).slice().buffer, job);
}

function ownBuffer(buffer, job) {
  if (buffer.detached) throw new TypeError("cannot send a detached ArrayBuffer (it was sent before: a sent buffer moves to the other side)");
  job.transfer.add(buffer);
  return buffer;
}

function unsupported(value) {
  const type = typeof value === "object" ? value[Symbol.toStringTag] ?? value.constructor?.name ?? "object" : typeof value;
  return new TypeError(`cannot send a ${type}: it has no wire form (see PROTOCOL.md "Values"; registerCodec adds one)`);
}

// Own data property even for the key "__proto__", which plain assignment would turn into
// a prototype change.
function put(object, key, value) {
  if (key === "__proto__") Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
  else object[key] = value;
}

/**
 * @param {any} wire  a received wire form
 * @param {{codecs: Map<string, Codec>, proxy: (id: string, name: string) => Function}} context
 * @param {{left: number, depth: number}} [bounds]  what this message may still decode to
 *   (MAX_DECODE_VALUES, MAX_DECODE_DEPTH); one per message, shared by its decode calls
 */
export function decode(wire, context, bounds = decodeBounds()) {
  // The hot path. The bounds are counted where the walk goes on into an array or object (a
  // subtraction each); a built-in wire form is a leaf, counted in its container.
  // (No finally around the depth: a walk that threw is not carried on.)
  if (wire === null || typeof wire !== "object") return wire;
  if (Array.isArray(wire)) {
    enter(bounds, wire.length);
    const out = wire.map((item) => decode(item, context, bounds));
    bounds.depth--;
    return out;
  }
  if (wire instanceof ArrayBuffer || ArrayBuffer.isView(wire)) return wire;
  const rtype = wire._rtype;
  if (rtype === undefined) {
    const keys = Object.keys(wire);
    enter(bounds, keys.length);
    const out = {};
    for (const key of keys) if (!(key === "_rintf" && wire._rintf === true)) put(out, key, decode(wire[key], context, bounds));
    bounds.depth--;
    return out;
  }
  switch (rtype) {
    case "method":
      if (typeof wire._rtarget !== "string") throw malformed("method", "_rtarget", "a string", wire._rtarget);
      return context.proxy(wire._rtarget, typeof wire._rname === "string" && wire._rname ? wire._rname : wire._rtarget);
    case "memoryview":
      return received(wire);
    case "typedarray":
    case "ndarray":
      return decodeArray(wire, rtype);
    case "blob": {
      const options = { type: typeof wire.type === "string" ? wire.type : "" };
      const parts = [received(wire)];
      return typeof wire.name === "string" ? new File(parts, wire.name, options) : new Blob(parts, options);
    }
    case "error":
      return new RemoteError(typeof wire.type === "string" && wire.type ? wire.type : "Error",
        typeof wire.message === "string" ? wire.message : "", typeof wire.traceback === "string" ? wire.traceback : "");
    default: {
      // A codec's form; with no codec of that name here it stays a plain object, `_rtype`
      // kept, for the program to look at (as pyjoy/rpc/codec.py does).
      const codec = typeof rtype === "string" ? context.codecs.get(rtype) : undefined;
      const keys = Object.keys(wire);
      enter(bounds, keys.length);
      const members = {};
      for (const key of keys) if (key !== "_rtype") put(members, key, decode(wire[key], context, bounds));
      bounds.depth--;
      return codec?.decoder ? codec.decoder(members) : { ...members, _rtype: rtype };
    }
  }
}

/** Fresh bounds for one message's decode calls. */
export function decodeBounds() {
  return { left: MAX_DECODE_VALUES, depth: 0 };
}

function enter(bounds, size) {
  bounds.left -= size;
  bounds.depth++;
  if (bounds.left < 0) throw new RPCError(`message too large: it decodes to more than ${MAX_DECODE_VALUES} values (shared references count each time; send numbers in bulk as an array)`);
  if (bounds.depth > MAX_DECODE_DEPTH) throw new RPCError(`message too deep: values nested more than ${MAX_DECODE_DEPTH} levels`);
}

function decodeArray(wire, rtype) {
  if (typeof wire._rdtype !== "string" || !Object.hasOwn(DTYPES, wire._rdtype)) throw malformed(rtype, "_rdtype", `one of ${Object.keys(DTYPES).join(", ")}`, wire._rdtype);
  const Type = DTYPES[wire._rdtype];
  const buffer = received(wire);
  if (rtype === "typedarray") {
    if (buffer.byteLength % Type.BYTES_PER_ELEMENT) throw new RPCError(`typedarray of ${wire._rdtype}: ${buffer.byteLength} bytes is not a whole number of elements`);
    return new Type(buffer);
  }
  const shape = wire._rshape;
  if (!isShape(shape)) throw malformed(rtype, "_rshape", `a list of at most ${MAX_NDIM} sizes (integers from 0 to 2**53 - 1)`, shape);
  if (!fits(shape, Type.BYTES_PER_ELEMENT, buffer.byteLength)) {
    throw new RPCError(`ndarray: shape [${shape}] of ${wire._rdtype} does not fit its buffer of ${buffer.byteLength} bytes`);
  }
  return { _rtype: "ndarray", _rvalue: buffer, _rshape: [...shape], _rdtype: wire._rdtype };
}

function isShape(shape) {
  return Array.isArray(shape) && shape.length <= MAX_NDIM && shape.every((n) => Number.isSafeInteger(n) && n >= 0);
}

// Whether `shape` elements of `itemsize` bytes are exactly `byteLength` bytes. Multiplied
// step by step and stopped once past the buffer, so that no product loses precision.
function fits(shape, itemsize, byteLength) {
  if (shape.includes(0)) return byteLength === 0;
  let bytes = itemsize;
  for (const n of shape) {
    bytes *= n;
    if (bytes > byteLength) return false;
  }
  return bytes === byteLength;
}

// A wire form's `_rvalue`, which arrives as an ArrayBuffer; a view is accepted too (what a
// converter may make of Python bytes), taken whole when it spans its buffer.
function received(wire) {
  const value = wire._rvalue;
  if (value instanceof ArrayBuffer) return value;
  if (ArrayBuffer.isView(value)) {
    const { buffer, byteOffset, byteLength } = value;
    return byteOffset === 0 && byteLength === buffer.byteLength ? buffer : buffer.slice(byteOffset, byteOffset + byteLength);
  }
  throw malformed(wire._rtype, "_rvalue", "a buffer", value);
}

// The same words as pyjoy/rpc/codec.py's _field.
function malformed(rtype, field, expected, got) {
  const type = got === null ? "null" : got === undefined ? "nothing" : Array.isArray(got) ? "an array" : typeof got;
  return new RPCError(`${rtype} value: ${field} should be ${expected}, got ${type}`);
}
