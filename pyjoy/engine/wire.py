"""Frames: RPC messages on the engine's WebSocket and on a plugin process's pipe (ENGINE.md).

    tree, buffers = split(message)              # buffers out, {"_pyjoy_rpc_buffer": i} in
    for frame in frames("engine", tree, buffers): await ws.send(frame)   # text, then pieces
    incoming = Incoming()
    for frame in received:
        for done in incoming.feed(frame):       # Complete messages, Notices, FrameErrors
            message = restore(done.header["message"], done.buffers)
    Incoming(join=False)                        # to relay: Start, Piece..., Complete, holding nothing

    incoming.reserve(length)                    # join=True: where a piece of that length goes (no copy)

The pipe between the engine and a plugin process carries these frames too (pipe.py).

This module never imports aiohttp: a plugin process imports it too.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

from pyjoy.rpc.codec import RPCError

#: Any one frame larger is an error for its call (or a `{"error"}` notice); the connection stays.
MAX_FRAME_BYTES = 16 * 2**20
#: A frame larger than this closes the connection (1009): the WebSocket library holds a
#: frame whole before handing it on, so past this it is not read at all.
CLOSE_FRAME_BYTES = 64 * 2**20
#: What senders cut buffers into: big enough that a frame's overhead is nothing beside it.
PIECE_BYTES = 4 * 2**20
#: The most buffers one message holds (a few in practice; as app/rpc/transport.js bounds them).
MAX_BUFFERS = 1000
#: The most bytes one message's buffers hold together: its receiver (a plugin process, the
#: page) holds a message until it is whole, so this bounds what one message makes it hold.
MAX_MESSAGE_BYTES = 2 * 2**30
#: The most bytes of buffers one message to the engine's own channel holds: its calls take
#: text and callbacks, and the engine joins what they hold (a client's map sends more as several).
MAX_ENGINE_MESSAGE_BYTES = 16 * 2**20
PLACEHOLDER = "_pyjoy_rpc_buffer"
#: Joined buffers at least this big are kept for reuse once nothing refers to them (below).
REUSE_MIN_BYTES = 64 * 2**10
#: The most bytes of such buffers a receiver keeps.
REUSE_BYTES = 128 * 2**20

_BUFFER_TYPES = (bytes, bytearray, memoryview)


class FrameError(RPCError):
    """A frame or message that cannot be used; `channel` and `message` (the JSON tree, when it
    was read) say which call to fail."""

    def __init__(self, text: str, channel: Any = None, message: Any = None) -> None:
        super().__init__(text)
        self.channel = channel
        self.message = message


def split(message: Any) -> tuple[Any, list[memoryview]]:
    """The message with each buffer replaced by a placeholder, and the buffers (each once)."""
    buffers: list[memoryview] = []
    return _split(message, buffers, {}), buffers


# The walks are module functions, not closures: a closure that calls itself is a reference
# cycle, which would hold the message's buffers (a big array) until the garbage collector ran.
def _split(value: Any, buffers: list[memoryview], seen: dict[int, int]) -> Any:
    kind = type(value)
    if kind is dict:
        return {key: _split(item, buffers, seen) for key, item in value.items()}
    if kind is list:
        return [_split(item, buffers, seen) for item in value]
    if kind in _BUFFER_TYPES:
        index = seen.get(id(value))
        if index is None:
            index = seen[id(value)] = len(buffers)
            buffers.append(memoryview(value).cast("B"))
        return {PLACEHOLDER: index}
    return value


def restore(tree: Any, buffers: list[Any]) -> Any:
    """The message with each placeholder replaced by its buffer; an RPCError for a bad one."""
    if not buffers:
        return tree
    try:
        return _restore(tree, buffers)
    except RecursionError:
        raise RPCError("message too deep to read") from None


def _restore(value: Any, buffers: list[Any]) -> Any:
    if type(value) is dict:
        if len(value) == 1 and PLACEHOLDER in value:
            index = value[PLACEHOLDER]
            if type(index) is not int or not 0 <= index < len(buffers):
                raise RPCError(f"a buffer placeholder names buffer {index!r}; the message has {len(buffers)}")
            return buffers[index]
        return {key: _restore(item, buffers) for key, item in value.items()}
    if type(value) is list:
        return [_restore(item, buffers) for item in value]
    return value


def dumps(header: dict[str, Any]) -> str:
    try:
        return json.dumps(header, allow_nan=False, separators=(",", ":"))
    except ValueError as error:  # NaN or infinity: JSON has no form for them
        raise ValueError(f"cannot send {error}: JSON carries no NaN or infinity; send such numbers in an array") from None


def frames(channel: str, tree: Any, buffers: list[memoryview]) -> list[str | memoryview]:
    """The WebSocket frames of one message: its header, then each buffer in pieces."""
    out: list[str | memoryview] = [dumps({"channel": channel, "message": tree, "buffers": [b.nbytes for b in buffers]})]
    for buffer in buffers:
        for start in range(0, buffer.nbytes, PIECE_BYTES):
            out.append(buffer[start:start + PIECE_BYTES])
    return out


@dataclass
class Complete:
    """A message read whole: its header (channel, message, buffers), its text, its buffers
    (joined; empty when read with join=False), and whether a Start came before it."""

    channel: str
    header: dict[str, Any]
    text: str
    buffers: list[Any] = field(default_factory=list)
    started: bool = False

    def message(self) -> tuple[Any, Exception | None]:
        """The message with its buffers put back, and None; or, when they cannot be, the
        message as it came and why (the receiver answers its call with the error)."""
        try:
            return restore(self.header["message"], self.buffers), None
        except Exception as error:
            return self.header["message"], error


@dataclass
class Start:
    """(join=False) A message whose buffers follow as Pieces, then its Complete."""

    channel: str
    header: dict[str, Any]
    text: str


@dataclass
class Piece:
    """(join=False) One piece of the current message's buffers, checked to fit."""

    data: Any


@dataclass
class Notice:
    """`{"error": text}`: the engine's report of a frame it could not read as part of a call."""

    text: str


@dataclass
class Hello:
    """`{"hello": {"resume": KEY | null, "grace": SECONDS, "received": N | null}}`: the engine's
    first frame on a connection (ENGINE.md, A page that drops); not a numbered message."""

    info: dict[str, Any]


Item = Complete | Start | Piece | Notice | Hello | FrameError


class Incoming:
    """Reads a stream of frames into messages, within the bounds above.

    `feed(frame)` returns what the frame brought: Complete messages, Notices and
    FrameErrors (for a frame or message that cannot be used), and with join=False (to
    relay pieces as they come, holding none) a Start at a header whose buffers follow and a
    Piece for each piece, instead of joined buffers. After an error, the failed message's
    remaining pieces are dropped until the next text frame; a text frame that comes while a
    message waits for pieces fails that one. `abort()` drops the current message quietly."""

    def __init__(self, join: bool = True) -> None:
        self._join = join
        self._current: Complete | None = None
        self._sizes: list[int] = []  # of the buffers still to come, the one being read first
        self._joined: bytearray | None = None  # the buffer being joined (None: no piece yet, or one whole)
        self._whole: Any = None  # a buffer that came as one piece: kept as it is, no copy
        self._reserved: memoryview | None = None  # where reserve() said the next piece goes
        self._got = 0  # its bytes so far
        self._dropping = False  # a failed message's pieces are still coming

    @property
    def reading(self) -> bool:
        """Whether a message waits for pieces."""
        return self._current is not None

    def abort(self) -> None:
        self._current, self._dropping = None, True
        self._joined = self._whole = self._reserved = None
        self._got = 0

    def reserve(self, length: int) -> memoryview | None:
        """(join=True) Where a binary frame of `length` bytes goes if it is the next piece of the
        buffer being read: a view into that buffer, for a reader to receive it there and feed()
        that view (no copy). None when it would not fit (feed() then says why)."""
        if not self._join or self._current is None or not 0 < length <= MAX_FRAME_BYTES:
            return None
        size = self._sizes[0]
        if self._got + length > size or self._whole is not None:
            return None
        if self._joined is None:
            self._joined = _buffers.new(size)
        self._reserved = memoryview(self._joined)[self._got:self._got + length]
        return self._reserved

    def feed(self, frame: str | bytes) -> list[Item]:
        if isinstance(frame, str):
            out: list[Item] = []
            if self._current is not None:
                out.append(self._fail(f"a message came before the {len(self._sizes)} buffer(s) still announced "
                                      "by the one before it"))
            self._dropping = False
            item = self._text(frame)
            return out if item is None else [*out, item]
        return self._binary(frame)

    def _fail(self, why: str) -> FrameError:
        current = self._current
        self.abort()
        return FrameError(why, current.channel, current.header.get("message")) if current else FrameError(why)

    def _text(self, text: str) -> Item | None:
        if len(text) > MAX_FRAME_BYTES:  # characters; its bytes are at least as many
            return self._fail(f"a text frame of {len(text)} characters is over the limit of {MAX_FRAME_BYTES} bytes")
        try:
            header = json.loads(text)
        except (ValueError, RecursionError) as error:
            return self._fail(f"a text frame that is not JSON: {error}")
        if isinstance(header, dict) and "channel" not in header and isinstance(header.get("error"), str):
            return Notice(header["error"])
        if isinstance(header, dict) and "channel" not in header and isinstance(header.get("hello"), dict):
            return Hello(header["hello"])
        channel = header.get("channel") if isinstance(header, dict) else None
        message = header.get("message") if isinstance(header, dict) else None
        if not isinstance(header, dict) or not isinstance(channel, str) or not isinstance(message, dict):
            self._dropping = True
            return FrameError('a message should be {"channel": string, "message": object, "buffers": [sizes]}',
                              channel if isinstance(channel, str) else None, message)
        sizes = header.get("buffers", [])
        problem = _sizes_problem(sizes)
        if problem:
            self._dropping = True
            return FrameError(problem, channel, message)
        complete = Complete(channel, header, text)
        self._current, self._sizes = complete, list(sizes)
        done = self._buffer_done()
        if done is not None:
            return done
        complete.started = True
        return None if self._join else Start(channel, header, text)

    def _binary(self, piece: bytes) -> list[Item]:
        if self._current is None:
            return [] if self._dropping else [FrameError(f"a binary frame of {len(piece)} bytes that no message "
                                                         "announced")]
        if len(piece) > MAX_FRAME_BYTES:
            return [self._fail(f"a binary frame of {len(piece)} bytes is over the limit of {MAX_FRAME_BYTES}")]
        if not piece or self._got + len(piece) > self._sizes[0]:
            return [self._fail(f"a piece of {len(piece)} bytes does not fit buffer {len(self._current.buffers)} "
                               f"({self._got} of its {self._sizes[0]} bytes came before it)")]
        out: list[Item] = []
        if not self._join:
            out.append(Piece(piece))
        elif piece is self._reserved:  # received in place already
            self._reserved = None
        elif self._joined is None and self._got == 0 and len(piece) == self._sizes[0]:
            self._whole = piece  # the buffer in one piece: the piece itself
        else:
            if self._joined is None:
                self._joined = _buffers.new(self._sizes[0])
            self._joined[self._got:self._got + len(piece)] = piece
        self._got += len(piece)
        if self._got == self._sizes[0]:
            if self._join:
                self._current.buffers.append(self._whole if self._whole is not None else self._joined)
            self._sizes.pop(0)
            self._joined = self._whole = self._reserved = None
            self._got = 0
            done = self._buffer_done()
            if done is not None:
                out.append(done)
        return out

    def _buffer_done(self) -> Complete | None:
        """Takes the empty buffers next (they have no frames); the message when it is whole."""
        current = self._current
        assert current is not None
        while self._sizes and self._sizes[0] == 0:
            self._sizes.pop(0)
            if self._join:
                current.buffers.append(bytearray())
        if self._sizes:
            return None
        self._current = None
        return current


class _Buffers:
    """Big buffers that messages are joined into, reused once nothing refers to them.

    Fresh memory is what receiving a big array costs most: the first touch of each page is
    a page fault (about 0.5 ms a MB on a small VM, more than copying the bytes). A received
    array is usually dropped once its call is answered, so its memory can take the next
    one. Every view of a buffer (a memoryview, a numpy array viewing it, a C extension
    reading it) holds a reference to it, so a buffer nothing but this list refers to is
    free: it is given again, whole, to be written over by the next message's pieces."""

    def __init__(self, limit: int) -> None:
        self._kept: list[bytearray] = []
        self._limit = limit

    def new(self, size: int) -> bytearray:
        if size < REUSE_MIN_BYTES:
            return bytearray(size)
        for buffer in self._kept:
            # Referred to by the list, the loop's variable and getrefcount's argument: no one else.
            if len(buffer) == size and sys.getrefcount(buffer) == 3:
                return buffer
        buffer = bytearray(size)
        kept = [kept for kept in self._kept if sys.getrefcount(kept) > 3]  # in use: held by their users alone
        free = [kept for kept in self._kept if sys.getrefcount(kept) == 3]
        total = size + sum(map(len, free))
        while free and total > self._limit:  # the least recently made go first
            total -= len(free.pop(0))
        if total <= self._limit:
            self._kept = kept + free + [buffer]
        else:
            self._kept = kept + free
        return buffer


_buffers = _Buffers(REUSE_BYTES)


def _sizes_problem(sizes: Any) -> str | None:
    if not isinstance(sizes, list) or not all(type(n) is int and n >= 0 for n in sizes):
        return '"buffers" should be a list of sizes (integers from 0)'
    if len(sizes) > MAX_BUFFERS:
        return f"a message of {len(sizes)} buffers is over the limit of {MAX_BUFFERS}"
    if sum(sizes) > MAX_MESSAGE_BYTES:
        return f"a message of {sum(sizes)} bytes of buffers is over the limit of {MAX_MESSAGE_BYTES}"
    return None


def error_answer(message: Any, text: str) -> dict[str, Any] | None:
    """The `error` message answering `message` (a call with a string id) with an RPCError."""
    if isinstance(message, dict) and message.get("type") == "call" and isinstance(message.get("id"), str):
        return {"type": "error", "id": message["id"],
                "error": {"_rtype": "error", "type": "RPCError", "message": text, "traceback": ""}}
    return None
