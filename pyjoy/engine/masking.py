"""WebSocket masking (RFC 6455, 5.3) of big payloads in one pass, in place or into a buffer.

    mask_into(out, payload, key)     # out = payload XOR key, repeated; `out` may be `payload`
    frame = masked_frame(payload)    # a client's whole binary frame: header, a random key, masked payload

A client masks every frame it sends with a fresh random key, and a server unmasks what it
receives. aiohttp (the client) copies a payload, masks the copy, then copies it again
behind the header; `websockets` (a plugin process's direct socket, the server) returns the
unmasked payload as new bytes. For an n-d array of a model's batch each such pass is CPU
taken from the model on a small machine, so the engine's own paths for big binary frames
(client.py sending, direct.py receiving in place) mask with numpy, one pass over memory;
small payloads, and all where numpy is missing, with `websockets`' C function and a copy.
This module never imports aiohttp: a plugin process imports it.
"""

from __future__ import annotations

import os
import struct
from typing import Any

try:  # its C speedups where built
    from websockets.frames import apply_mask as _apply_mask
except ImportError:  # pragma: no cover  (the engine extra installs websockets)
    def _apply_mask(data: Any, mask: bytes) -> bytes:
        n = len(data)
        key = int.from_bytes((mask * (n // 4 + 1))[:n], "little")
        return (int.from_bytes(data, "little") ^ key).to_bytes(n, "little")

#: Payloads from this size are masked with numpy (below it, its call costs more than the bytes).
NUMPY_BYTES = 4096
_numpy: Any = None


def _np() -> Any:
    global _numpy
    if _numpy is None:
        try:
            import numpy
        except ImportError:  # pragma: no cover  (the engine extra installs numpy)
            numpy = False
        _numpy = numpy
    return _numpy or None


def mask_into(out: memoryview, payload: Any, key: bytes) -> None:
    """Writes `payload` XOR `key` (4 bytes, repeated from the payload's first byte) into the
    first len(payload) bytes of `out`, a writable byte view; `out` may view `payload` itself."""
    payload = memoryview(payload).cast("B")
    n = payload.nbytes
    np = _np() if n >= NUMPY_BYTES else None
    if np is None:
        out[:n] = _apply_mask(payload, key)
        return
    whole = n - n % 4
    np.bitwise_xor(np.frombuffer(payload, np.uint32, whole // 4), np.frombuffer(key, np.uint32)[0],
                   out=np.frombuffer(out, np.uint32, whole // 4))
    for at in range(whole, n):
        out[at] = payload[at] ^ key[at % 4]


#: What a frame adds to its payload in masked_frame's buffer, at most: alignment, header, key.
FRAME_EXTRA_BYTES = 15 + 10 + 4


def masked_frame(payload: Any, opcode: int = 0x2, memory: bytearray | None = None) -> memoryview:
    """A client's frame (FIN, `opcode`, masked with a fresh random key from os.urandom) of
    `payload`, written in one pass over the payload into `memory` (at least len(payload) +
    FRAME_EXTRA_BYTES; a new buffer if None): a view of it, its masked bytes at an address
    a multiple of 16, so that numpy XORs aligned words."""
    payload = memoryview(payload).cast("B")
    n = payload.nbytes
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 2**16:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    key = os.urandom(4)
    head = len(header) + 4
    view = memoryview(memory if memory is not None else bytearray(n + FRAME_EXTRA_BYTES))
    pad = -(_address(view) + head) % 16
    frame = view[pad:pad + head + n]
    frame[:head] = header + key
    mask_into(frame[head:], payload, key)
    return frame


def _address(view: memoryview) -> int:
    np = _np()
    return np.frombuffer(view, np.uint8).ctypes.data if np is not None else 0
