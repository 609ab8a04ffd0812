"""The JavaScript RPC (app/rpc/) in real Chromium: two sessions over a MessageChannel in one
page, a session in a real Worker, the wire format seen from a raw port, and lifetimes
under real garbage collection (a Chromium started with --expose-gc)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, Playwright

from pyjoy.devtools import launch_options

# Prepended to each test's script: the modules, and `pair()`, two sessions over a
# MessageChannel; `raw()`, a session facing a bare port that the test drives by hand.
PRELUDE = """
const { Session, RPCError } = await import("./modules/rpc/session.js");
const { PostMessageTransport, ENVELOPE } = await import("./modules/rpc/transport.js");
const { encode, decode, RemoteError } = await import("./modules/rpc/codec.js");
function pair(options) {
  const { port1, port2 } = new MessageChannel();
  return [new Session(new PostMessageTransport(port1), options), new Session(new PostMessageTransport(port2), options)];
}
function raw() {
  const { port1, port2 } = new MessageChannel();
  const inbox = [];
  let wake = () => {};
  port2.onmessage = ({ data }) => { inbox.push(data); wake(); };
  const next = async () => {
    while (!inbox.length) await new Promise((resolve) => { wake = resolve; });
    return inbox.shift();
  };
  const send = (data, transfer = []) => port2.postMessage(data, transfer);
  const rpc = (message) => send({ [ENVELOPE]: message });
  return { session: new Session(new PostMessageTransport(port1)), next, send, rpc };
}
const tick = () => new Promise((resolve) => setTimeout(resolve, 20));
"""


def run(page: Page, body: str):
    return page.evaluate(f"async () => {{ {PRELUDE}\n{body} }}")


@pytest.fixture
def blank(page: Page, modules_url: str) -> Page:
    page.goto(modules_url + "blank.html")
    return page


def test_calls_both_ways_with_interfaces_and_callbacks(blank: Page) -> None:
    result = run(blank, """
      const [host, plugin] = pair();
      const log = [];
      await host.setRoot({ log: (text) => { log.push(text); return text.length; }, version: "1.0" });
      class Plugin {
        constructor() { this.runs = 0; this._secret = "x"; }
        async setup() { this.api = await plugin.remoteRoot; return "ready"; }
        run(ctx) { this.runs += 1; return this.api.log(`run ${ctx.n} #${this.runs}`); }
        map(items, fn) { return Promise.all(items.map((item) => fn(item))); }
        _private() {}
      }
      await plugin.export(new Plugin());
      const api = await host.remoteRoot;
      const nested = { tools: { double: (x) => 2 * x }, data: [1, "a", null, true, { k: 2.5 }] };
      return {
        hostSees: Object.keys(api).sort(),
        pluginSees: Object.keys(await plugin.remoteRoot).sort(),
        setup: await api.setup(),
        runs: [await api.run({ n: 7 }), await api.run({ n: 8 })],
        log,
        mapped: await api.map([1, 2, 3], async (x) => x * 10),
        syncCallback: await api.map([4], (x) => x + 1),
        nested: await (async () => {
          const [a, b] = pair();
          await b.setRoot({ echo: (x) => x, apply: (obj, x) => obj.tools.double(x) });
          const root = await a.remoteRoot;
          const echoed = await root.echo(nested);
          return { data: echoed.data, applied: await root.apply(nested, 21), proxied: await echoed.tools.double(4),
                   name: echoed.tools.double.name, undef: await root.echo([undefined, 1]) };
        })(),
      };
    """)
    assert result["hostSees"] == ["map", "run", "runs", "setup"]  # no _private, no constructor
    assert result["pluginSees"] == ["log", "version"]
    assert result["setup"] == "ready"
    assert result["runs"] == [len("run 7 #1"), len("run 8 #2")]  # `this` is the plugin object
    assert result["log"] == ["run 7 #1", "run 8 #2"]
    assert result["mapped"] == [10, 20, 30]
    assert result["syncCallback"] == [5]
    nested = result["nested"]
    assert nested["data"] == [1, "a", None, True, {"k": 2.5}]
    assert nested["applied"] == 42 and nested["proxied"] == 8 and nested["name"] == "double"
    assert nested["undef"] == [None, 1]


def test_errors_carry_type_message_and_stack(blank: Page) -> None:
    result = run(blank, """
      const [a, b] = pair();
      await b.setRoot({
        fails: function checkInput() { throw new TypeError("expected a number"); },
        failsLater: async () => { await tick(); throw new RangeError("too far"); },
        throwsString: () => { throw "plain text"; },
        returnsError: () => new SyntaxError("as a value"),
        returnsMap: () => new Map(),
        passesOn: async (f) => f(),
      });
      const root = await a.remoteRoot;
      const caught = (promise) => promise.then(() => null, (e) => ({
        name: e.name, remoteType: e.remoteType, message: e.message, remoteMessage: e.remoteMessage, traceback: e.traceback, isError: e instanceof Error,
        isRemote: e instanceof RemoteError }));
      const value = await root.returnsError();
      return {
        thrown: await caught(root.fails()),
        async: await caught(root.failsLater()),
        string: await caught(root.throwsString()),
        value: { name: value.name, remoteType: value.remoteType, message: value.message },
        unencodableResult: await caught(root.returnsMap()),
        unencodableArg: await caught(root.passesOn(new WeakMap())),
        // An error from a callback comes back through the remote function unchanged in kind.
        throughCallback: await caught(root.passesOn(() => { throw new URIError("inner"); })),
        stillWorks: await root.passesOn(() => 5),
      };
    """)
    thrown = result["thrown"]
    assert thrown["name"] == "RemoteError" and thrown["isError"] and thrown["isRemote"]
    # The message names the type, as String(error) and imjoy-rpc show it; remoteMessage is the text alone.
    assert thrown["remoteType"] == "TypeError" and thrown["message"] == "TypeError: expected a number"
    assert thrown["remoteMessage"] == "expected a number"
    assert thrown["traceback"].startswith("TypeError: expected a number\n") and "checkInput" in thrown["traceback"]
    assert result["async"]["remoteType"] == "RangeError" and result["async"]["message"] == "RangeError: too far"
    assert result["string"]["remoteType"] == "Error" and result["string"]["message"] == "Error: plain text"
    assert result["value"] == {"name": "RemoteError", "remoteType": "SyntaxError", "message": "SyntaxError: as a value"}
    assert result["unencodableResult"]["remoteType"] == "TypeError"
    assert "could not send the result: cannot send a Map" in result["unencodableResult"]["message"]
    # An argument that cannot be encoded fails the call here, before anything is sent.
    assert result["unencodableArg"]["name"] == "TypeError" and "cannot send a WeakMap" in result["unencodableArg"]["message"]
    assert result["throughCallback"]["remoteType"] == "URIError" and result["throughCallback"]["message"] == "URIError: inner"
    assert result["stillWorks"] == 5


def test_wire_format_malformed_messages_and_foreign_traffic(blank: Page) -> None:
    """A raw port plays the other side: it sees the wire forms of PROTOCOL.md and sends bad
    messages; the session answers calls with errors and carries on."""
    result = run(blank, """
      const { session, next, send, rpc } = raw();
      await session.setRoot({ add: (x, y) => x + y, kw: (a, options) => [a, options], name: "demo" });
      const root = await next();
      const target = root[ENVELOPE].value.add._rtarget;
      const answers = [];
      const ask = async (message) => { rpc(message); answers.push((await next())[ENVELOPE]); };
      send({ type: "result", id: "1", value: 99 });         // a worker's own message: not ours
      send("boot");                                          // nor this
      await ask({ type: "call", id: "c1", target: "nope", args: [], kwargs: {} });
      await ask({ type: "call", id: "c2", target, args: "not a list", kwargs: {} });
      await ask({ type: "call", id: "c3", target, args: [{ _rtype: "method" }], kwargs: {} });
      rpc(42); rpc({ type: "teleport" }); rpc({ type: "release", targets: null });
      rpc({ type: "result", id: "unknown", value: 1 });
      await ask({ type: "call", id: "c4", target, args: [20, 22], kwargs: {} });
      await ask({ type: "call", id: "c5", target: root[ENVELOPE].value.kw._rtarget, args: [1], kwargs: { scale: 2 } });
      rpc({ type: "call", id: null, target, args: [1, 1], kwargs: {} });  // no reply wanted
      await tick();
      return { root: root[ENVELOPE], answers, extra: await Promise.race([next(), tick().then(() => "none")]) };
    """)
    root = result["root"]
    assert root["type"] == "root"
    assert root["value"]["_rintf"] is True and root["value"]["name"] == "demo"
    assert root["value"]["add"] == {"_rtype": "method", "_rtarget": root["value"]["add"]["_rtarget"], "_rname": "add"}
    assert isinstance(root["value"]["add"]["_rtarget"], str)
    unknown, bad_args, bad_value, ok, kwargs = result["answers"]
    assert unknown["type"] == "error" and unknown["id"] == "c1"
    assert unknown["error"]["_rtype"] == "error" and unknown["error"]["type"] == "RPCError"
    assert 'unknown target "nope"' in unknown["error"]["message"]
    assert bad_args["type"] == "error" and "malformed call" in bad_args["error"]["message"]
    assert bad_value["type"] == "error" and "method value: _rtarget should be a string" in bad_value["error"]["message"]
    assert ok == {"type": "result", "id": "c4", "value": 42}
    assert kwargs["value"] == [1, {"scale": 2, "_rkwargs": True}]
    assert result["extra"] == "none"  # nothing answers a call with a null id, nor foreign messages


def test_transport_keeps_early_messages_and_ignores_foreign_ones(blank: Page) -> None:
    result = run(blank, """
      const { port1, port2 } = new MessageChannel();
      const transport = new PostMessageTransport(port1);
      const buffer = new Uint8Array([1, 2, 3]).buffer;
      port2.postMessage({ type: "call", id: "x" });                 // not enveloped: someone else's
      port2.postMessage({ [ENVELOPE]: { type: "root", value: 1 } });
      port2.postMessage({ [ENVELOPE]: { type: "root", value: { _rtype: "memoryview", _rvalue: buffer } } }, [buffer]);
      await tick();                                                   // they arrive before any handler
      const got = [];
      transport.onMessage = (message) => got.push(message);
      const echoed = new Promise((resolve) => { port2.onmessage = ({ data }) => resolve(data); });
      const out = new Float32Array(4).buffer;
      transport.send({ type: "result", id: "1", value: { _rtype: "memoryview", _rvalue: out } }, [out]);
      const reply = await echoed;
      transport.close();
      port2.postMessage({ [ENVELOPE]: { type: "root", value: 2 } });
      await tick();
      return { got: got.map((m) => [m.type, m.value._rvalue ? [...new Uint8Array(m.value._rvalue)] : m.value]),
               reply: Object.keys(reply), moved: out.byteLength, sent: buffer.byteLength };
    """)
    assert result["got"] == [["root", 1], ["root", [1, 2, 3]]]  # kept until a handler came; nothing after close
    assert result["reply"] == ["_pyjoy_rpc"]
    assert result["moved"] == 0 and result["sent"] == 0


def test_big_buffers_go_in_chunks_and_arrive_whole_in_order(blank: Page) -> None:
    result = run(blank, """
      const { CHUNK, CHUNKED } = await import("./modules/rpc/transport.js");
      const { port1, port2 } = new MessageChannel();
      // Count what crosses the wire by watching the receiving port first.
      const wire = [];
      port2.addEventListener("message", ({ data }) => wire.push(Object.hasOwn(data, CHUNK) ? "chunk" : "message"));
      const sender = new PostMessageTransport(port1, { chunkBytes: 1000 });
      const receiver = new PostMessageTransport(port2);
      const got = [];
      receiver.onMessage = (message) => got.push(message);
      const bytes = (n, seed) => { const a = new Uint8Array(n); for (let i = 0; i < n; i++) a[i] = (i * 7 + seed) % 251; return a.buffer; };
      const big = bytes(4500, 1), small = bytes(10, 2), other = bytes(2001, 3);
      const sent = sender.send({ type: "result", id: "1", value: { a: [big, { b: small }], c: other } }, [big, small, other]);
      const detachedAtOnce = big.detached && small.detached && other.detached;
      sender.send({ type: "result", id: "2", value: "after" });     // waits for the first
      await sent;
      await tick();
      const sum = (buffer) => new Uint8Array(buffer).reduce((s, x) => s + x, 0);
      const first = got[0].value;
      return {
        order: got.map((m) => m.id), detachedAtOnce, wire,
        sizes: [first.a[0].byteLength, first.a[1].b.byteLength, first.c.byteLength],
        sums: [sum(first.a[0]), sum(first.a[1].b), sum(first.c)],
        expected: [sum(bytes(4500, 1)), sum(bytes(10, 2)), sum(bytes(2001, 3))],
        last: got[1].value,
      };
    """)
    assert result["order"] == ["1", "2"] and result["last"] == "after"
    assert result["detachedAtOnce"]
    assert result["sizes"] == [4500, 10, 2001] and result["sums"] == result["expected"]
    # 4500 bytes in 5 pieces, 2001 in 3, the small one inside the message itself.
    assert result["wire"] == ["chunk"] * 8 + ["message", "message"]


def test_a_session_over_a_chunked_port_moves_arrays_both_ways(blank: Page) -> None:
    result = run(blank, """
      const { port1, port2 } = new MessageChannel();
      const host = new Session(new PostMessageTransport(port1, { chunkBytes: 4096 }));
      const plugin = new Session(new PostMessageTransport(port2, { chunkBytes: 4096 }));
      await plugin.setRoot({ double: (array) => {
        const values = new Float32Array(array._rvalue);
        return { _rtype: "ndarray", _rvalue: values.map((x) => x * 2), _rshape: array._rshape, _rdtype: "float32" };
      } });
      const api = await host.remoteRoot;
      const input = Float32Array.from({ length: 100000 }, (_, i) => i % 1000);
      const out = await api.double({ _rtype: "ndarray", _rvalue: input, _rshape: [100, 1000], _rdtype: "float32" });
      const doubled = new Float32Array(out._rvalue);
      let ok = doubled.length === 100000;
      for (let i = 0; i < doubled.length; i++) if (doubled[i] !== 2 * (i % 1000)) ok = false;
      return { ok, shape: out._rshape, moved: input.byteLength === 0 };
    """)
    assert result == {"ok": True, "shape": [100, 1000], "moved": True}


def test_the_same_function_keeps_one_id_until_released(blank: Page) -> None:
    result = run(blank, """
      const { session, next, rpc } = raw();
      const callback = () => "hi";
      await session.setRoot({ give: () => [callback, callback] });
      const give = (await next())[ENVELOPE].value.give._rtarget;
      const base = session.stats().stored;
      const ask = async (id) => { rpc({ type: "call", id, target: give, args: [], kwargs: {} }); return (await next())[ENVELOPE].value; };
      const first = await ask("1"), second = await ask("2");
      const ids = [...first, ...second].map((m) => m._rtarget);
      const held = session.stats().stored - base;
      rpc({ type: "release", targets: { [ids[0]]: 3 } });   // received 4 times, released 3
      await tick();
      const afterPartial = session.stats().stored - base;
      rpc({ type: "call", id: "3", target: ids[0], args: [], kwargs: {} });
      const stillCallable = (await next())[ENVELOPE].value;
      rpc({ type: "release", targets: { [ids[0]]: 1 } });
      await tick();
      const afterAll = session.stats().stored - base;
      rpc({ type: "release", targets: { [give]: 100 } });    // roots are pinned
      await tick();
      return { ids, held, afterPartial, stillCallable, afterAll, rootKept: session.stats().stored, pinned: session.stats().pinned };
    """)
    assert len(set(result["ids"])) == 1
    assert result["held"] == 1 and result["afterPartial"] == 1 and result["stillCallable"] == "hi"
    assert result["afterAll"] == 0
    assert result["rootKept"] == 1 and result["pinned"] == 1


def test_typed_arrays_of_every_dtype_and_buffers_round_trip(blank: Page) -> None:
    result = run(blank, """
      const [a, b] = pair();
      await b.setRoot({ echo: (x) => x });
      const { echo } = await a.remoteRoot;
      const kinds = { int8: Int8Array, uint8: Uint8Array, int16: Int16Array, uint16: Uint16Array, int32: Int32Array,
        uint32: Uint32Array, int64: BigInt64Array, uint64: BigUint64Array, float32: Float32Array, float64: Float64Array };
      const out = {};
      for (const [dtype, Type] of Object.entries(kinds)) {
        const big = Type.name.startsWith("Big");
        const values = [0, 1, 2, 100, 127].map((v) => (big ? BigInt(v) : v));
        const back = await echo(new Type(values));
        out[dtype] = { type: back.constructor.name, same: back.every((v, i) => v === values[i]) };
      }
      const whole = new Float32Array([1.5, 2.5, 3.5]);
      const parent = new Int16Array([1, 2, 3, 4]);
      const part = parent.subarray(1, 3);
      const bytes = new Uint8Array([9, 8, 7]).buffer;
      const view = new DataView(new ArrayBuffer(4));
      view.setUint8(3, 200);
      const [w, p, m, d, shared] = await echo([whole, part, bytes, view, new Int32Array(new SharedArrayBuffer(8)).fill(3)]);
      // A bool typedarray comes from Python: decoded as 0/1 bytes.
      const bools = decode({ _rtype: "typedarray", _rvalue: new Uint8Array([1, 0, 1]).buffer, _rdtype: "bool" }, { codecs: new Map() });
      const huge = await echo(9007199254740993n);
      return {
        out, bools: [bools.constructor.name, [...bools]], huge: String(huge),
        whole: [w.constructor.name, [...w], whole.byteLength, whole.buffer.detached],  // moved: the source is detached
        part: [[...p], p.byteOffset, parent.buffer.detached, [...parent]],            // copied: the parent is intact
        memoryview: [m.constructor.name, [...new Uint8Array(m)]],
        dataview: [d.constructor.name, [...d]],
        shared: [shared.constructor.name, [...shared], shared.buffer.constructor.name],
        resend: await echo(whole).then(() => "sent", (e) => e.message),
      };
    """)
    for dtype, got in result["out"].items():
        assert got["same"], dtype
    assert result["out"]["int64"]["type"] == "BigInt64Array" and result["out"]["float32"]["type"] == "Float32Array"
    assert result["bools"] == ["Uint8Array", [1, 0, 1]]
    assert result["huge"] == "9007199254740993"
    assert result["whole"] == ["Float32Array", [1.5, 2.5, 3.5], 0, True]
    assert result["part"] == [[2, 3], 0, False, [1, 2, 3, 4]]
    assert result["memoryview"] == ["ArrayBuffer", [9, 8, 7]]
    assert result["dataview"] == ["Uint8Array", [0, 0, 0, 200]]
    assert result["shared"] == ["Int32Array", [3, 3], "ArrayBuffer"]
    assert "detached ArrayBuffer" in result["resend"]


def test_blob_and_file_round_trip(blank: Page) -> None:
    result = run(blank, """
      const [a, b] = pair();
      await b.setRoot({ describe: async (blob) => [blob.constructor.name, blob.type, blob.name ?? null, await blob.text()],
                        echo: (x) => x });
      const root = await a.remoteRoot;
      const blob = new Blob(["hello ", "blob"], { type: "text/plain" });
      const file = new File([new Uint8Array([0, 255, 1])], "image.raw", { type: "application/octet-stream" });
      const [b2, f2] = await root.echo([blob, file]);
      return {
        seen: [await root.describe(blob), await root.describe(new File(["x"], "a.txt"))],
        blob: [b2.constructor.name, b2.type, await b2.text()],
        file: [f2 instanceof File, f2.name, f2.type, [...new Uint8Array(await f2.arrayBuffer())]],
        sourceUsable: await blob.text(),
      };
    """)
    assert result["seen"] == [["Blob", "text/plain", None, "hello blob"], ["File", "", "a.txt", "x"]]
    assert result["blob"] == ["Blob", "text/plain", "hello blob"]
    assert result["file"] == [True, "image.raw", "application/octet-stream", [0, 255, 1]]
    assert result["sourceUsable"] == "hello blob"  # a Blob's bytes are read, not moved


def test_custom_codec(blank: Page) -> None:
    result = run(blank, """
      class Point { constructor(x, y) { this.x = x; this.y = y; } norm() { return Math.hypot(this.x, this.y); } }
      class Color { constructor(hex) { this.hex = hex; } }
      const codecs = [
        { name: "point", type: Point, encoder: (p) => ({ x: p.x, y: p.y }), decoder: (w) => new Point(w.x, w.y) },
        { name: "color", type: Color, encoder: async (c) => ({ hex: c.hex }),
          decoder: (w) => { if ("_rtype" in w) throw new Error("_rtype should be removed"); return new Color(w.hex); } },
      ];
      const [a, b] = pair({ codecs });
      await b.setRoot({ check: (p, c) => [p instanceof Point, p.norm(), c instanceof Color, c.hex], echo: (x) => x });
      const root = await a.remoteRoot;
      const wire = await encode([new Point(3, 4), new Color("#fff")], { codecs: new Map(codecs.map((c) => [c.name, c])),
                                                                       transfer: new Set(), method: () => "0" });
      const back = await root.echo({ p: new Point(6, 8) });
      // Without the codec a class instance is an interface of its members, not a Point.
      const [c, d] = pair();
      await d.setRoot({ echo: (x) => x });
      const plain = await (await c.remoteRoot).echo(new Point(1, 1));
      // A codec's form arriving where that codec is unknown stays a plain object.
      const unknown = decode({ _rtype: "point", x: 1, y: 2 }, { codecs: new Map() });
      const refused = [];
      try { a.registerCodec({ name: "ndarray", type: Point, encoder: () => ({}) }); } catch (e) { refused.push(e.message); }
      a.registerCodec({ name: "bad", type: Date, encoder: (d) => d.getTime() });
      refused.push(await root.echo(new Date()).catch((e) => e.message));
      return { wire, checked: await root.check(new Point(3, 4), new Color("#abc")), back: [back.p instanceof Point, back.p.norm()],
               plain: [plain instanceof Point, Object.keys(plain).sort(), await plain.norm()], unknown, refused };
    """)
    assert result["wire"] == [{"_rtype": "point", "x": 3, "y": 4}, {"_rtype": "color", "hex": "#fff"}]
    assert result["checked"] == [True, 5, True, "#abc"]
    assert result["back"] == [True, 10]
    assert result["plain"] == [False, ["norm", "x", "y"], 2 ** 0.5]
    assert result["unknown"] == {"_rtype": "point", "x": 1, "y": 2}
    assert "ndarray is a built-in _rtype" in result["refused"][0]
    assert result["refused"][1] == "codec bad: the encoder returned number, not a plain object"


def test_close_fails_pending_calls(blank: Page) -> None:
    result = run(blank, """
      const outcome = (p) => p.then((v) => ["resolved", v], (e) => [e.name, e.message]);
      const [a, b] = pair();
      await b.setRoot({ hang: () => new Promise(() => {}), quick: () => 1 });
      const root = await a.remoteRoot;
      const local = [root.hang(), root.hang()];
      await tick();
      a.close("host shutting down");
      const [c, d] = pair();
      await d.setRoot({ hang: () => new Promise(() => {}) });
      const remote = (await c.remoteRoot).hang();
      await tick();
      d.close("plugin crashed");
      const [e, f] = pair();
      const noRoot = e.remoteRoot;
      e.close("never started");
      return {
        local: await Promise.all(local.map(outcome)),
        afterClose: await outcome(root.quick()),
        remoteSide: [await b.closed, b.stats(), a.stats()],
        remote: await outcome(remote),
        remoteClosed: await c.closed,
        noRoot: await outcome(noRoot),
      };
    """)
    for name, message in result["local"]:
        assert name == "RPCError" and message == "the RPC session is closed: host shutting down"
    assert result["afterClose"][1] == "the RPC session is closed: host shutting down"
    reason, b_stats, a_stats = result["remoteSide"]
    assert reason == "the other side closed: host shutting down"  # the words of session.py
    assert b_stats == a_stats == {"stored": 0, "pinned": 0, "proxies": 0, "pending": 0}
    assert result["remote"] == ["RPCError", "the RPC session is closed: the other side closed: plugin crashed"]
    assert result["remoteClosed"] == "the other side closed: plugin crashed"
    assert result["noRoot"] == ["RPCError", "the RPC session is closed: never started"]


def test_dispose_releases_at_once(blank: Page) -> None:
    result = run(blank, """
      const [a, b] = pair();
      await b.setRoot({ make: () => ({ one: () => 1, two: () => 2 }) });
      const root = await a.remoteRoot;
      const base = b.stats().stored;
      const made = await root.make();
      const held = b.stats().stored - base;
      a.dispose(made);
      await tick();
      return { held, after: b.stats().stored - base, call: await made.one().then(() => "called", (e) => e.message),
               rootStill: typeof (await root.make()).two };
    """)
    assert result["held"] == 2 and result["after"] == 0
    assert "disposed" in result["call"]
    assert result["rootStill"] == "function"


def test_a_64_mb_ndarray_moves_to_a_worker_and_back(blank: Page, modules_url: str) -> None:
    """A real Worker thread: the buffer is transferred both ways (each sender's copy is
    detached), and a checksum computed on each side matches."""
    result = run(blank, f"""
      const base = {modules_url!r};
      const source = `
        import {{ Session }} from "${{base}}modules/rpc/session.js";
        import {{ PostMessageTransport }} from "${{base}}modules/rpc/transport.js";
        self.postMessage({{ type: "booting" }});  // the worker's own message on the same channel
        ${{checksum.toString()}}
        const session = new Session(new PostMessageTransport(self));
        let last;
        session.setRoot({{
          roundTrip(nd) {{ last = nd._rvalue; return {{ nd, sum: checksum(new Float32Array(nd._rvalue)), where: self.constructor.name }}; }},
          lastLength: () => last.byteLength,
        }});
      `;
      function checksum(values) {{
        const words = new Uint32Array(values.buffer, values.byteOffset, values.length);
        let hash = 0;
        for (let i = 0; i < words.length; i++) hash = (Math.imul(hash, 31) + words[i]) >>> 0;
        return hash;
      }}
      const url = URL.createObjectURL(new Blob([source], {{ type: "text/javascript" }}));
      const worker = new Worker(url, {{ type: "module" }});
      const own = new Promise((resolve) => worker.addEventListener("message", ({{ data }}) => data.type === "booting" && resolve(data)));
      const session = new Session(new PostMessageTransport(worker));
      const root = await session.remoteRoot;
      const values = new Float32Array(16 * 1024 * 1024);  // 64 MB
      for (let i = 0; i < values.length; i++) values[i] = (i % 4099) * 0.25 - 7;
      const sent = checksum(values);
      const started = performance.now();
      const back = await root.roundTrip({{ _rtype: "ndarray", _rvalue: values.buffer, _rshape: [4096, 4096], _rdtype: "float32" }});
      const ms = performance.now() - started;
      const received = new Float32Array(back.nd._rvalue);
      const result = {{
        sent, workerSum: back.sum, backSum: checksum(received), where: back.where, shape: back.nd._rshape, dtype: back.nd._rdtype,
        sourceLength: values.buffer.byteLength, sourceDetached: values.buffer.detached, receivedBytes: received.byteLength,
        workerCopyLength: await root.lastLength(), ownMessage: (await own).type, ms,
      }};
      session.close("done");
      worker.terminate();
      return result;
    """)
    assert result["where"] == "DedicatedWorkerGlobalScope"
    assert result["sent"] == result["workerSum"] == result["backSum"]
    assert result["shape"] == [4096, 4096] and result["dtype"] == "float32"
    assert result["receivedBytes"] == 64 * 1024 * 1024
    assert result["sourceLength"] == 0 and result["sourceDetached"] is True  # moved, not copied
    assert result["workerCopyLength"] == 0  # the worker's side moved it back, too
    assert result["ownMessage"] == "booting"  # the worker's own message reached its listener, not the session


@pytest.fixture
def gc_page(playwright: Playwright, modules_url: str) -> Iterator[Page]:
    """A page in a Chromium whose JavaScript may call gc(), to see lifetimes end for real."""
    browser = playwright.chromium.launch(**launch_options(args=["--js-flags=--expose-gc"]))
    page = browser.new_page()
    page.goto(modules_url + "blank.html")
    yield page
    browser.close()


def test_no_leak_over_10000_calls_with_callbacks(gc_page: Page) -> None:
    result = run(gc_page, """
      const [host, plugin] = pair();
      const kept = [];
      await plugin.setRoot({
        apply: async (fn, x) => fn(x),
        keep: (fn) => { kept.push(fn); },
        callKept: () => kept[0](41),
        dropKept: () => { kept.length = 0; },
      });
      const api = await host.remoteRoot;
      // FinalizationRegistry callbacks run in a task some time after a collection.
      const collect = async (done, rounds = 100) => {
        for (let i = 0; i < rounds && !done(); i++) { gc(); await tick(); }
        return done();
      };
      const baseline = () => ({ host: host.stats(), plugin: plugin.stats() });
      const before = baseline();
      let sum = 0;
      for (let batch = 0; batch < 100; batch++) {
        const calls = [];
        for (let i = 0; i < 100; i++) calls.push(api.apply((x) => x + 1, batch * 100 + i));
        for (const value of await Promise.all(calls)) sum += value;
      }
      const during = baseline();
      const settled = () => host.stats().stored === before.host.stored && plugin.stats().proxies === before.plugin.proxies;
      const returned = await collect(settled);
      const after = baseline();
      // A callback the other side still holds is not released by GC, and still works.
      await api.keep((x) => x + 1);
      await collect(() => false, 10);
      const heldAfterGc = host.stats().stored - before.host.stored;
      const stillCallable = await api.callKept();
      await api.dropKept();
      const releasedAtLast = await collect(settled);
      return { sum, before, during, after, returned, heldAfterGc, stillCallable, releasedAtLast };
    """)
    assert result["sum"] == sum(range(1, 10_001))
    assert result["during"]["host"]["stored"] > 0  # callbacks were held until collected
    assert result["returned"] and result["after"] == result["before"], result
    assert result["after"]["host"]["pending"] == 0
    assert result["heldAfterGc"] == 1 and result["stillCallable"] == 42
    assert result["releasedAtLast"] is True


def test_a_hostile_plugin_cannot_make_the_page_decode_or_hold_without_bound(page: Page, base_url: str) -> None:
    """A real plugin in its frame (tests/plugins/hostile/rpc_floods_the_decoder.imjoy.html)
    answers with messages that explode when walked, an absurd ndarray, and chunked buffers
    that claim what they never send: each call fails with an error naming why, at once, the
    page keeps no buffer and never stalls, and the plugin still answers."""
    hostile = (Path(__file__).parent / "plugins" / "hostile" / "rpc_floods_the_decoder.imjoy.html").read_text()
    page.goto(base_url)
    page.evaluate("pyjoy.ready")
    result = page.evaluate("""async (source) => {
      let longest = 0;
      new PerformanceObserver((list) => { for (const task of list.getEntries()) longest = Math.max(longest, task.duration); })
        .observe({ type: "longtask" });
      const plugin = await pyjoy.loadPlugin(source);
      const outcome = async (call) => {
        const start = performance.now();
        try { return { value: await call(), ms: performance.now() - start }; }
        catch (error) { return { name: error.name, message: error.message, ms: performance.now() - start }; }
      };
      const out = {};
      for (const name of ["bomb", "cycle", "absurdNdarray", "huge", "stalled"]) out[name] = await outcome(() => plugin[name]());
      out.echo = await plugin.echo("still here");
      await new Promise((resolve) => setTimeout(resolve, 100)); // long tasks are reported after they end
      out.longest = longest;
      return out;
    }""", hostile)
    expected = {"bomb": "too large", "cycle": "too deep", "absurdNdarray": "shape", "huge": "over the limit",
                "stalled": "did not arrive whole"}
    for name, words in expected.items():
        assert "value" not in result[name] and words in result[name]["message"], (name, result[name])
        assert result[name]["ms"] < 5000, (name, result[name])
    assert result["echo"] == "still here"
    assert result["longest"] < 1000, result["longest"]  # a naive walk of 2**30 values takes minutes
