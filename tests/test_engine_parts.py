"""The engine's parts without processes: reading a plugin's source (against what the page's
parser gives for the same files, tests/test_plugin_format.py), which requirements the
engine accepts, and the WebSocket frames (pieces, bounds, resynchronising after an error)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyjoy.devtools import run_async
from pyjoy.engine import wire
from pyjoy.engine.envs import RequirementError, classify
from pyjoy.engine.plugin_file import PluginFileError, parse_plugin

PLUGINS = Path(__file__).parent / "plugins"


def read(name: str, tag: str | None = None) -> dict:
    return parse_plugin((PLUGINS / name).read_text(), tag)


def test_a_tagged_plugin_resolves_its_fields_and_scripts_per_tag_as_the_page_does() -> None:
    stable = read("segmenter_tagged.imjoy.html")
    assert stable["config"]["tag"] == "stable" and stable["config"]["requirements"] == ["scikit-image==0.22.0"]
    assert [s["line"] for s in stable["scripts"]] == [21] and 'segmenter (stable)' in stable["scripts"][0]["code"]
    dev = read("segmenter_tagged.imjoy.html", tag="dev")
    assert dev["config"]["requirements"] == ["scikit-image>=0.23", "scipy"] and dev["config"]["icon"] == "science"
    assert [s["line"] for s in dev["scripts"]] == [31]
    with pytest.raises(PluginFileError, match='tag "nightly" is not one of'):
        read("segmenter_tagged.imjoy.html", tag="nightly")


def test_yaml_legacy_and_front_matter_files_read_as_the_page_reads_them() -> None:
    tiles = read("tiles_yaml.imjoy.html")
    assert tiles["config"]["name"] == "Tile Maker" and tiles["config"]["defaults"] == {"w": 7, "h": 7}
    assert tiles["scripts"][0]["line"] == 27
    assert read("legacy_mode.imjoy.html")["config"]["type"] == "web-worker"  # "mode": "webworker", api 0.1.0
    histogram = read("histogram.py")
    assert histogram["config"]["type"] == "web-python" and histogram["config"]["requirements"] == ["numpy", "matplotlib>=3.8"]
    assert histogram["scripts"][0]["line"] == 11 and histogram["scripts"][0]["code"].startswith("import numpy as np\n")


@pytest.mark.parametrize(("name", "block", "line"), [
    ("bad_json.imjoy.html", "config", 7), ("bad_yaml.imjoy.html", "config", 9), ("bad_unclosed.imjoy.html", "script", 10),
    ("bad_unclosed_window.imjoy.html", "window", 14), ("bad_empty.imjoy.html", "file", 1),
    ("bad_unclosed_header.py", "config", 1), ("bad_no_name.imjoy.html", "config", 5),
])
def test_a_malformed_file_names_the_block_and_the_line_the_page_names(name: str, block: str, line: int) -> None:
    with pytest.raises(PluginFileError) as error:
        read(name)
    assert (error.value.block, error.value.line) == (block, line)


def test_indented_blocks_keep_their_lines() -> None:
    text = '<config lang="json">\n  {"name": "I", "type": "native-python"}\n</config>\n<script lang="python">\n    import math\n    if math.pi:\n        x = 1\n</script>\n'
    assert parse_plugin(text)["scripts"] == [{"code": "import math\nif math.pi:\n    x = 1\n", "line": 5}]


@pytest.mark.parametrize(("requirements", "pip"), [
    (["numpy"], ["numpy"]),
    (["pip: -U numpy scipy>=1.10"], ["numpy", "scipy>=1.10"]),
    (["scikit-image==0.22", "numpy", "numpy"], ["numpy", "scikit-image==0.22"]),
    (["imageio[tifffile]>=2.3; python_version >= '3.8'"], ["imageio[tifffile]>=2.3; python_version >= '3.8'"]),
    (["cellpose @ https://example.org/cellpose-1.0-py3-none-any.whl"],
     ["cellpose @ https://example.org/cellpose-1.0-py3-none-any.whl"]),
])
def test_accepted_requirements(requirements: list[str], pip: list[str]) -> None:
    assert classify(requirements, None) == (pip, [], [])


@pytest.mark.parametrize(("requirement", "why"), [
    ("repo:https://github.com/a/b", "clone repositories"), ("cmd:pip install x", "run commands"),
    ("-e .", "pip options are not accepted"), ("pip: --index-url https://evil numpy", "option '--index-url'"),
    ("../../outside", "local paths"), ("/etc/passwd", "local paths"), ("file:///etc/passwd", "local paths"),
    ("git+https://github.com/a/b", "local paths"), ("pkg:thing", "expected a package name"),
])
def test_refused_requirements_say_why(requirement: str, why: str) -> None:
    with pytest.raises(RequirementError, match=why):
        classify([requirement], None)


def test_conda_requirements_and_env() -> None:
    assert classify(["conda: numpy scipy", "requests"], "conda create -n my-env python=3.9 -c conda-forge") == (
        ["requests"], ["numpy", "scipy"], ["python=3.9", "-c", "conda-forge"])
    with pytest.raises(RequirementError, match="option '-p'"):
        classify([], "conda create -n x -p /elsewhere python")
    with pytest.raises(RequirementError, match="only `conda create"):
        classify([], "rm -rf /")


def frames_of(message: dict) -> list:
    tree, buffers = wire.split(message)
    return wire.frames("p1", tree, buffers)


def test_a_message_splits_into_a_header_and_pieces_and_reads_back_whole() -> None:
    big = bytes(range(256)) * (wire.PIECE_BYTES // 128 + 3)  # two pieces and a bit
    small = bytearray(b"xyz")
    message = {"type": "call", "id": "c1", "args": [{"_rtype": "ndarray", "_rvalue": big}, small, small, b""]}
    frames = frames_of(message)
    header = json.loads(frames[0])
    assert header["buffers"] == [len(big), 3, 0] and header["message"]["args"][2] == {wire.PLACEHOLDER: 1}
    assert [len(f) for f in frames[1:]] == [wire.PIECE_BYTES, wire.PIECE_BYTES, len(big) - 2 * wire.PIECE_BYTES, 3]
    incoming = wire.Incoming()
    done = [item for frame in frames for item in incoming.feed(bytes(frame) if not isinstance(frame, str) else frame)]
    assert len(done) == 1 and isinstance(done[0], wire.Complete)
    restored = wire.restore(done[0].header["message"], done[0].buffers)
    assert bytes(restored["args"][0]["_rvalue"]) == big and bytes(restored["args"][1]) == b"xyz"
    assert bytes(restored["args"][3]) == b""


def test_after_a_broken_message_the_next_one_is_read() -> None:
    incoming = wire.Incoming()
    header = json.dumps({"channel": "p1", "message": {"type": "call", "id": "a"}, "buffers": [10]})
    assert incoming.feed(header) == []
    assert incoming.feed(b"12345") == []
    # A new message before the first one's buffer is whole: the first fails, the second is read.
    second = json.dumps({"channel": "p1", "message": {"type": "call", "id": "b"}})
    failed, read = incoming.feed(second)
    assert isinstance(failed, wire.FrameError) and failed.message["id"] == "a" and isinstance(read, wire.Complete)
    # A piece past its buffer fails the message; the rest of its pieces are dropped quietly.
    assert incoming.feed(header) == []
    (error,) = incoming.feed(b"x" * 11)
    assert "does not fit" in str(error) and error.message["id"] == "a"
    assert incoming.feed(b"x" * 5) == []
    (stray,) = wire.Incoming().feed(b"x")
    assert "no message announced" in str(stray)
    with pytest.raises(Exception, match="names buffer 3"):
        wire.restore({"x": {wire.PLACEHOLDER: 3}}, [b""])


def test_nan_cannot_be_sent_as_json_and_says_so() -> None:
    with pytest.raises(ValueError, match="JSON carries no NaN or infinity"):
        frames_of({"type": "result", "id": "c1", "value": float("nan")})


def test_relaying_reads_pieces_as_they_come_and_holds_none() -> None:
    incoming = wire.Incoming(join=False)
    header = json.dumps({"channel": "p1", "message": {"type": "result", "id": "c1"}, "buffers": [3, 0, 2]})
    (start,) = incoming.feed(header)
    assert isinstance(start, wire.Start) and start.text == header and incoming.reading
    (piece,) = incoming.feed(b"abc")
    assert isinstance(piece, wire.Piece) and piece.data == b"abc"
    piece, complete = incoming.feed(b"de")
    assert piece.data == b"de" and isinstance(complete, wire.Complete) and complete.started and complete.buffers == []
    # A message without buffers is Complete at once, never started.
    (alone,) = incoming.feed(json.dumps({"channel": "p1", "message": {"type": "release", "targets": {}}}))
    assert isinstance(alone, wire.Complete) and not alone.started
    # abort(): the message being read is dropped quietly, its pieces too.
    incoming.feed(header)
    incoming.abort()
    assert incoming.feed(b"abc") == [] and not incoming.reading


@pytest.mark.parametrize("name", ["../../../etc", "/etc/passwd", "a/../../b", "..", "名前", "x" * 300])
def test_a_plugins_folder_stays_under_the_workdir_whatever_its_name(tmp_path: Path, name: str) -> None:
    from pyjoy.engine.processes import plugin_dir

    folder = plugin_dir(tmp_path, name)
    assert folder.parent == tmp_path / "plugins" and folder.is_dir() and len(folder.name) < 60
    assert plugin_dir(tmp_path, name) == folder and plugin_dir(tmp_path, name + "!") != folder


# -- the pipe between the engine and a plugin process (pipe.py), and received buffers -------

def pipe_pair(incoming: wire.Incoming | None = None):
    """Two Pipes over a socket pair: frames written to `a` arrive at `b`, which feeds binary
    ones to `incoming` at once (as a plugin process does) and queues the rest and what that gave."""
    import asyncio
    import socket

    from pyjoy.engine.pipe import BINARY, TEXT, Pipe

    left, right = socket.socketpair()
    got: asyncio.Queue = asyncio.Queue()
    ends: list = []

    def on_frame(kind: int, data) -> None:
        if incoming is not None and (kind == BINARY or (kind == TEXT and data.startswith("{"))):
            for item in incoming.feed(data):
                got.put_nowait(item)
        else:
            got.put_nowait((kind, data))

    a = Pipe(left, lambda kind, data: None, ends.append)
    b = Pipe(right, on_frame, ends.append, place=incoming.reserve if incoming is not None else None)
    return a, b, got, ends


def test_the_pipe_carries_frames_and_receives_big_pieces_where_their_message_is_joined() -> None:
    import asyncio

    from pyjoy.engine.pipe import ABORT, TEXT

    big = bytes(range(256)) * (wire.PIECE_BYTES // 256 * 2 + 1000)  # two full pieces and a part
    message = {"type": "call", "id": "c1", "args": [{"_rtype": "ndarray", "_rvalue": big}, b"xyz"]}

    async def scenario() -> None:
        incoming = wire.Incoming()
        placed: list = []
        reserve = incoming.reserve
        incoming.reserve = lambda length: placed.append(reserve(length)) or placed[-1]
        a, b, got, _ = pipe_pair(incoming)
        for _ in range(50):  # many small frames, read many per system call
            a.write("hello")
        for frame in frames_of(message):
            a.write(frame)
        a.write_abort()
        assert [await got.get() for _ in range(50)] == [(TEXT, "hello")] * 50
        complete = await got.get()
        assert isinstance(complete, wire.Complete)
        restored = wire.restore(complete.header["message"], complete.buffers)
        assert bytes(restored["args"][0]["_rvalue"]) == big and bytes(restored["args"][1]) == b"xyz"
        # The three pieces of the big buffer were received into it, through views of it.
        assert len(placed) == 3 and all(view.obj is complete.buffers[0] for view in placed)
        assert await got.get() == (ABORT, b"")
        a.close()
        b.close()

    run_async(scenario())


@pytest.mark.parametrize("head, why", [(b"\x00\xff\xff\xff\xff", "4294967295 bytes"), (b"\x07\x01\x00\x00\x00", "kind 7"),
                                       (b"\x00\x02\x00\x00\x00\xff\xfe", "not UTF-8")])
def test_a_broken_pipe_frame_ends_the_reading_with_an_error_that_says_what(head: bytes, why: str) -> None:
    import asyncio

    async def scenario() -> None:
        a, b, got, ends = pipe_pair()
        a._sock.send(head)
        for _ in range(100):
            if ends:
                break
            await asyncio.sleep(0.01)
        assert len(ends) == 1 and isinstance(ends[0], wire.FrameError) and why in str(ends[0]) and got.empty()
        a.close()
        b.close()

    run_async(scenario())


def test_a_paused_pipe_delivers_nothing_until_resumed_and_the_end_of_the_stream_is_reported() -> None:
    import asyncio

    from pyjoy.engine.pipe import TEXT

    async def scenario() -> None:
        a, b, got, ends = pipe_pair()
        b.pause_reading()
        a.write("one")
        a.write("two")
        await asyncio.sleep(0.05)
        assert got.empty()
        b.resume_reading()
        assert [await got.get(), await got.get()] == [(TEXT, "one"), (TEXT, "two")]
        a.close()
        for _ in range(100):
            if ends:
                break
            await asyncio.sleep(0.01)
        assert ends == [None] and b.closed

    run_async(scenario())


def test_a_big_received_buffer_is_reused_only_once_nothing_refers_to_it() -> None:
    import numpy as np

    size = 2 * wire.REUSE_MIN_BYTES
    header = json.dumps({"channel": "p1", "message": {"type": "result", "id": "c1"}, "buffers": [size]})

    def receive(fill: int):
        incoming = wire.Incoming()
        incoming.feed(header)
        half = bytes([fill]) * (size // 2)
        incoming.feed(half)
        (complete,) = incoming.feed(half)
        return complete.buffers[0]

    first = receive(1)
    array = np.frombuffer(first, dtype=np.uint8)  # a plugin's array viewing it
    address = array.__array_interface__["data"][0]
    del first
    second = receive(2)
    assert np.frombuffer(second, dtype=np.uint8).__array_interface__["data"][0] != address  # still in use: not given
    assert array.min() == array.max() == 1  # and not written over
    del array
    third = receive(3)
    assert np.frombuffer(third, dtype=np.uint8).__array_interface__["data"][0] == address  # free: taken again
    assert third.count(3) == size  # written over whole


def test_splitting_and_restoring_a_message_leaves_no_reference_to_its_buffers_behind() -> None:
    import gc
    import sys

    buffer = bytearray(10)
    before = sys.getrefcount(buffer)
    gc.disable()  # a reference cycle would hold the buffer until the collector ran
    try:
        tree, buffers = wire.split({"a": [buffer, {"b": buffer}]})
        restored = wire.restore(tree, [buffer])
        assert restored["a"][1]["b"] is buffer
        del tree, buffers, restored
        assert sys.getrefcount(buffer) == before
    finally:
        gc.enable()


def test_a_relayed_piece_is_taken_again_only_once_nothing_holds_it() -> None:
    from pyjoy.engine.pipe import Recycled, recycled

    view = recycled(wire.PIECE_BYTES)
    piece = view.obj
    assert isinstance(piece, Recycled)
    del view
    held = memoryview(piece)[10:]  # as asyncio's transport holds what it has not sent yet (3.12+)
    piece.release()
    address = id(piece)  # the pool keeps it alive: the id stays its own
    del piece
    other = recycled(wire.PIECE_BYTES)
    assert id(other.obj) != address
    del held
    again = recycled(wire.PIECE_BYTES)
    assert id(again.obj) == address


def test_kept_messages_are_numbered_resent_after_what_the_other_side_received_and_bounded() -> None:
    import asyncio

    from pyjoy.engine import mux

    class Socket:  # records what the writer sends
        def __init__(self) -> None:
            self.sent: list[object] = []

        async def send_str(self, text: str) -> None:
            self.sent.append(json.loads(text))

        async def send_bytes(self, data) -> None:
            self.sent.append(bytes(data))

    async def scenario() -> None:
        first = Socket()
        outgoing = mux.Outgoing(first, keep=True)
        array = bytearray(b"abc")
        outgoing.send("p1", {"type": "call", "n": 1, "data": array})
        array[:] = b"XYZ"  # the sender reuses its buffer once sent: the kept copy is what was sent
        outgoing.send("p1", {"type": "call", "n": 2})
        await asyncio.sleep(0)
        assert outgoing.sent == 2 and [m for m in first.sent if isinstance(m, bytes)] == [b"abc"]
        assert outgoing.resend_problem(3) is not None  # more than was sent
        assert outgoing.resend_problem(1) is None
        second = Socket()
        outgoing.attach(second, 1, [wire.dumps({"hello": {}})])  # the other side received message 1
        await asyncio.sleep(0)
        assert second.sent == [{"hello": {}}, {"channel": "p1", "message": {"type": "call", "n": 2}, "buffers": []}]
        outgoing.attach(Socket(), 0, [])
        # A message with more than KEEP_MESSAGE_BYTES of buffers is sent but not kept.
        outgoing.send("p1", {"type": "call", "big": bytes(mux.KEEP_MESSAGE_BYTES + 1)})
        assert "not kept" in outgoing.resend_problem(2) and outgoing.resend_problem(3) is None
        # While no socket is attached (it dropped), every message is kept, whatever its size.
        outgoing.detach()
        outgoing.send("p1", {"type": "call", "big": bytes(mux.KEEP_MESSAGE_BYTES + 1)})
        assert outgoing.resend_problem(3) is None
        outgoing.attach(Socket(), outgoing.sent, [])
        # Past KEEP_BYTES the oldest go.
        for _ in range(mux.KEEP_BYTES // mux.KEEP_MESSAGE_BYTES + 2):
            outgoing.send("p1", {"type": "call", "data": bytes(mux.KEEP_MESSAGE_BYTES)})
        assert "no longer kept" in outgoing.resend_problem(3) and outgoing.resend_problem(outgoing.sent - 1) is None
        await outgoing.close()

    run_async(scenario())



# -- a plugin process's direct socket (direct.py): WebSocket frames received in place --------

ALL_DTYPES = ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "bool"]


def array_message(arrays: list) -> dict:
    """A call carrying each array as the RPC's `ndarray` (PROTOCOL.md, Values)."""
    return {"type": "call", "id": "c1", "method": "f", "args": [
        {"_rtype": "ndarray", "_rvalue": memoryview(a).cast("B"), "_rshape": list(a.shape), "_rdtype": str(a.dtype)}
        for a in arrays]}


def client_bytes(message: dict, fragment: bool = False) -> bytes:
    """What a page sends for `message` on its direct socket: wire.py's frames, each a masked
    client frame made by `websockets`' own client protocol (an implementation independent of
    direct.py's), the first buffer in two fragments if `fragment`."""
    from websockets.client import ClientProtocol
    from websockets.protocol import State

    client = ClientProtocol("ws://127.0.0.1/", state=State.OPEN, max_size=None)
    tree, buffers = wire.split(message)
    for at, frame in enumerate(wire.frames("plugin", tree, buffers)):
        if isinstance(frame, str):
            client.send_text(frame.encode())
        elif fragment and at == 1:
            half = len(frame) // 2
            client.send_binary(bytes(frame[:half]), fin=False)
            client.send_continuation(bytes(frame[half:]), fin=True)
        else:
            client.send_binary(bytes(frame))
    return b"".join(client.data_to_send())


def direct_pair():
    """A Direct attached to one end of a socket pair (as the engine passes a page's socket); the
    other end, raw; what Direct delivers, in a queue; the places Incoming.reserve gave."""
    import asyncio
    import socket

    from pyjoy.engine.direct import Direct

    got: asyncio.Queue = asyncio.Queue()
    direct = Direct(lambda message, problem=None: got.put_nowait((message, problem)), lambda number: None)
    page, engine_side = socket.socketpair()
    page.setblocking(False)
    return direct, page, engine_side, got


async def send_in_chunks(page, data: bytes, sizes: list[int]) -> None:
    """Writes `data` in chunks of these sizes in turn (a frame's header split too), letting the
    reader run between them."""
    import asyncio

    loop = asyncio.get_running_loop()
    at, turn = 0, 0
    while at < len(data):
        size = sizes[turn % len(sizes)]
        await loop.sock_sendall(page, data[at:at + size])
        at, turn = at + size, turn + 1
        await asyncio.sleep(0)


@pytest.mark.parametrize("sizes", [[1 << 30], [1, 7, 3, 70001], [13, 100_000]], ids=["whole", "odd pieces", "split"])
def test_arrays_of_every_dtype_arrive_on_a_direct_socket_intact_and_big_ones_in_place(sizes: list[int]) -> None:
    import asyncio

    import numpy as np

    from pyjoy.engine import direct as direct_module

    rng = np.random.default_rng(7)
    arrays = []
    for name in ALL_DTYPES:
        for count in (3, 40_001):  # a few bytes (through `websockets`); over IN_PLACE_BYTES but for 1-byte dtypes
            if name == "bool":
                arrays.append(rng.integers(0, 2, count).astype(bool))
            else:
                arrays.append((rng.random(count) * 250).astype(name).reshape(-1, 1))
    arrays.append(rng.random((3, 224, 224), dtype=np.float32))  # a 3-D image, 602 KB

    async def scenario() -> None:
        placed: list = []
        reserve = wire.Incoming.reserve

        def spy(self, length):
            view = reserve(self, length)
            placed.append(view)
            return view

        direct, page, engine_side, got = direct_pair()
        await direct.attach(engine_side, 1, None, 0)
        wire.Incoming.reserve = spy
        try:
            await send_in_chunks(page, client_bytes(array_message(arrays)), sizes)
            message, problem = await asyncio.wait_for(got.get(), 10)
        finally:
            wire.Incoming.reserve = reserve
        assert problem is None
        for original, value in zip(arrays, message["args"]):
            received = np.frombuffer(value["_rvalue"], dtype=value["_rdtype"]).reshape(value["_rshape"])
            assert received.dtype == original.dtype and np.array_equal(received, original)
        big = [value["_rvalue"] for value in message["args"] if len(value["_rvalue"]) >= direct_module.IN_PLACE_BYTES]
        # Each big buffer was received where its message joined it: through a view of it.
        assert len(big) == 9 and all(any(view is not None and view.obj is buffer for view in placed) for buffer in big)
        direct.close()
        page.close()

    run_async(scenario())


def test_a_fragmented_frame_and_frames_that_break_the_rules_go_to_websockets_which_judges_them() -> None:
    import asyncio
    import os
    import struct

    import numpy as np

    from websockets.client import ClientProtocol
    from websockets.frames import Close, apply_mask
    from websockets.protocol import State

    array = np.arange(100_000, dtype=np.int32)

    async def scenario() -> None:
        # Over IN_PLACE_BYTES, but in two fragments: joined by `websockets`, still whole.
        direct, page, engine_side, got = direct_pair()
        await direct.attach(engine_side, 1, None, 0)
        await send_in_chunks(page, client_bytes(array_message([array]), fragment=True), [65_536])
        message, problem = await asyncio.wait_for(got.get(), 10)
        assert problem is None and np.array_equal(np.frombuffer(message["args"][0]["_rvalue"], np.int32), array)

        # The next piece of a message, big, but unmasked (a client MUST mask), or with a reserved
        # bit set, or whole while a fragmented message is under way: not taken in place;
        # `websockets` closes the socket with 1002.
        loop = asyncio.get_running_loop()
        payload = array.tobytes()
        header = wire.dumps({"channel": "plugin", "message": {"type": "call", "id": "c2", "method": "f", "args": []},
                             "buffers": [2 * len(payload)]})
        for first_byte, masked, fragmented in ((0x82, False, False), (0xC2, True, False), (0x82, True, True)):
            direct, page, engine_side, got = direct_pair()
            await direct.attach(engine_side, 1, None, 0)
            client = ClientProtocol("ws://127.0.0.1/", state=State.OPEN)
            client.send_text(header.encode())
            if fragmented:
                client.send_binary(payload, fin=False)
            key = os.urandom(4) if masked else b""
            body = apply_mask(payload, key) if masked else payload
            frame = struct.pack("!BBQ", first_byte, (0x80 if masked else 0) | 127, len(payload)) + key + body
            # `websockets` judges an unmasked frame by its header, the others once their payload
            # came (all sent is read before the verdict: the socket closes with nothing unread).
            await loop.sock_sendall(page, b"".join(client.data_to_send()) + (frame if masked else frame[:4096]))
            received = bytearray()
            while True:  # until the server closes: what it sent (its hello, then its close frame)
                chunk = await asyncio.wait_for(loop.sock_recv(page, 65_536), 10)
                if not chunk:
                    break
                received += chunk
            client.receive_data(bytes(received))
            closes = [Close.parse(event.data) for event in client.events_received() if event.opcode.name == "CLOSE"]
            assert [close.code for close in closes] == [1002]
            assert got.empty()  # nothing of that frame reached the session
            page.close()

    run_async(scenario())


def test_masking_in_one_pass_matches_websockets_and_a_client_frame_parses_with_a_fresh_key() -> None:
    import os

    from websockets.frames import Frame, apply_mask
    from websockets.streams import StreamReader

    from pyjoy.engine.masking import FRAME_EXTRA_BYTES, mask_into, masked_frame

    for n in (0, 1, 3, 4, 5, 125, 126, 4095, 4096, 4099, 65_535, 65_536, 70_001):
        payload, key = os.urandom(n), os.urandom(4)
        out = bytearray(n)
        mask_into(memoryview(out), payload, key)
        assert bytes(out) == apply_mask(payload, key)
        same = bytearray(payload)
        mask_into(memoryview(same), same, key)  # in place
        assert same == out
        for opcode, memory in ((1, None), (2, None), (2, bytearray(n + FRAME_EXTRA_BYTES))):
            frame = masked_frame(payload, opcode, memory)
            assert memory is None or frame.obj is memory  # written into the buffer given
            reader = StreamReader()
            reader.feed_data(bytes(frame))
            parse = Frame.parse(reader.read_exact, mask=True)
            with pytest.raises(StopIteration) as done:
                next(parse)
            frame = done.value.value
            assert frame.data == payload and frame.fin and frame.opcode.value == opcode
    # Each frame its own random key: the same payload masks differently.
    assert bytes(masked_frame(bytes(64)))[2:] != bytes(masked_frame(bytes(64)))[2:]
