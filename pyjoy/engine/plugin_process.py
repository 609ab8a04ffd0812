"""A native-python plugin's own process: `python -P -m pyjoy.engine.plugin_process FD`.

The engine starts it (processes.py) with one end of a socket pair as FD. The first frame
on it is `{"start": plugin}` (plugin_file.parse_plugin's result); the frames after it are
the RPC messages of the plugin's session with the page, the WebSocket's frames relayed as
they came (wire.py's pipe frames). The process waits for the page's root (the plugin API), answers with
its own, `{load_plugin}`, and `load_plugin()` runs the plugin's scripts as a web-python
plugin's run in the browser (pyjoy/plugin/kernel.py: `api` a global, `from imjoy import
api`, what `api.export` got returned), on CPython. It ends when the socket closes.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import socket
import sys
from typing import Any

from pyjoy.engine import wire
from pyjoy.plugin.kernel import start_plugin, user_frames
from pyjoy.rpc import Session
from pyjoy.rpc.transport import Buffer, Handler, Message


class PipeTransport:
    """A pyjoy.rpc Transport over the socket to the engine (wire.py's pipe frames)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._handler: Handler | None = None
        self.closed = False

    def send(self, message: Message, transfer: list[Buffer]) -> None:
        if self.closed or self._writer.is_closing():
            raise ConnectionError("the engine's pipe is closed")
        tree, buffers = wire.split(message)
        for frame in wire.frames("plugin", tree, buffers):  # the engine puts the plugin's channel in
            wire.write_pipe(self._writer, frame)

    def on_message(self, handler: Handler) -> None:
        self._handler = handler

    def close(self) -> None:
        self.closed = True

    async def receive(self) -> None:
        """Hands each message to the session until the engine closes the pipe."""
        assert self._handler is not None
        incoming = wire.Incoming()
        while (frame := await wire.read_pipe(self._reader)) is not None:
            kind, data = frame
            if kind == wire.ABORT:  # the engine failed the message being read, and answered for it
                incoming.abort()
                continue
            for item in incoming.feed(data):
                if isinstance(item, wire.Complete):
                    try:
                        message = wire.restore(item.header["message"], item.buffers)
                    except Exception as error:
                        self._handler(item.header["message"], error)
                    else:
                        self._handler(message)
                elif isinstance(item, wire.FrameError) and isinstance(item.message, dict):
                    self._handler(item.message, item)


async def run_script(code: str, namespace: dict[str, Any], filename: str, first_line: int = 1) -> None:
    """Runs one <script>, top-level await allowed; tracebacks show the file's own lines."""
    padded = "\n" * (first_line - 1) + code
    try:
        compiled = compile(padded, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(compiled, namespace)  # noqa: S307  the plugin's own code, in its own process
        if asyncio.iscoroutine(result):
            await result
    except BaseException as error:
        error.__traceback__ = user_frames(error.__traceback__, filename) or error.__traceback__
        raise


class EngineKernel:
    """The root this process offers the page."""

    def __init__(self, session: Session, plugin: dict[str, Any]) -> None:
        self._session = session
        self._plugin = plugin

    async def load_plugin(self, _plugin: Any = None) -> Any:
        """Runs the plugin the engine started this process with (the page cannot send
        another: an argument is ignored) and returns what it exported."""
        return await start_plugin(self._plugin, self._session, run_script)


async def main(fd: int) -> None:
    sock = socket.socket(fileno=fd)
    os.set_inheritable(fd, False)  # the plugin's own child processes do not get the pipe
    reader, writer = await asyncio.open_connection(sock=sock, limit=wire.PIECE_BYTES)
    first = await wire.read_pipe(reader)
    start = json.loads(first[1]) if first is not None and first[0] == wire.TEXT else None
    if not isinstance(start, dict) or not isinstance(start.get("start"), dict):
        raise SystemExit("pyjoy plugin process: the engine sent no plugin")
    plugin = start["start"]
    transport = PipeTransport(reader, writer)
    session = Session(transport)
    receiving = asyncio.create_task(transport.receive())

    async def answer_root() -> None:
        await session.remote_root()  # the page's root first: then it has opened this channel
        if not session.closed:
            session.set_root(EngineKernel(session, plugin))

    answering = asyncio.create_task(answer_root())
    await receiving
    answering.cancel()
    session.close("the engine closed the pipe")


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        sys.exit("usage: python -m pyjoy.engine.plugin_process FD (the engine starts this)")
    asyncio.run(main(int(sys.argv[1])))
