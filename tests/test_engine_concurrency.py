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

        # Once they all exit, the connection remembers the last KEEP_EXITED of them, not all.
        ids = [s["id"] for s in started[1:]] + [again.id]
        await asyncio.gather(*(client.engine.stop(plugin_id) for plugin_id in ids))
        listed = await client.engine.list()
        assert all(p["state"] == "exited" for p in listed) and len(listed) == server.KEEP_EXITED == 16
        forgotten = next(plugin_id for plugin_id in ids if plugin_id not in {p["id"] for p in listed})
        with pytest.raises(RemoteError, match="unknown plugin"):
            await client.engine.stop(forgotten)
        await client.close()

    run_async(scenario())


# ImJoy's native plugins report progress from a thread of their own during a long
# computation. This one's thread calls the page's callback 50 times without waiting (then
# waits for each answer), 50 times waiting for each one, and the page's API (log, without
# waiting; showProgress and showMessage, waiting), and answers what it got.
THREADED = plugin("Threaded", '''
import asyncio, threading, concurrent.futures
from imjoy import api

class Threaded:
    async def count(self, callback, n):
        finished = concurrent.futures.Future()

        def work():
            try:
                fired = [callback(i) for i in range(n)]          # sent in this order, none waited for yet
                answers = [call.result(timeout=30) for call in fired]
                for i in range(n):
                    api.log(f"step {i}")                         # fire and forget, as progress reports go
                    answers.append(callback(n + i).result(timeout=30))
                api.showProgress(100).result(timeout=30)
                shown = api.show_message("done").result(timeout=30)
                finished.set_result({"answers": answers, "shown": shown, "thread": threading.current_thread().name})
            except BaseException as error:
                finished.set_exception(error)

        threading.Thread(target=work, name="plugin-worker").start()
        return await asyncio.wrap_future(finished)

    async def failing(self, callback):
        errors = []
        def work():
            try:
                callback().result(timeout=30)
            except Exception as error:
                errors.append(f"{type(error).__name__}: {error}")
        thread = threading.Thread(target=work)
        thread.start()
        await asyncio.to_thread(thread.join)
        return errors

api.export(Threaded())
''')


def test_a_plugins_own_thread_calls_the_page_and_its_callbacks_in_order(engine: dict) -> None:
    async def scenario() -> None:
        client = await EngineClient.connect(engine["url"], origin=APP)
        seen: list[tuple[str, object]] = []

        def note(kind: str):
            def record(value: object = None) -> str:
                seen.append((kind, value))
                return f"{kind} {value}"
            return record

        host = {"log": note("log"), "showProgress": note("progress"), "showMessage": note("message"),
                "alert": note("alert")}
        threaded = await client.load_plugin(THREADED, host=host)

        def square(i: int) -> int:
            seen.append(("callback", i))
            return i * i

        answer = await threaded.api.count(square, 50)
        assert answer["thread"] == "plugin-worker"
        assert answer["answers"] == [i * i for i in range(100)]
        assert answer["shown"] == "message done"
        expected = [("callback", i) for i in range(50)]
        for i in range(50):
            expected += [("log", f"step {i}"), ("callback", 50 + i)]
        assert seen == expected + [("progress", 100), ("message", "done")]

        def broken() -> None:
            raise ValueError("the page's callback failed")

        errors = await threaded.api.failing(broken)
        assert len(errors) == 1 and "ValueError" in errors[0] and "the page's callback failed" in errors[0], errors
        await client.close()

    run_async(scenario())
