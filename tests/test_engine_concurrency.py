"""The engine under things happening side by side, end to end on CPython: a real `pyjoy
engine` on 127.0.0.1, real plugin processes, pyjoy/engine/client.py as the page. Starts
running at once against the 32-plugin bound; a plugin's own threads calling the page."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pyjoy.devtools import engine_running, run_async
from pyjoy.engine import server
from pyjoy.engine.client import EngineClient
from pyjoy.rpc import RemoteError
from test_engine import APP, plugin

# A plugin that starts quickly and answers who it is.
SMALL = plugin("Small", '''
import os
class Small:
    def pid(self):
        return os.getpid()
api.export(Small())
''')
# A plugin whose requirement cannot be installed (uv is offline here, with no index): its
# start fails after its slot was taken, in the environment's install.
UNINSTALLABLE = plugin("Uninstallable", "api.export({})", requirements=["pyjoy-engine-no-such-package"])


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("engine-concurrency")
    env = {"UV_OFFLINE": "1", "UV_NO_INDEX": "1", "UV_CACHE_DIR": str(root / "uv-cache")}
    with engine_running(root / "work", env=env) as (url, process):
        yield {"url": url, "process": process, "workdir": root / "work"}


def test_starts_side_by_side_cannot_pass_the_plugin_bound_and_a_failed_start_gives_its_slot_back(engine: dict) -> None:
    async def scenario() -> None:
        client = await EngineClient.connect(engine["url"], origin=APP)
        # All 40 are sent before the engine answers any: each start awaits its process's start,
        # so without a slot taken before that await every one of them would pass the check.
        starts = await asyncio.gather(*(client.engine.start(SMALL) for _ in range(40)), return_exceptions=True)
        started = [answer for answer in starts if not isinstance(answer, BaseException)]
        refused = [answer for answer in starts if isinstance(answer, BaseException)]
        assert len(started) == server.MAX_PLUGINS == 32
        assert len(refused) == 8
        for error in refused:
            assert isinstance(error, RemoteError) and f"runs {server.MAX_PLUGINS} plugins already" in str(error), error
        listed = await client.engine.list()
        assert sorted(p["id"] for p in listed) == sorted(s["id"] for s in started)
        assert all(p["state"] == "running" for p in listed)
        with pytest.raises(RemoteError, match="plugins already"):
            await client.engine.start(SMALL)

        # One stopped frees its slot; a start that fails (its install) gives back the one it
        # took, so that after it the freed slot is still there for the next start.
        assert await client.engine.stop(started[0]["id"]) is True
        with pytest.raises(RemoteError, match="pyjoy-engine-no-such-package"):
            await client.engine.start(UNINSTALLABLE)
        again = await client.load_plugin(SMALL)
        assert await again.api.pid() > 0
        with pytest.raises(RemoteError, match="plugins already"):
            await client.engine.start(SMALL)
        await client.close()

    run_async(scenario())
