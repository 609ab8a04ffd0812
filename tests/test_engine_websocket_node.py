"""The page's engine transport (app/rpc/websocket.js) under Node, no browser: a Session on a
channel of a ChannelSocket over a stand-in WebSocket that the test feeds raw frames, as a
broken or hostile engine could. Each bad frame fails the call it carries (with the bound it
broke) or becomes a notice; the socket stays and the next message is read. Sending is
checked against ENGINE.md's framing: a text frame, then pieces of PIECE_BYTES. A socket that
drops keeps its sessions and resumes on a new one, sending what the engine missed."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import { Session } from "./app/rpc/session.js";
import { ChannelSocket, MAX_BUFFERS, PIECE_BYTES } from "./app/rpc/websocket.js";

// Node 20 lacks these (Chromium has them).
ArrayBuffer.prototype.transfer ??= function () {
  const copy = this.slice(0);
  structuredClone(this, { transfer: [this] });
  return copy;
};
globalThis.WebSocket ??= { OPEN: 1 };
console.warn = () => {};

class FakeSocket extends EventTarget {
  readyState = 1;
  bufferedAmount = 0;
  sent = [];
  send(frame) { this.sent.push(typeof frame === "string" ? frame : new Uint8Array(frame).slice().buffer); }
  close() {}
  feed(data) { this.dispatchEvent(Object.assign(new Event("message"), { data })); }
  drop(code) { this.readyState = 3; this.dispatchEvent(Object.assign(new Event("close"), { code, reason: "" })); }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const out = {};
const ws = new FakeSocket();
const notices = [];
const socket = new ChannelSocket(ws, { onNotice: (text) => notices.push(text) });
const session = new Session(socket.channel("p1"));
await session.setRoot({ sizes: (...buffers) => buffers.map((b) => b.byteLength), first: (b) => new Uint8Array(b)[0] });
const root = JSON.parse(ws.sent.shift());
out.rootFrame = { channel: root.channel, type: root.message.type };
const sizes = root.message.value.sizes._rtarget;
const text = (message, buffers = []) => JSON.stringify({ channel: "p1", message, buffers });
const memoryview = (i) => ({ _rtype: "memoryview", _rvalue: { _pyjoy_rpc_buffer: i } });
const call = (id, args) => ({ type: "call", id, target: sizes, args, kwargs: {} });
async function answer(id) {
  for (let i = 0; i < 100; i++) {
    const index = ws.sent.findIndex((f) => typeof f === "string" && JSON.parse(f).message.id === id);
    if (index >= 0) {
      const { message } = JSON.parse(ws.sent.splice(index, 1)[0]);
      return message.type === "result" ? { value: message.value } : { error: message.error.message };
    }
    await sleep(2);
  }
  return { none: true };
}

// Two buffers, one in two pieces and one in one, and an empty one: joined as announced.
ws.feed(text(call("ok", [memoryview(0), memoryview(1), memoryview(2)]), [5, 0, 3]));
ws.feed(new Uint8Array([1, 2]).buffer);
ws.feed(new Uint8Array([3, 4, 5]).buffer);
ws.feed(new Uint8Array([6, 7, 8]).buffer);
out.ok = await answer("ok");

// A piece past its buffer's end fails that call; its remaining pieces are dropped quietly.
ws.feed(text(call("past", [memoryview(0)]), [4]));
ws.feed(new Uint8Array(6).buffer);
ws.feed(new Uint8Array(2).buffer);
out.past = await answer("past");

// A new message while one still waits for pieces fails the one that waited.
ws.feed(text(call("cut", [memoryview(0)]), [4]));
ws.feed(new Uint8Array(2).buffer);
ws.feed(text(call("after", [memoryview(0)]), [1]));
ws.feed(new Uint8Array(1).buffer);
out.cut = await answer("cut");
out.after = await answer("after");

// Too many buffers, sizes that are not sizes, a placeholder naming no buffer.
ws.feed(text(call("many", []), new Array(MAX_BUFFERS + 1).fill(1)));
out.many = await answer("many");
ws.feed(text(call("negative", []), [-1]));
out.negative = await answer("negative");
ws.feed(text(call("nobuffer", [memoryview(3)]), [1]));
ws.feed(new Uint8Array(1).buffer);
out.nobuffer = await answer("nobuffer");

// Frames that carry no call: notices; the socket goes on.
ws.feed(JSON.stringify({ error: "the engine says: a frame was too big" }));
ws.feed(new Uint8Array(3).buffer);
ws.feed("{not json");
ws.feed(new Uint8Array(3).buffer); // a failed frame's pieces are dropped quietly
ws.feed(JSON.stringify([1, 2]));
await sleep(5);
out.notices = [...notices];
ws.feed(text(call("still", [memoryview(0)]), [2]));
ws.feed(new Uint8Array(2).buffer);
out.still = await answer("still");

// Sending: a 10 MB array goes as its text frame then pieces of PIECE_BYTES; the sender's
// buffer is taken (moved, as postMessage moves it). NaN cannot travel in JSON.
const other = new Session(socket.channel("p2"));
ws.sent.length = 0;
const big = new Uint8Array(10 * 2 ** 20).fill(7);
const pending = other.setRoot({ data: big });
await pending;
const header = JSON.parse(ws.sent[0]);
out.sent = { channel: header.channel, buffers: header.buffers, pieces: ws.sent.slice(1).map((b) => b.byteLength),
             rvalue: header.message.value.data._rvalue, detached: big.byteLength === 0, piece: PIECE_BYTES };
out.nan = await other.setRoot({ x: NaN }).then(() => "sent", (e) => e.message);

// The socket closes: pending calls on every channel fail at once, naming the close code.
const remote = session.remoteRoot; // nothing came: a pending wait
const waiting = remote.then(() => "root", (e) => e.message);
ws.drop(1006);
out.closed = await waiting;
console.log(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def result() -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    run = subprocess.run([node, "--input-type=module", "-e", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_a_message_and_its_pieces_are_joined_as_announced(result: dict) -> None:
    assert result["rootFrame"] == {"channel": "p1", "type": "root"}
    assert result["ok"] == {"value": [5, 0, 3]}
    assert result["after"] == {"value": [1]}
    assert result["still"] == {"value": [2]}


def test_broken_frames_fail_their_call_with_the_bound_they_broke(result: dict) -> None:
    assert "a piece of 6 bytes does not fit buffer 0" in result["past"]["error"]
    assert "a message came before the 1 buffer(s) still announced" in result["cut"]["error"]
    assert "1001 buffers is over the limit of 1000" in result["many"]["error"]
    assert '"buffers" should be a list of sizes' in result["negative"]["error"]
    assert "names buffer 3; the message has 1" in result["nobuffer"]["error"]


def test_frames_outside_any_call_are_notices(result: dict) -> None:
    notices = result["notices"]
    assert len(notices) == 4, notices
    assert notices[0] == "the engine says: a frame was too big"
    assert "a binary frame of 3 bytes that no message announced" in notices[1]
    assert "not JSON" in notices[2]
    assert 'a message should be {"channel"' in notices[3]


def test_sending_cuts_buffers_into_pieces_and_refuses_nan(result: dict) -> None:
    sent = result["sent"]
    piece = sent["piece"]
    assert sent["channel"] == "p2" and sent["buffers"] == [10 * 2**20]
    assert sent["pieces"] == [piece, piece, 10 * 2**20 - 2 * piece]
    assert sent["rvalue"] == {"_pyjoy_rpc_buffer": 0}
    assert sent["detached"] is True
    assert "JSON carries no NaN" in result["nan"]


def test_a_closed_socket_fails_what_waits_at_once(result: dict) -> None:
    assert "the engine's connection closed (code 1006)" in result["closed"]


RESUME_SCRIPT = r"""
import { Session } from "./app/rpc/session.js";
import { ChannelSocket } from "./app/rpc/websocket.js";

globalThis.WebSocket ??= { OPEN: 1 };
console.warn = () => {};

class FakeSocket extends EventTarget {
  readyState = 1;
  bufferedAmount = 0;
  sent = [];
  send(frame) { this.sent.push(typeof frame === "string" ? JSON.parse(frame) : new Uint8Array(frame).slice()); }
  close() {}
  feed(data) { this.dispatchEvent(Object.assign(new Event("message"), { data })); }
  drop(code) { this.readyState = 3; this.dispatchEvent(Object.assign(new Event("close"), { code, reason: "" })); }
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const out = {};
const ws = new FakeSocket();
const closes = [];
const socket = new ChannelSocket(ws, { onClose: (event, resumable) => closes.push([event.code, resumable]) });
const session = new Session(socket.channel("p1"));
await session.setRoot({ twice: (x) => x * 2 });            // the page's message 1 (before the hello)
ws.feed(JSON.stringify({ hello: { resume: "KEY", grace: 30, received: null } }));
// The engine's root, then a call to the page's function: 2 messages received whole.
ws.feed(JSON.stringify({ channel: "p1", message: { type: "root", value: { f: { _rtype: "method", _rtarget: "e1", _rname: "f" } } } }));
const root = await session.remoteRoot;
const pending = root.f(21).then((v) => v, (e) => `failed: ${e.message}`);   // message 2
await sleep(10);
// A message cut short by the drop is not counted: its piece never comes.
ws.feed(JSON.stringify({ channel: "p1", message: { type: "x" }, buffers: [4] }));
ws.drop(1006);
out.closes = closes.map((c) => [...c]);
out.received = socket.received;
out.sentBefore = ws.sent.length;
const asked = ws.sent[1].message;
// While down, a message is kept, not written (the session's call does not fail).
const later = root.f(1).then((v) => v, (e) => `failed: ${e.message}`);   // message 3
await sleep(10);
out.writtenWhileDown = ws.sent.length - out.sentBefore;
// A resume where the engine says it received 1: messages 2 and 3 go again, in order.
out.badResume = new ChannelSocket(new FakeSocket()).resume(new FakeSocket(), 5);
const next = new FakeSocket();
out.refused = socket.resume(next, 7);
out.resumed = socket.resume(next, 1);
await sleep(10);
out.resent = next.sent.map((m) => m.message?.type === "call" ? m.message.args : m);
next.feed(JSON.stringify({ channel: "p1", message: { type: "result", id: asked.id, value: 42 } }));
next.feed(JSON.stringify({ channel: "p1", message: { type: "result", id: next.sent[1].message.id, value: 2 } }));
out.answers = [await pending, await later];
// A drop with 1000 (the page closed it) is final: the pending calls fail.
const third = root.f(3).then((v) => v, (e) => `failed: ${e.message}`);
next.drop(1000);
out.final = await third;
console.log(JSON.stringify(out));
"""


def test_a_dropped_socket_keeps_its_sessions_and_resumes_sending_what_the_engine_missed() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    run = subprocess.run([node, "--input-type=module", "-e", RESUME_SCRIPT], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["closes"] == [[1006, True]]
    assert out["received"] == 1  # the root; the hello is not numbered, the message cut short not counted
    assert out["writtenWhileDown"] == 0
    assert "received 5 of 0" in out["badResume"]
    assert "received 7 of 3" in out["refused"]
    assert out["resumed"] is None
    assert out["resent"] == [[21], [1]]
    assert out["answers"] == [42, 2]
    assert out["final"].startswith("failed:") and "1000" in out["final"]
