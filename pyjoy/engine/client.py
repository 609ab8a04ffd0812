"""A Python client of the engine: what the page does, for tests and benchmarks.

    client = await EngineClient.connect("ws://127.0.0.1:9527/?token=...", origin="http://127.0.0.1:8000")
    plugin = await client.load_plugin(source, host={"log": print})   # start, open, load_plugin, setup
    await plugin.api.process(numpy_array, on_progress)
    models = (await client.model_service()).api                        # ONNX models on the engine
    await client.engine.list()
    await client.close()

`connect` raises EngineRefused with the reason (wrong Origin: HTTP 403; wrong token: closed
with 4401). Notices the engine sends outside any call (`{"error": ...}`, ENGINE.md) land in
`client.notices` (an asyncio.Queue of their texts).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp

from pyjoy.engine import wire
from pyjoy.engine.mux import ChannelTransport, Outgoing
from pyjoy.rpc import Session
from pyjoy.rpc.codec import dotdict


class EngineRefused(ConnectionError):
    """The engine refused the connection; the message says why."""


@dataclass
class RemotePlugin:
    info: dotdict  # what start() answered: id, name, type, tag, version, env
    session: Session
    api: Any  # what the plugin exported

    @property
    def id(self) -> str:
        return self.info["id"]


class EngineClient:
    def __init__(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._http = http
        self.ws = ws
        self.outgoing = Outgoing(ws)
        self.notices: asyncio.Queue[str] = asyncio.Queue()
        self.closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._channels: dict[str, ChannelTransport] = {}
        self._sessions: list[Session] = []
        self._incoming = wire.Incoming()
        self.engine_session = self.open_session("engine")
        self.engine: Any = None
        self._models: RemotePlugin | None = None
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def connect(cls, url: str, origin: str | None = None) -> EngineClient:
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
        client = cls(http, ws)
        root = asyncio.ensure_future(client.engine_session.remote_root())
        await asyncio.wait([root, client.closed], return_when=asyncio.FIRST_COMPLETED)
        if not root.done() or root.exception() is not None:
            root.cancel()
            reason = client.closed.result() if client.closed.done() else "closed"
            await client.close()
            raise EngineRefused(f"the engine refused the connection: {reason}")
        client.engine = root.result()
        return client

    def open_session(self, channel: str) -> Session:
        """A pyjoy.rpc session on `channel` (messages that came for it before are kept for it)."""
        transport = self._channels.get(channel)
        if transport is None:
            transport = self._channels[channel] = ChannelTransport(self.outgoing, channel)
        session = Session(transport)
        self._sessions.append(session)
        return session

    async def load_plugin(self, source: str, tag: str | None = None, host: Any = None, **callbacks: Any) -> RemotePlugin:
        """Starts a plugin on the engine and loads it as the page does (ENGINE.md, A plugin's
        channel); `callbacks`: progress, output, exited (as start takes them)."""
        return await self.open_plugin(await self.engine.start(source, tag=tag, **callbacks), host)

    async def model_service(self, **callbacks: Any) -> RemotePlugin:
        """This connection's model service (ENGINE.md, The model service), started and loaded;
        its `api` has load, run, run_batch, info, unload. `callbacks`: output, exited."""
        if self._models is None or self._models.session.closed:
            self._models = await self.open_plugin(await self.engine.models(**callbacks))
        return self._models

    async def open_plugin(self, info: Any, host: Any = None) -> RemotePlugin:
        """Loads a plugin the engine started (`info`: what start() answered) on its channel."""
        session = self.open_session(info["id"])
        session.set_root(host if host is not None else {"log": print, "showMessage": print, "alert": print})
        kernel = await session.remote_root()
        api = await kernel.load_plugin()
        if isinstance(api, dict) and callable(api.get("setup")):
            await api["setup"]()
        return RemotePlugin(info, session, api)

    async def _read(self) -> None:
        try:
            async for received in self.ws:
                if received.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    break
                for item in self._incoming.feed(received.data):
                    if isinstance(item, wire.Notice):
                        self.notices.put_nowait(item.text)
                        continue
                    if isinstance(item, wire.FrameError):
                        self.notices.put_nowait(f"the engine sent a broken frame: {item}")
                        continue
                    transport = self._channels.get(item.channel)
                    if transport is None:
                        transport = self._channels[item.channel] = ChannelTransport(self.outgoing, item.channel)
                    try:
                        transport.deliver(wire.restore(item.header["message"], item.buffers))
                    except Exception as error:
                        transport.deliver(item.header["message"], error)
        finally:
            code, reason = self.ws.close_code, ""
            if code == 4401:
                reason = "wrong token"
            why = f"the engine closed the connection (code {code}{', ' + reason if reason else ''})"
            if not self.closed.done():
                self.closed.set_result(reason or why)
            for session in self._sessions:
                session.close(why)

    async def close(self) -> None:
        for session in self._sessions:
            session.close("the client closed")
        await self.outgoing.close()
        await self.ws.close()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)
        await self._http.close()
