"""A plugin process's direct socket: the page's WebSocket for this plugin's channel, which the
engine accepted and handed over (ENGINE.md, "The direct socket").

    direct = Direct(deliver, report)               # in the plugin process, one per process
    await direct.attach(sock, number, received)    # a socket the engine passed (pipe.py's DIRECT frame)
    direct.send(message)                           # the session's messages, once attached
    direct.attached                                # whether messages go this way

The engine completed the WebSocket handshake (token, Origin, ticket) and stopped reading
the socket; this process speaks the frames from there on, as the server side (masked frames
in, unmasked out), with `websockets`' sans-I/O protocol in the OPEN state (its C speedups
unmask), on an asyncio transport; a big binary frame that its message waits for is received
straight into that message's buffer instead, and unmasked there (_Socket). The messages are
the engine's wire, wire.py's frames on the one channel "plugin", numbered and kept as the
main socket's are (mux.Outgoing, the page's ChannelSocket), so that a direct socket that
drops is re-opened with a new ticket and each side sends again what the other missed: the
hello's `received` and the URL's say how many.
`report(number)` tells the engine that socket `number` closed, so that it lets go of its copy.
This module never imports aiohttp: a plugin process imports it.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from typing import Any

from pyjoy.engine import wire
from pyjoy.engine.masking import mask_into
from pyjoy.engine.mux import Outgoing

try:  # the engine extra installs it; a plugin whose Python lacks it stays on the relay
    from websockets.frames import Close, Opcode
    from websockets.protocol import State
    from websockets.server import ServerProtocol
except ImportError:  # pragma: no cover
    ServerProtocol = None  # type: ignore[assignment,misc]

#: Where the page's messages come from and what goes to the session: (message, problem).
Deliver = Callable[[Any, Exception | None], None]
CLOSE_RESUME_REFUSED = 4410
#: Bytes queued in the transport past which senders wait (as the page's HIGH_WATER_BYTES).
HIGH_WATER_BYTES = 16 * 2**20
#: A binary frame this big or bigger is received in place when its message waits for it.
IN_PLACE_BYTES = 64 * 2**10
#: What other frames are read through, many per system call.
SCRATCH_BYTES = 256 * 2**10
#: Frames to send smaller than this are joined into one write (copied: a few bytes of each).
JOIN_BYTES = 64 * 2**10


#: Set (to 1) in the engine's environment, its plugin processes take no direct socket: every
#: channel stays on the relay (a way to compare the two paths, and to test the fallback).
RELAY_ONLY_VARIABLE = "PYJOY_ENGINE_RELAY_ONLY"


def available() -> str | None:
    """Why this process cannot take a direct socket, or None when it can."""
    if os.environ.get(RELAY_ONLY_VARIABLE) == "1":
        return f"{RELAY_ONLY_VARIABLE}=1"
    return None if ServerProtocol is not None else "this plugin's Python has no `websockets` package"


class _Socket(asyncio.BufferedProtocol):
    """One direct socket: WebSocket frames over an asyncio transport. `send_str`/`send_bytes`
    are what mux.Outgoing writes with (as aiohttp's WebSocket has them).

    Received bytes go to `websockets`, which checks and parses them, except a big binary
    frame that is the next piece of the message being read (`place(length)`, wire.Incoming's
    reserve, gives where it goes): read past its header, the socket receives its payload
    straight into that place, where it is unmasked (masking.py), so an array's bytes are
    copied by the kernel alone. Such a frame is one `websockets` would take as it is: final,
    no reserved bits, masked, within the size limit, outside a fragmented message, while the
    connection is open; every other frame, and any that breaks a rule, goes to `websockets`."""

    def __init__(self, on_frame: Callable[[str | bytes | memoryview], None], on_end: Callable[[], None],
                 place: Callable[[int], memoryview | None]) -> None:
        self._ws = ServerProtocol(state=State.OPEN, max_size=wire.CLOSE_FRAME_BYTES)
        self._on_frame = on_frame
        self._on_end = on_end
        self._place = place
        self._transport: asyncio.Transport | None = None
        self._room: asyncio.Future[None] | None = None
        self._fragments: list[bytes] = []
        self._fragment_kind: Any = None
        self.closed = False
        self._scratch = memoryview(bytearray(SCRATCH_BYTES))
        self._start = self._end = 0  # bytes read into the scratch buffer, not yet looked at
        self._through = 0  # bytes of the current frame still to hand to `websockets`
        self._fragmented = False  # a fragmented message is under way (its frames go to `websockets`)
        self._payload: memoryview | None = None  # a big binary frame's payload, received in place
        self._got = 0
        self._key = b""

    def connection_made(self, transport: Any) -> None:
        self._transport = transport
        transport.set_write_buffer_limits(high=HIGH_WATER_BYTES)

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._payload is not None:
            return self._payload[self._got:]
        return self._scratch[self._end:]

    def buffer_updated(self, nbytes: int) -> None:
        if self._payload is not None:
            self._got += nbytes
            self._payload_came()
        else:
            self._end += nbytes
        self._scan()
        self._flush()

    def _scan(self) -> None:
        """Hands the scratch buffer's bytes on, frame by frame, until a payload is received in place."""
        view = self._scratch
        while self._payload is None and self._start < self._end:
            if self._through:
                n = min(self._through, self._end - self._start)
                self._ws.receive_data(bytes(view[self._start:self._start + n]))
                self._start += n
                self._through -= n
                self._events()
                continue
            header = _header(view, self._start, self._end)
            if header is None:
                break  # the rest of the header is not here yet
            size, opcode, fin, rsv, masked, length = header
            place = None
            if (opcode == Opcode.BINARY.value and fin and not rsv and masked and not self._fragmented
                    and length >= IN_PLACE_BYTES and self._ws.state is State.OPEN):
                place = self._place(length)
            if place is None:
                if opcode in (Opcode.TEXT.value, Opcode.BINARY.value, Opcode.CONT.value):
                    self._fragmented = not fin
                self._through = size + length
                continue
            self._key = bytes(view[self._start + size - 4:self._start + size])
            self._start += size
            have = min(self._end - self._start, length)
            place[:have] = view[self._start:self._start + have]
            self._start += have
            self._payload, self._got = place, have
            self._payload_came()
        if self._start == self._end:
            self._start = self._end = 0
        elif self._end == len(view):  # the start of a header at the end: to the front
            left = self._end - self._start
            view[:left] = view[self._start:self._end]
            self._start, self._end = 0, left

    def _payload_came(self) -> None:
        """Once the payload is whole: unmasks it where it is (one pass) and delivers it."""
        payload = self._payload
        assert payload is not None
        if self._got == payload.nbytes:
            self._payload = None
            mask_into(payload, payload, self._key)
            self._on_frame(payload)

    def _events(self) -> None:
        for frame in self._ws.events_received():
            if frame.opcode in (Opcode.TEXT, Opcode.BINARY) and frame.fin:
                self._frame(frame.opcode, frame.data)
            elif frame.opcode in (Opcode.TEXT, Opcode.BINARY):  # a message in fragments (browsers send none)
                self._fragments, self._fragment_kind = [frame.data], frame.opcode
            elif frame.opcode is Opcode.CONT:
                self._fragments.append(frame.data)
                if frame.fin:
                    data_, self._fragments = b"".join(self._fragments), []
                    self._frame(self._fragment_kind, data_)

    def _frame(self, opcode: Any, data: bytes) -> None:
        if opcode is Opcode.TEXT:
            self._on_frame(data.decode())  # websockets checked it is UTF-8
        else:
            self._on_frame(data)

    def eof_received(self) -> bool:
        self._ws.receive_eof()  # (in a payload received in place too: the stream ended with no closing handshake)
        self._events()
        self._flush()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._room is not None and not self._room.done():
            self._room.set_result(None)
        self._on_end()

    def pause_writing(self) -> None:
        if self._room is None or self._room.done():
            self._room = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._room is not None and not self._room.done():
            self._room.set_result(None)

    def _flush(self) -> None:
        """Writes what `websockets` has to send: small frames joined (a message's header and
        small buffers in one system call), big ones as they are (no copy)."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        small: list[bytes] = []
        for data in self._ws.data_to_send():
            if data and len(data) < JOIN_BYTES:
                small.append(data)
                continue
            if small:
                transport.write(b"".join(small))
                small = []
            if data:
                transport.write(data)
            else:  # the closing handshake is over: the end of the stream
                transport.close()
                return
        if small:
            transport.write(b"".join(small))
        if self._ws.state is State.CLOSED:
            transport.close()

    async def _room_to_send(self) -> None:
        if self.closed or self._ws.state is not State.OPEN:
            raise ConnectionError("the direct socket is closed")
        if self._room is not None and not self._room.done():
            await self._room
            if self.closed:
                raise ConnectionError("the direct socket is closed")

    def write_nowait(self, frame: str | bytes | memoryview) -> bool:
        """Takes a frame to send if the transport has room (mux.Outgoing's fast path; it calls
        flush() after the frames it has); else False."""
        if self.closed or self._ws.state is not State.OPEN or (self._room is not None and not self._room.done()):
            return False
        if isinstance(frame, str):
            self._ws.send_text(frame.encode())
        else:
            self._ws.send_binary(frame)
        return True

    def flush(self) -> None:
        self._flush()

    async def send_str(self, text: str) -> None:
        await self._room_to_send()
        self._ws.send_text(text.encode())
        self._flush()

    async def send_bytes(self, data: Any) -> None:
        await self._room_to_send()
        self._ws.send_binary(data)
        self._flush()

    def close(self, code: int = 1000, reason: str = "") -> None:
        if self._ws.state is State.OPEN:
            self._ws.send_close(code, reason)
        self._flush()
        if self._transport is not None:
            asyncio.get_running_loop().call_later(1.0, self._transport.abort)  # a page that never answers


def _header(view: memoryview, start: int, end: int) -> tuple[int, int, bool, int, bool, int] | None:
    """The frame header at `start` (RFC 6455, 5.2): its size, opcode, FIN, RSV bits, MASK and
    payload length; None while it has not all come."""
    if end - start < 2:
        return None
    first, second = view[start], view[start + 1]
    length = second & 0x7F
    extended = 2 if length == 126 else 8 if length == 127 else 0
    size = 2 + extended + (4 if second & 0x80 else 0)
    if end - start < size:
        return None
    if extended:
        length = int.from_bytes(view[start + 2:start + 2 + extended], "big")
    return size, first & 0x0F, bool(first & 0x80), first & 0x70, bool(second & 0x80), length


class Direct:
    """This process's end of the page's direct socket(s) for its channel: one at a time."""

    def __init__(self, deliver: Deliver, report: Callable[[int], None]) -> None:
        self._deliver = deliver
        self._report = report
        self.outgoing = Outgoing(None, keep=True)
        self.attached = False  # once the first socket came: the session's messages go this way
        self.received = 0  # the page's messages (text frames) read whole on direct sockets
        self._incoming = wire.Incoming()
        self._socket: _Socket | None = None

    async def attach(self, sock: socket.socket, number: int, received: int | None, grace: float) -> None:
        """Speaks on `sock` (the engine's socket `number`); `received`: None for the first, else
        the page's count of this process's messages (a re-open after a drop)."""
        loop = asyncio.get_running_loop()
        if self._socket is not None and not self._socket.closed:
            self._socket.close(1000, "another direct socket took over")
        self._incoming = wire.Incoming()
        current: _Socket | None = None

        def on_end() -> None:
            if self._socket is current:
                self._dropped()
            self._report(number)

        current = _Socket(self._frame, on_end, lambda length: self._incoming.reserve(length))
        await loop.connect_accepted_socket(lambda: current, sock=sock)
        problem = None
        if received is None and self.attached:
            problem = "the direct socket was opened before; re-open it with received="
        elif received is not None:
            problem = self.outgoing.resend_problem(received)
        if problem is not None:
            current.close(CLOSE_RESUME_REFUSED, f"resume refused: {problem}"[:120])
            return
        self._socket = current
        self.attached = True
        hello = wire.dumps({"hello": {"resume": "ticket", "grace": grace,
                                      "received": None if received is None else self.received}})
        self.outgoing.attach(current, received or 0, [hello])

    def send(self, message: Any) -> None:
        self.outgoing.send("plugin", message)

    def _dropped(self) -> None:
        """The socket dropped: a message it cut short comes again on the next one."""
        self.outgoing.detach()
        if self._incoming.reading:
            self.received -= 1
        self._incoming = wire.Incoming()
        self._socket = None

    def _frame(self, frame: str | bytes | memoryview) -> None:
        if isinstance(frame, str):
            self.received += 1
        for item in self._incoming.feed(frame):
            if isinstance(item, wire.Complete):
                self._deliver(*item.message())
            elif isinstance(item, wire.FrameError) and isinstance(item.message, dict):
                self._deliver(item.message, item)
                if wire.error_answer(item.message, "") is None:  # no call to fail: the page hears of it
                    self._notice(str(item))
            elif isinstance(item, wire.FrameError):
                self._notice(str(item))
            else:  # a notice or a hello: the page sends neither
                self._notice('a page sends no {"error"} or {"hello"} frames; expected a message')

    def _notice(self, text: str) -> None:
        if not self.outgoing.closed:
            self.outgoing.send_frames([wire.dumps({"error": text})])

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close(1000, "the plugin ended")
