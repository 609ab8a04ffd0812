"""How the engine's processes run: their event loop and their memory (bench/engine.py measures both).

    from pyjoy.engine import tuning
    tuning.keep_freed_memory()        # at the start of a process that relays big arrays
    tuning.run(main())                # as asyncio.run, on uvloop where it is installed

A call through the engine crosses three processes (page -> engine -> plugin process and
back), each turn of each event loop a few system calls; uvloop (the engine extra installs
it) makes those turns about a third cheaper than asyncio's own loop. A plugin process runs
on it too when its Python has it (an environment made from the engine's Python sees the
engine's packages); otherwise, and on Windows, asyncio's loop.

A big array relayed by the engine arrives as aiohttp's fresh `bytes` per frame. glibc gives
blocks that big straight back to the system when freed, so each next frame's memory is new
pages, and the first touch of a page is a page fault: on a small VM that costs more than
copying the bytes. Keeping freed memory in the heap (up to TRIM_BYTES) lets the next frame
reuse it. Plugin processes do it too: what their pipe brings, and a direct socket's big
pieces, are received into buffers that wire.py reuses, but a direct socket's other frames
come as `websockets`' fresh bytes (direct.py), which without it cost about 4x as much to
receive (0.7 against 2.7 ms per 4 MiB, measured before big pieces were received in place).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import sys
from collections.abc import Coroutine
from typing import Any

#: Blocks up to this size come from the heap, not from a mapping of their own (glibc's maximum).
MMAP_THRESHOLD_BYTES = 32 * 2**20
#: Free memory at the heap's top kept, not given back to the system.
TRIM_BYTES = 256 * 2**20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (malloc.h)


def keep_freed_memory() -> bool:
    """Tells glibc's malloc to keep freed blocks for reuse; False where this is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt, nothing to tune
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) and mallopt(_M_TRIM_THRESHOLD, TRIM_BYTES))


def loop_name() -> str:
    """The event loop `run` uses here: "uvloop" or "asyncio"."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run(main: Coroutine[Any, Any, Any]) -> Any:
    """asyncio.run(main), on uvloop where it is installed."""
    if loop_name() == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)
