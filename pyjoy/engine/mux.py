"""Many RPC sessions over one WebSocket, either end (the engine's, or client.py's).

    outgoing = Outgoing(ws)                       # ws: aiohttp's, server or client side
    transport = ChannelTransport(outgoing, "engine")
    session = Session(transport)                  # a pyjoy.rpc session on that channel
    transport.deliver(message)                    # what the reader got for the channel
    outgoing.send_frames(wire.frames(...))        # raw frames (the engine relays this way)
    await outgoing.close()

Frames go out in the order they were queued, one writer task per socket, so that a
message's frames are never split by another's (ENGINE.md, Frames). `send` is synchronous,
as a pyjoy.rpc Transport's must be; `drained()` lets a relay wait while too much waits.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any

from pyjoy.engine import wire
from pyjoy.engine.pipe import Recycled
from pyjoy.rpc.transport import Buffer, Handler, Message

log = logging.getLogger("pyjoy.engine")
#: Past this many bytes queued, relays wait (drained()) for the socket to take them.
HIGH_WATER_BYTES = 64 * 2**20


class Outgoing:
    def __init__(self, ws: Any) -> None:
        self._ws = ws
        self._queue: collections.deque[str | memoryview] = collections.deque()
        self._queued_bytes = 0
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self.closed = False
        self._task = asyncio.get_running_loop().create_task(self._write())

    def send_frames(self, frames: list[str | memoryview]) -> None:
        if self.closed:
            raise ConnectionError("the WebSocket is closed")
        for frame in frames:
            self._queue.append(frame)
            self._queued_bytes += len(frame)
        if self._queued_bytes > HIGH_WATER_BYTES:
            self._room.clear()
        self._wake.set()

    def send(self, channel: str, message: Message) -> None:
        tree, buffers = wire.split(message)
        self.send_frames(wire.frames(channel, tree, buffers))

    @property
    def has_room(self) -> bool:
        """Whether less than HIGH_WATER_BYTES wait to be sent (else a relay waits for drained())."""
        return self._room.is_set()

    async def drained(self) -> None:
        await self._room.wait()

    async def _write(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._queue:
                    frame = self._queue.popleft()
                    self._queued_bytes -= len(frame)
                    if isinstance(frame, str):
                        await self._ws.send_str(frame)
                    else:
                        await self._ws.send_bytes(frame)
                        if isinstance(frame, Recycled):  # sent or copied by now: its memory takes the next piece
                            frame.release()
                    if self._queued_bytes <= HIGH_WATER_BYTES // 2:
                        self._room.set()
        except (ConnectionError, RuntimeError) as error:  # the socket went away
            log.debug("WebSocket writer stopped: %s", error)
        finally:
            self.closed = True
            self._queue.clear()
            self._room.set()

    async def close(self) -> None:
        self.closed = True
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


class ChannelTransport:
    """The pyjoy.rpc Transport of one channel."""

    def __init__(self, outgoing: Outgoing, channel: str) -> None:
        self.channel = channel
        self.closed = False
        self._outgoing = outgoing
        self._handler: Handler | None = None
        self._early: list[tuple[Message, Exception | None]] = []

    def send(self, message: Message, transfer: list[Buffer]) -> None:
        if self.closed:
            raise ConnectionError(f"channel {self.channel!r} is closed")
        self._outgoing.send(self.channel, message)

    def on_message(self, handler: Handler) -> None:
        self._handler = handler
        early, self._early = self._early, []
        for message, problem in early:
            self.deliver(message, problem)

    def deliver(self, message: Message, problem: Exception | None = None) -> None:
        if self.closed:
            return
        if self._handler is None:
            self._early.append((message, problem))
        elif problem is None:
            self._handler(message)
        else:
            self._handler(message, problem)

    def close(self) -> None:
        self.closed = True
