"""A native-python plugin's own process: `python -P -m pyjoy.engine.plugin_process FD`.

The engine starts it (processes.py) with one end of a socket pair as FD. The first frame
on it is `{"start": plugin}` (plugin_file.parse_plugin's result); the frames after it are
the RPC messages of the plugin's session with the page, the WebSocket's frames relayed as
they came (pipe.py's frames). The process waits for the page's root (the plugin API), answers with
its own, `{load_plugin}`, and `load_plugin()` runs the plugin's scripts as a web-python
plugin's run in the browser (pyjoy/plugin/kernel.py: `api` a global, `from imjoy import
api`, what `api.export` got returned), on CPython. It ends when the socket closes.
Once the engine hands it the page's direct socket for its channel (a DIRECT frame with the
socket passed along, direct.py), the session's messages go that way, and come from there.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import signal
import socket
import sys
from typing import Any

from pyjoy.engine import tuning, wire
from pyjoy.engine.direct import Direct, available
from pyjoy.engine.pipe import ABORT, DIRECT, TEXT, Pipe
from pyjoy.plugin.api import api
from pyjoy.plugin.kernel import start_plugin, user_frames
from pyjoy.rpc import Session
from pyjoy.rpc.transport import Buffer, Handler, Message


class PipeTransport:
    """A pyjoy.rpc Transport over the socket to the engine (pipe.py's frames). A message's
    buffers are received straight into the buffers it is joined into, and a message's own
    buffers are sent from its memory (the transfer: no copy). Once the page's direct socket
    came, messages go and come there instead (direct.py)."""

    def __init__(self, sock: socket.socket) -> None:
        self._incoming = wire.Incoming()
        self._handler: Handler | None = None
        self.closed = False
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.plugin: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pipe = Pipe(sock, self._frame, self._end, place=self._incoming.reserve, receive_fds=True)
        self.direct = Direct(self._from_direct, self._direct_closed)
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, message: Message, transfer: list[Buffer]) -> None:
        if self.closed or self._pipe.closed:
            raise ConnectionError("the engine's pipe is closed")
        if self.direct.attached:
            self.direct.send(message)
            return
        tree, buffers = wire.split(message)
        for frame in wire.frames("plugin", tree, buffers):  # the engine puts the plugin's channel in
            self._pipe.write(frame)

    def on_message(self, handler: Handler) -> None:
        self._handler = handler
        self._pipe.resume_reading()

    def close(self) -> None:
        self.closed = True
        self.direct.close()

    def _end(self, error: Exception | None) -> None:
        if error is not None:
            print(f"pyjoy plugin process: the engine's pipe broke: {error}", file=sys.stderr)
        if not self.ended.done():
            self.ended.set_result(None)

    def _from_direct(self, message: Message, problem: Exception | None) -> None:
        if self._handler is not None and not self.closed:
            self._handler(message, problem)

    def _direct_closed(self, number: int) -> None:
        self._pipe.write_direct(json.dumps({"closed": number}))

    def _hand_over(self, note: Any) -> None:
        """A DIRECT frame: the page's direct socket, passed with it; its end is reported back."""
        fd = self._pipe.fds.popleft() if self._pipe.fds else None
        if not isinstance(note, dict) or not isinstance(note.get("socket"), int) or fd is None:
            if fd is not None:
                os.close(fd)
            raise wire.FrameError("the engine sent a direct socket note without its socket")
        sock = socket.socket(fileno=fd)
        why = available()
        if why is not None or self._handler is None:
            print(f"pyjoy plugin process: cannot take the direct socket: {why or 'not listening yet'}", file=sys.stderr)
            sock.close()  # the page sees it close before any hello: it stays on the relay
            self._direct_closed(note["socket"])
            return
        received = note.get("received")
        task = asyncio.get_running_loop().create_task(
            self.direct.attach(sock, note["socket"], received if isinstance(received, int) else None,
                               float(note.get("grace") or 0)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _frame(self, kind: int, data: Any) -> None:
        """Each frame from the engine: the first is `{"start": plugin}`, then the session's messages."""
        if kind == DIRECT:
            self._hand_over(json.loads(data))
            return
        if not self.plugin.done():
            start = json.loads(data) if kind == TEXT else None
            if not isinstance(start, dict) or not isinstance(start.get("start"), dict):
                raise wire.FrameError("the engine sent no plugin")
            self.plugin.set_result(start["start"])
            self._pipe.pause_reading()  # the session's messages wait until it listens (on_message)
            return
        if kind == ABORT:  # the engine failed the message being read, and answered for it
            self._incoming.abort()
            return
        assert self._handler is not None
        for item in self._incoming.feed(data):
            if isinstance(item, wire.Complete):
                self._handler(*item.message())
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
        # ImJoy's native-python runtime gave its plugins these itself (imjoy-engine
        # imjoy/workers/python_worker.py _set_local_api: WORK_DIR, the plugin's working
        # directory; utils.kill(pid), ending a process the plugin started and its children).
        api._local = {"WORK_DIR": os.getcwd(), "utils": {"kill": kill}}
        return await start_plugin(self._plugin, self._session, run_script)


def kill(pid: int) -> None:
    """Ends process `pid` and its descendants (SIGKILL, the children first), as ImJoy's
    api.utils.kill did with psutil; here from /proc (Linux), or the process alone where
    there is none. (A native plugin runs as the person and could os.kill anyway.)"""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:  # "pid (name) state ppid ...": a name may hold ") "
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (ValueError, OSError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    ending = [int(pid)]
    for process in ending:
        ending.extend(child for child in children.get(process, []) if child not in ending)
    for process in reversed(ending):
        try:
            os.kill(process, signal.SIGKILL)
        except ProcessLookupError:
            pass


async def main(fd: int) -> None:
    sock = socket.socket(fileno=fd)
    os.set_inheritable(fd, False)  # the plugin's own child processes do not get the pipe
    transport = PipeTransport(sock)
    await asyncio.wait([transport.plugin, transport.ended], return_when=asyncio.FIRST_COMPLETED)
    if not transport.plugin.done():
        raise SystemExit("pyjoy plugin process: the engine sent no plugin")
    plugin = transport.plugin.result()
    session = Session(transport)

    async def answer_root() -> None:
        await session.remote_root()  # the page's root first: then it has opened this channel
        if not session.closed:
            session.set_root(EngineKernel(session, plugin))

    answering = asyncio.create_task(answer_root())
    await transport.ended
    answering.cancel()
    session.close("the engine closed the pipe")


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        sys.exit("usage: python -m pyjoy.engine.plugin_process FD (the engine starts this)")
    tuning.keep_freed_memory()  # a direct socket's small frames come as fresh memory (websockets' bytes): reused
    tuning.run(main(int(sys.argv[1])))
