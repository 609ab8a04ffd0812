"""A native-python plugin as a Ray actor: the actor's own side (ray_actors.py is the engine's).

    actor = ray.remote(PluginActor).options(...).remote(plugin, replica)
    await actor.ready.remote()          # where it runs: {node, ip, pid, resources}
    await actor.deliver.remote(batch)   # the page's messages for its session: [(tree, buffers), ...]
    await actor.outbox.remote()         # waits for the session's messages to the page and its output lines:
                                        # ([(tree, buffers), ...], [(stream, line), ...])
    await actor.load_console.remote()   # a replica past the first: loads the plugin with a console API
    await actor.set_peers.remote([handle, ...])   # the first: the others, over which it spreads the page's calls
    await actor.call_one.remote(name, args, kwargs)   # a page's call spread to a replica past the first
    actor.until_ended.remote()          # never answers: the engine learns of the actor's death
    await actor.call_chunk.remote(name, batch, first, last)  # the plugin's `name` on batch[first:last] (map;
                                                # batch: a map's items, put in the object store once):
                                                # (results, None or (offset, "Type: message"), seconds)

The plugin runs as in its own process (plugin_process.py): the same pyjoy.rpc session with
the page, the same `EngineKernel` and script runner, so the page cannot tell the two apart.
Only the transport differs: the page's messages come as Ray calls (`deliver`, in order:
the engine sends the next batch once the last was taken), the plugin's go back as the answer
of `outbox`, which the engine keeps asking, with the lines the plugin printed (its stdout
and stderr, kept in the actor's log too), which the engine sends to the page as a plugin
process's. Buffers travel as numpy uint8 arrays, which Ray
moves through its object store (out of band, no pickling of their bytes). Replicas past the
first have no page: they load the plugin with a console API (what it logs is printed, in
the actor's output) and serve the page's calls the first spreads to them (`call_one`) and
the engine's `map` (`call_chunk`). With replicas, what the first gives the page for the
plugin's export is `spread(exported)` (ENGINE.md, "Calls on replicas").
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
import time
from typing import Any

from pyjoy.engine import wire
from pyjoy.engine.plugin_process import EngineKernel, run_script
from pyjoy.plugin.kernel import start_plugin
from pyjoy.rpc import Session
from pyjoy.rpc.transport import Buffer, Handler, Message, memory_pair

# What a replica's console API prints: ImJoy's API functions that only report.
CONSOLE_FUNCTIONS = ("log", "error", "alert", "showMessage", "showStatus", "showProgress", "showSnackbar")
# Exported functions the page's calls always run on the first replica: setup() ran on each
# replica as it loaded (the page calls the first's).
KEPT_ON_FIRST = ("setup",)


def _as_array(buffer: Any) -> Any:
    import numpy as np

    return np.frombuffer(buffer, dtype=np.uint8)


class ActorTransport:
    """A pyjoy.rpc Transport whose messages come from `deliver` and go out through `outbox`."""

    def __init__(self) -> None:
        self._handler: Handler | None = None
        self._waiting: list[tuple[Any, list[Any]]] = []  # come before the session listened
        self._out: list[tuple[Any, list[Any]]] = []
        self._lines: list[tuple[str, str]] = []
        self._has_out = asyncio.Event()
        self.closed = False

    def send(self, message: Message, transfer: list[Buffer]) -> None:
        if self.closed:
            raise ConnectionError("the engine went away")
        tree, buffers = wire.split(message)
        self._out.append((tree, [_as_array(buffer) for buffer in buffers]))
        self._has_out.set()

    def on_message(self, handler: Handler) -> None:
        self._handler = handler
        waiting, self._waiting = self._waiting, []
        for tree, buffers in waiting:
            self.take(tree, buffers)

    def close(self) -> None:
        self.closed = True

    def take(self, tree: Any, buffers: list[Any]) -> None:
        if self._handler is None:
            self._waiting.append((tree, buffers))
            return
        # Writable, as a plugin process's arrays are: what Ray's store hands out is read-only.
        try:
            message = wire.restore(tree, [bytearray(memoryview(buffer).cast("B")) for buffer in buffers])
        except Exception as error:
            self._handler(tree, error)
        else:
            self._handler(message)

    def line(self, stream: str, text: str) -> None:
        self._lines.append((stream, text))
        self._has_out.set()

    async def take_out(self) -> tuple[list[tuple[Any, list[Any]]], list[tuple[str, str]]]:
        await self._has_out.wait()
        out, self._out, lines, self._lines = self._out, [], self._lines, []
        self._has_out.clear()
        return out, lines


class _Lines:
    """sys.stdout or sys.stderr of the first replica: each line to the page too (outbox)."""

    def __init__(self, stream: Any, name: str, transport: ActorTransport) -> None:
        self._stream, self._name, self._transport = stream, name, transport
        self._partial = ""

    def write(self, text: str) -> int:
        self._stream.write(text)
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self._transport.line(self._name, line)
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class PluginActor:
    """One plugin instance (ray.remote'd by ray_actors.py, with the plugin's resources)."""

    def __init__(self, plugin: dict[str, Any], replica: int) -> None:
        self._plugin = plugin
        self._replica = replica
        self._transport = ActorTransport()
        self._session: Session | None = None
        self._exported: Any = None
        self._loaded = asyncio.Event() if _has_loop() else None
        # The first replica's view of the others (set_peers), for spreading the page's calls:
        # each replica's actor handle (None while it is started again) and calls in flight.
        self._peers: list[Any] = []
        self._in_flight: list[int] = [0]
        self._turn = 0

    async def ready(self) -> dict[str, Any]:
        """Starts the page's session (the first replica) and says where the actor runs."""
        import ray

        if self._loaded is None:
            self._loaded = asyncio.Event()
        if self._replica == 0 and self._session is None:
            sys.stdout = _Lines(sys.stdout, "stdout", self._transport)  # type: ignore[assignment]
            sys.stderr = _Lines(sys.stderr, "stderr", self._transport)  # type: ignore[assignment]
            session = self._session = Session(self._transport)
            asyncio.get_running_loop().create_task(self._answer_root(session))
        context = ray.get_runtime_context()
        return {"node": context.get_node_id(), "ip": ray.util.get_node_ip_address(), "pid": os.getpid(),
                "resources": context.get_assigned_resources(), "replica": self._replica}

    async def _answer_root(self, session: Session) -> None:
        await session.remote_root()  # the page's root first: then it has opened this channel
        if not session.closed:
            session.set_root(_Kernel(self, session, self._plugin))

    def loaded(self, exported: Any) -> None:
        self._exported = exported
        assert self._loaded is not None
        self._loaded.set()

    async def deliver(self, batch: list[tuple[Any, list[Any]]]) -> None:
        for tree, buffers in batch:
            self._transport.take(tree, buffers)

    async def outbox(self) -> tuple[list[tuple[Any, list[Any]]], list[tuple[str, str]]]:
        return await self._transport.take_out()

    async def load_console(self) -> None:
        """Loads the plugin without a page (a replica past the first): its API prints."""
        host, plugin_end = memory_pair()
        Session(host).set_root({name: _printer(name) for name in CONSOLE_FUNCTIONS})
        exported = await start_plugin(self._plugin, Session(plugin_end), run_script)
        await _setup(exported)
        self.loaded(exported)

    async def call_chunk(self, name: str, batch: list[Any], first: int, last: int
                         ) -> tuple[list[Any], tuple[int, str] | None, float]:
        """The plugin's exported function `name` on each of a chunk of a map's items,
        batch[first:last] (the engine puts the map's items in the object store once, and each
        chunk's call names its part of them: Ray hands the batch over from the store without
        a copy): their results, the first failure as (its offset in the chunk, "Type:
        message"), the items after it not run, and the seconds the items took here (the engine
        sizes its chunks by it). One Ray call per chunk, not per item: a call's own cost (the
        gateway's, the raylet's, this worker's) is most of a small item's."""
        function = await self._function(name)
        results: list[Any] = []
        started = time.perf_counter()
        for offset, item in enumerate(batch[first:last]):
            try:
                result = function(item)
                results.append(await result if inspect.isawaitable(result) else result)
            except Exception as error:
                return results, (offset, f"{type(error).__name__}: {error}"), time.perf_counter() - started
        return results, None, time.perf_counter() - started

    async def call_one(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """The plugin's exported function `name` with the page's arguments, on a replica past
        the first (the first spreads the page's calls, `spread`); a result holding functions
        cannot go back (they would live here, the page's session is on the first replica)."""
        function = await self._function(name)
        result = function(*args, **kwargs)
        result = await result if inspect.isawaitable(result) else result
        if _holds_functions(result):
            raise TypeError(f"{name}() returned functions from replica {self._replica}: on a plugin with replicas, "
                            "a call is spread over them and its result must be values; give the function a "
                            "function argument (such calls run on the first replica), or run one replica")
        return result

    async def set_peers(self, peers: list[Any]) -> None:
        """(The first replica) the other replicas' actor handles, by index from 1; None for one
        being started again."""
        self._peers = peers
        self._in_flight = (self._in_flight + [0] * len(peers))[:1 + len(peers)]

    async def until_ended(self) -> None:
        """Never answers: the engine waits on it to learn at once that this actor died."""
        await asyncio.Event().wait()

    def spread(self, exported: Any) -> Any:
        """What the first replica gives the page for a plugin with replicas: the exported
        members, each function a call spread over the replicas (ENGINE.md, On a Ray cluster:
        "Calls on replicas"); the plugin's own export (for `map`) stays as it is."""
        if int(self._plugin["config"].get("replicas") or 1) <= 1:
            return exported
        if isinstance(exported, dict):
            members = dict(exported)
        else:  # as pyjoy.rpc's codec encodes an object: its public attributes
            members = {name: getattr(exported, name) for name in dir(exported) if not name.startswith("_")}
        return {name: self._spreading(name, member) if callable(member) and name not in KEPT_ON_FIRST else member
                for name, member in members.items()}

    def _spreading(self, name: str, function: Any) -> Any:
        async def call(*args: Any, **kwargs: Any) -> Any:
            index = self._least_busy() if not _holds_functions([args, kwargs]) else 0
            self._in_flight[index] += 1
            try:
                if index == 0:
                    result = function(*args, **kwargs)
                    return await result if inspect.isawaitable(result) else result
                return await self._call_peer(index, name, list(args), kwargs)
            finally:
                if index < len(self._in_flight):
                    self._in_flight[index] -= 1
        call.__name__ = name
        call.__doc__ = getattr(function, "__doc__", None)
        return call

    def _least_busy(self) -> int:
        """The replica with the fewest calls in flight; among those, the next in turn (calls
        made one after another go round the replicas)."""
        live = [0] + [index for index, peer in enumerate(self._peers, 1) if peer is not None]
        self._turn += 1
        start = self._turn % len(live)
        order = live[start:] + live[:start]
        return min(order, key=lambda index: self._in_flight[index])

    async def _call_peer(self, index: int, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        import ray

        peer = self._peers[index - 1]
        try:
            return await peer.call_one.remote(name, args, kwargs)
        except ray.exceptions.RayTaskError as error:
            cause = getattr(error, "cause", None)
            raise cause if isinstance(cause, Exception) else RuntimeError(str(error)) from None
        except ray.exceptions.RayError as error:
            if self._peers[index - 1] is peer:
                self._peers[index - 1] = None  # until the engine sends the replica started again
            raise RuntimeError(f"replica {index} of plugin {self._plugin['config']['name']!r} died during {name}(): "
                               f"{type(error).__name__}; it is being started again") from None

    async def _function(self, name: str) -> Any:
        assert self._loaded is not None
        await self._loaded.wait()
        function = self._exported.get(name) if isinstance(self._exported, dict) else getattr(self._exported, name, None)
        if not callable(function):
            raise AttributeError(f"plugin {self._plugin['config']['name']!r} exports no function {name!r}")
        return function


class _Kernel(EngineKernel):
    """The page's kernel: loads the plugin as a plugin process does, keeps what it exported
    (for map), and gives the page its calls spread over the replicas."""

    def __init__(self, actor: PluginActor, session: Session, plugin: dict[str, Any]) -> None:
        super().__init__(session, plugin)
        self._actor = actor

    async def load_plugin(self, _plugin: Any = None) -> Any:
        exported = await super().load_plugin(_plugin)
        self._actor.loaded(exported)
        return self._actor.spread(exported)


async def _setup(exported: Any) -> None:
    setup = exported.get("setup") if isinstance(exported, dict) else getattr(exported, "setup", None)
    if callable(setup):
        result = setup()
        if inspect.isawaitable(result):
            await result


def _holds_functions(value: Any, depth: int = 0) -> bool:
    """Whether a value holds a function (a page's callback, a made closure) anywhere a
    message would carry it."""
    if callable(value) and not isinstance(value, type):
        return True
    if depth > 32:
        return False
    if isinstance(value, dict):
        return any(_holds_functions(item, depth + 1) for item in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_functions(item, depth + 1) for item in value)
    return False


def _printer(name: str) -> Any:
    def report(*args: Any, **_kwargs: Any) -> None:
        print(f"{name}:", *args, flush=True)
    return report


def _has_loop() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False
