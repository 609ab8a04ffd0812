"""The engine's WebSocket endpoint (aiohttp): who may connect, and what a connection does.

    engine = Engine(workdir, token, origins)
    await engine.serve("127.0.0.1", 9527, ready=print_urls)   # until SIGINT or SIGTERM

A request is refused when its Origin is not allowed (HTTP 403) or its token is wrong
(accepted, then closed with 4401 "wrong token", which a page can read); the token is
compared with hmac.compare_digest and never logged (no access log). A connection gets the
`engine` channel, an RPC session whose root is `Control` (start, models, direct, stop, list,
info), and one channel per plugin it started, relayed to that plugin's process without
decoding; or, once the page opened a plugin's direct socket (`/plugin?token=&plugin=&ticket=`,
a one-time ticket from `direct(id)`), carried by that socket, which the engine accepts and
passes to the plugin's process (ENGINE.md, The direct socket). A
malformed or oversized frame, or an unknown channel, is an error for its call (or an
`{"error"}` notice); the connection stays. Its plugins end when it closes; the engine's
end when it stops. ENGINE.md is the contract.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hmac
import importlib.util
import logging
import platform
import re
import secrets
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from pyjoy.engine import model_service, tuning, wire
from pyjoy.engine.envs import Environments
from pyjoy.engine.files import FileError, FileService, secret_digest
from pyjoy.engine.mux import ChannelTransport, Outgoing
from pyjoy.engine.plugin_file import parse_plugin
from pyjoy.engine.processes import PluginProcess, describe_status, plugin_dir
from pyjoy.rpc import Session

#: The most plugins one connection runs at once: each is an OS process.
MAX_PLUGINS = 32
log = logging.getLogger("pyjoy.engine")
CLOSE_WRONG_TOKEN = 4401
#: A resume refused: its key is wrong, its grace period passed, or what the page missed is no longer kept.
CLOSE_RESUME_REFUSED = 4410
#: How long a connection whose socket dropped keeps its plugins for a resume (--grace).
GRACE_SECONDS = 30.0
#: Ended connections' key digests remembered, to say why a resume with one is refused.
ENDED_KEYS = 1000
#: A direct socket refused: its ticket is wrong, used, expired, or for another plugin.
CLOSE_WRONG_TICKET = 4403
#: How long a ticket from direct(id) may wait to be used.
TICKET_SECONDS = 30.0
#: Exited plugins a connection remembers (list() shows them, a message to one is answered
#: with its exit); older ones are forgotten, so a page that starts plugins that crash, again
#: and again, does not make the engine hold more and more.
KEEP_EXITED = 16


class EngineError(Exception):
    """What the engine refuses: the message says what and why."""


@dataclass
class Plugin:
    id: str
    name: str
    tag: str | None
    process: PluginProcess
    started: dict[str, Any]  # what start() answered
    status: int | None = None
    reason: str | None = None
    relayed: int = 0  # its messages the engine relayed, both ways (not those of its direct socket)

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "tag": self.tag,
                "state": "running" if self.status is None else "exited", "status": self.status,
                "relayed": self.relayed, "direct": getattr(self.process, "direct_sockets", 0),
                # where it runs now (a Ray replica started again is on a new actor)
                "runs": self.process.where() if hasattr(self.process, "where") else self.started.get("runs")}


@dataclass
class Ticket:
    """What direct(id) handed a connection: one use, for one plugin, until `expires`."""

    secret: str
    connection: Connection
    plugin_id: str
    expires: float


class Engine:
    def __init__(self, workdir: Path, token: str, origins: set[str], grace: float = GRACE_SECONDS,
                 cluster: Any = None) -> None:
        self.workdir = workdir
        self.cluster = cluster  # a ray_actors.Cluster (--ray): plugins run as Ray actors
        self.origins = {origin.rstrip("/").lower() for origin in origins}
        self.envs = Environments(workdir)
        self.files = FileService(workdir)
        self.grace = grace
        self._token = token.encode()
        self._connections: set[Connection] = set()
        # Resume keys by their SHA-256 (a lookup by the digest tells a timing nothing of the
        # key), then compared with compare_digest; and the digests of those that ended, why.
        self._resumable: dict[bytes, Connection] = {}
        self._ended: collections.OrderedDict[bytes, str] = collections.OrderedDict()
        self._tickets: dict[bytes, Ticket] = {}  # by the ticket's SHA-256, as resume keys
        self.stopping = False

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self._handle)
        app.router.add_get("/plugin", self._handle_plugin)
        app.router.add_routes(self.files.routes())
        return app

    async def _open(self, request: web.Request, heartbeat: float | None) -> web.StreamResponse:
        """The WebSocket of a request whose Origin is allowed and whose token is right; else
        the answer that refuses it (HTTP 403, 426, or a socket closed with 4401)."""
        origin = request.headers.get("Origin")
        if origin is not None and origin.rstrip("/").lower() not in self.origins:
            return web.Response(status=403, text=f"origin {origin} is not allowed to use this engine; start it with "
                                                 f"--allow-origin {origin} to allow it")
        ws = web.WebSocketResponse(max_msg_size=wire.CLOSE_FRAME_BYTES, compress=False, heartbeat=heartbeat)
        if not ws.can_prepare(request).ok:
            return web.Response(status=426, text="this is a PyJoy engine: connect with a WebSocket, "
                                                 "ws://HOST:PORT/?token=TOKEN")
        await ws.prepare(request)
        given = request.query.get("token", "").encode()
        if not hmac.compare_digest(given, self._token):
            await ws.close(code=CLOSE_WRONG_TOKEN, message=b"wrong token")
        return ws

    def ticket(self, connection: Connection, plugin_id: str) -> str:
        now = asyncio.get_running_loop().time()
        for digest in [digest for digest, ticket in self._tickets.items() if ticket.expires < now]:
            del self._tickets[digest]
        secret = secrets.token_urlsafe(32)
        self._tickets[secret_digest(secret)] = Ticket(secret, connection, plugin_id, now + TICKET_SECONDS)
        return secret

    async def _handle_plugin(self, request: web.Request) -> web.StreamResponse:
        """A page's direct socket for one plugin's channel (ENGINE.md, The direct socket):
        checked as the main socket is, plus its ticket; then handed to the plugin's process.
        Answered only once the process closed it (or exited): aiohttp must not write on it."""
        ws = await self._open(request, heartbeat=None)  # no pings: the socket is the plugin's
        if not isinstance(ws, web.WebSocketResponse) or ws.closed:
            return ws
        secret, plugin_id = request.query.get("ticket", ""), request.query.get("plugin", "")
        ticket = self._tickets.pop(secret_digest(secret), None)
        loop = asyncio.get_running_loop()
        if (ticket is None or not hmac.compare_digest(secret.encode(), ticket.secret.encode())
                or not hmac.compare_digest(plugin_id.encode(), ticket.plugin_id.encode()) or ticket.expires < loop.time()):
            await ws.close(code=CLOSE_WRONG_TICKET, message=b"wrong ticket: ask direct(id) for one, and use it once")
            return ws
        received_text = request.query.get("received")
        if received_text is not None and not re.fullmatch(r"[0-9]{1,18}", received_text):
            await ws.close(code=CLOSE_RESUME_REFUSED, message=b"received= should be the number of messages received")
            return ws
        plugin = ticket.connection.plugins.get(plugin_id)
        if plugin is None or plugin.status is not None or ticket.connection.ended:
            await ws.close(code=CLOSE_RESUME_REFUSED, message=b"the plugin is not running")
            return ws
        transport = request.transport
        assert transport is not None
        transport.pause_reading()  # the page sends nothing before the plugin's hello: it is all the process's
        while transport.get_write_buffer_size():  # the handshake's answer is out before the process writes
            await asyncio.sleep(0.001)
        sock = transport.get_extra_info("socket")
        try:
            await plugin.process.hand_over(sock.fileno(), None if received_text is None else int(received_text),
                                           self.grace)
        finally:
            transport.abort()  # our copy; the process closed its own (or ended)
        return ws

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        ws = await self._open(request, heartbeat=30)
        if not isinstance(ws, web.WebSocketResponse) or ws.closed:
            return ws
        if "resume" in request.query:
            connection, received, why = await self._resume(request.query["resume"], request.query.get("received", ""))
            if connection is None:
                await ws.close(code=CLOSE_RESUME_REFUSED, message=why.encode()[:120])
                return ws
        else:
            connection, received = Connection(self), None
            self._connections.add(connection)
            if connection.key is not None:
                self._resumable[secret_digest(connection.key)] = connection
        await connection.serve(ws, request, received)
        return ws

    async def _resume(self, key: str, received: str) -> tuple[Connection | None, int, str]:
        """The connection `key` resumes, and how many messages the page received on it; or why not."""
        digest = secret_digest(key)
        connection = self._resumable.get(digest)
        if connection is None or not hmac.compare_digest(key.encode(), (connection.key or "").encode()):
            ended = self._ended.get(digest)
            return None, 0, f"resume refused: {ended or 'no connection has that resume key'}"
        if not re.fullmatch(r"[0-9]{1,18}", received):
            return None, 0, "resume refused: received= should be the number of messages the page received"
        await connection.detach()  # a socket that has not noticed its drop yet (a page gone offline)
        problem = connection.outgoing.resend_problem(int(received))
        if problem is not None:
            await connection.end(f"it could not resume: {problem}")
            return None, 0, f"resume refused: {problem}; plugins ended"
        return connection, int(received), ""

    def forget(self, connection: Connection, why: str) -> None:
        self._connections.discard(connection)
        if connection.key is not None:
            digest = secret_digest(connection.key)
            if self._resumable.get(digest) is connection:
                del self._resumable[digest]
                self._ended[digest] = why
                while len(self._ended) > ENDED_KEYS:
                    self._ended.popitem(last=False)

    async def shutdown(self) -> None:
        self.stopping = True
        await asyncio.gather(*(connection.end("the engine stopped") for connection in list(self._connections)))

    async def serve(self, host: str, port: int, ready: Callable[[], None]) -> None:
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        ready()
        await stop.wait()
        await self.shutdown()
        await runner.cleanup()


class Connection:
    """A page's connection: its engine channel and plugins, over one socket at a time. With a
    grace period, a socket that drops leaves it waiting that long for a resume (serve() again
    with the page's count of what it received); past it, or without one, its plugins end."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.key = secrets.token_urlsafe(32) if engine.grace > 0 else None
        self.ws: web.WebSocketResponse | None = None
        self.outgoing = Outgoing(None, keep=self.key is not None)
        self.plugins: dict[str, Plugin] = {}
        self.model_service: str | None = None  # the id of its model service's plugin, once started
        self.control = ChannelTransport(self.outgoing, "engine")
        self.session = Session(self.control)
        self.session.set_root(Control(self))
        self._incoming = wire.Incoming(join=False)  # a plugin's pieces are relayed as they come
        self._target: Any = None  # where the current message's pieces go: a process, a list (engine), None
        self.received = 0  # the page's messages (text frames) read whole
        self.ended = False
        self._transport: Any = None  # the current socket's TCP transport
        self._reading: asyncio.Event = asyncio.Event()  # set while no socket is read
        self._reading.set()
        self._expiry: asyncio.TimerHandle | None = None
        self._ending: asyncio.Task[None] | None = None  # the end the grace period's expiry began

    async def serve(self, ws: web.WebSocketResponse, request: web.Request, received: int | None) -> None:
        """Reads `ws` until it closes (`received`: None on a new connection, else the page's count)."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        self.ws, self._transport = ws, request.transport
        self._incoming, self._target = wire.Incoming(join=False), None
        hello = wire.dumps({"hello": {"resume": self.key, "grace": self.engine.grace,
                                      "received": None if received is None else self.received}})
        self.outgoing.attach(ws, received or 0, [hello])
        self._reading.clear()
        try:
            await self.run(ws)
        except Exception:  # logged here, without the request: its URL holds the token
            log.exception("pyjoy engine: a connection failed")
        finally:
            self._dropped()
            self._reading.set()
        if self.ws is not ws:
            return  # a resume took it over
        if self.key is None or self.engine.stopping or ws.close_code == 1000 or self.ended:
            await self.end("the connection closed")
        else:
            loop = asyncio.get_running_loop()
            self._expiry = loop.call_later(self.engine.grace, self._expire)
        if not ws.closed:
            await ws.close()

    def _expire(self) -> None:
        self._ending = asyncio.get_running_loop().create_task(self.end(
            f"the page did not come back within the grace period ({self.engine.grace:g} s): its plugins were ended"))

    def _dropped(self) -> None:
        """A message the socket cut short is dropped (the page sends it again on a resume)."""
        if self.key is not None:
            self.outgoing.detach()
        if self._incoming.reading:
            self.received -= 1
            if _relaying(self._target):
                self._target.abort()
        self._incoming.abort()
        self._target = None

    async def detach(self) -> None:
        """Ends the current socket's reading (a resume takes the connection over)."""
        self.ws = None
        if self._transport is not None:
            self._transport.abort()
        await self._reading.wait()

    async def run(self, ws: web.WebSocketResponse) -> None:
        async for received in ws:
            if received.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                break  # closed, or an error (a frame over CLOSE_FRAME_BYTES: aiohttp closed it with 1009)
            if received.type is WSMsgType.TEXT:
                self.received += 1
            for item in self._incoming.feed(received.data):
                self.take(item)
    def take(self, item: wire.Item) -> None:
        if isinstance(item, wire.FrameError):
            if _relaying(self._target):
                self._target.abort()  # it was reading this message: it drops it, the error is answered here
            self._target = None
            self.report(item)
        elif isinstance(item, (wire.Notice, wire.Hello)):
            self.report(wire.FrameError('a page sends no {"error"} or {"hello"} frames; expected a message'))
        elif isinstance(item, wire.Start):
            self._target = self._open(item.channel, item.header, item.text)
            if self._target is None:  # answered already: its pieces are dropped quietly
                self._incoming.abort()
        elif isinstance(item, wire.Piece):
            if _relaying(self._target):
                self._target.send(item.data)
            elif isinstance(self._target, list):
                self._target.append(item.data)
        else:
            target = self._target if item.started else self._open(item.channel, item.header, item.text)
            self._target = None
            if isinstance(target, list):
                self._to_engine(item.header, target)

    def _open(self, channel: str, header: dict[str, Any], text: str) -> Any:
        """Where a message's header and pieces go; it is answered here when nowhere."""
        message = header["message"]
        if channel == "engine":
            if sum(header.get("buffers", [])) <= wire.MAX_ENGINE_MESSAGE_BYTES:
                return []
            self.report(wire.FrameError(f"a message to the engine's channel holds more than {wire.MAX_ENGINE_MESSAGE_BYTES} "
                                        "bytes of buffers", channel, message))
            return None
        plugin = self.plugins.get(channel)
        if plugin is None:
            self.report(wire.FrameError(f"unknown plugin {channel!r}: this connection started no plugin of that id "
                                        f"(or it exited before the last {KEEP_EXITED} that did)",
                                        channel, message))
        elif plugin.status is not None:
            self._answer_exited(plugin, message)
        else:
            try:
                plugin.process.check_room()
            except BufferError as error:
                self.report(wire.FrameError(f"plugin {plugin.name!r} ({plugin.id}): {error}", channel, message))
                return None
            plugin.process.send(text)
            plugin.relayed += 1
            return plugin.process
        return None

    def _to_engine(self, header: dict[str, Any], pieces: list[Any]) -> None:
        buffers = _buffers_of(header.get("buffers", []), pieces)
        try:
            message = wire.restore(header["message"], buffers)
        except Exception as error:
            self.control.deliver(header["message"], error)
        else:
            self.control.deliver(message)

    def report(self, error: wire.FrameError) -> None:
        if self.outgoing.closed:
            return
        answer = wire.error_answer(error.message, str(error))
        if answer is not None and error.channel is not None:
            self.outgoing.send(error.channel, answer)
        else:
            self.outgoing.send_frames([wire.dumps({"error": str(error)})])

    def _answer_exited(self, plugin: Plugin, message: Any) -> None:
        if self.outgoing.closed:
            return
        answer = wire.error_answer(message, plugin.reason or "exited")
        if answer is not None:
            self.outgoing.send(plugin.id, answer)
        self.outgoing.send(plugin.id, {"type": "close", "reason": plugin.reason})

    async def end(self, why: str) -> None:
        if self.ended:
            return
        self.ended = True
        if self._expiry is not None:
            self._expiry.cancel()
        self.engine.forget(self, why)
        self.session.close(why)
        await asyncio.gather(*(plugin.process.stop() for plugin in self.plugins.values()), return_exceptions=True)
        await self.outgoing.close()
        if self.ws is not None and not self.ws.closed:
            await self.ws.close()




def _relaying(target: Any) -> bool:
    """Whether a message's pieces go to a plugin (a PluginProcess, or a plugin's Ray actors),
    not to the engine's own channel (a list) or nowhere (None)."""
    return target is not None and not isinstance(target, list)


def _notify(callback: Any, *args: Any) -> None:
    """Calls a page's callback without waiting; a page that went away is no error here."""
    if not callable(callback):
        return
    try:
        call = callback(*args)
    except Exception:
        return
    if isinstance(call, asyncio.Future):
        call.add_done_callback(lambda done: done.cancelled() or done.exception())


class Control:
    """The `engine` channel's root (ENGINE.md): what a connection may ask of the engine."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._models_lock = asyncio.Lock()  # two models() calls at once start one service
        self._starting = 0  # plugins between their slot's reservation and their record (_slot)

    async def start(self, source: str, tag: str | None = None, progress: Any = None, output: Any = None,
                    exited: Any = None, replicas: int | None = None) -> dict[str, Any]:
        connection = self._connection
        if not isinstance(source, str):
            raise EngineError(f"start: source should be the plugin file's text, not {type(source).__name__}")
        if tag is not None and not isinstance(tag, str):
            raise EngineError(f"start: tag should be a string, not {type(tag).__name__}")
        plugin = parse_plugin(source, tag)
        config = plugin["config"]
        if config.get("type") != "native-python":
            raise EngineError(f"plugin {config['name']!r} is a {config.get('type')} plugin, which runs in the browser; "
                              "the engine runs native-python plugins")
        if replicas is not None:  # the page's count, in place of the config's (ray_actors.actor_options checks it)
            if connection.engine.cluster is None:
                raise EngineError("start: replicas run on a Ray cluster (pyjoy engine --ray); this engine runs "
                                  "each plugin as one local process")
            config["replicas"] = replicas
        with self._slot():
            if connection.engine.cluster is not None:
                return await self._launch(plugin, "", "cluster", output, exited, progress)
            python, env = await connection.engine.envs.python_for(config, lambda event: _notify(progress, event))
            return await self._launch(plugin, python, env, output, exited)

    async def models(self, output: Any = None, exited: Any = None) -> dict[str, Any]:
        """This connection's model service (model_service.py), started on the first call:
        answers as start() does; the page loads its channel as any plugin's."""
        connection = self._connection
        async with self._models_lock:
            running = connection.plugins.get(connection.model_service or "")
            if running is not None and running.status is None:
                return running.started
            if importlib.util.find_spec("onnxruntime") is None:
                raise EngineError(f"models: the engine's Python has no onnxruntime; {model_service.INSTALL}")
            with self._slot():
                started = await self._launch(parse_plugin(model_service.SOURCE), sys.executable, "engine", output,
                                             exited)
            connection.model_service = started["id"]
            return started

    @contextlib.contextmanager
    def _slot(self) -> Iterator[None]:
        """Holds one of the connection's MAX_PLUGINS slots while a plugin starts: taken before
        the first await (an environment's install, the process's start), so that starts
        running side by side cannot pass the bound, and given back when the start fails or
        once the plugin is recorded (then it counts as running until it exits)."""
        running = sum(p.status is None for p in self._connection.plugins.values())
        if running + self._starting >= MAX_PLUGINS:
            raise EngineError(f"this connection runs {MAX_PLUGINS} plugins already"
                              + (f" ({self._starting} of them starting)" if self._starting else "")
                              + "; stop one first")
        self._starting += 1
        try:
            yield
        finally:
            self._starting -= 1

    async def _launch(self, plugin: dict[str, Any], python: str, env: str, output: Any,
                      exited: Any, progress: Any = None) -> dict[str, Any]:
        """Starts a parsed plugin's process on `python` (env "cluster": its Ray actors) and
        records it as this connection's."""
        connection = self._connection
        config = plugin["config"]
        plugin_id = "p" + secrets.token_hex(8)
        name = config["name"]

        def relay(item: wire.Item) -> Awaitable[None] | None:
            """The plugin's messages to the page, on its channel (whatever its frames say), as they
            come; what to wait for before reading more from the plugin (the page's socket is full)."""
            outgoing = connection.outgoing
            if outgoing.closed:
                return None
            if isinstance(item, wire.Piece):
                outgoing.send_frames([item.data])
            elif isinstance(item, wire.Start) or (isinstance(item, wire.Complete) and not item.started):
                if plugin_id in connection.plugins:
                    connection.plugins[plugin_id].relayed += 1
                sizes = item.header.get("buffers", [])
                outgoing.send_frames([wire.dumps({"channel": plugin_id, "message": item.header["message"],
                                                  "buffers": sizes})], sum(sizes))
            return None if outgoing.has_room else outgoing.drained()

        def on_output(stream: str, text: str) -> None:
            print(f"[{name}] {text}", file=sys.stderr if stream == "stderr" else sys.stdout, flush=True)
            _notify(output, {"stream": stream, "text": text})

        process: Any
        if env == "cluster":
            from pyjoy.engine.ray_actors import RayPluginProcess

            process = await RayPluginProcess.start(plugin, connection.engine.cluster, relay, on_output,
                                                   lambda event: _notify(progress, event))
            runs = process.where()
        else:
            process = await PluginProcess.start(plugin, python, connection.engine.workdir, relay, on_output)
            runs = {"where": "local", "pid": process.pid}
        if connection.ended:  # the page went away while the plugin was installed or started
            await process.stop()
            raise EngineError("the connection closed while the plugin started")
        started = {"id": plugin_id, "name": name, "type": config["type"], "tag": config.get("tag"),
                   "version": config.get("version"), "env": env, "runs": runs}
        record = connection.plugins[plugin_id] = Plugin(plugin_id, name, config.get("tag"), process, started)

        def on_exit(done: asyncio.Future[int]) -> None:
            record.status = done.result()
            why = process.describe_exit() if hasattr(process, "describe_exit") else ""
            record.reason = (f"plugin {name!r} ({plugin_id}) {why}" if why else
                             f"plugin {name!r} ({plugin_id}) exited with status {describe_status(record.status)}")
            if not connection.outgoing.closed:
                connection.outgoing.send(plugin_id, {"type": "close", "reason": record.reason})
            _notify(exited, {"id": plugin_id, "name": name, "status": record.status, "reason": record.reason})
            gone = [key for key, plugin in connection.plugins.items() if plugin.status is not None][:-KEEP_EXITED]
            for key in gone:
                del connection.plugins[key]

        process.exited.add_done_callback(on_exit)
        return started

    def direct(self, plugin_id: str) -> dict[str, Any]:
        """A one-time ticket for the page to open the plugin's direct socket (ENGINE.md, The
        direct socket): `{ticket, path}`, valid TICKET_SECONDS, for this plugin alone."""
        if not hasattr(socket, "SCM_RIGHTS"):  # Windows: the page stays on the relay
            raise EngineError("direct: this platform cannot pass a socket to another process")
        plugin = self._connection.plugins.get(plugin_id) if isinstance(plugin_id, str) else None
        if plugin is None or plugin.status is not None:
            raise EngineError(f"direct: no running plugin {plugin_id!r} on this connection")
        if not hasattr(plugin.process, "hand_over"):  # Ray actors are on other nodes: the relay carries them
            raise EngineError(f"direct: plugin {plugin.name!r} runs on the Ray cluster; its channel stays on this socket")
        return {"ticket": self._connection.engine.ticket(self._connection, plugin_id), "path": "/plugin"}

    async def stop(self, plugin_id: str) -> bool:
        plugin = self._connection.plugins.get(plugin_id) if isinstance(plugin_id, str) else None
        if plugin is None:
            raise EngineError(f"stop: unknown plugin {plugin_id!r} (this connection's: "
                              f"{', '.join(self._connection.plugins) or 'none'})")
        await plugin.process.stop()
        return True

    async def map(self, plugin_id: str, name: str, items: list[Any], progress: Any = None, offset: int = 0) -> list[Any]:
        """`name(item)` of a plugin's export for each of `items`, spread over its replicas (--ray),
        the results in input order; `progress({done, total})` as they come. `offset`: the index
        of items[0] in the client's whole batch, which errors name (a bigger batch than one
        message holds goes as several maps)."""
        plugin = self._connection.plugins.get(plugin_id) if isinstance(plugin_id, str) else None
        if plugin is None or plugin.status is not None:
            raise EngineError(f"map: no running plugin {plugin_id!r} on this connection")
        if not isinstance(name, str) or not isinstance(items, list):
            raise EngineError("map: expected map(plugin_id, name, items): a function's name and a list of items")
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise EngineError(f"map: offset should be a whole number from 0, not {offset!r}")
        if not hasattr(plugin.process, "map"):
            raise EngineError(f"map: plugin {plugin.name!r} runs as a local process; map spreads calls over a "
                              "plugin's replicas on a Ray cluster (pyjoy engine --ray)")
        return await plugin.process.map(name, items, (lambda event: _notify(progress, event)) if progress else None, offset)

    def files(self, op: str, args: dict[str, Any] | None = None, plugin_id: str | None = None) -> Any:
        """The file service (files.py; ENGINE.md, "Files"): `op` one of url, upload_url,
        path, list, remove, with ImJoy's arguments in `args`; relative paths are relative to
        the folder of `plugin_id` (a native-python plugin of this connection asking for
        itself), else to WORKDIR/files. URLs come back as paths on this engine's server."""
        args = args if isinstance(args, dict) else {}
        base = None
        if plugin_id is not None:
            plugin = self._connection.plugins.get(plugin_id) if isinstance(plugin_id, str) else None
            if plugin is None:
                raise EngineError(f"files: no plugin {plugin_id!r} on this connection")
            if hasattr(plugin.process, "hand_over"):  # a local process; a Ray actor's folder is on its node
                base = plugin_dir(self._connection.engine.workdir, plugin.name)
        service = self._connection.engine.files
        try:
            if op == "url":
                return service.file_url(args.get("path"), base)
            if op == "upload_url":
                return service.upload_url(args.get("path"), args.get("dir"), bool(args.get("overwrite", False)), base)
            if op == "path":
                return service.path_of(args.get("url"))
            if op == "list":
                return service.listing(args.get("path"), args.get("type"), bool(args.get("recursive", False)), base)
            if op == "remove":
                return service.remove(args.get("path"), args.get("type"), bool(args.get("recursive", False)), base)
        except (FileError, OSError) as error:
            raise EngineError(f"files: {error}") from None
        raise EngineError(f"files: unknown operation {op!r} (url, upload_url, path, list, remove)")

    def list(self) -> list[dict[str, Any]]:
        return [plugin.summary() for plugin in self._connection.plugins.values()]

    async def info(self) -> dict[str, Any]:
        from pyjoy import __version__

        facts = {"engine": __version__, "python": platform.python_version(), "platform": platform.platform()}
        cluster = self._connection.engine.cluster
        if cluster is not None:
            facts["cluster"] = await cluster.describe()
        return facts


def _buffers_of(sizes: list[int], pieces: list[Any]) -> list[Any]:
    """A message's buffers from its pieces: a buffer that came in one piece is that piece (no
    copy: a map's items are many such buffers); one in several is joined; pieces that do not
    follow the buffers' bounds (a sender's own cut) are joined whole and sliced."""
    buffers, index = [], 0
    for size in sizes:
        taken, parts = 0, []
        while taken < size and index < len(pieces):
            parts.append(pieces[index])
            taken += memoryview(pieces[index]).nbytes
            index += 1
        if taken != size:
            view = memoryview(b"".join(pieces))
            return [view[start:start + size] for start, size in zip(_offsets(sizes), sizes)]
        buffers.append(parts[0] if len(parts) == 1 else b"".join(parts))
    if index != len(pieces):  # more bytes than the header's buffers: as the join below would find
        view = memoryview(b"".join(pieces))
        return [view[start:start + size] for start, size in zip(_offsets(sizes), sizes)]
    return buffers


def _offsets(sizes: list[int]) -> list[int]:
    starts, offset = [], 0
    for size in sizes:
        starts.append(offset)
        offset += size
    return starts


def loopback(host: str) -> bool:
    return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")


def allowed_origins(app_url: str, extra: list[str]) -> set[str]:
    """The app's origin (with localhost and 127.0.0.1 as one), plus those given."""
    from urllib.parse import urlsplit

    parts = urlsplit(app_url)
    origins = {f"{parts.scheme}://{parts.netloc}"}
    if parts.hostname in ("127.0.0.1", "localhost"):
        port = f":{parts.port}" if parts.port else ""
        origins |= {f"{parts.scheme}://127.0.0.1{port}", f"{parts.scheme}://localhost{port}"}
    return origins | set(extra)


def run(host: str, port: int, workdir: Path, app_url: str, extra_origins: list[str],
        grace: float = GRACE_SECONDS, ray: str | None = None, ray_init: dict[str, Any] | None = None) -> int:
    """`pyjoy engine`: prints the URL and the app link, serves until Ctrl+C. `ray`: None runs
    plugins as local processes; an address ("auto", "ray://host:port") or "" (a local Ray
    started here, with `ray_init` for ray.init) runs them as Ray actors (ray_actors.py)."""
    import os
    from urllib.parse import quote

    from pyjoy.engine.envs import ENGINE_TOKEN_VARIABLE

    token = os.environ.get(ENGINE_TOKEN_VARIABLE) or secrets.token_urlsafe(32)
    workdir = workdir.expanduser().resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    if not 0 <= grace <= 24 * 3600:
        print(f"pyjoy engine: --grace should be 0 to 86400 seconds, not {grace:g}", file=sys.stderr)
        return 2
    engine = Engine(workdir, token, allowed_origins(app_url, extra_origins), grace)
    # Plugin processes inherit it: relative URLs of the app's files resolve against it (pyjoy.onnx).
    os.environ.setdefault("PYJOY_APP_URL", app_url)
    url = f"ws://{f'[{host}]' if ':' in host else host}:{port}/?token={token}"

    def ready() -> None:
        if not loopback(host):
            print(f"warning: the engine listens on {host}, beyond this machine: anyone who has the URL (its token) "
                  "can run code here", file=sys.stderr, flush=True)
        separator = "&" if "?" in app_url else "?"
        print(f"PyJoy engine at {url}", flush=True)
        print(f"Open the app connected to it: {app_url}{separator}engine={quote(url, safe='')}", flush=True)

    if ray is not None and os.environ.get(RAY_CHILD_VARIABLE) != "1":
        return supervise(token, ray, workdir)
    if ray is not None:
        from pyjoy.engine import ray_actors

        lost = os.environ.get(RAY_LOST_VARIABLE, "")
        if lost:  # run by the supervisor while the cluster is lost: without Ray, trying its head
            # A local Ray ended with its driver: no head to wait for, it is started again after the backoff.
            gcs = ray_actors.read_state(workdir).get("gcs", "") if ray else ""
            tries = int(os.environ.get(RAY_TRIES_VARIABLE) or 0)
            engine.cluster = ray_actors.LostCluster(ray or None, lost, gcs, tries)
        else:
            try:
                engine.cluster = ray_actors.Cluster.connect(ray or None, workdir, ray_init)
            except Exception as error:  # no Ray installed, an address that does not answer
                print(f"pyjoy engine: cannot use Ray{f' at {ray}' if ray else ''}: {error}", file=sys.stderr)
                return CANNOT_CONNECT_STATUS

    async def serve() -> None:
        watching = asyncio.get_running_loop().create_task(engine.cluster.watch()) if engine.cluster else None
        try:
            await engine.serve(host, port, ready)
        finally:
            if watching is not None:
                watching.cancel()
            if hasattr(engine.cluster, "shutdown"):
                engine.cluster.shutdown()

    try:
        tuning.keep_freed_memory()
        tuning.run(serve())
    except OSError as error:
        print(f"pyjoy engine: cannot listen on {host}:{port}: {error.strerror or error}", file=sys.stderr)
        return 1
    return 0


#: The supervised `--ray` engine's environment: it runs the engine (not a supervisor), and why
#: the cluster is lost when it is to run without Ray.
RAY_CHILD_VARIABLE = "PYJOY_ENGINE_RAY_CHILD"
RAY_LOST_VARIABLE = "PYJOY_ENGINE_RAY_LOST"
RAY_TRIES_VARIABLE = "PYJOY_ENGINE_RAY_TRIES"  # the lost runs in a row: where its backoff starts
#: A connected run shorter than this that ends the cluster again counts as the same failure
#: (its backoff goes on growing: a head that answers and fails at once is not tried every second).
STABLE_RUN_S = 60.0
CANNOT_CONNECT_STATUS = 3


def supervise(token: str, ray: str, workdir: Path) -> int:
    """`pyjoy engine --ray`: runs the engine as a child process (same arguments, port and
    token), and again when its cluster was lost (ray_actors.py: a Ray driver cannot reconnect
    within one process): without Ray, saying the cluster is lost, until its head answers; then
    connected again. The page reconnects to the same URL each time."""
    import os
    import signal
    import subprocess
    import time

    from pyjoy.engine import ray_actors
    from pyjoy.engine.envs import ENGINE_TOKEN_VARIABLE

    env = {**os.environ, ENGINE_TOKEN_VARIABLE: token, RAY_CHILD_VARIABLE: "1"}
    lost, connected_once, failures = "", False, 0
    where = ray_actors.cluster_name(ray)
    # Ctrl+C, and a service manager's SIGTERM, end the engine as they would unsupervised: the
    # child is told and waited for (its Ray is shut down), never left running on its own. Set
    # here even where the engine was started with SIGINT ignored (a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.getsignal(signal.SIGINT))
    child: subprocess.Popen[bytes] | None = None
    try:
        while True:
            started = time.monotonic()
            child = subprocess.Popen([sys.executable, "-m", "pyjoy.cli", *sys.argv[1:]], stderr=subprocess.PIPE,
                                     env={**env, RAY_LOST_VARIABLE: lost, RAY_TRIES_VARIABLE: str(failures)})
            last_words = passed_on(child.stderr)
            status = child.wait()
            if status == ray_actors.CLUSTER_BACK_STATUS:
                lost = ""
                continue
            if status == CANNOT_CONNECT_STATUS and not connected_once:
                return 1  # as unsupervised: the first connection failing is the command failing
            if status in (0, 2) or (lost and status != ray_actors.CLUSTER_LOST_STATUS):
                return status
            connected_once = connected_once or status != CANNOT_CONNECT_STATUS
            failures = failures + 1 if time.monotonic() - started < STABLE_RUN_S else 0
            told = ray_actors.read_state(workdir).get("lost")
            if status == ray_actors.CLUSTER_LOST_STATUS and told:
                lost = told
            elif status == CANNOT_CONNECT_STATUS:
                lost = f"{where} does not answer"
            else:
                said = f"killed by {signal.Signals(-status).name}" if status < 0 and -status in signal.valid_signals() \
                    else last_words()
                lost = f"{where} was lost: the engine's Ray driver ended (status {status})" + (f" ({said})" if said else "")
            print(f"pyjoy engine: {lost}; serving without it, trying it again", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        if child is None:
            return 1
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
        try:
            return child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            return 1


def passed_on(stream: Any, recent_s: float = 10.0) -> Callable[[], str]:
    """Copies the engine child's stderr to the supervisor's as it comes; answers its last line
    if written in its last `recent_s` seconds (Ray's or Python's last words when its driver
    ends: the reason the lost cluster names; an old warning is not one)."""
    import threading
    import time

    last = (0.0, "")

    def copy() -> None:
        nonlocal last
        for line in iter(stream.readline, b""):
            sys.stderr.buffer.write(line)
            sys.stderr.flush()
            if line.strip():
                last = (time.monotonic(), line.decode(errors="replace").strip()[:300])

    reader = threading.Thread(target=copy, daemon=True)
    reader.start()

    def last_words() -> str:
        reader.join(timeout=1.0)  # the rest of what it wrote (Ray's processes may hold the pipe open)
        when, line = last
        return line if time.monotonic() - when < recent_s else ""

    return last_words
