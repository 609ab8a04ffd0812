"""The pipe between the engine and a plugin process: wire.py's frames over a socket pair.

    pipe = Pipe(sock, on_frame, on_close, place=incoming.reserve)
    pipe.write(frame)          # str (TEXT) or bytes-like (BINARY), queued as it is: no copy
    pipe.write_abort()         # ABORT: drop the message being read
    pipe.write_direct(text, fd)  # DIRECT: a note about the direct socket, with a socket passed (SCM_RIGHTS)
    Pipe(sock, ..., receive_fds=True); pipe.fds.popleft()   # the receiver's side of a passed socket
    on_frame(kind, payload)    # called for each frame received: (TEXT, str), (BINARY, buffer), (ABORT, b"")
    pipe.pause_reading(); pipe.resume_reading()   # backpressure: the reader waits for its consumer
    pipe.unsent                # bytes queued, not yet taken by the socket
    pipe.close()               # on_close(None) at the end of the stream, on_close(error) on a broken one

Each frame is 1 byte of kind (TEXT, BINARY, ABORT, DIRECT), 4 bytes of length (little-endian) and
the payload, at most wire.MAX_FRAME_BYTES. DIRECT frames (JSON text) are outside the
messages: the engine hands a plugin process the page's direct socket with one (the file
descriptor travels with its first byte), and the process says with one when it closed. A big array crosses this pipe twice per round
trip, so it moves no byte more than the kernel must: a binary payload is received straight
into its destination (`place(length)`: a view into the buffer its message is joined into,
or a new bytearray), and a frame to send waits in the queue as it is, not copied into a
buffer (asyncio's streams on Python 3.11 copy both ways, and move what they hold with each
send). Small frames are read from one scratch buffer, many per system call. The socket stays
registered for reading (no epoll_ctl per frame); writing registers it while the queue waits.

A frame to send is the sender's to keep unchanged until it is sent: a buffer a plugin
returns is sent from its own memory (the RPC's transfer: the sender gives it up).
This module never imports aiohttp: a plugin process imports it too.
"""

from __future__ import annotations

import array
import asyncio
import collections
import os
import socket
import struct
import sys
from collections.abc import Callable
from typing import Any

from pyjoy.engine.wire import MAX_FRAME_BYTES, FrameError

TEXT, BINARY, ABORT, DIRECT = 0, 1, 2, 3
_HEAD = struct.Struct("<BI")
#: The scratch buffer small frames are read through; a payload larger than this fraction of
#: it is received into its own buffer instead.
SCRATCH_BYTES = 256 * 1024
_DIRECT_BYTES = 64 * 1024
#: Buffers handed to one sendmsg(): fewer system calls for many small frames.
_SEND_BATCH = 64
#: Reads in a row in one callback while a big payload comes (then other work runs).
_READS_PER_WAKE = 16
#: Passed file descriptors one read takes (the engine passes one at a time).
_FDS_PER_READ = 4

#: What the pool keeps of received pieces that were sent on (recycled() below).
POOL_BYTES = 32 * 2**20

OnFrame = Callable[[int, Any], None]
OnClose = Callable[[Exception | None], None]
Place = Callable[[int], "memoryview | None"]


class Pipe:
    def __init__(self, sock: socket.socket, on_frame: OnFrame, on_close: OnClose, place: Place | None = None,
                 receive_fds: bool = False) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._fd = sock.fileno()
        self._loop = asyncio.get_running_loop()
        self._on_frame = on_frame
        self._on_close = on_close
        self._place = place
        self._scratch = bytearray(SCRATCH_BYTES)
        self._view = memoryview(self._scratch)
        self._start = self._end = 0  # unread bytes of the scratch buffer
        self._payload: memoryview | None = None  # a big payload being received in place
        self._payload_owner: Any = None  # what `_payload` views (delivered when full)
        self._payload_kind = BINARY
        self._got = 0
        self._queue: collections.deque[memoryview] = collections.deque()
        self.unsent = 0
        self._drained: asyncio.Future[None] | None = None
        self._paused = False
        self._ended = False  # nothing more is read
        self.closed = False
        self._receive_fds = receive_fds
        self.fds: collections.deque[int] = collections.deque()  # passed sockets, in the order they came
        self._passing: dict[int, int] = {}  # id(view) -> the fd to send with its first byte (closed once sent)
        self._loop.add_reader(self._fd, self._readable)

    # -- sending -------------------------------------------------------------------------

    def write(self, frame: str | bytes | bytearray | memoryview) -> None:
        if self.closed:
            return
        if isinstance(frame, str):
            data = frame.encode()
            self._send([memoryview(_HEAD.pack(TEXT, len(data)) + data)])
        else:
            view = memoryview(frame).cast("B")
            self._send([memoryview(_HEAD.pack(BINARY, view.nbytes)), view] if view.nbytes else
                       [memoryview(_HEAD.pack(BINARY, 0))])

    def write_abort(self) -> None:
        if not self.closed:
            self._send([memoryview(_HEAD.pack(ABORT, 0))])

    def write_direct(self, text: str, fd: int | None = None) -> None:
        """A DIRECT frame; with `fd`, a duplicate of it goes along (the caller keeps its own)."""
        if self.closed:
            return
        data = text.encode()
        view = memoryview(_HEAD.pack(DIRECT, len(data)) + data)
        if fd is not None:
            self._passing[id(view)] = os.dup(fd)
        self._send([view])

    def _send(self, views: list[memoryview]) -> None:
        waiting = bool(self._queue)
        for view in views:
            self._queue.append(view)
            self.unsent += view.nbytes
        if not waiting:
            self._writable()  # the socket usually takes it now
            if self._queue and not self.closed:
                self._loop.add_writer(self._fd, self._writable)

    def _writable(self) -> None:
        queue = self._queue
        while queue:
            batch = [queue[i] for i in range(min(len(queue), _SEND_BATCH))]
            passing = [at for at, view in enumerate(batch) if id(view) in self._passing]
            ancillary = []
            if passing:  # a passed socket goes alone, with its frame's first byte
                batch = batch[:passing[0]] or batch[:1]
                if passing[0] == 0:
                    ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [self._passing[id(batch[0])]]))]
            try:
                sent = self._sock.sendmsg(batch, ancillary)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # the process went away
                self._end_with(None if isinstance(error, (BrokenPipeError, ConnectionResetError)) else error)
                return
            self.unsent -= sent
            if ancillary and sent:
                os.close(self._passing.pop(id(batch[0])))
            while sent:
                head = queue[0]
                if sent >= head.nbytes:
                    sent -= head.nbytes
                    queue.popleft()
                else:
                    queue[0] = head[sent:]
                    sent = 0
        self._loop.remove_writer(self._fd)
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    async def drained(self) -> None:
        """Returns once every frame written was taken by the socket (or the pipe closed)."""
        if self._queue and not self.closed:
            if self._drained is None or self._drained.done():
                self._drained = self._loop.create_future()
            await asyncio.shield(self._drained)

    # -- receiving -----------------------------------------------------------------------

    def pause_reading(self) -> None:
        if not self._paused and not self._ended:
            self._paused = True
            self._loop.remove_reader(self._fd)

    def resume_reading(self) -> None:
        if self._paused and not self._ended and not self.closed:
            self._paused = False
            self._loop.add_reader(self._fd, self._readable)
            self._loop.call_soon(self._parse_guarded)  # frames already read wait in the scratch buffer

    def _readable(self) -> None:
        try:
            for _ in range(_READS_PER_WAKE):
                if self._payload is not None:
                    n = self._recv_into(self._payload[self._got:])
                else:
                    if self._end == len(self._scratch):
                        self._compact()
                    n = self._recv_into(self._view[self._end:])
                if n == 0:
                    self._end_with(None)
                    return
                if self._payload is not None:
                    self._got += n
                    if self._got == self._payload.nbytes:
                        self._deliver_payload()
                    else:
                        continue  # more of it is likely there already
                else:
                    self._end += n
                self._parse()
                if self._payload is None or self._paused or self._ended:
                    return
        except (BlockingIOError, InterruptedError):
            return
        except (BrokenPipeError, ConnectionResetError):
            self._end_with(None)
        except Exception as error:  # a broken frame (FrameError), or the consumer's failure
            self._end_with(error)

    def _recv_into(self, view: memoryview) -> int:
        if not self._receive_fds:
            return self._sock.recv_into(view)
        n, ancillary, _flags, _address = self._sock.recvmsg_into([view], socket.CMSG_SPACE(4 * _FDS_PER_READ))
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
                self.fds.extend(fds)
        return n

    def _parse_guarded(self) -> None:
        try:
            self._parse()
        except Exception as error:
            self._end_with(error)

    def _parse(self) -> None:
        """Delivers the whole frames in the scratch buffer; starts a big one's payload in place."""
        view = self._view
        while not self._paused and not self._ended and self._payload is None and self._end - self._start >= _HEAD.size:
            kind, length = _HEAD.unpack_from(self._scratch, self._start)
            if kind not in (TEXT, BINARY, ABORT, DIRECT) or length > MAX_FRAME_BYTES or (kind == ABORT and length):
                raise FrameError(f"a pipe frame of kind {kind} and {length} bytes (at most {MAX_FRAME_BYTES})")
            begin = self._start + _HEAD.size
            have = self._end - begin
            if have >= length:
                self._start = begin + length
                if kind in (TEXT, DIRECT):
                    try:
                        payload: Any = str(view[begin:begin + length], "utf-8")
                    except UnicodeDecodeError as error:
                        raise FrameError(f"a text frame that is not UTF-8: {error}") from None
                else:
                    payload = bytes(view[begin:begin + length]) if kind == BINARY else b""
                self._on_frame(kind, payload)
            elif length > _DIRECT_BYTES:
                # Received where it goes: the rest comes straight from the socket.
                placed = self._place(length) if self._place is not None and kind == BINARY else None
                owner: Any = placed if placed is not None else bytearray(length)
                if isinstance(owner, memoryview) and isinstance(owner.obj, Recycled):
                    owner = owner.obj  # delivered as itself, so that its consumer can release() it
                self._payload, self._payload_owner, self._payload_kind = memoryview(owner).cast("B"), owner, kind
                self._payload[:have] = view[begin:self._end]
                self._got = have
                self._start = self._end = 0
            else:
                break  # the rest of it is not here yet
        if self._start == self._end:
            self._start = self._end = 0

    def _compact(self) -> None:
        """Moves the unread bytes to the front, to read more after them."""
        left = self._end - self._start
        self._view[:left] = self._view[self._start:self._end]
        self._start, self._end = 0, left

    def _deliver_payload(self) -> None:
        owner, kind = self._payload_owner, self._payload_kind
        self._payload = self._payload_owner = None
        if kind == TEXT:
            try:
                owner = bytes(owner).decode()
            except UnicodeDecodeError as error:
                raise FrameError(f"a text frame that is not UTF-8: {error}") from None
        self._on_frame(kind, owner)

    # -- the end -------------------------------------------------------------------------

    def _end_with(self, error: Exception | None) -> None:
        """The end of the stream (None), or a broken one: nothing more is read. The socket
        closes at the end; a broken one stays open for its owner to close (the engine ends a
        plugin that broke its pipe, which must not take the closed pipe for a goodbye)."""
        if self._ended:
            return
        self._ended = True
        self._loop.remove_reader(self._fd)
        if error is None:
            self.close()
        self._on_close(error)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = self._ended = True
        self._loop.remove_reader(self._fd)
        self._loop.remove_writer(self._fd)
        self._queue.clear()
        for fd in self._passing.values():
            os.close(fd)
        self._passing.clear()
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()
        self.unsent = 0
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._sock.close()


# -- pieces the engine relays, recycled ----------------------------------------------------
# Fresh memory is what a big array costs most here: the first touch of each page is a page
# fault (about 0.5 ms a MB on a small VM, more than copying it). The engine receives a
# plugin's pieces only to send them on, so once sent their memory takes the next ones.


class Recycled(bytearray):
    """A received payload from the pool: `release()` once it was handed on (Outgoing does)."""

    __slots__ = ()

    def release(self) -> None:
        _pool.give(self)


class _Pool:
    """Released pieces, each taken again only once nothing else refers to it: a transport
    may still hold a view of one it has not sent yet (asyncio does from Python 3.12 on), and
    every view holds a reference."""

    def __init__(self, limit: int) -> None:
        self._free: dict[int, list[Recycled]] = {}
        self._bytes = 0
        self._limit = limit

    def take(self, length: int) -> memoryview:
        free = self._free.get(length, [])
        for at in range(len(free)):
            # Referred to by the list and getrefcount's argument: by no one else.
            if sys.getrefcount(free[at]) == 2:
                self._bytes -= length
                return memoryview(free.pop(at))
        return memoryview(Recycled(length))

    def give(self, buffer: Recycled) -> None:
        if self._bytes + len(buffer) <= self._limit:
            self._free.setdefault(len(buffer), []).append(buffer)
            self._bytes += len(buffer)


_pool = _Pool(POOL_BYTES)


def recycled(length: int) -> memoryview:
    """A `place` for Pipe: a buffer of `length` bytes from the pool (its `.obj` is the Recycled)."""
    return _pool.take(length)
