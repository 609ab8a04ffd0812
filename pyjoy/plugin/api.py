"""The `api` object of a Python plugin: a global in its scripts (kernel.py puts it there, as
ImJoy did), or imported: `from imjoy import api` or `from pyjoy import api`.

Its attributes are the host's API (`await api.showMessage("hi")`, `api.log(...)`), called
over the plugin's RPC session; `api.export(obj)` is local: it names what the plugin offers.
ImJoy's Python plugins may spell host functions in snake_case (`api.show_message`); both
spellings reach the same function.
A call returns a `RemoteCall` (pyjoy/rpc/session.py): await it, or use imjoy-rpc's
`.then(fn)` / `.catch(fn)` / `.finally_(fn)`.

A call from a thread the plugin started (`threading.Thread(target=work)`, reporting progress
with `api.showProgress` during a long computation, as ImJoy's native plugins do) is handed to
the plugin's event loop, which sends it, in the order the thread made its calls, and returns
a `concurrent.futures.Future` of the answer: `api.log("x")` alone, or
`api.showMessage("x").result()` to wait for it (pyjoy/rpc/session.py, from_thread). The
same holds for remote functions the plugin was given (callbacks). A thread must not wait for
an answer while the loop's own thread waits for that thread: nothing could send the call.

A plugin that calls the host in a loop without awaiting (`while True: api.log("x")`) would
send calls faster than the page can answer them, and the page would fall behind for good.
So at most MAX_IN_FLIGHT calls are on their way at once; later ones wait here, in order,
until earlier ones are answered, and past MAX_WAITING waiting calls a call raises at once.
The same bound holds for JavaScript plugins (app/sandbox/plugin-api.js).
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from typing import Any

from pyjoy.rpc.codec import dotdict
from pyjoy.rpc.session import RemoteCall

MAX_IN_FLIGHT = 128
MAX_WAITING = 10_000


def camel_case(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


class PluginAPI:
    def __init__(self) -> None:
        # What the plugin's runtime itself offers besides the host's API (the engine's:
        # ImJoy's WORK_DIR and utils.kill, plugin_process.py); a dict here is merged over
        # the host's dict of that name (utils).
        self._local: dict[str, Any] = {}
        self._host: Any = None
        self._session: Any = None
        self._exported: Any = None
        self._in_flight = 0
        self._waiting: deque[tuple[asyncio.Future[Any], Any, tuple, dict]] = deque()

    def export(self, obj: Any, config: dict | None = None) -> None:
        """Offers obj (an object or class instance with methods) as the plugin's API."""
        self._exported = obj

    def registerCodec(self, codec: dict) -> None:  # noqa: N802  ImJoy's name
        """Adds a custom wire form, {name, type, encoder, decoder}, to this plugin's side."""
        from pyjoy.rpc.codec import register_codec

        register_codec(codec["name"], codec.get("type"), codec.get("encoder"), codec.get("decoder"))

    register_codec = registerCodec

    def disposeObject(self, value: Any) -> None:  # noqa: N802  ImJoy's name
        """Releases remote functions held in value now, instead of when they are collected."""
        self._session.dispose(value)

    dispose_object = disposeObject

    def _connect(self, host: Any, session: Any) -> None:
        self._host = host
        self._session = session
        self._exported = None
        self._in_flight = 0
        self._waiting.clear()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        host = self.__dict__.get("_host")
        if host is None:
            raise RuntimeError(f"api.{name} was used before the plugin was connected to PyJoy")
        local = self.__dict__.get("_local") or {}
        for key in (name, camel_case(name)):
            if key in host:
                value = host[key]
                if isinstance(value, dict) and isinstance(local.get(key), dict):
                    return dotdict({**value, **local[key]})
                return functools.partial(self._call, key, value) if callable(value) else value
            if key in local:
                return local[key]
        raise AttributeError(f"the PyJoy API has no {name!r}")

    def _call(self, name: str, fn: Any, *args: Any, **kwargs: Any) -> RemoteCall:
        """Calls the host's fn now, or once fewer than MAX_IN_FLIGHT calls are on their way.
        From a thread other than the loop's: the loop does that (a concurrent Future answers)."""
        session = self._session
        if session is not None and not session.on_loop_thread():
            return session.from_thread(functools.partial(self._call, name, fn, *args, **kwargs))
        if self._in_flight < MAX_IN_FLIGHT:
            return self._send(fn, args, kwargs)
        if len(self._waiting) >= MAX_WAITING:
            raise RuntimeError(
                f"api.{name}: {MAX_WAITING} calls to PyJoy already wait for the page to answer earlier ones; "
                "await your calls (a loop of calls not awaited floods the page)"
            )
        future = RemoteCall(loop=asyncio.get_event_loop())  # with then/catch, as a call sent at once
        self._waiting.append((future, fn, args, kwargs))
        return future

    def _send(self, fn: Any, args: tuple, kwargs: dict) -> RemoteCall:
        sent = fn(*args, **kwargs)
        self._in_flight += 1
        sent.add_done_callback(self._answered)
        return sent

    def _answered(self, _sent: asyncio.Future[Any]) -> None:
        self._in_flight -= 1
        while self._waiting and self._in_flight < MAX_IN_FLIGHT:
            future, fn, args, kwargs = self._waiting.popleft()
            if future.done():  # cancelled while it waited
                continue
            try:
                sent = self._send(fn, args, kwargs)
            except Exception as error:  # not encodable, or the session closed
                future.set_exception(error)
                continue
            sent.add_done_callback(functools.partial(_settle, future))

    def __dir__(self) -> list[str]:
        host = self.__dict__.get("_host")
        own = ["export", "registerCodec", "register_codec", "disposeObject", "dispose_object"]
        return [*own, *(host.keys() if host is not None else []), *self.__dict__.get("_local", {})]


def _settle(future: asyncio.Future[Any], sent: asyncio.Future[Any]) -> None:
    """Gives a waiting call's future the outcome of the call it became."""
    if future.done():
        return
    if sent.cancelled():
        future.cancel()
    elif sent.exception() is not None:
        future.set_exception(sent.exception())
    else:
        future.set_result(sent.result())


api = PluginAPI()
