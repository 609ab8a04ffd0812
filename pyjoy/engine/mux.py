"""Many RPC sessions over one WebSocket, either end (the engine's, client.py's, or a plugin
process's direct socket: direct.py).

    outgoing = Outgoing(ws)                       # ws: aiohttp's, server or client side; or direct.py's
    transport = ChannelTransport(outgoing, "engine")
    session = Session(transport)                  # a pyjoy.rpc session on that channel
    transport.deliver(message)                    # what the reader got for the channel
    outgoing.send_frames(wire.frames(...))        # raw frames (the engine relays this way)
    await outgoing.close()

    outgoing = Outgoing(ws, keep=True)            # keeps recent messages for a resume
    outgoing.resend_problem(received)             # None when it can resend all after message `received`
    outgoing.attach(new_ws, received, first)      # after a drop: `first` (unnumbered), then those
    SplitTransport(direct, relay)                 # a plugin's channel on its direct socket (sent there, heard on both)

Frames go out in the order they were queued, one writer task per socket, so that a
message's frames are never split by another's (ENGINE.md, Frames). `send` is synchronous,
as a pyjoy.rpc Transport's must be; `drained()` lets a relay wait while too much waits.

With `keep` (a connection that may resume, ENGINE.md "A page that drops"), each text frame
starts a numbered message (1, 2, ...), and the latest messages are kept (a copy of their
pieces: the sender may reuse its buffers once sent) so that those the other side missed
when its socket dropped can be sent again on the next one. While a socket is attached, a
message with more than KEEP_MESSAGE_BYTES of buffers is not kept (big arrays keep their
path without copies; a resume that needs one is refused); while none is (after
detach()), every message is, as it queues (relays wait for drained() past
HIGH_WATER_BYTES). The oldest go past KEEP_BYTES in all.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any

from pyjoy.engine import wire
from pyjoy.engine.pipe import Recycled
from pyjoy.rpc.transport import Buffer, Handler, Inbox, Message

log = logging.getLogger("pyjoy.engine")
#: Past this many bytes queued, relays wait (drained()) for the socket to take them.
HIGH_WATER_BYTES = 64 * 2**20
#: With `keep`: the most bytes of buffers a message sent on a socket holds to be kept for a
#: resend (one sent while none is attached is kept whatever its size) ...
KEEP_MESSAGE_BYTES = 256 * 2**10
#: ... and the most bytes of kept messages in all (the oldest go first).
KEEP_BYTES = 64 * 2**20


class _Kept:
    """A sent message, kept for a resend: `frames` None once it outgrew KEEP_MESSAGE_BYTES."""

    __slots__ = ("number", "frames", "size", "limit")

    def __init__(self, number: int, text: str, limit: int) -> None:
        self.number = number
        self.frames: list[str | bytes | memoryview] | None = [text]
        self.size = len(text)
        self.limit = limit


class Outgoing:
    def __init__(self, ws: Any, keep: bool = False) -> None:
        self._ws = ws
        self._queue: collections.deque[str | bytes | memoryview] = collections.deque()
        self._queued_bytes = 0
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self.closed = False
        self.keep = keep
        self.sent = 0  # with keep: the number of the last message queued
        self._kept: collections.deque[_Kept] = collections.deque()
        self._kept_bytes = 0
        self._task: asyncio.Task[None] | None = None  # none until a socket is attached
        self._writing = False  # the writer task is sending frames (a direct write would overtake them)
        if ws is not None:
            self._task = asyncio.get_running_loop().create_task(self._write(ws))

    def send_frames(self, frames: list[str | memoryview], size: int | None = None) -> None:
        """Queues frames; `size`: the bytes of buffers of the message whose text frame is among
        them, where known (a message too big to keep is then not copied at all)."""
        if self.closed:
            raise ConnectionError("the WebSocket is closed")
        for frame in frames:
            if self.keep:
                frame = self._keep(frame, size)
            self._queue.append(frame)
            self._queued_bytes += len(frame)
        if not self._writing and self._ws is not None and hasattr(self._ws, "write_nowait"):
            self._write_now()
        if self._queued_bytes > HIGH_WATER_BYTES:
            self._room.clear()
        if self._queue:
            self._wake.set()
        else:
            self._room.set()

    def _write_now(self) -> None:
        """Writes what is queued at once on a socket that can (`write_nowait`, then `flush`:
        direct.py's, client.py's): no turn of the event loop per message, and the frames of
        a message in one system call where the socket joins them. What it cannot take yet
        waits for the writer task."""
        while self._queue:
            frame = self._queue[0]
            if not self._ws.write_nowait(frame):
                break
            self._queue.popleft()
            self._queued_bytes -= len(frame)
        self._ws.flush()

    def send(self, channel: str, message: Message) -> None:
        tree, buffers = wire.split(message)
        self.send_frames(wire.frames(channel, tree, buffers), sum(buffer.nbytes for buffer in buffers))

    def _keep(self, frame: str | memoryview, size: int | None) -> str | bytes | memoryview:
        """Numbers and keeps the frame; what to queue (a copy where the original may change)."""
        if isinstance(frame, str):
            self.sent += 1
            limit = KEEP_BYTES if self._ws is None else KEEP_MESSAGE_BYTES
            kept = _Kept(self.sent, frame, limit + len(frame))
            if size is not None and size > limit:
                kept.frames, kept.size = None, 0
            self._kept.append(kept)
            self._kept_bytes += kept.size
        else:
            last = self._kept[-1] if self._kept else None
            if last is None or last.frames is None:
                return frame
            if last.size + len(frame) > last.limit:  # too big to keep: forgotten, and sent as it is
                self._kept_bytes -= last.size
                last.frames, last.size = None, 0
                return frame
            if not isinstance(frame, Recycled):  # the pool reuses a Recycled only once nothing refers to it
                frame = bytes(frame)
            last.frames.append(frame)
            last.size += len(frame)
            self._kept_bytes += len(frame)
        while self._kept_bytes > KEEP_BYTES and len(self._kept) > 1:
            self._kept_bytes -= self._kept.popleft().size
        return frame

    def resend_problem(self, received: int) -> str | None:
        """Why the messages after `received` (the other side's count) cannot be sent again; None if they can."""
        if not self.keep:
            return "this connection keeps no messages"
        if not 0 <= received <= self.sent:
            return f"it says it received {received} messages of {self.sent}"
        first = self._kept[0].number if self._kept else self.sent + 1
        if received + 1 < first:
            return f"messages {received + 1}-{first - 1}, missed, are no longer kept ({KEEP_BYTES} bytes are)"
        for kept in self._kept:
            if kept.number > received and kept.frames is None:
                return f"message {kept.number}, missed, held over {KEEP_MESSAGE_BYTES} bytes: not kept"
        return None

    def detach(self) -> None:
        """The socket dropped: nothing is written until attach(); what is sent meanwhile is kept."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._ws = None

    def attach(self, ws: Any, received: int, first: list[str]) -> None:
        """Writes on `ws` from now on: `first` (not numbered), then the messages after
        `received` (resend_problem(received) is None), then what comes."""
        if self._task is not None:
            self._task.cancel()
        self._ws = ws
        queued, self._queue = self._queue, collections.deque(first)
        if not self.keep:
            self._queue.extend(queued)
        for kept in self._kept:
            if kept.number > received and kept.frames is not None:  # a view: released to the pool once only
                self._queue.extend(frame if isinstance(frame, str) else memoryview(frame) for frame in kept.frames)
        self._queued_bytes = sum(len(frame) for frame in self._queue)
        self._task = asyncio.get_running_loop().create_task(self._write(ws))
        self._wake.set()

    @property
    def has_room(self) -> bool:
        """Whether less than HIGH_WATER_BYTES wait to be sent (else a relay waits for drained())."""
        return self._room.is_set()

    async def drained(self) -> None:
        await self._room.wait()

    async def _write(self, ws: Any) -> None:
        try:
            while True:
                self._writing = False
                await self._wake.wait()
                self._wake.clear()
                self._writing = True
                while self._queue:
                    frame = self._queue.popleft()
                    self._queued_bytes -= len(frame)
                    if isinstance(frame, str):
                        await ws.send_str(frame)
                    else:
                        await ws.send_bytes(frame)
                        if isinstance(frame, Recycled):  # sent or copied by now: its memory takes the next piece
                            frame.release()
                    if self._queued_bytes <= HIGH_WATER_BYTES // 2:
                        self._room.set()
        except (ConnectionError, RuntimeError) as error:  # the socket went away
            log.debug("WebSocket writer stopped: %s", error)
            if self.keep:  # what it held is kept: it waits for attach()
                return
        if self.keep and not self.closed:
            return
        self.closed = True
        self._queue.clear()
        self._room.set()

    async def close(self) -> None:
        self.closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._queue.clear()
        self._kept.clear()
        self._room.set()


class SplitTransport:
    """A plugin's channel carried by its direct socket (ENGINE.md, The direct socket): sends on
    `direct`, hears both (the engine's own `close` for the plugin comes on the main socket)."""

    def __init__(self, direct: ChannelTransport, relay: ChannelTransport) -> None:
        self.direct, self.relay = direct, relay
        self.channel = relay.channel

    @property
    def closed(self) -> bool:
        return self.direct.closed and self.relay.closed

    def send(self, message: Message, transfer: list[Buffer]) -> None:
        self.direct.send(message, transfer)

    def on_message(self, handler: Handler) -> None:
        self.direct.on_message(handler)
        self.relay.on_message(handler)

    def close(self) -> None:
        self.direct.close()
        self.relay.close()


class ChannelTransport:
    """The pyjoy.rpc Transport of one channel."""

    def __init__(self, outgoing: Outgoing, channel: str) -> None:
        self.channel = channel
        self.closed = False
        self._outgoing = outgoing
        self._inbox = Inbox()

    def send(self, message: Message, transfer: list[Buffer]) -> None:
        if self.closed:
            raise ConnectionError(f"channel {self.channel!r} is closed")
        self._outgoing.send(self.channel, message)

    def on_message(self, handler: Handler) -> None:
        self._inbox.set_handler(handler)

    def deliver(self, message: Message, problem: Exception | None = None) -> None:
        if not self.closed:
            self._inbox.deliver(message, problem)

    def close(self) -> None:
        self.closed = True
