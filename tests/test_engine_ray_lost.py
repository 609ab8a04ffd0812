"""A `--ray` engine whose cluster is lost, and comes back: a real Ray head started by this
module with `ray start --head` (its own temp dir, 1 CPU, no dashboard) that the engine joins
with `--ray 127.0.0.1:PORT`. The head's processes (those of this temp dir only, never another
Ray on the machine) are killed as `ray stop` would, then the head is started again on the
same port. No mocks of Ray."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

pytest.importorskip("ray")

from pyjoy.devtools import engine_running, free_port, run_async  # noqa: E402
from pyjoy.engine.client import EngineClient  # noqa: E402
from pyjoy.rpc import ClosedError, RemoteError  # noqa: E402
from tests.test_engine import APP, SLOW, TOKEN  # noqa: E402


def start_head(temp: str, port: int) -> None:
    subprocess.run(["ray", "start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false",
                    "--disable-usage-stats", f"--temp-dir={temp}", "--node-ip-address=127.0.0.1"],
                   check=True, capture_output=True, env={**os.environ, "RAY_AUTH_MODE": "disabled"}, timeout=120)


def stop_head(temp: str) -> None:
    """Kills this head's processes (those whose command line names its temp dir), as `ray stop
    --force` would, but only these."""
    for proc in Path("/proc").iterdir():
        try:
            args = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if proc.name.isdigit() and temp in args and int(proc.name) != os.getpid():
            try:
                os.kill(int(proc.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="module")
def head():
    temp = tempfile.mkdtemp(prefix="pjray", dir="/tmp")  # short: Ray's socket paths have a length limit
    port = free_port()
    start_head(temp, port)
    try:
        yield {"temp": temp, "port": port}
    finally:
        stop_head(temp)
        shutil.rmtree(temp, ignore_errors=True)


async def connect_when(url: str, state: str, within: float) -> EngineClient:
    """A client of the engine once its info() says the cluster is `state` (the engine is run
    again by its supervisor in between: connections are refused for a moment)."""
    deadline = time.monotonic() + within
    seen = None
    while time.monotonic() < deadline:
        try:
            client = await asyncio.wait_for(EngineClient.connect(url, origin=APP, auto_resume=False), 10)
            info = await asyncio.wait_for(client.engine.info(), 10)
        except Exception as error:  # the engine between two runs
            seen = error
            await asyncio.sleep(0.5)
            continue
        seen = info.get("cluster")
        if seen and seen.get("state") == state:
            return client
        await client.close()
        await asyncio.sleep(0.5)
    raise AssertionError(f"the engine's cluster did not become {state} within {within:g} s: {seen}")


def test_a_lost_cluster_fails_pending_calls_is_reported_and_is_reconnected(head: dict, tmp_path) -> None:
    address = f"127.0.0.1:{head['port']}"
    env = {"PYJOY_ENGINE_TOKEN": TOKEN, "RAY_AUTH_MODE": "disabled"}
    with engine_running(tmp_path / "work", "--ray", address, env=env) as (url, process):
        async def main() -> None:
            client = await connect_when(url, "connected", 30)
            try:
                info = (await client.engine.info())["cluster"]
                assert info["address"] == address and info["nodes"] == 1
                slow = await client.load_plugin(SLOW)
                waiting = asyncio.ensure_future(slow.api.wait())
                await asyncio.sleep(0.5)
                stop_head(head["temp"])
                started = time.monotonic()
                with pytest.raises((ClosedError, RemoteError), match=f"Ray cluster at {address} was lost"):
                    await asyncio.wait_for(waiting, 30)
                assert time.monotonic() - started < 20
            finally:
                await asyncio.wait_for(client.close(), 10)

            client = await connect_when(url, "lost", 30)
            try:
                lost = (await client.engine.info())["cluster"]
                assert lost["address"] == address and f"Ray cluster at {address} was lost" in lost["reason"]
                with pytest.raises(Exception, match=f"Ray cluster at {address} was lost.*trying to reconnect"):
                    await client.load_plugin(SLOW)
            finally:
                await asyncio.wait_for(client.close(), 10)

            start_head(head["temp"], head["port"])
            client = await connect_when(url, "connected", 90)
            try:
                again = await client.load_plugin(SLOW)  # a plugin started once it is back works
                assert isinstance(await again.api.pid(), int)
            finally:
                await asyncio.wait_for(client.close(), 10)
            assert process.poll() is None  # the same engine command served throughout

        run_async(main())
    output = "".join(process.output)
    assert "answers again: reconnecting" in output, output[-3000:]
