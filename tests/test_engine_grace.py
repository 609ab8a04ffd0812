"""A page whose connection drops (ENGINE.md, "A page that drops"): a real `pyjoy engine` with a
short grace period, a real plugin process, the Python client as the page; the drop is real
(the client's TCP connection aborted, no close frame). Within the period the client resumes:
a call in flight completes with the right answer and the plugin kept its state (pid,
counter). After it, the plugins were ended and a resume is refused saying so; a wrong key
is refused."""

from __future__ import annotations

import asyncio
import os

import aiohttp
import numpy as np
import pytest

from pyjoy.devtools import engine_running, run_async
from pyjoy.engine.client import EngineClient, EngineRefused
from test_engine import APP, TOKEN, plugin

GRACE = 3.0

COUNTER = plugin("Counter", '''
import asyncio, os
class Counter:
    def setup(self):
        self.count = 0
    def pid(self):
        return os.getpid()
    def bump(self):
        self.count += 1
        return self.count
    async def slow_square(self, x, seconds):
        await asyncio.sleep(seconds)           # the page's socket drops meanwhile
        return {"square": x * x, "count": self.count}
    async def slow_array(self, n, seconds):
        import numpy as np
        await asyncio.sleep(seconds)
        return np.arange(n, dtype=np.float64)  # 8n bytes: past what is kept while the socket is up
    async def ask_page(self, callback, x):
        await asyncio.sleep(0.5)
        return await callback(x) + 1           # a call the other way, made while the page is away
api.export(Counter())
''')


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("grace")
    with engine_running(root / "work", "--grace", str(GRACE), env={"PYJOY_ENGINE_TOKEN": TOKEN}) as (url, process):
        yield {"url": url, "process": process}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_call_in_flight_when_the_socket_drops_completes_after_the_resume_and_the_plugin_keeps_its_state(
        engine: dict) -> None:
    async def scenario() -> None:
        client = await EngineClient.connect(engine["url"], origin=APP, auto_resume=False)
        assert client.resume_key and client.grace == GRACE
        counter = (await client.load_plugin(COUNTER)).api
        pid = await counter.pid()
        assert [await counter.bump(), await counter.bump()] == [1, 2]
        call = asyncio.ensure_future(counter.slow_square(7, 1.0))
        await asyncio.sleep(0.3)  # the call reached the plugin; its answer comes while the socket is down
        client.drop()
        await asyncio.wait_for(client.dropped.wait(), 5)
        await asyncio.sleep(1.2)  # the answer was sent into the void (or kept by the engine)
        assert not call.done()
        await client.resume()
        assert await asyncio.wait_for(call, 5) == {"square": 49, "count": 2}
        assert await counter.pid() == pid  # the same process ...
        assert await counter.bump() == 3  # ... with its state
        # A call the plugin makes to the page while the page is away is answered after the resume.
        call = asyncio.ensure_future(counter.ask_page(lambda x: x * 10, 4))
        await asyncio.sleep(0.1)
        client.drop()
        await asyncio.wait_for(client.dropped.wait(), 5)
        await asyncio.sleep(0.8)
        bumped = asyncio.ensure_future(counter.bump())  # a call made while the socket is down: kept, sent on the resume
        await asyncio.sleep(0.1)
        await client.resume()
        assert await asyncio.wait_for(call, 5) == 41
        assert await asyncio.wait_for(bumped, 5) == 4
        # The client resumes on its own, too.
        client.auto_resume = True
        call = asyncio.ensure_future(counter.slow_square(3, 0.5))
        client.drop()
        assert await asyncio.wait_for(call, 5) == {"square": 9, "count": 4}
        assert not client.dropped.is_set()
        await client.close()

    run_async(scenario())


def test_a_big_result_that_comes_while_the_page_is_away_is_kept_and_delivered_on_the_resume(engine: dict) -> None:
    async def scenario() -> None:
        client = await EngineClient.connect(engine["url"], origin=APP, auto_resume=False)
        counter = (await client.load_plugin(COUNTER)).api
        call = asyncio.ensure_future(counter.slow_array(1_000_000, 0.5))  # 8 MB, in two pieces
        await asyncio.sleep(0.1)
        client.drop()
        await asyncio.wait_for(client.dropped.wait(), 5)
        await asyncio.sleep(1.0)
        await client.resume()
        np.testing.assert_array_equal(await asyncio.wait_for(call, 10), np.arange(1_000_000, dtype=np.float64))
        await client.close()

    run_async(scenario())


def test_after_the_grace_period_the_plugins_were_ended_and_the_resume_is_refused(engine: dict) -> None:
    async def scenario() -> None:
        client = await EngineClient.connect(engine["url"], origin=APP, auto_resume=False)
        counter = (await client.load_plugin(COUNTER)).api
        pid = await counter.pid()
        call = asyncio.ensure_future(counter.slow_square(2, 0.2))
        client.drop()
        await asyncio.wait_for(client.dropped.wait(), 5)
        await asyncio.sleep(GRACE + 1.5)
        assert not alive(pid)  # ended once the period passed (SIGTERM)
        with pytest.raises(EngineRefused, match="grace period"):
            await client.resume()
        with pytest.raises(Exception, match="grace period"):  # the call in flight failed, saying why
            await asyncio.wait_for(call, 5)
        await client.close()

    run_async(scenario())


def test_a_wrong_resume_key_is_refused_and_the_connection_it_named_stays(engine: dict) -> None:
    async def scenario() -> None:
        client = await EngineClient.connect(engine["url"], origin=APP, auto_resume=False)
        counter = (await client.load_plugin(COUNTER)).api
        key = client.resume_key
        thief = await EngineClient.connect(engine["url"], origin=APP, auto_resume=False)
        thief.dropped.set()
        for wrong in (key[:-1] + ("A" if key[-1] != "A" else "B"), "", "x" * 500):
            thief.resume_key = wrong
            with pytest.raises(EngineRefused, match="no connection has that resume key"):
                await thief.resume()
        # A count that is not one is refused, and the connection stays.
        for received in ("²", "-1", "1e3", ""):
            async with aiohttp.ClientSession() as http:
                ws = await http.ws_connect(f"{engine['url']}&resume={key}&received={received}", headers={"Origin": APP})
                closed = await ws.receive()
                assert ws.close_code == 4410 and "received= should be the number" in closed.extra
        # With another token the right key is refused before it is read.
        thief._url = engine["url"].split("?")[0] + "?token=wrong"
        thief.resume_key = key
        with pytest.raises(EngineRefused):
            await thief.resume()
        assert await counter.bump() == 1  # the connection named is untouched
        await thief.close()
        await client.close()

    run_async(scenario())


def test_grace_zero_ends_the_plugins_at_the_drop(tmp_path) -> None:
    async def scenario(url: str) -> None:
        client = await EngineClient.connect(url, origin=APP)
        assert client.resume_key is None
        counter = (await client.load_plugin(COUNTER)).api
        pid = await counter.pid()
        call = asyncio.ensure_future(counter.slow_square(2, 5))
        client.drop()
        with pytest.raises(Exception, match="closed"):
            await asyncio.wait_for(call, 5)
        for _ in range(50):
            if not alive(pid):
                break
            await asyncio.sleep(0.1)
        assert not alive(pid)
        await client.close()

    with engine_running(tmp_path, "--grace", "0", env={"PYJOY_ENGINE_TOKEN": TOKEN}) as (url, _):
        run_async(scenario(url))
