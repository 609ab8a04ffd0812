"""The RPC's Python half on CPython: two sessions over the in-memory pair, or one session and
a hand-driven peer that sends raw wire messages (as the JS half would). No browser."""

from __future__ import annotations

import asyncio
import gc
import json
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pyjoy.rpc import (
    Blob, ClosedError, NDArray, RPCError, RemoteError, RemoteFunction, Session, connect, decode, dotdict, encode,
    memory_pair, register_codec,
)
from pyjoy.devtools import run_async
from pyjoy.rpc import codec as codec_module
from pyjoy.rpc.transport import MemoryTransport


def run(test: Callable[[], Awaitable[Any]]) -> None:
    """Run `test` on a fresh loop; any error the loop reports (a task that crashed, a future
    whose exception nobody read) fails the test."""
    problems: list[dict[str, Any]] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: problems.append(context))
        await test()
        await settle()

    run_async(main())
    assert not problems, problems


async def settle(rounds: int = 10) -> None:
    """Let the loop deliver what is in flight, collecting garbage so that releases go out."""
    for collect in (True, True, False):
        for _ in range(rounds):
            await asyncio.sleep(0)
        if collect:
            gc.collect()


def pair(host_root: Any = None, plugin_root: Any = None, **options: Any) -> tuple[Session, Session]:
    a, b = memory_pair()
    return connect(a, root=host_root, **options), connect(b, root=plugin_root, **options)


class Peer:
    """The other end of a memory pair, driven by hand: raw messages out, raw messages in."""

    def __init__(self, transport: MemoryTransport) -> None:
        self.transport = transport
        self.inbox: list[dict[str, Any]] = []
        transport.on_message(self.inbox.append)

    def send(self, message: Any) -> None:
        self.transport.send(message, _buffers(message))

    async def receive(self, kind: str) -> dict[str, Any]:
        for _ in range(100):
            for message in self.inbox:
                if message.get("type") == kind:
                    self.inbox.remove(message)
                    return message
            await asyncio.sleep(0)
        raise AssertionError(f"no {kind} message came; inbox: {self.inbox}")

    async def call(self, target: str, *args: Any, call_id: str = "c1", kwargs: Any = None) -> dict[str, Any]:
        self.send({"type": "call", "id": call_id, "target": target, "args": list(args), "kwargs": kwargs or {}})
        return await self.answer(call_id)

    async def answer(self, call_id: str) -> dict[str, Any]:
        for _ in range(100):
            for message in self.inbox:
                if message.get("id") == call_id and message.get("type") in ("result", "error"):
                    self.inbox.remove(message)
                    return message
            await asyncio.sleep(0)
        raise AssertionError(f"no answer to {call_id}; inbox: {self.inbox}")


def _buffers(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [b for item in value.values() for b in _buffers(item)]
    if isinstance(value, list):
        return [b for item in value for b in _buffers(item)]
    return [value] if isinstance(value, (bytes, bytearray, memoryview)) else []


def session_and_peer(root: Any) -> tuple[Session, Peer]:
    a, b = memory_pair()
    peer = Peer(b)
    return connect(a, root=root), peer


# -- calls ------------------------------------------------------------------------------


class Calculator:
    def __init__(self) -> None:
        self.scale = 10
        self._secret = "not sent"

    def add(self, x: int, y: int) -> int:
        return x + y

    async def slow_double(self, x: int) -> int:
        await asyncio.sleep(0.01)
        return 2 * x

    def _private(self) -> None: ...


def test_calls_both_ways() -> None:
    async def test() -> None:
        host, plugin = pair(Calculator(), {"greet": lambda name: f"hello {name}", "version": 3})
        api = await plugin.remote_root()
        assert isinstance(api, dotdict) and set(api) == {"add", "slow_double", "scale"}
        assert api.scale == 10 and isinstance(api.add, RemoteFunction)
        assert await api.add(2, 3) == 5
        assert await api["slow_double"](21) == 42
        remote = await host.remote_root()
        assert remote.version == 3 and await remote.greet("host") == "hello host"

    run(test)


def test_calls_run_concurrently_and_awaiting_is_optional() -> None:
    async def test() -> None:
        gate = asyncio.Event()
        seen: list[str] = []

        async def wait_for_gate() -> str:
            await gate.wait()
            return "opened"

        def note(text: str) -> None:
            seen.append(text)

        host, plugin = pair({"wait": wait_for_gate, "open": gate.set, "note": note})
        api = await plugin.remote_root()
        waiting = api.wait()
        api.note("sent without awaiting")  # sent at once
        await api.open()
        assert await waiting == "opened"
        assert seen == ["sent without awaiting"]

    run(test)


def test_nested_interfaces() -> None:
    class Layer:
        def __init__(self, name: str) -> None:
            self.name = name

        def describe(self) -> str:
            return f"layer {self.name}"

    async def test() -> None:
        root = {"viewer": {"layers": {"add": lambda name: Layer(name)}, "title": "v"}, "plain": {"a": [1, {"b": 2}]}}
        host, plugin = pair(root)
        api = await plugin.remote_root()
        assert api.plain == {"a": [1, {"b": 2}]} and api.plain.a[1].b == 2  # plain data is a dotdict too, as in imjoy-rpc
        layer = await api.viewer.layers.add("cells")
        assert isinstance(layer, dotdict) and layer.name == "cells"
        assert await layer.describe() == "layer cells"

    run(test)


def test_callbacks_are_called_back() -> None:
    async def test() -> None:
        async def map_with(fn: Callable[[int], Any], items: list[int]) -> list[Any]:
            return [await fn(item) for item in items]

        async def report(progress: Callable[[int], Any]) -> str:
            for step in range(3):
                progress(step)  # not awaited: sent at once, in order
            return "done"

        host, plugin = pair({"map_with": map_with, "report": report})
        api = await plugin.remote_root()
        assert await api.map_with(lambda x: x * x, [1, 2, 3]) == [1, 4, 9]

        async def async_callback(x: int) -> int:
            await asyncio.sleep(0)
            return -x

        assert await api.map_with(async_callback, [5]) == [-5]
        steps: list[int] = []
        assert await api.report(steps.append) == "done"
        await settle()
        assert steps == [0, 1, 2]

    run(test)


def test_kwargs_and_the_rkwargs_convention() -> None:
    def greet(name: str, punctuation: str = ".", *, loud: bool = False) -> str:
        text = f"hello {name}{punctuation}"
        return text.upper() if loud else text

    async def test() -> None:
        host, plugin = pair({"greet": greet})
        api = await plugin.remote_root()
        assert await api.greet("ann", punctuation="!", loud=True) == "HELLO ANN!"

        session, peer = session_and_peer({"greet": greet})
        root = await peer.receive("root")
        target = root["value"]["greet"]["_rtarget"]
        # A JS caller: keyword arguments as a last object marked _rkwargs.
        answer = await peer.call(target, "bob", {"_rkwargs": True, "punctuation": "?", "loud": True})
        assert answer == {"type": "result", "id": "c1", "value": "HELLO BOB?"}
        answer = await peer.call(target, "cy", call_id="c2", kwargs={"punctuation": "!"})
        assert answer["value"] == "hello cy!"

    run(test)


# -- errors -----------------------------------------------------------------------------


def divide_by_zero_here(x: float) -> float:
    return x / 0


def test_a_remote_call_has_imjoy_rpcs_then_catch_and_finally() -> None:
    """imjoy-rpc's FuturePromise (imjoy_rpc/utils.py): then/catch/finally_ each set a handler
    and return the same object; the call can still be awaited."""
    async def test() -> None:
        host, plugin = pair({"add": lambda x, y: x + y, "divide": divide_by_zero_here})
        api = await plugin.remote_root()
        seen: list[Any] = []

        call = api.add(1, 2)
        assert call.then(seen.append) is call  # not a new promise: handlers do not chain
        assert await call == 3  # awaiting it still gives the result

        async def later(value: Any) -> None:  # an async handler is awaited
            await asyncio.sleep(0)
            seen.append(("async", value))

        api.add(2, 2).then(later).finally_(lambda: seen.append("finally after a result"))
        # The call's error goes to catch; then's handler is not called.
        api.divide(1).then(seen.append).catch(lambda error: seen.append(("caught", error.args[0])))
        # An error raised in then's handler goes to catch too.
        api.add(1, 1).then(lambda value: 1 / value / 0).catch(lambda error: seen.append(type(error).__name__))
        api.divide(2).catch(lambda error: None).finally_(lambda: seen.append("finally after an error"))
        await settle()
        assert seen == [3, ("caught", "ZeroDivisionError: division by zero"), "ZeroDivisionError",
                        "finally after an error", ("async", 4), "finally after a result"]

    run(test)


def test_an_error_nobody_catches_after_then_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def test() -> None:
        host, plugin = pair({"divide": divide_by_zero_here})
        api = await plugin.remote_root()
        api.divide(1).then(lambda value: pytest.fail("then's handler ran for a failed call"))
        await settle()

    with caplog.at_level("ERROR", logger="pyjoy.rpc"):
        run(test)  # run() fails on an error the loop reports (an exception nobody read)
    assert "uncaught error in a remote call's then" in caplog.text and "ZeroDivisionError: division by zero" in caplog.text


def test_errors_carry_type_message_and_remote_traceback() -> None:
    async def test() -> None:
        async def call_back(fn: Callable[[], Any]) -> Any:
            return await fn()

        host, plugin = pair({"divide": divide_by_zero_here, "call_back": call_back})
        api = await plugin.remote_root()
        with pytest.raises(RemoteError) as caught:
            await api.divide(1)
        error = caught.value
        assert error.remote_type == "ZeroDivisionError" and error.message == "division by zero"
        assert "divide_by_zero_here" in error.traceback and "x / 0" in error.traceback
        assert "divide_by_zero_here" in str(error)

        def failing_callback() -> None:
            raise KeyError("missing")

        # An error in our callback travels to the host and back, keeping the original type.
        with pytest.raises(RemoteError) as caught:
            await api.call_back(failing_callback)
        assert caught.value.remote_type == "KeyError" and "failing_callback" in caught.value.traceback

        # A value that cannot be encoded is an error naming its type, before anything is sent.
        await settle()
        assert plugin.stats() == {"stored": 0, "pinned": 0, "proxies": 2, "pending": 0, "tasks": 0}
        with pytest.raises(TypeError, match="set"):
            api.divide(lambda: "stored, then forgotten", {1, 2})
        assert plugin.stats() == {"stored": 0, "pinned": 0, "proxies": 2, "pending": 0, "tasks": 0}

    run(test)


def test_unencodable_result_is_the_callers_error() -> None:
    async def test() -> None:
        host, plugin = pair({"bad": lambda: {1: "int key"}})
        api = await plugin.remote_root()
        with pytest.raises(RemoteError, match="int key"):
            await api.bad()

    run(test)


# -- values -----------------------------------------------------------------------------

ARRAYS = {
    "0-d float64": np.array(2.5),
    "empty": np.zeros((0, 3), dtype=np.float32),
    "3-D float32": np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7,
    "bool": np.array([[True, False, True]]),
    "int64": np.array([-(2**62), 0, 2**62], dtype=np.int64),
    "uint64": np.array([2**64 - 1], dtype=np.uint64),
    "int8": np.array([-128, 127], dtype=np.int8),
    "uint8": np.arange(256, dtype=np.uint8),
    "int16": np.array([-3, 3], dtype=np.int16),
    "uint16": np.array([65535], dtype=np.uint16),
    "int32": np.array([[-7], [7]], dtype=np.int32),
    "uint32": np.array([4_000_000_000], dtype=np.uint32),
    "float64": np.linspace(0, 1, 5),
    "strided": np.arange(48, dtype=np.int32).reshape(6, 8)[::2, 1::3],
    "fortran": np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4)),
    "big-endian": np.arange(5, dtype=">i4"),
}


@pytest.mark.parametrize("name", ARRAYS)
def test_numpy_arrays_round_trip(name: str) -> None:
    original = ARRAYS[name]

    async def test() -> None:
        host, plugin = pair({"echo": lambda x: x, "describe": lambda x: [list(x.shape), x.dtype.name]})
        api = await plugin.remote_root()
        back = await api.echo(original)
        assert isinstance(back, np.ndarray)
        assert back.shape == original.shape and back.dtype == original.dtype.newbyteorder("<")
        assert np.array_equal(back, original)
        assert await api.describe(original) == [list(original.shape), original.dtype.name]

    run(test)


def test_arrays_are_not_copied_by_encoding_or_decoding() -> None:
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    wire, transfer = encode(array)
    assert wire["_rshape"] == [3, 4] and wire["_rdtype"] == "float32" and transfer == [wire["_rvalue"]]
    assert np.shares_memory(np.frombuffer(wire["_rvalue"], np.uint8), array)  # a view of the array

    received = bytearray(wire["_rvalue"])  # what a transport hands over
    decoded = decode({**wire, "_rvalue": received})
    assert np.shares_memory(decoded, np.frombuffer(received, np.uint8)) and decoded.flags.writeable
    assert np.array_equal(decoded, array)

    strided = np.arange(12, dtype=np.int16).reshape(3, 4)[:, ::2]
    wire, _ = encode(strided)
    assert bytes(wire["_rvalue"]) == np.ascontiguousarray(strided).tobytes()


def test_typedarray_decodes_to_a_1d_array() -> None:
    buffer = bytearray(np.array([1.5, -2.0], dtype="<f8").tobytes())
    decoded = decode({"_rtype": "typedarray", "_rvalue": buffer, "_rdtype": "float64"})
    assert decoded.shape == (2,) and decoded.tolist() == [1.5, -2.0]
    assert np.shares_memory(decoded, np.frombuffer(buffer, np.uint8))


def test_numpy_scalars_go_as_numbers() -> None:
    assert encode([np.int64(3), np.float32(0.5), np.bool_(True)])[0] == [3, 0.5, True]


def test_ndarray_fallback_without_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec_module, "load_numpy", lambda: None)

    async def test() -> None:
        host, plugin = pair({"echo": lambda x: x, "shape": lambda x: list(x.shape)})
        api = await plugin.remote_root()
        data = np.arange(6, dtype=np.int16).reshape(2, 3)
        sent = NDArray(memoryview(data.tobytes()), (2, 3), "int16")
        back = await api.echo(sent)
        assert isinstance(back, NDArray) and back == sent
        assert back.tolist() == [[0, 1, 2], [3, 4, 5]] and back.dtype == "int16"
        assert await api.shape(NDArray(b"", (0, 4), "float32")) == [0, 4]
        flags = await api.echo(NDArray(bytes([1, 0]), (2,), "bool"))
        assert flags.tolist() == [True, False]
        assert NDArray(np.float64(1.5).tobytes(), (), "float64").tolist() == 1.5
        assert np.array_equal(np.asarray(back), data)  # numpy, once present, reads it

    run(test)
    received = bytearray(4)
    wire = {"_rtype": "typedarray", "_rvalue": received, "_rdtype": "uint16"}
    assert decode(wire).shape == (2,) and decode(wire).data.obj is received  # a view, no copy


def test_bytes_memoryview_and_blob() -> None:
    async def test() -> None:
        host, plugin = pair({"echo": lambda x: x})
        api = await plugin.remote_root()
        for value in (b"\x00\x01binary", bytearray(b"mutable"), memoryview(b"view"), b""):
            back = await api.echo(value)
            assert isinstance(back, memoryview) and back.tobytes() == bytes(value)
        floats = memoryview(np.array([1.0, 2.0]).data)  # any buffer goes as its bytes
        assert (await api.echo(floats)).tobytes() == floats.tobytes()

        blob = await api.echo(Blob(b"<svg/>", type="image/svg+xml", name="a.svg"))
        assert isinstance(blob, Blob) and bytes(blob) == b"<svg/>" and len(blob) == 6
        assert (blob.type, blob.name) == ("image/svg+xml", "a.svg")
        plain = await api.echo(Blob(b"x"))
        assert (plain.type, plain.name) == ("", None)

    run(test)


def test_the_receiver_shares_nothing_with_the_sender() -> None:
    async def test() -> None:
        kept: list[Any] = []
        host, plugin = pair({"keep": kept.append})
        api = await plugin.remote_root()
        sent, data = {"list": [1, 2]}, bytearray(b"abc")
        done = api.keep([sent, data])
        sent["list"].append(3)
        data[0] = ord("X")  # changed after sending: the receiver still sees what was sent
        await done
        assert kept[0][0] == {"list": [1, 2]} and kept[0][1].tobytes() == b"abc"

    run(test)


class Point:
    def __init__(self, x: float, y: float) -> None:
        self.x, self.y = x, y


def test_custom_codec() -> None:
    registry: dict[str, Any] = {}
    register_codec("point", Point, lambda p: {"x": p.x, "y": p.y}, lambda d: Point(d["x"], d["y"]), registry)
    with pytest.raises(ValueError, match="built-in"):
        register_codec("ndarray", Point, dict, dict, registry)

    assert encode(Point(1, 2), codecs=registry)[0] == {"x": 1, "y": 2, "_rtype": "point"}

    async def test() -> None:
        host, plugin = pair({"move": lambda p: Point(p.x + 1, p.y)}, codecs=registry)
        api = await plugin.remote_root()
        moved = await api.move(Point(1, 5))
        assert isinstance(moved, Point) and (moved.x, moved.y) == (2, 5)

    run(test)
    # Without the codec the wire form stays a dict, _rtype and all.
    assert decode({"_rtype": "point", "x": 1, "y": 2}) == {"x": 1, "y": 2, "_rtype": "point"}


def test_interfaces_send_public_members_only_and_cycles_are_errors() -> None:
    wire, _ = encode(Calculator(), put_function=lambda fn: f"id-{fn.__name__}")
    assert set(wire) == {"add", "slow_double", "scale", "_rintf"}
    assert wire["add"] == {"_rtype": "method", "_rtarget": "id-add", "_rname": "add"}
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(TypeError, match="contains itself"):
        encode(loop)
    with pytest.raises(TypeError, match="str"):
        encode({("a", "b"): 1})


# -- lifetimes --------------------------------------------------------------------------


def test_the_same_function_sent_twice_gets_one_id() -> None:
    class Thing:
        def method(self) -> str:
            return "m"

    thing = Thing()

    def f() -> None: ...

    async def test() -> None:
        session, peer = session_and_peer({"f": f, "again": f, "m1": thing.method, "m2": thing.method})
        root = (await peer.receive("root"))["value"]
        assert root["f"]["_rtarget"] == root["again"]["_rtarget"]
        assert root["m1"]["_rtarget"] == root["m2"]["_rtarget"] != root["f"]["_rtarget"]
        assert session.stats()["stored"] == 2

    run(test)


def test_a_release_racing_a_resend_keeps_the_function_alive() -> None:
    def callback() -> str:
        return "alive"

    async def test() -> None:
        session, peer = session_and_peer({"give": lambda: callback})
        root = (await peer.receive("root"))["value"]
        first = await peer.call(root["give"]["_rtarget"], call_id="c1")
        # The peer drops its proxy and sends release(1) while the session is sending the
        # function again: when the release arrives the count is 2, so 1 remains.
        second = await peer.call(root["give"]["_rtarget"], call_id="c2")
        target = first["value"]["_rtarget"]
        assert second["value"]["_rtarget"] == target
        peer.send({"type": "release", "targets": {target: 1}})
        assert (await peer.call(target, call_id="c3"))["value"] == "alive"
        peer.send({"type": "release", "targets": {target: 1}})
        answer = await peer.call(target, call_id="c4")
        assert answer["type"] == "error" and "unknown target" in answer["error"]["message"]

    run(test)


def test_releases_race_resends_between_two_sessions() -> None:
    async def test() -> None:
        kept: list[Any] = []
        host, plugin = pair({"take": lambda fn: None, "keep": kept.append})
        api = await plugin.remote_root()

        def callback() -> str:
            return "still here"

        # Many sends of one function, with the host dropping each proxy as it goes.
        await asyncio.gather(*(api.take(callback) for _ in range(200)))
        await api.keep(callback)
        await settle()
        assert await kept[0]() == "still here"
        assert plugin.stats()["stored"] == 1  # the callback, which the host still holds
        kept.clear()
        await settle()
        assert plugin.stats()["stored"] == 0 and host.stats()["proxies"] == 0

    run(test)


def test_no_leak_over_many_calls_with_callbacks() -> None:
    async def test() -> None:
        async def apply(fn: Callable[[int], Any], x: int) -> Any:
            return await fn(x)

        host, plugin = pair({"apply": apply, "interface": lambda: {"get": lambda: 1}})
        api = await plugin.remote_root()
        await settle()
        baseline = (host.stats(), plugin.stats())
        for i in range(10_000):
            assert await api.apply(lambda x: x + 1, i) == i + 1
            if i % 1000 == 0:
                assert await (await api.interface()).get() == 1
        await settle()
        assert (host.stats(), plugin.stats()) == baseline
        assert baseline[0]["stored"] == 2 and baseline[1]["proxies"] == 2

    run(test)


def test_dispose_releases_at_once() -> None:
    async def test() -> None:
        host, plugin = pair({"make": lambda: {"f": lambda: 1, "g": lambda: 2}})
        api = await plugin.remote_root()
        made = await api.make()
        await settle()
        assert host.stats()["stored"] == 3
        plugin.dispose(made)  # a dotdict of proxies: each is released
        await settle(3)
        assert host.stats()["stored"] == 1
        with pytest.raises(RPCError, match="disposed"):
            made.f()

    run(test)


def test_roots_are_pinned_and_a_later_root_replaces_the_first() -> None:
    async def test() -> None:
        host, plugin = pair({"v": lambda: 1})
        api = await plugin.remote_root()
        plugin.dispose(api)
        await settle()
        host.set_root({"v": lambda: 2})
        await settle()
        api = await plugin.remote_root()
        assert await api.v() == 2
        assert host.stats()["stored"] == host.stats()["pinned"] == 2  # both roots' functions stay

    run(test)


def test_close_fails_pending_calls_with_the_reason() -> None:
    async def test() -> None:
        never = asyncio.Event()
        host, plugin = pair({"hang": never.wait})
        api = await plugin.remote_root()
        hanging = api.hang()
        await settle(3)
        plugin.close("plugin unloaded")
        with pytest.raises(ClosedError, match="plugin unloaded"):
            await hanging
        await settle(3)
        assert host.closed and "plugin unloaded" in (host.close_reason or "")
        assert host.stats()["stored"] == 0
        with pytest.raises(ClosedError):
            await api.hang()
        never.set()

        # The other direction: the side that did not close sees its own calls fail.
        host, plugin = pair({"hang": asyncio.Event().wait})
        api = await plugin.remote_root()
        hanging = api.hang()
        await settle(3)
        host.close("host shutting down")
        with pytest.raises(ClosedError, match="host shutting down"):
            await hanging

        # Waiting for a root that never comes ends with the session.
        session = connect(memory_pair()[0])
        waiting = asyncio.ensure_future(session.remote_root())
        await asyncio.sleep(0)
        session.close("gone")
        with pytest.raises(ClosedError, match="gone"):
            await waiting

    run(test)


def test_unknown_target_gets_an_error_reply() -> None:
    async def test() -> None:
        session, peer = session_and_peer({"ok": lambda: "fine"})
        root = (await peer.receive("root"))["value"]
        answer = await peer.call("f999", 1, call_id="x1")
        assert answer["type"] == "error" and answer["error"]["type"] == "RPCError"
        assert "f999" in answer["error"]["message"]
        assert (await peer.call(root["ok"]["_rtarget"], call_id="x2"))["value"] == "fine"

    run(test)


def test_malformed_messages_are_answered_and_the_session_carries_on() -> None:
    async def test() -> None:
        session, peer = session_and_peer({"ok": lambda *args: len(args)})
        ok = (await peer.receive("root"))["value"]["ok"]["_rtarget"]
        for junk in ([1, 2], "text", None, {}, {"type": 5}, {"type": "result"}, {"type": "release", "targets": 3},
                     {"type": "result", "id": "nobody", "value": 1}, {"type": "release", "targets": {ok: "x"}},
                     {"type": "error", "id": "nobody", "error": "not an error"}, {"type": "nonsense", "id": "m0"}):
            peer.send(junk)
        await settle()
        assert peer.inbox == []  # nothing to answer: only a call's id is one to answer to
        bad_calls = {
            "m1": {"type": "call", "id": "m1", "target": 7, "args": [], "kwargs": {}},
            "m2": {"type": "call", "id": "m2", "target": ok, "args": "not a list", "kwargs": {}},
            "m3": {"type": "call", "id": "m3", "args": [], "kwargs": {}},
            "m4": {"type": "call", "id": "m4", "target": ok, "args": [{"_rtype": "ndarray", "_rvalue": b"123",
                                                                        "_rshape": [2], "_rdtype": "int16"}], "kwargs": {}},
            "m5": {"type": "call", "id": "m5", "target": ok, "args": [{"_rtype": "method"}], "kwargs": {}},
        }
        for call_id, message in bad_calls.items():
            peer.send(message)
            answer = await peer.answer(call_id)
            assert answer["type"] == "error" and answer["error"]["type"] == "RPCError", answer
            assert answer["error"]["message"] and "Traceback" in answer["error"]["traceback"]
        # A call without an id is run, and answered by nobody.
        peer.send({"type": "call", "id": None, "target": ok, "args": [], "kwargs": {}})
        assert (await peer.call(ok, 1, 2, call_id="last"))["value"] == 2
        assert not session.closed and session.stats()["pending"] == 0

    run(test)


def test_an_answer_that_cannot_be_decoded_fails_the_call() -> None:
    async def test() -> None:
        a, b = memory_pair()
        session = connect(a)
        peer = Peer(b)
        peer.send({"type": "root", "value": {"f": {"_rtype": "method", "_rtarget": "p1", "_rname": "f"}, "_rintf": True}})
        api = await session.remote_root()
        pending = api.f()
        call = await peer.receive("call")
        peer.send({"type": "result", "id": call["id"], "value": {"_rtype": "ndarray", "_rvalue": b"1"}})
        with pytest.raises(Exception, match="_rshape|_rdtype"):
            await pending

    run(test)


def test_a_message_the_transport_could_not_deliver_whole_fails_its_call() -> None:
    """A transport hands on a broken message with an error (`handler(message, error)`): a call
    is answered with it, an answer fails the call waiting for it."""
    async def test() -> None:
        a, b = memory_pair()
        session = connect(a, root={"f": lambda: 1})
        peer = Peer(b)
        target = (await peer.receive("root"))["value"]["f"]["_rtarget"]
        a._handler({"type": "call", "id": "x1"}, RPCError("buffer 3 did not arrive whole"))
        answer = await peer.answer("x1")
        assert answer["error"]["type"] == "RPCError" and "buffer 3" in answer["error"]["message"]
        peer.send({"type": "root", "value": {"g": {"_rtype": "method", "_rtarget": "p1", "_rname": "g"}}})
        api = await session.remote_root()
        pending = api.g()
        call = await peer.receive("call")
        a._handler({"type": "result", "id": call["id"]}, RPCError("message too large"))
        with pytest.raises(RPCError, match="too large"):
            await asyncio.wait_for(pending, 5)  # (not answered at all would time out)
        assert (await peer.call(target, call_id="x2"))["value"] == 1  # and carries on

    run(test)


# -- the Pyodide transport, in real Pyodide on Node (no browser) ---------------------------

ROOT = Path(__file__).resolve().parents[1]
PYODIDE = ROOT / "node_modules" / "pyodide" / "pyodide.mjs"

NODE_RUNNER = """
import { pathToFileURL } from "node:url";
import { readFileSync, readdirSync } from "node:fs";
const [root, check] = process.argv.slice(2);
const { loadPyodide } = await import(pathToFileURL(`${root}/node_modules/pyodide/pyodide.mjs`).href);
const py = await loadPyodide({ indexURL: `${root}/node_modules/pyodide/` });
py.FS.mkdirTree("/home/pyodide/pyjoy/rpc");
py.FS.writeFile("/home/pyodide/pyjoy/__init__.py", "");
for (const name of readdirSync(`${root}/pyjoy/rpc`).filter((name) => name.endsWith(".py"))) {
  py.FS.writeFile(`/home/pyodide/pyjoy/rpc/${name}`, readFileSync(`${root}/pyjoy/rpc/${name}`));
}
console.log(await py.runPythonAsync(readFileSync(check, "utf8")));
process.exit(0);
"""

PYODIDE_CHECK = """
import asyncio, gc, json, js
from pyodide.ffi import create_proxy, to_js
from pyjoy.rpc import Blob, NDArray, RemoteError, connect
from pyjoy.rpc.pyodide_transport import PyodideTransport

async def settle():
    for _ in range(5):
        gc.collect()
        await asyncio.sleep(0.01)

out = {}
# Two Python sessions over a MessageChannel: every message goes through JS and back.
channel = js.MessageChannel.new()
async def apply(fn, value):
    return await fn(value)
def boom_in_pyodide():
    return 1 / 0
host = connect(PyodideTransport(channel.port1), root={"echo": lambda x: x, "apply": apply, "boom": boom_in_pyodide})
plugin = connect(PyodideTransport(channel.port2))
api = await plugin.remote_root()
await settle()
baseline = [host.stats(), plugin.stats()]
array = await api.echo(NDArray(bytes(range(8)), (2, 2), "int16"))
blob = await api.echo(Blob(b"<x/>", "text/xml", "x.xml"))
out["echo"] = [(await api.echo(b"abc")).tobytes().decode(), array.tolist(), array.data.readonly,
               bytes(blob).decode(), blob.type, blob.name, await api.echo({"a": [1, None, 2.5, "s", True]})]
# What JSON cannot carry exactly takes the object-by-object way, both ways.
odd = await api.echo({"nan": float("nan"), "inf": float("-inf"), "big": 2**60, "digits": "12345678901234567890",
                      "nested": [None, {"x": 2**53 + 1}]})
out["odd"] = [odd["nan"] != odd["nan"], odd["inf"], odd["big"] == 2**60, odd["digits"], odd["nested"][1]["x"] == 2**53 + 1]
out["callbacks"] = [await api.apply(lambda x: x + 1, i) for i in range(50)][-1]
try:
    await api.boom()
except RemoteError as error:
    out["error"] = [error.remote_type, "boom_in_pyodide" in error.traceback]
await settle()
out["leak"] = [host.stats(), plugin.stats()] == baseline
host.close("done")
await settle()
out["closed"] = plugin.close_reason

# A raw JS peer: what Python posts, and a call shaped as JS sends it (in the envelope; null,
# a typed array, _rkwargs). A message without the envelope (the worker's own) is not ours.
channel = js.MessageChannel.new()
session = connect(PyodideTransport(channel.port1), root={"f": lambda x, k="unset": {"x": x, "k": k, "b": b"1"}})
seen = []
channel.port2.addEventListener("message", create_proxy(lambda event: seen.append(event.data)))
channel.port2.start()
await settle()
root = seen[0]._pyjoy_rpc
out["root"] = [js.JSON.stringify(seen[0]), js.Object.getPrototypeOf(root.value) == js.Object.prototype]
floats = js.Float32Array.new(to_js([1.5, 2.5]))
make_call = js.eval("(id, target, data) => ({type: 'call', id, target, kwargs: {}, args: "
                    "[{_rtype: 'typedarray', _rvalue: data.buffer, _rdtype: 'float32'}, {_rkwargs: true, k: null}]})")
channel.port2.postMessage(make_call("w1", root.value.f._rtarget, js.Float32Array.new(2)))  # no envelope
channel.port2.postMessage(js.Object.fromEntries(to_js([["_pyjoy_rpc", make_call("j1", root.value.f._rtarget, floats)]])),
                          to_js([floats.buffer]))
await settle()
out["answers"] = len(seen) - 1
value = seen[-1]._pyjoy_rpc.value
out["answer"] = [seen[-1]._pyjoy_rpc.type, seen[-1]._pyjoy_rpc.id, value.x._rdtype, value.x._rshape.to_py(),
                 js.eval("(v) => v.k === null")(value), js.Object.prototype.toString.call(value.b._rvalue),
                 floats.byteLength]

# Hostile calls: shared references 30 deep, and a cycle. Each is answered with an RPCError, at once.
hostile = js.eval("(target, id, cycle) => { let b = 0; if (cycle) { b = []; b.push(b); } "
                  "else for (let i = 0; i < 30; i++) b = [b, b]; "
                  "return {_pyjoy_rpc: {type: 'call', id, target, args: [b], kwargs: {}}}; }")
before = len(seen)
started = js.performance.now()
channel.port2.postMessage(hostile(root.value.f._rtarget, "bomb", False))
channel.port2.postMessage(hostile(root.value.f._rtarget, "cycle", True))
await settle()
out["hostile"] = [[m._pyjoy_rpc.id, m._pyjoy_rpc.type, m._pyjoy_rpc.error.type, m._pyjoy_rpc.error.message]
                  for m in seen[before:]]
out["hostile_ms"] = js.performance.now() - started
json.dumps(out)
"""


@pytest.mark.skipif(not (shutil.which("node") and PYODIDE.exists()), reason="needs Node and npm's pyodide (npm ci)")
def test_pyodide_transport_in_pyodide_on_node(tmp_path: Path) -> None:
    (tmp_path / "runner.mjs").write_text(NODE_RUNNER)
    (tmp_path / "check.py").write_text(PYODIDE_CHECK)
    done = subprocess.run(["node", str(tmp_path / "runner.mjs"), str(ROOT), str(tmp_path / "check.py")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["echo"] == ["abc", [[256, 770], [1284, 1798]], False, "<x/>", "text/xml", "x.xml",
                           {"a": [1, None, 2.5, "s", True]}]
    assert out["odd"] == [True, float("-inf"), True, "12345678901234567890", True]
    assert out["callbacks"] == 50 and out["error"] == ["ZeroDivisionError", True] and out["leak"] is True
    assert out["closed"] == "the other side closed: done"
    assert out["root"] == ['{"_pyjoy_rpc":{"type":"root","value":{"f":{"_rtype":"method","_rtarget":"f1",'
                           '"_rname":"<lambda>"},"_rintf":true}}}', True]
    # Only the call in the envelope was answered. The typed array arrived (as an NDArray: no numpy
    # here), k was null, the bytes left as an ArrayBuffer, the JS buffer was transferred, not copied.
    assert out["answers"] == 1
    assert out["answer"] == ["result", "j1", "float32", [2], True, "[object ArrayBuffer]", 0]
    assert [answer[:3] for answer in out["hostile"]] == [["bomb", "error", "RPCError"], ["cycle", "error", "RPCError"]]
    assert all("too large" in answer[3] for answer in out["hostile"]), out["hostile"]
    assert out["hostile_ms"] < 5000
