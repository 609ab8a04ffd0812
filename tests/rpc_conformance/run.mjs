// The RPC conformance cases (cases.json beside this file, conventions at its top), run by the
// JS half (app/rpc/) under Node: `node tests/rpc_conformance/run.mjs` prints
// {case name: {ok, detail}} as JSON; tests/test_rpc_conformance.py runs it and reports each.
// Mirrors the Python runner in that test file.

import { readFileSync } from "node:fs";
import { RemoteError, decode } from "../../app/rpc/codec.js";
import { Session } from "../../app/rpc/session.js";

const { cases } = JSON.parse(readFileSync(new URL("./cases.json", import.meta.url), "utf8"));

// Values in ------------------------------------------------------------------------------

function build(value, refs) {
  if (Array.isArray(value)) return value.map((item) => build(item, refs));
  if (value === null || typeof value !== "object") return value;
  if ("$bytes" in value) return Uint8Array.from(Buffer.from(value.$bytes, "hex")).buffer;
  if ("$ref" in value) return refs[value.$ref];
  if ("$refkey" in value) return { [refs[value.$refkey]]: value.count };
  if ("$bomb" in value) {
    let tree = 0;
    for (let i = 0; i < value.$bomb; i++) tree = [tree, tree];
    return tree;
  }
  if ("$deep" in value) {
    let tree = [];
    for (let i = 1; i < value.$deep; i++) tree = [tree];
    return tree;
  }
  if ("$cycle" in value) {
    const loop = [];
    loop.push(loop);
    return loop;
  }
  const out = {};
  for (const [key, item] of Object.entries(value)) Object.defineProperty(out, key, { value: build(item, refs), enumerable: true, writable: true, configurable: true });
  return out;
}

// Values out -----------------------------------------------------------------------------

class Point {
  constructor(x, y) { this.x = x; this.y = y; }
}
const POINT = { name: "point", type: Point, encoder: (p) => ({ x: p.x, y: p.y }), decoder: (d) => new Point(d.x, d.y) };

const STAND_INS = new WeakMap(); // stand-in proxy -> {target, name}, for decode cases
function standIn(target, name) {
  const fn = () => {};
  STAND_INS.set(fn, { target, name });
  return fn;
}

const hex = (buffer) => Buffer.from(buffer).toString("hex");
const DTYPE_NAMES = {
  Int8Array: "int8", Uint8Array: "uint8", Int16Array: "int16", Uint16Array: "uint16", Int32Array: "int32",
  Uint32Array: "uint32", BigInt64Array: "int64", BigUint64Array: "uint64", Float32Array: "float32", Float64Array: "float64",
};

// `wire`: a message, where an ndarray object is its wire form, not a decoded array.
async function describe(value, wire = false) {
  if (value instanceof ArrayBuffer) return { $bytes: hex(value) };
  if (ArrayBuffer.isView(value)) {
    const bytes = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
    return { $array: { dtype: DTYPE_NAMES[value[Symbol.toStringTag]], shape: [value.length], bytes: hex(bytes) } };
  }
  if (value instanceof Blob) {
    return { $blob: { type: value.type, name: value instanceof File ? value.name : null, bytes: hex(await value.arrayBuffer()) } };
  }
  if (value instanceof RemoteError) {
    return { $error: { type: value.remoteType, message: value.remoteMessage, text: value.message, traceback: value.traceback, code: value.code } };
  }
  if (STAND_INS.has(value)) return { $proxy: STAND_INS.get(value) };
  if (value instanceof Point) return { $point: { x: await describe(value.x, wire), y: await describe(value.y, wire) } };
  if (Array.isArray(value)) {
    const out = [];
    for (const item of value) out.push(await describe(item, wire));
    return out;
  }
  if (value !== null && typeof value === "object") {
    if (!wire && value._rtype === "ndarray" && value._rvalue instanceof ArrayBuffer) {
      return { $array: { dtype: value._rdtype, shape: value._rshape, bytes: hex(value._rvalue) } };
    }
    const out = {};
    for (const key of Object.keys(value)) Object.defineProperty(out, key, { value: await describe(value[key], wire), enumerable: true, writable: true, configurable: true });
    return out;
  }
  return value;
}

// Raises an Error naming where `actual` differs from the pattern `expected`.
function match(expected, actual, refs, where = "value") {
  const fail = (why) => { throw new Error(`${where}: ${why}`); };
  const show = (v) => JSON.stringify(v)?.slice(0, 200);
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) fail(`${show(actual)}, expected ${show(expected)}`);
    expected.forEach((item, index) => match(item, actual[index], refs, `${where}[${index}]`));
  } else if (expected !== null && typeof expected === "object") {
    if (expected.$any === true) return;
    if ("$capture" in expected) { refs[expected.$capture] = actual; return; }
    if ("$re" in expected) {
      if (typeof actual !== "string" || !new RegExp(expected.$re).test(actual)) fail(`${show(actual)} does not match /${expected.$re}/`);
      return;
    }
    if ("$bomb" in expected || "$deep" in expected) return match(build(expected, refs), actual, refs, where);
    if (actual === null || typeof actual !== "object" || Array.isArray(actual)) fail(`expected an object, got ${show(actual)}`);
    const keys = Object.keys(expected).sort();
    const got = Object.keys(actual).sort();
    if (show(keys) !== show(got)) fail(`keys ${show(got)}, expected ${show(keys)}`);
    for (const key of keys) match(expected[key], actual[key], refs, `${where}.${key}`);
  } else if (actual !== expected) fail(`${show(actual)}, expected ${show(expected)}`);
}

// The JS half ----------------------------------------------------------------------------

async function checkDecode(testCase) {
  const wire = build(testCase.decode, {});
  let value;
  try {
    value = decode(wire, { codecs: new Map([["point", POINT]]), proxy: standIn });
  } catch (error) {
    if (!testCase.error) throw new Error(`decoding threw ${error.name}: ${error.message}`);
    if (error.name !== testCase.error.type) throw new Error(`threw ${error.name}: ${error.message}`);
    if (!new RegExp(testCase.error.message).test(error.message)) throw new Error(`threw ${error.message}`);
    return;
  }
  if (testCase.error) throw new Error(`decoded to ${JSON.stringify(await describe(value))?.slice(0, 200)}, expected ${JSON.stringify(testCase.error)}`);
  match(testCase.value_js ?? testCase.value, await describe(value), {});
}

class Unprintable extends Error {
  get message() { throw new Error("no text"); }
}
Unprintable.prototype.name = "Unprintable";

function fixtureRoot(session) {
  let kept = null;
  return {
    echo: (x) => x,
    describe: (...args) => {
      const last = args.at(-1);
      const kwargs = last !== null && typeof last === "object" && last._rkwargs === true ? args.pop() : {};
      delete kwargs._rkwargs;
      return { args, kwargs };
    },
    fail: (message) => { throw new TypeError(message); },
    unencodable: () => new Map(),
    unprintable: () => { throw new Unprintable(); },
    adder: (n) => (x) => x + n,
    apply: async (fn, x) => fn(x),
    keep: (fn) => { kept = fn; },
    call_kept: (x) => kept(x),
    dispose_kept: () => session.dispose(kept),
  };
}

const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setTimeout(resolve, 0));
};

async function checkSession(testCase) {
  let sent = [];
  const transport = { handler: null, send(message) { sent.push(message); }, close() {} };
  Object.defineProperty(transport, "onMessage", { set(handler) { transport.handler = handler; } });
  const session = new Session(transport, { codecs: [POINT] });
  let reason = null;
  session.closed.then((why) => { reason = why; });
  await session.setRoot(fixtureRoot(session));
  const root = sent.shift().value;
  const refs = {};
  for (const [name, member] of Object.entries(root)) if (member?._rtarget) refs[name] = member._rtarget;
  for (const [number, step] of testCase.steps.entries()) {
    const where = `step ${number}`;
    if ("in" in step) transport.handler(build(step.in, refs));
    else if ("closed" in step) {
      await settle();
      if (reason === null || !new RegExp(step.closed).test(reason)) throw new Error(`${where}: closed: ${reason}`);
    } else {
      const expected = step.out_js ?? step.out;
      await settle();
      // Releases go out when garbage is collected: not part of a case, unless it expects one.
      if (expected.type !== "release") sent = sent.filter((message) => message?.type !== "release");
      if (!sent.length) throw new Error(`${where}: the session sent nothing`);
      match(expected, await describe(sent.shift(), true), refs, where);
    }
  }
  await settle();
  sent = sent.filter((message) => message?.type !== "release");
  if (sent.length) throw new Error(`after the last step the session sent ${JSON.stringify(await describe(sent, true))}`);
}

// The session warns of each message it drops; many cases send such messages on purpose.
console.warn = () => {};
const results = {};
for (const testCase of cases) {
  if ((testCase.only ?? "js") !== "js") continue;
  try {
    await ("decode" in testCase ? checkDecode(testCase) : checkSession(testCase));
    results[testCase.name] = { ok: true, detail: "" };
  } catch (error) {
    results[testCase.name] = { ok: false, detail: `${error.message}\n${error.stack}` };
  }
}
process.stdout.write(JSON.stringify(results));
