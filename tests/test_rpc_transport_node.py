"""The JS transport (app/rpc/transport.js) against a hostile sender, under Node, no browser: a
Session over a PostMessageTransport on one end of a MessageChannel, and the test posting raw
pieces and messages on the other end, as a broken or hostile plugin could. Each hostile
transfer must be refused with an RPCError for its call, its memory freed, and fast."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import { Session } from "./app/rpc/session.js";
import { CHUNK, CHUNKED, ENVELOPE, MAX_ASSEMBLING_BUFFERS, MAX_CHUNKED_BUFFER_BYTES, PLACEHOLDER, PROBLEM,
  PostMessageTransport, chunkingEndpoint } from "./app/rpc/transport.js";

// Node 20 lacks ArrayBuffer.prototype.transfer (Chromium has it): a copy, the original detached.
ArrayBuffer.prototype.transfer ??= function () {
  const copy = this.slice(0);
  structuredClone(this, { transfer: [this] });
  return copy;
};
console.warn = () => {}; // dropped pieces are warned about; they are expected here

const out = {};
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// A session (its root: size(buffer) -> byteLength) facing a raw port the test drives.
async function hostile() {
  const { port1, port2 } = new MessageChannel();
  const transport = new PostMessageTransport(port1, { chunkTimeoutMs: 100 });
  const session = new Session(transport);
  await session.setRoot({ size: (wire) => wire.byteLength });
  const inbox = [];
  port2.onmessage = ({ data }) => inbox.push(data[ENVELOPE]);
  await sleep(10);
  const target = inbox.shift().value.size._rtarget;
  const piece = (buffer, offset, size, bytes) => port2.postMessage({ [CHUNK]: { buffer, offset, size }, bytes }, [bytes]);
  const call = (id, buffers) => port2.postMessage({
    [ENVELOPE]: { type: "call", id, target, args: [{ _rtype: "memoryview", _rvalue: { [PLACEHOLDER]: buffers[0] } }], kwargs: {} },
    [CHUNKED]: buffers,
  });
  const answer = async (id) => {
    for (let i = 0; i < 100 && !inbox.some((m) => m.id === id); i++) await sleep(5);
    const message = inbox.find((m) => m.id === id);
    return message?.type === "result" ? { value: message.value } : { type: message?.error.type, message: message?.error.message };
  };
  return { transport, session, target, inbox, piece, call, answer, port2, close: () => { session.close(); port2.close(); } };
}

// The positive control: a sending transport that chunks, to a session that answers.
{
  const { port1, port2 } = new MessageChannel();
  const receiver = new Session(new PostMessageTransport(port1));
  await receiver.setRoot({ sum: (wire) => new Uint8Array(wire).reduce((a, b) => a + b, 0) });
  const sender = new Session(new PostMessageTransport(port2, { chunkBytes: 1000 }));
  const api = await sender.remoteRoot;
  const bytes = new Uint8Array(10_500).fill(1);
  out.control = await api.sum(bytes.buffer);
  receiver.close();
}

{
  const t = await hostile();
  const start = performance.now();
  t.piece("huge", 0, 2 ** 40, new ArrayBuffer(8));
  t.call("c1", ["huge"]);
  out.huge = await t.answer("c1");
  t.piece("over", 0, MAX_CHUNKED_BUFFER_BYTES + 1, new ArrayBuffer(8));
  t.call("c1b", ["over"]);
  out.overLimit = await t.answer("c1b");
  t.piece("neg", 0, -5, new ArrayBuffer(8));
  t.call("c1c", ["neg"]);
  out.negative = await t.answer("c1c");

  // A piece past the end of its buffer, and one out of order.
  t.piece("past", 0, 8, new ArrayBuffer(4));
  t.piece("past", 4, 8, new ArrayBuffer(8));
  t.call("c2", ["past"]);
  out.past = await t.answer("c2");
  t.piece("order", 0, 8, new ArrayBuffer(4));
  t.piece("order", 6, 8, new ArrayBuffer(2));
  t.call("c3", ["order"]);
  out.order = await t.answer("c3");
  t.piece("resized", 0, 8, new ArrayBuffer(4));
  t.piece("resized", 4, 16, new ArrayBuffer(4));
  t.call("c3b", ["resized"]);
  out.resized = await t.answer("c3b");

  // Incomplete when its message comes: refused, and freed.
  t.piece("half", 0, 8, new ArrayBuffer(4));
  await sleep(5);
  out.halfAssembling = t.transport.stats();
  t.call("c4", ["half"]);
  out.half = await t.answer("c4");
  out.afterHalf = t.transport.stats();

  // A message naming a buffer that never came.
  t.call("c5", ["never"]);
  out.never = await t.answer("c5");

  // Never completed, and its message never sent: dropped after the timeout, the message
  // that comes later refused with the reason.
  t.piece("stalled", 0, 1 << 20, new ArrayBuffer(1024));
  await sleep(5);
  out.stalledAssembling = t.transport.stats();
  await sleep(300);
  out.afterTimeout = t.transport.stats();
  t.call("c6", ["stalled"]);
  out.stalled = await t.answer("c6");

  // Two of the largest claims are assembled at once, a third is refused; the claims cost
  // no memory until bytes come (allocation is lazy), and all is freed with their messages.
  t.piece("big1", 0, MAX_CHUNKED_BUFFER_BYTES, new ArrayBuffer(8));
  t.piece("big2", 0, MAX_CHUNKED_BUFFER_BYTES, new ArrayBuffer(8));
  t.piece("big3", 0, MAX_CHUNKED_BUFFER_BYTES, new ArrayBuffer(8));
  t.call("c8", ["big3"]);
  out.total = await t.answer("c8");
  await sleep(5);
  out.rssMB = process.memoryUsage().rss / 2 ** 20;
  t.call("c9", ["big1", "big2"]);
  out.totalFreed = [await t.answer("c9"), t.transport.stats()];

  // More buffers at once than the bound: the one past it is refused.
  for (let i = 0; i <= MAX_ASSEMBLING_BUFFERS; i++) t.piece(`many${i}`, 0, 2, new ArrayBuffer(1));
  await sleep(20);
  out.manyAssembling = t.transport.stats();
  t.call("c7", [`many${MAX_ASSEMBLING_BUFFERS}`]);
  out.many = await t.answer("c7");

  await sleep(300); // their timeout
  out.manyFreed = t.transport.stats();

  // A message whose placeholders sit in shared references 30 deep: the transport walks each
  // object once and the session refuses the call, both at once.
  let bomb = { _rtype: "memoryview", _rvalue: { [PLACEHOLDER]: "b" } };
  for (let i = 0; i < 30; i++) bomb = [bomb, bomb];
  t.piece("b", 0, 4, new ArrayBuffer(4));
  t.port2.postMessage({ [ENVELOPE]: { type: "call", id: "c10", target: t.target, args: [bomb], kwargs: {} }, [CHUNKED]: ["b"] });
  out.bomb = await t.answer("c10");

  // An answer whose buffer did not arrive whole fails the call waiting for it.
  t.port2.postMessage({ [ENVELOPE]: { type: "root", value: { g: { _rtype: "method", _rtarget: "p1", _rname: "g" } } } });
  const api = await t.session.remoteRoot;
  const pending = api.g().then((value) => ({ value }), (error) => ({ type: error.name, message: error.message }));
  await sleep(10);
  const callId = t.inbox.findLast((m) => m.type === "call").id;
  t.piece("answer", 0, 8, new ArrayBuffer(4));
  t.port2.postMessage({ [ENVELOPE]: { type: "result", id: callId, value: { _rtype: "memoryview", _rvalue: { [PLACEHOLDER]: "answer" } } }, [CHUNKED]: ["answer"] });
  out.brokenAnswer = await pending;

  // Still serving: a whole buffer in two pieces.
  t.piece("ok", 0, 6, new ArrayBuffer(4));
  t.piece("ok", 4, 6, new ArrayBuffer(2));
  t.call("c11", ["ok"]);
  out.ok = await t.answer("c11");
  out.final = t.transport.stats();
  out.ms = performance.now() - start;
  t.close();
}
// chunkingEndpoint, the port Python's transport is given in another process than the page:
// what it posts goes in pieces, what comes in pieces reaches its listener whole (and what
// came before the listener is kept), a refused buffer's message comes with its PROBLEM.
{
  const { port1, port2 } = new MessageChannel();
  const endpoint = chunkingEndpoint(port1, { chunkBytes: 1000, chunkTimeoutMs: 100 });
  const raw = [];
  port2.onmessage = ({ data }) => raw.push(data);
  endpoint.postMessage({ [ENVELOPE]: { type: "result", id: "r1", value: "x" } }, []);
  const big = new Uint8Array(2500).fill(7).buffer;
  endpoint.postMessage({ [ENVELOPE]: { type: "result", id: "r2", value: big } }, [big]);
  await sleep(50);
  out.endpointPieces = raw.filter((data) => Object.hasOwn(data, CHUNK)).map((data) => data[CHUNK].offset);
  const last = raw.at(-1);
  out.endpointLast = { id: last[ENVELOPE]?.id, chunked: last[CHUNKED] };
  // The other way: a chunking sender to the endpoint, before and after its listener is set.
  const sender = new PostMessageTransport(port2, { chunkBytes: 1000 });
  await sender.send({ type: "call", id: "c1", value: new Uint8Array(2500).fill(3).buffer },
                    [/* the buffer */]);
  const whole = new Uint8Array(2500).fill(5).buffer;
  await sender.send({ type: "call", id: "c2", value: whole }, [whole]);
  port2.postMessage({ [CHUNK]: { buffer: "b", offset: 0, size: 10 }, bytes: new ArrayBuffer(4) });
  port2.postMessage({ [ENVELOPE]: { type: "call", id: "c3", value: { [PLACEHOLDER]: "b" } }, [CHUNKED]: ["b"] });
  await sleep(20);
  const heard = [];
  endpoint.addEventListener("message", ({ data }) => heard.push(data));
  await sleep(20);
  out.endpointHeard = heard.map((data) => ({ id: data[ENVELOPE].id, bytes: data[ENVELOPE].value?.byteLength ?? null,
    first: data[ENVELOPE].value instanceof ArrayBuffer ? new Uint8Array(data[ENVELOPE].value)[0] : null,
    problem: data[PROBLEM] ?? null }));
  endpoint.close();
  port2.close();
}
process.stdout.write(JSON.stringify(out));
process.exit(0);
"""


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if not shutil.which("node"):
        pytest.skip("needs Node")
    script = ROOT / ".transport_hostile_test.mjs"  # beside app/ so that its imports resolve
    script.write_text(SCRIPT)
    try:
        done = subprocess.run(["node", "--no-warnings", str(script)], capture_output=True, text=True, timeout=60,
                              cwd=ROOT)
    finally:
        script.unlink()
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def refused(answer: dict, *words: str) -> bool:
    return answer.get("type") == "RPCError" and all(word in answer["message"] for word in words)


def test_a_whole_chunked_buffer_arrives(out: dict) -> None:
    assert out["control"] == 10_500
    assert out["ok"] == {"value": 6}


def test_claimed_sizes_out_of_bounds_are_refused(out: dict) -> None:
    assert refused(out["huge"], '"huge"', "over the limit"), out["huge"]
    assert refused(out["overLimit"], "over the limit"), out["overLimit"]
    assert refused(out["negative"], "a size of -5"), out["negative"]


def test_pieces_outside_their_buffer_or_out_of_order_are_refused(out: dict) -> None:
    assert refused(out["past"], "past its end"), out["past"]
    assert refused(out["order"], "offset 6", "in order"), out["order"]
    assert refused(out["resized"], "size of 16"), out["resized"]


def test_incomplete_buffers_are_refused_and_freed(out: dict) -> None:
    assert out["halfAssembling"] == {"assembling": 1, "assemblingBytes": 8}
    assert refused(out["half"], "4 of its 8 bytes"), out["half"]
    assert out["afterHalf"] == {"assembling": 0, "assemblingBytes": 0}
    assert refused(out["never"], '"never"', "no piece of it came"), out["never"]


def test_a_stalled_buffer_is_freed_after_the_timeout(out: dict) -> None:
    assert out["stalledAssembling"] == {"assembling": 1, "assemblingBytes": 1 << 20}
    assert out["afterTimeout"] == {"assembling": 0, "assemblingBytes": 0}
    assert refused(out["stalled"], "the sender stopped"), out["stalled"]


def test_buffers_assembled_at_once_are_bounded(out: dict) -> None:
    assert refused(out["total"], "assembles at once"), out["total"]
    assert out["rssMB"] < 1024, out["rssMB"]  # 4 GiB claimed, a few bytes sent: nothing much allocated
    answer, stats = out["totalFreed"]
    assert refused(answer, "of its 2147483648 bytes"), answer
    assert stats == {"assembling": 0, "assemblingBytes": 0}
    assert out["manyAssembling"] == {"assembling": 1000, "assemblingBytes": 2000}
    assert refused(out["many"], "assembles at once"), out["many"]
    assert out["manyFreed"] == {"assembling": 0, "assemblingBytes": 0}


def test_an_answer_that_did_not_arrive_whole_fails_its_call(out: dict) -> None:
    assert refused(out["brokenAnswer"], '"answer"', "4 of its 8 bytes"), out["brokenAnswer"]


def test_an_exploding_message_is_refused_at_once(out: dict) -> None:
    assert refused(out["bomb"], "too large"), out["bomb"]
    assert out["ms"] < 10_000  # the whole run; a naive walk of 2**30 values would take minutes
    assert out["final"] == {"assembling": 0, "assemblingBytes": 0}


def test_the_endpoint_python_is_given_sends_and_takes_big_buffers_in_pieces(out: dict) -> None:
    assert out["endpointPieces"] == [0, 1000, 2000]  # 2500 bytes in pieces of 1000, then the message
    assert out["endpointLast"] == {"id": "r2", "chunked": ["0"]}
    heard = out["endpointHeard"]
    assert [h["id"] for h in heard] == ["c1", "c2", "c3"]  # kept until the listener came, in order
    assert heard[1] == {"id": "c2", "bytes": 2500, "first": 5, "problem": None}  # reassembled whole
    assert heard[2]["problem"] and "b" in heard[2]["problem"]  # 4 of 10 bytes came: refused, saying so
