"""Calls, results, errors and lifetimes over one transport (PROTOCOL.md, Messages).

    session = connect(transport, root=api)   # Session(transport), then session.set_root(api)
    remote = await session.remote_root()     # the other side's API, a dotdict of proxies
    result = await remote.process(image, on_progress=print)
    remote.log("fire and forget")            # the call is sent at once; awaiting is optional
    session.dispose(remote.process)          # release a proxy now instead of at GC
    session.close("done")                    # pending calls fail with "done"

Local functions sent to the other side live in a store: one id per function, with the
number of times it was sent; the other side's `release` subtracts what it received and the
function is forgotten at zero. The other side's functions arrive as `RemoteFunction`
proxies, one per id while it lives; when one is collected, its release goes out in the next
batch, RELEASE_DELAY later: a callback per call (`process(image, on_progress=...)`) dies
with each call, and a release message per call would cost as much on the wire as the call
(the counts make a late release safe: a function sent again meanwhile stays). Functions in a root are pinned for the life of the session.

Calls from the other side run as asyncio tasks (sync or async functions), so a slow call
does not hold up others. Anything malformed is answered with an error and the session
carries on.

A session belongs to its event loop's thread. A remote function called from another thread
(a plugin's own `threading.Thread` reporting progress) is not sent from there: the call is
handed to the loop (`call_soon_threadsafe`, so calls from one thread keep their order) and
returns a `concurrent.futures.Future` of its answer, which that thread may wait on
(`.result()`) or drop; as imjoy-rpc's sync API does (imjoy_rpc/hypha/sync.py: the call
scheduled on the loop with `run_coroutine_threadsafe`, its result waited for by the thread).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import itertools
import logging
import threading
import types
import weakref
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Any

from .codec import Codec, Decoder, Encoder, RPCError, encode_error
from .transport import Message, Transport

log = logging.getLogger("pyjoy.rpc")
_NO_ROOT = object()
#: Seconds a collected proxy's release waits, so that releases go out many to a message.
RELEASE_DELAY = 0.05


class ClosedError(RPCError, ConnectionError):
    """The session closed; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"session closed: {reason}")
        self.reason = reason


class FunctionStore:
    """Local functions by id, each with how many times it was sent and whether it is pinned."""

    def __init__(self) -> None:
        self._ids: dict[Hashable, str] = {}
        self._entries: dict[str, list[Any]] = {}  # id -> [function, key, sent count, pinned]
        self._next = itertools.count(1)

    def put(self, fn: Callable[..., Any]) -> str:
        key = _identity(fn)
        fid = self._ids.get(key)
        if fid is None:
            fid = self._ids[key] = f"f{next(self._next)}"
            self._entries[fid] = [fn, key, 0, False]
        self._entries[fid][2] += 1
        return fid

    def pin(self, fid: str) -> None:
        self._entries[fid][3] = True

    def pinned(self) -> int:
        return sum(1 for entry in self._entries.values() if entry[3])

    def get(self, fid: str) -> Callable[..., Any] | None:
        entry = self._entries.get(fid)
        return entry[0] if entry else None

    def release(self, fid: str, count: int) -> None:
        entry = self._entries.get(fid)
        if entry is None:
            return
        entry[2] -= count
        if entry[2] <= 0 and not entry[3]:
            del self._entries[fid], self._ids[entry[1]]

    def clear(self) -> None:
        self._ids.clear()
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def _identity(fn: Callable[..., Any]) -> Hashable:
    # `obj.method` makes a new bound method each time; key it by (object, function) so that
    # sending it twice reuses the id. The store holds the function, so ids cannot be reused.
    if isinstance(fn, types.MethodType):
        return (id(fn.__self__), id(fn.__func__))
    return id(fn)


class RemoteCall(asyncio.Future):
    """What calling a remote function returns: an asyncio Future, plus imjoy-rpc's promise
    methods (imjoy_rpc/utils.py, FuturePromise), so that ImJoy plugins written in callback
    style work: `api.getPlugin("x").then(use).catch(report)`.

    As in imjoy-rpc, `then`, `catch` and `finally_` each set one handler (a later call
    replaces it) and return this same object: handlers do not chain, and awaiting it still
    gives the call's result or raises its error. `then(fn)` gets the result; `catch(fn)` the
    call's error, or the error a then-handler raised; `finally_(fn)` runs after either. An
    error with no catch-handler to take it is logged, as imjoy-rpc logs an "Uncaught
    Exception". A handler that returns an awaitable (an `async def`) is awaited in a task.
    """

    _on_result: Callable[[Any], Any] | None = None
    _on_error: Callable[[BaseException], Any] | None = None
    _on_finally: Callable[[], Any] | None = None
    _watched = False

    def then(self, on_result: Callable[[Any], Any]) -> RemoteCall:
        self._on_result = on_result
        return self._watch()

    def catch(self, on_error: Callable[[BaseException], Any]) -> RemoteCall:
        self._on_error = on_error
        return self._watch()

    def finally_(self, on_finally: Callable[[], Any]) -> RemoteCall:
        self._on_finally = on_finally
        return self._watch()

    def _watch(self) -> RemoteCall:
        if not self._watched:
            self._watched = True
            self.add_done_callback(_run_handlers)
        return self

    async def _handle(self) -> None:
        error = self.exception()  # reported here: asyncio need not report it again at GC
        try:
            if error is None and self._on_result is not None:
                try:
                    await _maybe_await(self._on_result(self.result()))
                except Exception as raised:
                    error = raised
            if error is not None and self._on_error is None:
                log.error("pyjoy.rpc: uncaught error in a remote call's then (add .catch(...) or await it): %s", error)
            elif error is not None:
                await _maybe_await(self._on_error(error))
            if self._on_finally is not None:
                await _maybe_await(self._on_finally())
        except Exception as raised:
            log.error("pyjoy.rpc: a catch or finally_ handler raised: %s", raised, exc_info=raised)


_handlers_running: set[asyncio.Task[None]] = set()  # held, or a task may be collected midway


def _run_handlers(call: RemoteCall) -> None:
    if call.cancelled():
        return
    task = call.get_loop().create_task(call._handle())
    _handlers_running.add(task)
    task.add_done_callback(_handlers_running.discard)


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class RemoteFunction:
    """A function of the other side. Calling it sends `call` and returns a `RemoteCall`."""

    def __init__(self, session: Session, target: str, name: str) -> None:
        self.__name__ = name
        self.target = target
        self.received = [0]  # how many times its id arrived; shared with the finalizer
        self.disposed = False
        self._session = session
        self._finalizer: weakref.finalize | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> RemoteCall:
        if self.disposed:
            raise RPCError(f"the remote function {self.__name__!r} ({self.target}) was disposed; it can no longer be called")
        return self._session._call(self.target, args, kwargs)

    def __repr__(self) -> str:
        return f"<RemoteFunction {self.__name__} ({self.target})>"


class Session:
    """One end of an RPC connection over `transport`."""

    def __init__(self, transport: Transport, *, codecs: Mapping[str, Codec] | None = None,
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.closed = False
        self.close_reason: str | None = None
        self._transport = transport
        self._codecs = codecs
        self._loop = loop or _current_loop()
        self._thread = threading.get_ident()  # the loop's: the session is made on it
        self._store = FunctionStore()
        self._proxies: weakref.WeakValueDictionary[str, RemoteFunction] = weakref.WeakValueDictionary()
        self._releases: dict[str, int] = {}  # target -> count, sent in the next batch
        self._release_scheduled = False
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._call_ids = itertools.count(1)
        self._remote_root: Any = _NO_ROOT
        self._root_arrived = self._loop.create_future()
        self._handlers: dict[str, Callable[[Message], None]] = {
            "root": self._on_root, "call": self._on_call, "result": self._on_result,
            "error": self._on_error, "release": self._on_release, "close": self._on_close,
        }
        transport.on_message(self._receive)

    # -- the API ------------------------------------------------------------------------

    def set_root(self, value: Any) -> None:
        """Send `value` as this side's root, its API (its functions are pinned for the session)."""
        for fid in self._send_encoded(lambda encoder: {"type": "root", "value": encoder.encode(value)}):
            self._store.pin(fid)  # once sent: a root that failed to go pins nothing

    export = set_root  # the name a plugin uses (`api.export`), as in session.js

    async def remote_root(self) -> Any:
        """The other side's root: waits for the first; a later one replaces it."""
        await asyncio.shield(self._root_arrived)
        if self._remote_root is _NO_ROOT:
            raise ClosedError(self.close_reason or "closed")
        return self._remote_root

    def dispose(self, value: Any) -> None:
        """Release the proxies in `value` (a proxy, or a dict or list holding some) now."""
        if not self.on_loop_thread():
            self._loop.call_soon_threadsafe(self.dispose, value)
            return
        if isinstance(value, RemoteFunction):
            if not value.disposed and value._finalizer is not None:
                value.disposed = True
                if self._proxies.get(value.target) is value:
                    del self._proxies[value.target]
                value._finalizer()  # queues its release; calling it again or at GC does nothing
                self._flush_releases()
        elif isinstance(value, dict):
            for item in value.values():
                self.dispose(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                self.dispose(item)

    def close(self, reason: str = "closed") -> None:
        """Tell the other side, fail pending calls with `reason`, forget every function."""
        if self.closed:
            return
        try:
            self._transport.send({"type": "close", "reason": reason}, [])
        except Exception:  # the transport may be gone already: closing must still work
            log.debug("could not send close", exc_info=True)
        self._shutdown(reason)

    def on_loop_thread(self) -> bool:
        """Whether this runs on the thread of the session's event loop (else see from_thread)."""
        return threading.get_ident() == self._thread

    def from_thread(self, start: Callable[[], asyncio.Future[Any]]) -> concurrent.futures.Future[Any]:
        """Runs `start` (which sends a call and returns its future) on the session's loop, for
        a call made on another thread; returns a concurrent Future of the call's outcome.
        Calls handed over from one thread are sent in the order they were made."""
        return call_on_loop(self._loop, start)

    def stats(self) -> dict[str, int]:
        """Sizes for leak tests, as in session.js: functions stored (roots included), pinned
        (roots), live proxies, pending calls, and tasks (calls from the other side running)."""
        return {"stored": len(self._store), "pinned": self._store.pinned(), "proxies": len(self._proxies),
                "pending": len(self._pending), "tasks": len(self._tasks)}

    # -- sending ------------------------------------------------------------------------

    def _send_encoded(self, build: Callable[[Encoder], Message]) -> list[str]:
        """Send the message `build` makes with an encoder; return the ids of the functions it
        stored. If it cannot be encoded or sent, those functions are un-counted."""
        stored: list[str] = []

        def put(fn: Callable[..., Any]) -> str:
            stored.append(self._store.put(fn))
            return stored[-1]

        encoder = Encoder(put, self._codecs)
        try:
            if self.closed:
                raise ClosedError(self.close_reason or "closed")
            message = build(encoder)
            self._transport.send(message, encoder.transfer)
        except BaseException:
            for fid in stored:
                self._store.release(fid, 1)
            raise
        return stored

    def _call(self, target: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> RemoteCall:
        if threading.get_ident() != self._thread:  # a thread of the plugin's own: the loop sends it
            return self.from_thread(lambda: self._call(target, args, kwargs))  # type: ignore[return-value]
        future = RemoteCall(loop=self._loop)
        if self.closed:
            future.set_exception(ClosedError(self.close_reason or "closed"))
            return future
        call_id = f"c{next(self._call_ids)}"
        self._pending[call_id] = future  # before sending: a transport may answer at once
        try:
            self._send_encoded(lambda encoder: {
                "type": "call", "id": call_id, "target": target,
                "args": [encoder.encode(arg) for arg in args],
                "kwargs": {key: encoder.encode(value) for key, value in kwargs.items()},
            })
        except BaseException:  # not encodable (a TypeError naming the type), or no transport
            del self._pending[call_id]
            raise
        return future

    def _reply(self, call_id: str, value: Any) -> None:
        try:
            self._send_encoded(lambda encoder: {"type": "result", "id": call_id, "value": encoder.encode(value)})
        except Exception as error:  # a result that cannot be encoded is the call's error
            self._reply_error(call_id, error)

    def _reply_error(self, call_id: str, error: BaseException) -> None:
        try:
            self._transport.send({"type": "error", "id": call_id, "error": encode_error(error)}, [])
        except Exception:  # the transport went away: nobody is waiting for the answer
            log.debug("could not send an error reply", exc_info=True)

    def _flush_releases(self) -> None:
        self._release_scheduled = False
        targets, self._releases = self._releases, {}
        if targets and not self.closed:
            try:
                self._transport.send({"type": "release", "targets": targets}, [])
            except Exception:
                log.debug("could not send release", exc_info=True)

    # -- receiving ----------------------------------------------------------------------

    def _receive(self, message: Message, problem: Exception | None = None) -> None:
        # `problem`: the transport could not deliver the message whole (too large to convert,
        # or a buffer sent ahead of it in pieces did not arrive): a call is answered with it,
        # an answer fails its call with it, as a malformed message would.
        if self.closed:
            return
        try:
            if problem is not None:
                raise problem
            kind = message.get("type") if isinstance(message, dict) else None
            handler = self._handlers.get(kind) if isinstance(kind, str) else None
            if handler is None:
                raise RPCError(f"message type {kind!r} is not one of {', '.join(self._handlers)}")
            handler(message)
        except Exception as error:
            call_id = message.get("id") if isinstance(message, dict) else None
            kind = message.get("type") if isinstance(message, dict) else None
            if isinstance(call_id, str) and kind == "call" and not self.closed:
                self._reply_error(call_id, error)
            elif problem is not None and kind in ("result", "error") and isinstance(call_id, str) \
                    and call_id in self._pending:
                future = self._pending.pop(call_id)
                if not future.done():
                    future.set_exception(problem)
            else:
                log.warning("pyjoy.rpc: dropped a malformed message: %s", error)

    def _decoder(self) -> Decoder:
        return Decoder(self._get_proxy, self._codecs)

    def _get_proxy(self, target: str, name: str) -> RemoteFunction:
        proxy = self._proxies.get(target)
        if proxy is None:
            proxy = RemoteFunction(self, target, name)
            finalizer = weakref.finalize(proxy, self._proxy_gone, target, proxy.received)
            finalizer.atexit = False  # nothing to release to once the interpreter exits
            proxy._finalizer = finalizer
            self._proxies[target] = proxy
        proxy.received[0] += 1
        return proxy

    def _proxy_gone(self, target: str, received: list[int]) -> None:
        # Runs when a proxy is collected (or disposed): possibly inside GC, so only queue.
        if self.closed or not received[0]:
            return
        self._releases[target] = self._releases.get(target, 0) + received[0]
        if not self._release_scheduled:
            self._release_scheduled = True
            try:
                self._loop.call_soon_threadsafe(self._loop.call_later, RELEASE_DELAY, self._flush_releases)
            except RuntimeError:  # the loop is closed: nobody left to tell
                pass

    def _on_root(self, message: Message) -> None:
        self._remote_root = self._decoder().decode(message.get("value"))
        if not self._root_arrived.done():
            self._root_arrived.set_result(None)

    def _on_call(self, message: Message) -> None:
        # A missing id, args or kwargs reads as null, [] and {} (JS may leave undefined out).
        call_id = _get(message, "id", (str, type(None)), None)
        target = _get(message, "target", str)
        decoder = self._decoder()
        # Decode before looking up the target, so that proxies in the arguments of a call that
        # fails are still counted, and released, and the caller's functions do not leak.
        args = [decoder.decode(arg) for arg in _get(message, "args", (list, type(None)), None) or []]
        kwargs = {key: decoder.decode(value) for key, value in (_get(message, "kwargs", (dict, type(None)), None)
                                                                or {}).items()}
        if args and isinstance(args[-1], dict) and args[-1].get("_rkwargs") is True:
            kwargs.update((key, value) for key, value in args.pop().items() if key != "_rkwargs")
        fn = self._store.get(target)
        if fn is None:
            raise RPCError(f"unknown target {target!r}: never sent, or already released")
        # The function runs here, at once: a plain function answers without a trip through
        # the event loop (about a third of a call's time in Pyodide). What it returns to be
        # awaited is awaited in a task, so slow calls run side by side.
        try:
            result = fn(*args, **kwargs)
        except Exception as error:
            self._answer_error(call_id, fn, error)
            return
        del args, kwargs  # let proxies among the arguments go while a slow result is awaited
        if inspect.isawaitable(result):
            task = self._loop.create_task(self._serve(call_id, fn, result))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif call_id is not None and not self.closed:
            self._reply(call_id, result)

    async def _serve(self, call_id: str | None, fn: Callable[..., Any], pending: Awaitable[Any]) -> None:
        try:
            result = await pending
        except Exception as error:
            self._answer_error(call_id, fn, error)
            return
        if call_id is not None and not self.closed:
            self._reply(call_id, result)

    def _answer_error(self, call_id: str | None, fn: Callable[..., Any], error: Exception) -> None:
        if call_id is None:
            log.error("pyjoy.rpc: %s raised", getattr(fn, "__name__", fn), exc_info=error)
        elif not self.closed:
            self._reply_error(call_id, error)

    def _on_result(self, message: Message) -> None:
        self._settle(message, "value")

    def _on_error(self, message: Message) -> None:
        self._settle(message, "error")

    def _settle(self, message: Message, field: str) -> None:
        future = self._pending.pop(_get(message, "id", str), None)
        try:  # decoded even when nobody waits, so that the proxies in it are counted and released
            value = self._decoder().decode(message.get(field))
            if field == "error" and not isinstance(value, BaseException):
                raise RPCError(f"error message: 'error' should be an error value, not {type(value).__name__}")
        except Exception as error:
            log.warning("pyjoy.rpc: could not decode the answer to %r: %s", message["id"], error)
            value, field = error, "error"
        if future is None or future.done():  # an unknown call, or one its caller cancelled
            return
        if field == "error":
            future.set_exception(value)
        else:
            future.set_result(value)

    def _on_release(self, message: Message) -> None:
        targets = _get(message, "targets", dict)
        for fid, count in targets.items():
            if isinstance(count, int) and not isinstance(count, bool) and count > 0:
                self._store.release(fid, count)

    def _on_close(self, message: Message) -> None:
        reason = message.get("reason")
        self._shutdown(f"the other side closed: {reason}" if reason else "the other side closed")

    def _shutdown(self, reason: str) -> None:
        self.closed = True
        self.close_reason = reason
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(ClosedError(reason))
        if not self._root_arrived.done():
            self._root_arrived.set_result(None)
        self._store.clear()
        self._releases.clear()
        self._transport.close()


_REQUIRED = object()


def _get(message: Message, field: str, kind: type | tuple[type, ...], default: Any = _REQUIRED) -> Any:
    """`message[field]`, checked to be a `kind`; an RPCError says what was wrong."""
    if field not in message and default is not _REQUIRED:
        return default
    if field not in message:
        raise RPCError(f"{message.get('type')} message without {field!r}")
    value = message[field]
    if not isinstance(value, kind):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise RPCError(f"{message.get('type')} message: {field!r} should be {names}, not {type(value).__name__}")
    return value


def call_on_loop(loop: asyncio.AbstractEventLoop,
                 start: Callable[[], asyncio.Future[Any]]) -> concurrent.futures.Future[Any]:
    """From a thread that is not `loop`'s: runs `start()` on the loop and returns a concurrent
    Future that gets the outcome of the asyncio future `start` returned (or what it raised).
    Cancelling the concurrent Future before `start` ran skips it; the loop itself is never
    touched from here except through call_soon_threadsafe."""
    outcome: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def begin() -> None:
        if not outcome.set_running_or_notify_cancel():
            return
        try:
            started = start()
        except BaseException as error:  # not encodable, or the session closed
            outcome.set_exception(error)
            return
        started.add_done_callback(settle)

    def settle(done: asyncio.Future[Any]) -> None:
        if done.cancelled():
            outcome.set_exception(concurrent.futures.CancelledError())
        elif done.exception() is not None:
            outcome.set_exception(done.exception())
        else:
            outcome.set_result(done.result())

    try:
        loop.call_soon_threadsafe(begin)
    except RuntimeError:  # the loop is closed: the plugin is ending
        outcome.set_running_or_notify_cancel()
        outcome.set_exception(ClosedError("the event loop has ended, so the call from this thread was not sent"))
    return outcome


def _current_loop() -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.get_event_loop()  # e.g. Pyodide's WebLoop, outside a task


def connect(transport: Transport, root: Any = None, **options: Any) -> Session:
    """A Session over `transport`, exporting `root` when given."""
    session = Session(transport, **options)
    if root is not None:
        session.set_root(root)
    return session
