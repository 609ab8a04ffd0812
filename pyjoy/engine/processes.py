"""Plugin processes: each native-python plugin in an OS process of its own (ENGINE.md).

    process = await PluginProcess.start(plugin, python, workdir, on_item, on_output)
    process.send(frame)                      # a frame from the page, relayed as it came (no copy)
    status = await process.exited            # the exit status (negative: killed by a signal)
    await process.stop()                     # SIGTERM, then SIGKILL after STOP_GRACE_S
    await process.hand_over(fd, received, grace)   # the page's direct socket (a copy): until the process closed it

The process is `PYTHON -P -m pyjoy.engine.plugin_process FD`: its messages go over one end
of a socket pair (FD), never stdin/stdout (the plugin's print() would break them), as the
WebSocket's frames in pipe.py's frames, relayed piece by piece (no message is held
whole here, no piece copied); the plugin's are checked as the page's are (wire.Incoming), and a plugin that
breaks them is ended; its stdout and stderr come to `on_output` line by line. It runs in
a session of its own, so a Ctrl+C in the engine's terminal reaches the engine, which ends
its plugins itself. Its environment is the engine's without the token, with PYTHONPATH the
runtime copy `runtime_dir()` makes, so that it runs this engine's pyjoy and `imjoy` shim
whatever its Python's site-packages hold.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shutil
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pyjoy.build.python_runtime import IMJOY_SHIM, runtime_files
from pyjoy.engine import wire
from pyjoy.engine.envs import child_environment
from pyjoy.engine.pipe import ABORT, DIRECT, Pipe, recycled

STOP_GRACE_S = 3.0
#: How much a plugin may leave unread on its pipe before a message to it fails instead of
#: waiting (the connection's reader must not wait: it also carries `stop`).
MAX_UNREAD_BYTES = 256 * 2**20
# A plugin's output, bounded as a browser plugin's is (app/python/output.js, the same numbers):
OUTPUT_INTERVAL_S = 0.1
OUTPUT_MESSAGES_PER_INTERVAL = 8
OUTPUT_CHARACTERS_PER_INTERVAL = 16_384
ROOT = Path(__file__).resolve().parents[2]
# What a plugin process imports besides the browser's runtime (pyjoy.rpc, pyjoy.plugin).
ENGINE_MODULES = ("pyjoy/engine/__init__.py", "pyjoy/engine/wire.py", "pyjoy/engine/pipe.py", "pyjoy/engine/tuning.py",
                  "pyjoy/engine/plugin_process.py", "pyjoy/engine/direct.py", "pyjoy/engine/masking.py",
                  "pyjoy/engine/mux.py",
                  "pyjoy/engine/model_service.py",  # the model service runs as a built-in plugin
                  "pyjoy/engine/ray_worker.py")  # a plugin as a Ray actor (--ray)
_runtime_dirs: dict[Path, Path] = {}


def runtime_dir(workdir: Path) -> Path:
    """WORKDIR/runtime/HASH/: the pyjoy modules a plugin process runs, and `imjoy`."""
    if workdir in _runtime_dirs:
        return _runtime_dirs[workdir]
    files = runtime_files(ROOT) + [ROOT / name for name in ENGINE_MODULES]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    target = workdir / "runtime" / digest.hexdigest()[:16]
    if not target.is_dir():
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        for path in files:
            name = path.relative_to(ROOT).as_posix()
            destination = partial / ("imjoy/__init__.py" if name == IMJOY_SHIM else name)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
        partial.replace(target)
    _runtime_dirs[workdir] = target
    return target


def plugin_dir(workdir: Path, name: str) -> Path:
    """WORKDIR/plugins/NAME-HASH: a plugin's current directory; the name only as a sanitised label."""
    label = re.sub(r"[^A-Za-z0-9_-]+", "_", name)[:40] or "plugin"
    path = workdir / "plugins" / f"{label}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def describe_status(status: int) -> str:
    if status < 0:
        try:
            return f"{status} (killed by {signal.Signals(-status).name})"
        except ValueError:
            return f"{status} (killed by signal {-status})"
    return str(status)


# Each message the plugin sends, as wire.Incoming(join=False) reads it: Start, Piece, Complete.
# It may return an awaitable: reading from the plugin waits for it (the page's socket is full).
OnItem = Callable[[Any], Awaitable[None] | None]
OnOutput = Callable[[str, str], None]


class PluginProcess:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.pid = process.pid
        self._process = process
        self.exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pipe_ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Held while they run (the loop keeps only weak references), dropped when done: a
        # plugin that runs for days waits on the page's socket many times.
        self._tasks: set[asyncio.Future[Any]] = set()
        self._handed = 0  # direct sockets handed over so far
        self._direct: dict[int, asyncio.Future[None]] = {}  # by number: set when the process closed it
        self.direct_sockets = 0  # direct sockets the process holds now

    @classmethod
    async def start(cls, plugin: dict[str, Any], python: str, workdir: Path, on_item: OnItem,
                    on_output: OnOutput) -> PluginProcess:
        ours, theirs = socket.socketpair()
        for end in (ours, theirs):  # room for a piece or more at a time: fewer wake-ups per array
            end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, wire.PIECE_BYTES)
            end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, wire.PIECE_BYTES)
        env = child_environment()
        env["PYTHONPATH"] = str(runtime_dir(workdir))
        env["PYTHONUNBUFFERED"] = "1"  # print() reaches the page as it happens
        try:
            process = await asyncio.create_subprocess_exec(
                python, "-P", "-m", "pyjoy.engine.plugin_process", str(theirs.fileno()),
                cwd=plugin_dir(workdir, plugin["config"]["name"]), env=env, pass_fds=(theirs.fileno(),),
                stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self = cls(process)
        incoming = wire.Incoming(join=False)  # pieces are relayed as they come, none held here

        def on_frame(kind: int, data: Any) -> None:
            if kind == ABORT:
                raise wire.FrameError("a plugin sends no ABORT")
            if kind == DIRECT:  # {"closed": N}: it closed direct socket N
                note = json.loads(data)
                closed = self._direct.pop(note.get("closed") if isinstance(note, dict) else None, None)
                if closed is not None and not closed.done():
                    closed.set_result(None)
                return
            for item in incoming.feed(data):
                if isinstance(item, (wire.FrameError, wire.Notice)):
                    raise item if isinstance(item, wire.FrameError) else wire.FrameError("a plugin sends no notices")
                waiting = on_item(item)
                if waiting is not None:  # the page's socket is full: read on once it took what waits
                    self._pipe.pause_reading()
                    resumed = asyncio.ensure_future(waiting)
                    resumed.add_done_callback(lambda _: self._pipe.resume_reading())
                    self._hold(resumed)

        def on_close(error: Exception | None) -> None:
            if error is not None:
                # A plugin that breaks its pipe's framing cannot be understood any more: it ends.
                print(f"pyjoy engine: plugin process {self.pid} broke its pipe ({error}); ending it", file=sys.stderr)
                self._hold(asyncio.get_running_loop().create_task(self.stop()))
            if not self._pipe_ended.done():
                self._pipe_ended.set_result(None)

        self._pipe = Pipe(ours, on_frame, on_close, place=recycled)  # pieces to relay: memory that was sent
        self._pipe.write(wire.dumps({"start": plugin}))
        loop = asyncio.get_running_loop()
        output = BoundedOutput(on_output)
        for stream, name in ((process.stdout, "stdout"), (process.stderr, "stderr")):
            self._hold(loop.create_task(_lines(stream, name, output.write)))
        self._hold(loop.create_task(self._wait()))
        return self

    def _hold(self, task: asyncio.Future[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def check_room(self) -> None:
        """Raises BufferError while the plugin leaves too much unread to take another message."""
        unread = self._pipe.unsent
        if unread > MAX_UNREAD_BYTES:
            raise BufferError(f"the plugin has {unread >> 20} MiB of messages unread (it is busy or stuck); "
                              f"try again once it answers, or stop it")

    def send(self, frame: str | bytes | memoryview) -> None:
        """Relays one WebSocket frame of the page's to the plugin, as it came."""
        self._pipe.write(frame)

    async def hand_over(self, fd: int, received: int | None, grace: float) -> None:
        """Passes the page's direct socket (ENGINE.md, The direct socket) to the process, and
        returns once the process closed it, or exited: then the caller closes its own copy."""
        if self.exited.done() or self._pipe.closed:
            return
        self._handed += 1
        number = self._handed
        closed = self._direct[number] = asyncio.get_running_loop().create_future()
        self._pipe.write_direct(json.dumps({"socket": number, "received": received, "grace": grace}), fd)
        self.direct_sockets += 1
        try:
            await asyncio.wait([closed, self.exited], return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.direct_sockets -= 1
            self._direct.pop(number, None)

    def abort(self) -> None:
        """Tells the plugin to drop the message it is reading (the engine failed it)."""
        self._pipe.write_abort()

    async def _wait(self) -> None:
        status = await self._process.wait()
        # Relay what it wrote before it ended (its end of the pipe is closed: that is quick).
        # Not its output: a child of its own may hold stdout open, and callers must hear now.
        await asyncio.wait([self._pipe_ended], timeout=1.0)
        self._pipe.close()
        self.exited.set_result(status)

    async def stop(self) -> int:
        if self._process.returncode is None:
            try:
                self._process.terminate()
                await asyncio.wait_for(asyncio.shield(self._process.wait()), STOP_GRACE_S)
            except asyncio.TimeoutError:
                self._process.kill()
            except ProcessLookupError:
                pass
        return await asyncio.shield(self.exited)


async def _lines(stream: asyncio.StreamReader | None, name: str, on_output: OnOutput) -> None:
    if stream is None:
        return
    while line := await stream.readline():
        on_output(name, line.decode(errors="replace").rstrip("\n"))


class BoundedOutput:
    """A plugin's stdout and stderr lines, bounded as app/python/output.js bounds a browser
    plugin's: an endless print() loop would otherwise send the page one call per line. Within
    any 100 ms at most 8 batches go out (lines past that wait, joined with "\n"); past 16,384
    characters in 100 ms lines are dropped, and the next batch says how many."""

    def __init__(self, post: OnOutput) -> None:
        self._post = post
        self._started = -1e9
        self._messages = 0
        self._characters = 0
        self._dropped = 0
        self._waiting: list[tuple[str, list[str]]] = []
        self._timer: asyncio.TimerHandle | None = None

    def _send(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for stream, lines in self._waiting:
            self._post(stream, "\n".join(lines))
        if self._dropped:
            self._post("stderr", f"... {self._dropped} lines of output dropped: more than "
                                 f"{OUTPUT_CHARACTERS_PER_INTERVAL} characters in {int(OUTPUT_INTERVAL_S * 1000)} ms")
        # What waited goes out now, so it counts in the interval that starts now: within any
        # 100 ms at most 8 batches, these included.
        self._started, self._characters = asyncio.get_running_loop().time(), 0
        self._messages = len(self._waiting) + (1 if self._dropped else 0)
        self._waiting, self._dropped = [], 0

    def write(self, stream: str, text: str) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now - self._started >= OUTPUT_INTERVAL_S:
            self._send()  # what waited goes first, and starts the new interval
        if len(text) > OUTPUT_CHARACTERS_PER_INTERVAL:
            cut = len(text) - OUTPUT_CHARACTERS_PER_INTERVAL
            text = f"{text[:OUTPUT_CHARACTERS_PER_INTERVAL]}... ({cut} more characters cut)"
        self._characters += len(text) + 1
        if self._characters > OUTPUT_CHARACTERS_PER_INTERVAL and self._characters - len(text) - 1 > 0:
            self._dropped += 1
        elif self._messages < OUTPUT_MESSAGES_PER_INTERVAL and not self._waiting:
            self._post(stream, text)
            self._messages += 1
            return
        elif self._waiting and self._waiting[-1][0] == stream:
            self._waiting[-1][1].append(text)
        else:
            self._waiting.append((stream, [text]))
        if self._timer is None:
            self._timer = loop.call_later(max(0.0, self._started + OUTPUT_INTERVAL_S - now), self._send)
