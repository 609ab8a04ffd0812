"""Plugin processes: each native-python plugin in an OS process of its own (ENGINE.md).

    process = await PluginProcess.start(plugin, python, workdir, on_frame, on_output)
    process.send(header_text, buffers)       # a frame from the page, relayed as it came
    status = await process.exited            # the exit status (negative: killed by a signal)
    await process.stop()                     # SIGTERM, then SIGKILL after STOP_GRACE_S

The process is `PYTHON -P -m pyjoy.engine.plugin_process FD`: its messages go over one end
of a socket pair (FD), never stdin/stdout (the plugin's print() would break them), in the
pipe frames of wire.py; its stdout and stderr come to `on_output` line by line. It runs in
a session of its own, so a Ctrl+C in the engine's terminal reaches the engine, which ends
its plugins itself. Its environment is the engine's without the token, with PYTHONPATH the
runtime copy `runtime_dir()` makes, so that it runs this engine's pyjoy and `imjoy` shim
whatever its Python's site-packages hold.
"""

from __future__ import annotations

import asyncio
import hashlib
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

STOP_GRACE_S = 3.0
ROOT = Path(__file__).resolve().parents[2]
# What a plugin process imports besides the browser's runtime (pyjoy.rpc, pyjoy.plugin).
ENGINE_MODULES = ("pyjoy/engine/__init__.py", "pyjoy/engine/wire.py", "pyjoy/engine/plugin_process.py")
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


OnFrame = Callable[[dict[str, Any], list[Any]], Awaitable[None]]  # awaited: it may wait for the socket
OnOutput = Callable[[str, str], None]


class PluginProcess:
    def __init__(self, process: asyncio.subprocess.Process, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.pid = process.pid
        self._process = process
        self._reader = reader
        self._writer = writer
        self.exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    @classmethod
    async def start(cls, plugin: dict[str, Any], python: str, workdir: Path, on_frame: OnFrame,
                    on_output: OnOutput) -> PluginProcess:
        ours, theirs = socket.socketpair()
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
        finally:
            theirs.close()
        reader, writer = await asyncio.open_connection(sock=ours, limit=wire.PIECE_BYTES)
        self = cls(process, reader, writer)
        wire.write_frame(writer, wire.dumps({"start": plugin}), [])
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._relay(on_frame))] + [
            loop.create_task(_lines(stream, name, on_output))
            for stream, name in ((process.stdout, "stdout"), (process.stderr, "stderr"))
        ]
        loop.create_task(self._wait())
        return self

    def send(self, header: str, buffers: list[Any]) -> None:
        if not self._writer.is_closing():
            wire.write_frame(self._writer, header, buffers)

    async def _relay(self, on_frame: OnFrame) -> None:
        try:
            while (frame := await wire.read_frame(self._reader)) is not None:
                await on_frame(*frame)
        except (wire.FrameError, ConnectionError) as error:
            # A plugin that breaks its pipe's framing cannot be understood any more: it ends.
            print(f"pyjoy engine: plugin process {self.pid} broke its pipe ({error}); ending it", file=sys.stderr)
            asyncio.get_running_loop().create_task(self.stop())  # not awaited here: stop waits for this task

    async def _wait(self) -> None:
        status = await self._process.wait()
        # Relay what it wrote before it ended (its end of the pipe is closed: that is quick).
        # Not its output: a child of its own may hold stdout open, and callers must hear now.
        await asyncio.wait([self._tasks[0]], timeout=1.0)
        self._writer.close()
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
