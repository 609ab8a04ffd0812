"""A Python client of the engine: what the page does, for tests and benchmarks.

    client = await EngineClient.connect("ws://127.0.0.1:9527/?token=...", origin="http://127.0.0.1:8000")
    plugin = await client.load_plugin(source, host={"log": print})   # start, open, load_plugin, setup
    await plugin.api.process(numpy_array, on_progress)
    models = (await client.model_service()).api                        # ONNX models on the engine
    results = await client.map(plugin, "process", items)             # over its replicas (--ray)
    await client.engine.list()
    await client.close()

`connect` raises EngineRefused with the reason (wrong Origin: HTTP 403; wrong token: closed
with 4401), and EngineTimeout naming the engine's address (not its token) when it does not
answer within `timeout` seconds (30 by default). When the socket drops (not by close()), the client resumes the connection
within the engine's grace period (ENGINE.md, A page that drops): its pending calls then
complete. With `auto_resume=False` it waits for `await client.resume()` instead (tests);
a refused resume (EngineRefused, code 4410) ends its sessions with the reason. Notices the engine sends outside any call (`{"error": ...}`, ENGINE.md) land in
`client.notices` (an asyncio.Queue of their texts).

With `direct=True` a plugin's channel goes over its own direct socket (ENGINE.md, The
direct socket), as the page's does; the client does not re-open one that drops (the
plugin's session then ends), so tests of the relay leave it off (the default).
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from typing import Any

import aiohttp

from pyjoy.engine import wire
from urllib.parse import urlencode, urlsplit, urlunsplit

from pyjoy.engine.masking import FRAME_EXTRA_BYTES, masked_frame
from pyjoy.engine.mux import ChannelTransport, Outgoing, SplitTransport
from pyjoy.rpc import Session
from pyjoy.rpc.codec import dotdict


#: How long connect() waits for the engine's answer by default.
CONNECT_TIMEOUT_S = 30.0
#: A map's items go in groups of at most this many bytes of arrays (ENGINE.md, map): the
#: engine's bound on one message less a margin for what buffer_bytes may not count; at most
#: this many groups at a time. Groups are a map each, and fewer maps cost fewer Ray calls
#: (bench/cluster.py: 96 images as one map 1.71x with 2 replicas, as two maps 1.60x).
MAP_GROUP_BYTES = 15 * 2**20
MAP_GROUPS_IN_FLIGHT = 2


def buffer_bytes(value: Any) -> int:
    """The bytes of arrays (numpy arrays, bytes) a value sends as buffers, nested in lists and dicts."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return memoryview(value).nbytes
    if hasattr(value, "dtype") and isinstance(getattr(value, "nbytes", None), int):
        return value.nbytes
    if isinstance(value, dict):
        return sum(buffer_bytes(each) for each in value.values())
    if isinstance(value, (list, tuple)):
        return sum(buffer_bytes(each) for each in value)
    return 0


def map_groups(items: list[Any], limit: int = MAP_GROUP_BYTES) -> list[tuple[int, int]]:
    """[(start, end)] of consecutive items, as few groups as hold at most `limit` bytes of
    arrays each (an item bigger than that alone), of about equal bytes: each group is a map
    of its own, whose last chunks are small (ray_actors.chunk_size), so fewer is cheaper.
    ValueError naming an item over the engine's bound."""
    sizes = [buffer_bytes(item) for item in items]
    for index, nbytes in enumerate(sizes):
        if nbytes > wire.MAX_ENGINE_MESSAGE_BYTES:
            raise ValueError(f"map: item {index} holds {nbytes} bytes of arrays, over the {wire.MAX_ENGINE_MESSAGE_BYTES} "
                             "the engine takes in one message: split it, or pass where to read it (a file on the engine)")
    total = sum(sizes)
    if total <= limit:
        return [(0, len(items))]
    target = total / -(-total // limit)  # the total over as few groups as can hold it
    groups, start, size = [], 0, 0
    for index, nbytes in enumerate(sizes):
        if index > start and (size + nbytes > limit or size >= target):
            groups.append((start, index))
            start, size = index, 0
        size += nbytes
    groups.append((start, len(items)))
    return groups


class EngineRefused(ConnectionError):
    """The engine refused the connection; the message says why."""


class EngineTimeout(TimeoutError):
    """The engine did not answer connect() in time; the message names its address."""


def address_of(url: str) -> str:
    """The engine's URL without its query (the token is a secret: never in a message)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


@dataclass
class RemotePlugin:
    info: dotdict  # what start() answered: id, name, type, tag, version, env
    session: Session
    api: Any  # what the plugin exported

    @property
    def id(self) -> str:
        return self.info["id"]


class _Frames:
    """An aiohttp client WebSocket as mux.Outgoing writes to it: `write_nowait` masks each
    frame in one pass over its payload (masking.py; aiohttp copies a payload, masks the copy
    and copies it again behind the header) into a buffer used again once free, and hands it
    to the transport whole, with no turn of the event loop per message, only while the
    transport holds nothing unsent (asyncio's keeps what the socket did not take in a buffer
    of its own that it copies into and moves with each send: it holds one frame's rest at
    most). send_str/send_bytes (the writer task's, when it must wait) wait for that. Where
    aiohttp lacks the internals this relies on, its own send_str/send_bytes."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        writer = getattr(ws, "_writer", None)
        self._transport = getattr(writer, "transport", None)
        self._protocol = getattr(writer, "protocol", None)
        self._writer = writer
        self._memory = bytearray()
        self._direct = (getattr(writer, "use_mask", False) and self._transport is not None
                        and hasattr(self._protocol, "writing_paused") and hasattr(self._protocol, "_drain_helper"))
        if self._direct:
            self._transport.set_write_buffer_limits(high=0)  # paused while anything waits unsent

    def write_nowait(self, frame: str | bytes | memoryview) -> bool:
        """Writes the frame now if the socket is open and its transport holds nothing unsent; else False."""
        transport = self._transport
        if (not self._direct or self._ws.closed or getattr(self._writer, "_closing", True)
                or transport.is_closing() or self._protocol.writing_paused):
            return False
        data, opcode = (frame.encode(), 0x1) if isinstance(frame, str) else (frame, 0x2)
        size = len(data) + FRAME_EXTRA_BYTES
        # One buffer, used again once nothing else holds it (a transport may keep a view of
        # what it has not sent): fresh memory for each frame would cost a page fault per 4 KiB.
        if sys.getrefcount(self._memory) > 2 or len(self._memory) < size:
            self._memory = bytearray(size)
        transport.write(masked_frame(data, opcode, self._memory))
        return True

    def flush(self) -> None:
        """(Each frame was written whole: nothing waits.)"""

    async def _send(self, frame: str | bytes | memoryview) -> None:
        while self._direct and not self.write_nowait(frame):
            if self._ws.closed or getattr(self._writer, "_closing", True) or self._transport.is_closing():
                raise ConnectionResetError("the WebSocket is closed")
            await self._protocol._drain_helper()
        if not self._direct:
            await (self._ws.send_str(frame) if isinstance(frame, str) else self._ws.send_bytes(frame))

    async def send_str(self, text: str) -> None:
        await self._send(text)

    async def send_bytes(self, data: bytes | memoryview) -> None:
        await self._send(data)


class EngineClient:
    def __init__(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse, url: str,
                 origin: str | None, auto_resume: bool = True, direct: bool = False) -> None:
        self._http = http
        self.ws = ws
        self._url, self._origin = url, origin
        self.auto_resume = auto_resume
        self.direct = direct
        self._direct: list[tuple[aiohttp.ClientWebSocketResponse, Outgoing, asyncio.Task[None]]] = []
        self.outgoing = Outgoing(_Frames(ws), keep=True)  # until the engine's hello says it keeps no connection
        self.notices: asyncio.Queue[str] = asyncio.Queue()
        self.closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.resume_key: str | None = None  # from the engine's hello: a secret, as the token
        self.grace = 0.0
        self.received = 0  # the engine's messages read whole
        self.dropped = asyncio.Event()  # set while the socket is down and a resume may come
        self._closing = False
        self._channels: dict[str, ChannelTransport] = {}
        self._sessions: list[Session] = []
        self._incoming = wire.Incoming()
        self.engine_session = self.open_session("engine")
        self.engine: Any = None
        self._models: RemotePlugin | None = None
        self._resuming: asyncio.Task[None] | None = None
        self._reader = asyncio.get_running_loop().create_task(self._read(ws))

    @classmethod
    async def connect(cls, url: str, origin: str | None = None, auto_resume: bool = True,
                      direct: bool = False, timeout: float | None = CONNECT_TIMEOUT_S) -> EngineClient:
        """Connects and waits for the engine's root; EngineTimeout naming the address (never the
        token) when that takes more than `timeout` seconds (None: no limit)."""
        try:
            return await asyncio.wait_for(cls._connect(url, origin, auto_resume, direct), timeout)
        except asyncio.TimeoutError:
            raise EngineTimeout(f"the engine at {address_of(url)} did not answer within {timeout:g} s (is an engine "
                                "running there, and is that its address?)") from None

    @classmethod
    async def _connect(cls, url: str, origin: str | None, auto_resume: bool, direct: bool) -> EngineClient:
        http = aiohttp.ClientSession()
        try:
            ws = await http.ws_connect(url, headers={"Origin": origin} if origin else None,
                                       max_msg_size=wire.CLOSE_FRAME_BYTES, autoping=True)
        except aiohttp.WSServerHandshakeError as error:
            await http.close()
            raise EngineRefused(f"the engine refused the connection: HTTP {error.status} {error.message}") from None
        except BaseException:
            await http.close()
            raise
        client = cls(http, ws, url, origin, auto_resume, direct)
        root = asyncio.ensure_future(client.engine_session.remote_root())
        try:
            await asyncio.wait([root, client.closed], return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled (the timeout): nothing is left open
            root.cancel()
            await client.close()
            raise
        if not root.done() or root.exception() is not None:
            root.cancel()
            reason = client.closed.result() if client.closed.done() else "closed"
            await client.close()
            raise EngineRefused(f"the engine refused the connection: {reason}")
        client.engine = root.result()
        return client

    def open_session(self, channel: str, direct: ChannelTransport | None = None) -> Session:
        """A pyjoy.rpc session on `channel` (messages that came for it before are kept for it);
        with `direct`, the channel is carried by that plugin's direct socket."""
        transport = self._channels.get(channel)
        if transport is None:
            transport = self._channels[channel] = ChannelTransport(self.outgoing, channel)
        session = Session(transport if direct is None else SplitTransport(direct, transport))
        self._sessions.append(session)
        return session

    async def load_plugin(self, source: str, tag: str | None = None, host: Any = None, **callbacks: Any) -> RemotePlugin:
        """Starts a plugin on the engine and loads it as the page does (ENGINE.md, A plugin's
        channel); `callbacks`: progress, output, exited (as start takes them)."""
        return await self.open_plugin(await self.engine.start(source, tag=tag, **callbacks), host)

    async def map(self, plugin: RemotePlugin, name: str, items: list[Any], progress: Any = None) -> list[Any]:
        """`name(item)` of the plugin's export for each item, spread over its replicas on a Ray
        cluster (ENGINE.md, On a Ray cluster), results in input order; `progress({done, total})`.
        Items with more arrays than one message takes go as several maps (map_groups), two
        at a time, so the replicas start on the first while the next travel."""
        groups = map_groups(items)
        if len(groups) == 1:
            return await self.engine.map(plugin.id, name, items, progress=progress)
        results: list[Any] = [None] * len(items)
        done = [0] * len(groups)
        room = asyncio.Semaphore(MAP_GROUPS_IN_FLIGHT)

        def reporter(index: int) -> Any:
            def report(event: Any) -> None:
                done[index] = event["done"]
                if progress is not None:
                    progress({"done": sum(done), "total": len(items)})
            return report

        async def run(index: int, start: int, end: int) -> None:
            async with room:
                results[start:end] = await self.engine.map(plugin.id, name, items[start:end],
                                                            progress=reporter(index), offset=start)

        tasks = [asyncio.ensure_future(run(index, *group)) for index, group in enumerate(groups)]
        try:
            finished, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in finished:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in tasks:
                task.cancel()
        return results

    async def model_service(self, **callbacks: Any) -> RemotePlugin:
        """This connection's model service (ENGINE.md, The model service), started and loaded;
        its `api` has load, run, run_batch, info, unload. `callbacks`: output, exited."""
        if self._models is None or self._models.session.closed:
            self._models = await self.open_plugin(await self.engine.models(**callbacks))
        return self._models

    async def open_plugin(self, info: Any, host: Any = None) -> RemotePlugin:
        """Loads a plugin the engine started (`info`: what start() answered) on its channel."""
        session = self.open_session(info["id"], await self._open_direct(info["id"]) if self.direct else None)
        session.set_root(host if host is not None else {"log": print, "showMessage": print, "alert": print})
        kernel = await session.remote_root()
        api = await kernel.load_plugin()
        if isinstance(api, dict) and callable(api.get("setup")):
            await api["setup"]()
        return RemotePlugin(info, session, api)

    async def _open_direct(self, plugin_id: str) -> ChannelTransport | None:
        """The plugin's direct socket once its process said hello on it; None where it cannot."""
        try:
            answer = await self.engine.direct(plugin_id)
            parts = urlsplit(self._url)
            query = urlencode({"token": dict(pair.split("=", 1) for pair in parts.query.split("&") if "=" in pair).get("token", ""),
                               "plugin": plugin_id, "ticket": answer["ticket"]})
            ws = await self._http.ws_connect(urlunsplit((parts.scheme, parts.netloc, answer["path"], query, "")),
                                             headers={"Origin": self._origin} if self._origin else None,
                                             max_msg_size=wire.CLOSE_FRAME_BYTES, autoping=True)
        except Exception:
            return None
        first = await ws.receive()
        items = wire.Incoming().feed(first.data) if first.type is aiohttp.WSMsgType.TEXT else []
        if not items or not isinstance(items[0], wire.Hello):
            await ws.close()
            return None
        outgoing = Outgoing(_Frames(ws))
        transport = ChannelTransport(outgoing, "plugin")

        async def read() -> None:
            incoming = wire.Incoming()
            async for received in ws:
                if received.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    break
                for item in incoming.feed(received.data):
                    if isinstance(item, wire.Complete):
                        try:
                            transport.deliver(wire.restore(item.header["message"], item.buffers))
                        except Exception as error:
                            transport.deliver(item.header["message"], error)
                    elif isinstance(item, (wire.Notice, wire.FrameError)):
                        self.notices.put_nowait(str(getattr(item, "text", item)))
            transport.deliver({"type": "close", "reason": f"the plugin's direct socket closed ({ws.close_code})"})

        self._direct.append((ws, outgoing, asyncio.get_running_loop().create_task(read())))
        return transport

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        try:
            async for received in ws:
                if received.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    break
                if received.type is aiohttp.WSMsgType.TEXT:
                    self.received += 1
                for item in self._incoming.feed(received.data):
                    self._take(item)
        finally:
            if self._incoming.reading:  # cut short: the engine sends it again on a resume
                self.received -= 1
            self._incoming = wire.Incoming()
            if ws is self.ws:
                self._dropped(ws)

    def _take(self, item: wire.Item) -> None:
        if isinstance(item, wire.Hello):
            self.received -= 1  # not a numbered message
            self.resume_key, self.grace = item.info.get("resume"), float(item.info.get("grace") or 0)
            if self.resume_key is None:
                self.outgoing.keep = False
            return
        if isinstance(item, wire.Notice):
            self.notices.put_nowait(item.text)
            return
        if isinstance(item, wire.FrameError):
            self.notices.put_nowait(f"the engine sent a broken frame: {item}")
            return
        transport = self._channels.get(item.channel)
        if transport is None:
            transport = self._channels[item.channel] = ChannelTransport(self.outgoing, item.channel)
        try:
            transport.deliver(wire.restore(item.header["message"], item.buffers))
        except Exception as error:
            transport.deliver(item.header["message"], error)

    def _dropped(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        code = ws.close_code
        if not self._closing and self.resume_key is not None and code not in (1000, 4401, 4410):
            self.outgoing.detach()
            self.dropped.set()  # the sessions wait: their calls complete after a resume
            if self.auto_resume:
                self._resuming = asyncio.get_running_loop().create_task(self._resume_within_grace())
            return
        reason = "wrong token" if code == 4401 else ""
        self._end(reason or f"the engine closed the connection (code {code})")

    def _end(self, why: str) -> None:
        if not self.closed.done():
            self.closed.set_result(why)
        for session in self._sessions:
            session.close(why)

    async def _resume_within_grace(self) -> None:
        """Tries to resume until the grace period is over (an engine restarting is not there yet)."""
        deadline = asyncio.get_running_loop().time() + self.grace
        wait = 0.05
        while True:
            try:
                await self.resume()
                return
            except EngineRefused:
                return  # resume() ended the sessions, saying why
            except (aiohttp.ClientError, OSError) as error:
                if asyncio.get_running_loop().time() + wait > deadline:
                    self._end(f"the engine's connection dropped and could not be resumed within "
                              f"{self.grace:g} s: {error}")
                    return
            await asyncio.sleep(wait)
            wait = min(wait * 2, 1.0)

    async def resume(self) -> None:
        """Resumes the connection after its socket dropped: the engine sends what this client
        missed and this client sends what the engine missed. EngineRefused when the engine
        refuses (its grace period passed, a wrong key, too much was missed): the sessions end."""
        if not self.dropped.is_set() or self.resume_key is None:
            raise RuntimeError("resume: the connection did not drop")
        url = f"{self._url}{'&' if '?' in self._url else '?'}resume={self.resume_key}&received={self.received}"
        ws = await self._http.ws_connect(url, headers={"Origin": self._origin} if self._origin else None,
                                         max_msg_size=wire.CLOSE_FRAME_BYTES, autoping=True)
        first = await ws.receive()
        items = wire.Incoming().feed(first.data) if first.type is aiohttp.WSMsgType.TEXT else []
        if not items or not isinstance(items[0], wire.Hello) or not isinstance(items[0].info.get("received"), int):
            why = first.extra if first.type is aiohttp.WSMsgType.CLOSE and first.extra else f"closed ({ws.close_code})"
            await ws.close()
            self._end(f"the engine's connection dropped and the engine refused to resume it: {why}")
            raise EngineRefused(f"the engine refused to resume the connection: {why}")
        self.ws = ws
        self.dropped.clear()
        self.outgoing.attach(_Frames(ws), items[0].info["received"], [])
        self._reader = asyncio.get_running_loop().create_task(self._read(ws))

    def drop(self) -> None:
        """Cuts the TCP connection abruptly, as a network that fails does (tests)."""
        transport = self.ws._writer.transport  # aiohttp keeps it there
        transport.abort()

    async def close(self) -> None:
        self._closing = True
        for session in self._sessions:
            session.close("the client closed")
        if self._resuming is not None:
            self._resuming.cancel()
        await self.outgoing.close()
        for ws, outgoing, reader in self._direct:
            await outgoing.close()
            await ws.close()
            reader.cancel()
        await self.ws.close()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
        await self._http.close()
