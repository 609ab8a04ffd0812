"""Values to wire form and back, per the Values table of PROTOCOL.md.

The session drives this module; a test or a tool may use it alone:

    encoder = Encoder(put_function=store.put)       # put_function(fn) -> id, for callables
    wire = encoder.encode({"image": array, "done": callback})
    transport.send({"type": "result", "id": "c1", "value": wire}, encoder.transfer)

    decoder = Decoder(get_proxy=session_proxy)       # get_proxy(target, name) -> callable
    value = decoder.decode(wire)

`encoder.transfer` lists every buffer the wire value holds (each once). A C-contiguous
numpy array is sent as a memoryview of its own memory, with no copy; a received array is
a numpy array viewing the received buffer (or an `NDArray` where numpy is missing).

Custom types: `register_codec(name, type, encoder, decoder)`; the encoder returns a dict,
sent with `_rtype` set to `name`; the decoder receives that dict decoded, `_rtype` removed.

Decoding is bounded (PROTOCOL.md, "Bounds"): a wire value may share references (structured
clone keeps them), so a small message can stand for a tree of 2**30 values. The decoder
counts the values it walks and the depth it is at, and refuses a value past
MAX_DECODE_VALUES or MAX_DECODE_DEPTH with an RPCError, which fails that call only.
"""

from __future__ import annotations

import math
import sys
import traceback
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .ndarray import DTYPES, ITEMSIZE, NDArray

Buffer = bytes | bytearray | memoryview
BUILTIN_RTYPES = frozenset({"memoryview", "typedarray", "ndarray", "blob", "error", "method"})
_PLAIN = (str, int, float, bool, type(None))

#: The most values (items of lists and objects, counted as the walk meets them) one message
#: may decode to. Decoding costs about 0.03 to 0.3 us a value in the page (V8) and 0.2 to
#: 0.6 us in CPython (bench/rpc_codec.py; a few times more in Pyodide, in the plugin's own
#: worker), so this bounds one message to about a third of a second of the page's time;
#: numbers in bulk go as arrays, which cost nothing a value. Shared references count each
#: time they are met: that is what makes a message that explodes (an array holding one
#: array twice, 30 deep) fail fast.
MAX_DECODE_VALUES = 1_000_000
#: The deepest nesting decoded. Real values are a few levels deep (an interface of
#: interfaces of arrays); 200 is far beyond them and well within the stack of either half
#: (Python's recursion limit is 1000 frames; decoding takes one or two a level).
MAX_DECODE_DEPTH = 200
#: The most dimensions of an ndarray (numpy allows 64; 32 before numpy 2).
MAX_NDIM = 32
#: The largest size of one dimension: the largest integer JS numbers hold exactly.
MAX_DIM = 2**53 - 1


def load_numpy() -> Any:
    """numpy, or None where it is not importable. Tests patch this to test the fallback."""
    try:
        import numpy
    except ImportError:
        return None
    return numpy


class dotdict(dict):  # noqa: N801  (the name ImJoy plugins know)
    """A dict whose keys are also attributes: `plugin.run(ctx)` and `plugin["run"]`."""

    def __getattribute__(self, name: str) -> Any:
        # Keys before dict methods: a plugin's `get` or `update` must call the plugin.
        if not name.startswith("__") and dict.__contains__(self, name):
            return dict.__getitem__(self, name)
        return super().__getattribute__(name)

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"no member {name!r} (members: {', '.join(map(str, self))})")

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None


class RemoteError(Exception):
    """An exception raised on the other side: `remote_type`, `message` (the sender's text),
    `traceback` (its text); `args[0]` is "Type: message".
    `code` is "remote-error", the same in JS, for callers that sort errors by code."""

    code = "remote-error"

    def __init__(self, remote_type: str, message: str, traceback: str = "") -> None:
        # args[0] names the type, "ValueError: bad value", as the JS half's message does.
        super().__init__(f"{remote_type}: {message}" if message else remote_type)
        self.remote_type = remote_type
        self.message = message
        self.traceback = traceback

    def __str__(self) -> str:
        # The remote traceback is the useful part of an uncaught remote error, so it is shown.
        head = self.args[0]
        return f"{head}\n\nRemote traceback:\n{self.traceback.rstrip()}" if self.traceback else head


class RPCError(Exception):
    """A failure of the protocol itself: a malformed message or wire value, an unknown target
    (and, as `session.ClosedError`, a closed session). JS has the same class name."""


@dataclass
class Blob:
    """Bytes with a MIME `type` and, for a File, a `name` (JS Blob and File)."""

    data: Buffer
    type: str = ""
    name: str | None = None

    def __bytes__(self) -> bytes:
        return bytes(self.data)

    def __len__(self) -> int:
        return memoryview(self.data).nbytes


@dataclass(frozen=True)
class Codec:
    name: str
    type: type | tuple[type, ...]
    encoder: Callable[[Any], dict[str, Any]]
    decoder: Callable[[dict[str, Any]], Any]


#: The registry sessions use unless given their own (a dict of name -> Codec).
default_codecs: dict[str, Codec] = {}


def register_codec(
    name: str,
    type: type | tuple[type, ...],
    encoder: Callable[[Any], dict[str, Any]],
    decoder: Callable[[dict[str, Any]], Any],
    registry: dict[str, Codec] | None = None,
) -> Codec:
    """Send instances of `type` as `{_rtype: name, **encoder(obj)}`; decode them with `decoder`."""
    if name in BUILTIN_RTYPES:
        raise ValueError(f"codec name {name!r} is a built-in _rtype; choose another name")
    codec = Codec(name, type, encoder, decoder)
    (default_codecs if registry is None else registry)[name] = codec
    return codec


def _type_name(value: Any) -> str:
    cls = type(value)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _is_buffer(value: Any) -> bool:
    return isinstance(value, (bytes, bytearray, memoryview))


class Encoder:
    """One encoding walk: `encode()` returns wire values; `transfer` collects their buffers."""

    def __init__(self, put_function: Callable[[Callable[..., Any]], str] | None = None,
                 codecs: Mapping[str, Codec] | None = None) -> None:
        self.transfer: list[Buffer] = []
        self._put_function = put_function
        self._codecs = default_codecs if codecs is None else codecs
        self._walking: set[int] = set()  # ids of the containers being walked, to catch cycles
        self._transferred: set[int] = set()

    def encode(self, value: Any) -> Any:
        if type(value) in _PLAIN:
            return value
        for codec in self._codecs.values():  # before the built-ins, so a codec can claim a dict subclass
            if isinstance(value, codec.type):
                return self._guarded(value, lambda: self._custom(codec, value))
        # Subclasses (enums, numpy.float64) go as the plain value.
        if isinstance(value, str):
            return str.__str__(value)
        if isinstance(value, int):
            return int(value)
        if isinstance(value, float):
            return float(value)
        if _is_buffer(value):
            return {"_rtype": "memoryview", "_rvalue": self._buffer(value)}
        if isinstance(value, NDArray):
            return self._ndarray_wire(value.data, value.shape, value.dtype)
        if isinstance(value, Blob):
            return {"_rtype": "blob", "_rvalue": self._buffer(value.data), "type": value.type, "name": value.name}
        if isinstance(value, BaseException):
            return encode_error(value)
        np = load_numpy() if "numpy" in sys.modules else None  # no numpy imported: no numpy values
        if np is not None and isinstance(value, (np.ndarray, np.generic)):
            return self._numpy(np, value)
        if isinstance(value, (list, tuple)):
            return self._guarded(value, lambda: [self.encode(item) for item in value])
        if isinstance(value, dict):
            return self._guarded(value, lambda: self._dict(value))
        if callable(value):
            return self._method(value)
        if isinstance(value, types.ModuleType):
            raise TypeError(f"cannot encode module {value.__name__!r}: export an object or a dict instead")
        if hasattr(value, "__dict__") or hasattr(type(value), "__slots__"):
            return self._guarded(value, lambda: self._interface(value))
        raise TypeError(f"cannot encode a value of type {_type_name(value)} (no codec registered for it)")

    def _guarded(self, value: Any, walk: Callable[[], Any]) -> Any:
        key = id(value)
        if key in self._walking:
            raise TypeError(f"cannot encode a {_type_name(value)} that contains itself")
        self._walking.add(key)
        try:
            return walk()
        finally:
            self._walking.discard(key)

    def _dict(self, value: dict[Any, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"cannot encode a dict with a {_type_name(key)} key ({key!r}); keys must be str")
            out[key] = self.encode(item)
        if any(callable(item) for item in value.values()):
            out["_rintf"] = True  # like a JS object holding functions: an interface
        return out

    def _interface(self, value: Any) -> dict[str, Any]:
        out = {name: self.encode(getattr(value, name)) for name in dir(value) if not name.startswith("_")}
        out["_rintf"] = True
        return out

    def _custom(self, codec: Codec, value: Any) -> dict[str, Any]:
        encoded = codec.encoder(value)
        if not isinstance(encoded, dict):
            raise TypeError(f"codec {codec.name!r}: the encoder returned {_type_name(encoded)}, not a dict")
        out = {str(key): self.encode(item) for key, item in encoded.items()}
        out["_rtype"] = codec.name
        return out

    def _method(self, fn: Callable[..., Any]) -> dict[str, Any]:
        if self._put_function is None:
            raise TypeError(f"cannot encode function {fn!r} without a session")
        name = getattr(fn, "__name__", None) or type(fn).__name__
        return {"_rtype": "method", "_rtarget": self._put_function(fn), "_rname": name}

    def _buffer(self, data: Any) -> Buffer:
        if isinstance(data, bytes):
            buffer: Buffer = data
        else:
            view = memoryview(data)
            # A strided view is gathered into new bytes; a contiguous one is sent as it is.
            buffer = view.cast("B") if view.c_contiguous else view.tobytes()
        if id(buffer) not in self._transferred:  # a buffer is listed once, as JS requires
            self._transferred.add(id(buffer))
            self.transfer.append(buffer)
        return buffer

    def _numpy(self, np: Any, value: Any) -> Any:
        if isinstance(value, np.generic):  # numpy scalars go as plain numbers
            if value.dtype.name not in DTYPES:
                raise TypeError(f"cannot encode numpy scalar of dtype {value.dtype.name}")
            return value.item()
        array = np.asarray(value)  # subclasses (masked, matrix) as plain arrays
        dtype = array.dtype.name
        if dtype not in DTYPES:
            raise TypeError(f"cannot encode numpy array of dtype {dtype}; supported: {', '.join(DTYPES)}")
        if array.dtype.byteorder == ">":
            array = array.astype(array.dtype.newbyteorder("<"))
        if not array.flags.c_contiguous:
            array = array.copy(order="C")  # (ascontiguousarray would turn a 0-d array into 1-d)
        data = memoryview(array.reshape(-1).view(np.uint8))  # a view: no copy
        return self._ndarray_wire(data, array.shape, dtype)

    def _ndarray_wire(self, data: Any, shape: tuple[int, ...], dtype: str) -> dict[str, Any]:
        return {"_rtype": "ndarray", "_rvalue": self._buffer(data), "_rshape": list(shape), "_rdtype": dtype}


def encode_error(error: BaseException) -> dict[str, Any]:
    """The wire form of an exception, with the sender's formatted traceback. It never raises:
    an exception whose text cannot be read still answers its call (the type name, and a
    message saying so), else the caller would wait forever."""
    if isinstance(error, RemoteError):
        kind, message, text = str(error.remote_type), str(error.message), str(error.traceback)
    else:
        kind = type(error).__name__
        try:
            message = str(error)
        except Exception as failure:
            message = f"<the {kind}'s message could not be read: {type(failure).__name__}: {_safe_str(failure)}>"
        try:
            text = "".join(traceback.format_exception(error))
        except Exception:
            text = ""
    return {"_rtype": "error", "type": kind, "message": message, "traceback": text}


def _safe_str(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def encode(value: Any, put_function: Callable[[Callable[..., Any]], str] | None = None,
           codecs: Mapping[str, Codec] | None = None) -> tuple[Any, list[Buffer]]:
    """The wire form of `value` and the buffers to transfer with it."""
    encoder = Encoder(put_function, codecs)
    return encoder.encode(value), encoder.transfer


class Decoder:
    """Wire values to Python values; methods become proxies through `get_proxy(target, name)`.

    One decoder per message: the bounds (MAX_DECODE_VALUES, MAX_DECODE_DEPTH) are counted
    across every `decode()` call made with it."""

    def __init__(self, get_proxy: Callable[[str, str], Any] | None = None,
                 codecs: Mapping[str, Codec] | None = None) -> None:
        self._get_proxy = get_proxy
        self._codecs = default_codecs if codecs is None else codecs
        self._left = MAX_DECODE_VALUES  # values this message may still decode to
        self._depth = 0

    def decode(self, value: Any) -> Any:
        # The hot path. The bounds are counted where the walk goes on into a list or dict (a
        # subtraction each); a built-in wire form is a leaf, counted in its container.
        # No try/finally around the depth: a decoder that raised is not used again.
        if isinstance(value, list):
            self._left -= len(value)
            self._depth += 1
            if self._left < 0 or self._depth > MAX_DECODE_DEPTH:
                self._enter(0)  # raises the error that says which
            out: Any = [self.decode(item) for item in value]
            self._depth -= 1
            return out
        if not isinstance(value, dict):
            return value
        rtype = value.get("_rtype")
        if rtype is None:
            self._left -= len(value)
            self._depth += 1
            if self._left < 0 or self._depth > MAX_DECODE_DEPTH:
                self._enter(0)  # raises the error that says which
            # Every object is a dotdict, as imjoy-rpc decodes them: ImJoy plugins write
            # `ctx.config.type` and `api.viewer.add()` whether or not the sender marked an interface.
            interface = value.get("_rintf") is True
            out = dotdict({key: self.decode(item) for key, item in value.items() if not (interface and key == "_rintf")})
            self._depth -= 1
            return out
        if rtype == "method":
            target = value.get("_rtarget")
            if not isinstance(target, str):
                raise RPCError(f"method value: _rtarget should be a string, got {_type_name(target)}")
            if self._get_proxy is None:
                raise RPCError(f"a method ({target!r}) arrived where no session can call it")
            name = value.get("_rname")
            return self._get_proxy(target, name if isinstance(name, str) and name else target)
        return self._wire_form(value, rtype)

    def _enter(self, size: int) -> None:
        self._left -= size
        self._depth += 1
        if self._left < 0:
            raise RPCError(f"message too large: it decodes to more than {MAX_DECODE_VALUES} values "
                           "(shared references count each time; send numbers in bulk as an array)")
        if self._depth > MAX_DECODE_DEPTH:
            raise RPCError(f"message too deep: values nested more than {MAX_DECODE_DEPTH} levels")

    def _wire_form(self, value: dict[str, Any], rtype: Any) -> Any:
        if rtype == "memoryview":
            return memoryview(_field(value, "_rvalue", _is_buffer, "a buffer")).cast("B")
        if rtype in ("ndarray", "typedarray"):
            return self._array(value, rtype)
        if rtype == "blob":
            kind, name = value.get("type"), value.get("name")
            return Blob(_field(value, "_rvalue", _is_buffer, "a buffer"), kind if isinstance(kind, str) else "",
                        name if isinstance(name, str) else None)
        if rtype == "error":
            kind, message, tb = value.get("type"), value.get("message"), value.get("traceback")
            return RemoteError(kind if isinstance(kind, str) and kind else "Error",
                               message if isinstance(message, str) else "", tb if isinstance(tb, str) else "")
        codec = self._codecs.get(rtype) if isinstance(rtype, str) else None
        self._enter(len(value))
        decoded = {key: self.decode(item) for key, item in value.items() if key != "_rtype"}
        self._depth -= 1
        if codec is None:
            # An _rtype this side has no codec for stays a dict, _rtype kept, so the plugin can look at it.
            return {**decoded, "_rtype": rtype}
        return codec.decoder(decoded)

    def _array(self, value: dict[str, Any], rtype: str) -> Any:
        buffer = _field(value, "_rvalue", _is_buffer, "a buffer")
        dtype = _field(value, "_rdtype", lambda d: isinstance(d, str) and d in DTYPES, f"one of {', '.join(DTYPES)}")
        nbytes = memoryview(buffer).nbytes
        if rtype == "typedarray":
            if nbytes % ITEMSIZE[dtype]:
                raise RPCError(f"typedarray of {dtype}: {nbytes} bytes is not a whole number of elements")
            shape: tuple[int, ...] = (nbytes // ITEMSIZE[dtype],)
        else:
            shape = tuple(_field(value, "_rshape", _is_shape, f"a list of at most {MAX_NDIM} sizes (integers "
                                                                f"from 0 to 2**53 - 1)"))
            if math.prod(shape) * ITEMSIZE[dtype] != nbytes:
                raise RPCError(f"ndarray: shape {list(shape)} of {dtype} needs {math.prod(shape) * ITEMSIZE[dtype]} "
                               f"bytes, the buffer has {nbytes}")
        np = load_numpy()
        if np is None:
            return NDArray(buffer, shape, dtype)
        return np.frombuffer(buffer, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)  # a view, no copy


def _is_shape(shape: Any) -> bool:
    return isinstance(shape, list) and len(shape) <= MAX_NDIM and all(
        type(n) is int and 0 <= n <= MAX_DIM for n in shape)


def _field(value: dict[str, Any], name: str, check: Callable[[Any], bool], expected: str) -> Any:
    item = value.get(name)
    if not check(item):
        raise RPCError(f"{value.get('_rtype')} value: {name} should be {expected}, got {_type_name(item)}")
    return item


def decode(value: Any, get_proxy: Callable[[str, str], Any] | None = None,
           codecs: Mapping[str, Codec] | None = None) -> Any:
    """The Python value of the wire value `value`."""
    return Decoder(get_proxy, codecs).decode(value)
