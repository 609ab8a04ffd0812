"""Messages over postMessage, from Python in Pyodide (the Python twin of transport.js).

In a Pyodide worker, wrap the worker's global scope, or a MessagePort, and connect:

    import js
    from pyjoy.rpc import connect
    from pyjoy.rpc.pyodide_transport import PyodideTransport

    session = connect(PyodideTransport(js), root=api)      # `js` is the worker's global scope

Each message travels in the envelope `{_pyjoy_rpc: message}` (PROTOCOL.md, Transport);
anything else on the channel (the worker's own messages) is left to its own listeners.
On send, the message becomes plain JS objects and arrays, None becomes null (not
undefined), and each buffer is copied out of the WASM heap once into a new ArrayBuffer,
which is then transferred, not copied again. On receive, objects and arrays become dicts
and lists, null and undefined None, and each ArrayBuffer (or typed array) is copied into
the heap once, as a writable memoryview of bytes. Messages that come before the session
registers its handler are kept for it. `close()` stops listening; it closes a MessagePort
(made for this transport), or transport.js's chunkingEndpoint over one, but not a worker's
scope, which others share.

Why JSON: most messages (calls, results, releases) hold no buffer, and converting them
object by object through Pyodide's FFI cost about half of a call's time. A message with no
buffer crosses as one JSON string instead (C's json on our side, the engine's on the
other), when JSON can carry it exactly: no NaN or infinity, no integer beyond 2**53, no
Blob or undefined. Anything else takes the object-by-object way above.

Bounded: the check that picks the way walks the whole message in JS first, counting values
and depth as the decoder does (codec.MAX_DECODE_VALUES, MAX_DECODE_DEPTH; shared references
count each time). A message past them is not converted at all (a naive conversion of an
array holding one array twice, 30 deep, would build 2**30 values); the session gets only its
`type` and `id`, with an RPCError, and answers the call with it.

`js` and `pyodide.ffi` are imported inside functions, so the package imports on CPython.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from .codec import MAX_DECODE_DEPTH, MAX_DECODE_VALUES, RPCError
from .transport import Buffer, Handler, Inbox, Message

log = logging.getLogger("pyjoy.rpc")
ENVELOPE = "_pyjoy_rpc"
# Beside the envelope, the text of the RPCError of a message that arrived broken: set by
# transport.js's chunkingEndpoint, the target a Python sandbox in another process than the
# page is given (its big buffers come and go in pieces: PROTOCOL.md, Chunks).
PROBLEM = "_pyjoy_rpc_problem"

# Made once: json.dumps with options builds a new encoder on every call.
_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"))

# Digits JSON.parse could not keep: a run of 16 or more (2**53 has 16). A string with such a
# run merely takes the slower way.
_LONG_NUMBER = re.compile(r"\d{16}")

# Runs in JS: the message as JSON text when JSON holds it exactly, null when it does not, and
# false when it holds more values, or deeper, than a message may (each value counted once
# each time it is met, as the decoder counts).
_AS_JSON = """(message, maxValues, maxDepth) => {
  let left = maxValues;
  let plain = true;
  const walk = (value, depth) => {
    switch (typeof value) {
      case "string": case "boolean": return true;
      case "number":
        if (!Number.isFinite(value) || (Number.isInteger(value) && !Number.isSafeInteger(value))) plain = false;
        return true;
      case "object": {
        if (value === null) return true;
        if (depth > maxDepth) return false;
        const array = Array.isArray(value);
        if (!array && Object.getPrototypeOf(value) !== Object.prototype) { // a buffer, a Blob: a leaf
          plain = false;
          return true;
        }
        const items = array ? value : Object.values(value);
        if ((left -= items.length) < 0) return false;
        for (const item of items) if (!walk(item, depth + 1)) return false;
        return true;
      }
      default: plain = false; return true;
    }
  };
  if (!walk(message, 0)) return false;
  return plain ? JSON.stringify(message) : null;
}"""


class PyodideTransport:
    """A transport over `target`, a JS object with postMessage and addEventListener."""

    def __init__(self, target: Any) -> None:
        import js
        from pyodide.ffi import create_proxy, jsnull

        self.closed = False
        self._target = target
        # Looked up once: each lookup of a JS global or property from Python crosses into JS.
        self._jsnull = jsnull
        self._has_own = js.Object.hasOwn
        self._from_entries = js.Object.fromEntries
        self._parse_json = js.JSON.parse
        self._as_json = js.Function.new(f"return {_AS_JSON}")()
        self._no_buffers = js.Array.new()  # postMessage only reads the transfer list
        self._inbox = Inbox()
        self._listener = create_proxy(self._receive)
        target.addEventListener("message", self._listener)
        start = getattr(target, "start", None)  # a MessagePort holds its messages until started
        if start is not None:
            start()

    def send(self, message: Message, transfer: list[Buffer]) -> None:
        # `transfer` is not needed: every buffer is copied out of the heap, and all copies move.
        from pyodide.ffi import to_js

        if self.closed:
            raise ConnectionError("transport closed")
        if not transfer:
            text = _json_text({ENVELOPE: message})
            if text is not None:
                self._target.postMessage(self._parse_json(text))
                return
        buffers: list[Any] = []
        tree = {ENVELOPE: _with_js_buffers(message, buffers)}
        # No PyProxies: a Python object left in a message is a bug, better an error than a leak.
        js_message = to_js(tree, dict_converter=self._from_entries, create_pyproxies=False)
        self._target.postMessage(js_message, to_js(buffers) if buffers else self._no_buffers)

    def on_message(self, handler: Handler) -> None:
        self._inbox.set_handler(handler)

    def close(self) -> None:
        import js

        if self.closed:
            return
        self.closed = True
        self._inbox.clear()
        self._target.removeEventListener("message", self._listener)
        self._listener.destroy()
        if js.Object.prototype.toString.call(self._target) == "[object MessagePort]" \
                or getattr(self._target, "pyjoyEndpoint", False) is True:
            self._target.close()

    def _receive(self, event: Any) -> None:
        data = event.data
        # A JS object arrives as a JsProxy (typeof "object"); of the other values only null has a
        # `typeof` (isinstance(data, JsProxy) costs more than this whole check).
        if self.closed or data is self._jsnull or getattr(data, "typeof", None) != "object" \
                or not self._has_own(data, ENVELOPE):
            return  # not ours (see ENVELOPE)
        problem = None
        try:
            js_message = getattr(data, ENVELOPE)
            if self._has_own(data, PROBLEM):  # its buffers were refused on the way (chunkingEndpoint)
                problem = RPCError(str(getattr(data, PROBLEM)))
            text = self._as_json(js_message, MAX_DECODE_VALUES, MAX_DECODE_DEPTH)
            if text is False:
                message = _head(js_message)
                problem = problem or RPCError(f"message too large: more than {MAX_DECODE_VALUES} values, or nested more than "
                                   f"{MAX_DECODE_DEPTH} levels (shared references count each time)")
            else:
                message = json.loads(text) if type(text) is str else _from_js(js_message)
        except Exception as error:
            log.warning("pyjoy.rpc: dropped a message that is not plain data: %s", error)
            return
        self._inbox.deliver(message, problem)


def _head(js_message: Any) -> Message:
    """The `type` and `id` of a JS message too large to convert: enough to answer its call."""
    head = {}
    for field in ("type", "id"):
        value = getattr(js_message, field, None)
        if isinstance(value, str):
            head[field] = value
    return head


def _json_text(message: Message) -> str | None:
    """The message as JSON text, or None where JSON would not carry it exactly."""
    try:
        text = _ENCODER.encode(message)
    except (TypeError, ValueError):  # a value JSON lacks, NaN or infinity
        return None
    return None if _LONG_NUMBER.search(text) else text


def _with_js_buffers(value: Any, buffers: list[Any]) -> Any:
    """The message with each buffer replaced by a JS ArrayBuffer copy, listed in `buffers`,
    and None by JS null (to_js would make it undefined, which the wire does not have)."""
    if value is None:
        from pyodide.ffi import jsnull

        return jsnull
    if isinstance(value, dict):
        return {key: _with_js_buffers(item, buffers) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_js_buffers(item, buffers) for item in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        import js

        view = memoryview(value).cast("B")
        array = js.Uint8Array.new(view.nbytes)
        array.assign(view)  # the one copy, out of the WASM heap
        buffer = array.buffer
        buffers.append(buffer)
        return buffer
    return value


_SCALARS = (str, int, float, bool)


def _plain(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        return {key: _plain(item) for key, item in value.items()}
    if kind is list:
        return [_plain(item) for item in value]
    if kind in _SCALARS or value is None:
        return value
    return _plain_other(value)


def _plain_other(value: Any) -> Any:
    from pyodide.ffi import jsnull

    if value is jsnull:  # JS null (Pyodide 314 keeps null apart from undefined, which is None)
        return None
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, memoryview):
        return value.cast("B")  # a typed array arrives with its element format; the wire wants bytes
    raise TypeError(f"{type(value).__name__} is not message data")


def _from_js(data: Any) -> Any:
    # to_py converts the whole tree in one go: objects to dicts, arrays to lists, and
    # buffers to writable memoryviews of a copy in the heap. (JsNull has no to_py.)
    to_py = getattr(data, "to_py", None) if type(data) not in _SCALARS else None
    return _plain(to_py() if to_py is not None else data)
