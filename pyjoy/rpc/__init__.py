"""PyJoy's RPC, Python half: one protocol (PROTOCOL.md beside this file) with the JS half.

    from pyjoy.rpc import connect, memory_pair

    a, b = memory_pair()                              # or PyodideTransport(port) in a worker
    host = connect(a, root={"add": lambda x, y: x + y})
    plugin = connect(b)
    api = await plugin.remote_root()              # a dotdict of remote functions
    assert await api.add(1, 2) == 3                   # calls return asyncio Futures (RemoteCall)
    api.add(1, 2).then(print)                         # ... with imjoy-rpc's then/catch/finally_

Remote exceptions raise `RemoteError` (`remote_type`, `message`, `traceback`); numpy arrays
travel without copies (`NDArray` where numpy is missing); `Blob` is bytes with a type and
a name; `register_codec(name, type, encoder, decoder)` adds a type of your own.
Modules: codec (values), session (calls and lifetimes), transport (moving messages),
pyodide_transport (postMessage from Pyodide), ndarray (arrays without numpy).
"""

from .codec import (
    Blob, Codec, Decoder, Encoder, RPCError, RemoteError, decode, default_codecs, dotdict, encode,
    register_codec,
)
from .ndarray import NDArray
from .session import ClosedError, RemoteCall, RemoteFunction, Session, connect
from .transport import MemoryTransport, Transport, memory_pair

__all__ = [
    "Blob", "ClosedError", "Codec", "Decoder", "Encoder", "MemoryTransport", "NDArray", "RPCError",
    "RemoteCall", "RemoteError", "RemoteFunction", "Session", "Transport", "connect", "decode", "default_codecs",
    "dotdict", "encode", "memory_pair", "register_codec",
]
