"""Moving messages: the Transport interface, and an in-memory pair for tests on CPython.

A transport carries messages (trees of None, bool, int, float, str, list, str-keyed dict
and buffers) and never looks inside them. The session calls `send(message, transfer)`,
registers one handler with `on_message(handler)`, and calls `close()` when done.

    a, b = memory_pair()             # two connected ends, delivering on the running loop
    Session(a), Session(b)

The pair behaves like postMessage with a transfer list: the receiver gets its own copy of
the message's dicts and lists, and each buffer arrives as a new `bytearray` (copied once at
send time, as the Pyodide and WebSocket transports do), so neither side sees the other's
later changes. Only message values are accepted, so a codec bug that would fail in the
browser fails here too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

Buffer = bytes | bytearray | memoryview
Message = dict[str, Any]
Handler = Callable[..., None]  # (message) or (message, error)


class Inbox:
    """A transport's received messages on their way to its handler: those that come before
    a handler is set wait for it (app/rpc/transport.js has its twin)."""

    def __init__(self) -> None:
        self.handler: Handler | None = None
        self._early: list[tuple[Message, Exception | None]] = []

    def set_handler(self, handler: Handler) -> None:
        """Sets the handler and hands it the messages that came before it."""
        self.handler = handler
        early, self._early = self._early, []
        for message, problem in early:
            self.deliver(message, problem)

    def deliver(self, message: Message, problem: Exception | None = None) -> None:
        if self.handler is None:
            self._early.append((message, problem))
        elif problem is None:
            self.handler(message)
        else:
            self.handler(message, problem)

    def clear(self) -> None:
        self._early = []


class Transport(Protocol):
    def send(self, message: Message, transfer: list[Buffer]) -> None:
        """Send `message`; `transfer` lists its buffers (each once), which the sender gives up."""

    def on_message(self, handler: Handler) -> None:
        """Call `handler(message)` for each message received from now on; a transport that
        received a message broken (part of it missing) calls `handler(message, error)`."""

    def close(self) -> None:
        """Stop sending and receiving; sending afterwards raises ConnectionError."""


class MemoryTransport:
    """One end of `memory_pair()`."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.peer: MemoryTransport | None = None
        self.closed = False
        self._handler: Handler | None = None
        self._loop = loop

    def send(self, message: Message, transfer: list[Buffer]) -> None:
        if self.closed or self.peer is None:
            raise ConnectionError("transport closed")
        buffers: list[Any] = []
        copy = _copy(message, buffers)
        listed = {id(buffer) for buffer in transfer}
        if {id(buffer) for buffer in buffers} != listed or len(listed) != len(transfer):
            raise ValueError(f"the transfer list should name each of the message's {len(buffers)} buffers once")
        loop = self._loop or asyncio.get_running_loop()
        loop.call_soon(self.peer._deliver, copy)

    def on_message(self, handler: Handler) -> None:
        self._handler = handler

    def close(self) -> None:
        self.closed = True

    def _deliver(self, message: Message) -> None:
        if not self.closed and self._handler is not None:
            self._handler(message)


def memory_pair(loop: asyncio.AbstractEventLoop | None = None) -> tuple[MemoryTransport, MemoryTransport]:
    """Two connected transports; messages are delivered by `loop` (default: the running loop)."""
    a, b = MemoryTransport(loop), MemoryTransport(loop)
    a.peer, b.peer = b, a
    return a, b


def _copy(value: Any, buffers: list[Any]) -> Any:
    kind = type(value)
    if value is None or kind in (str, int, float, bool):
        return value
    if kind is dict:
        for key in value:
            if type(key) is not str:
                raise TypeError(f"message object keys must be str, got {type(key).__name__}")
        return {key: _copy(item, buffers) for key, item in value.items()}
    if kind is list:
        return [_copy(item, buffers) for item in value]
    if kind in (bytes, bytearray, memoryview):
        buffers.append(value)
        return bytearray(value)
    raise TypeError(f"not a message value: {kind.__module__}.{kind.__qualname__}")
