"""A plugin's direct socket (pyjoy/engine/ENGINE.md, "The direct socket"): the page's second
WebSocket for one plugin's channel, which the engine accepts and passes to the plugin's
process. Real engine, real processes, real Chromium. That the direct socket really carries
the calls is checked independently of the code under test: calls complete while the engine
process is stopped (SIGSTOP), which they could not through the relay, and the engine's relay
counter for the plugin does not move."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from urllib.parse import urlencode, urlsplit

import aiohttp
import numpy as np
import pytest
from pathlib import Path

from playwright.sync_api import Page, expect

from conftest import wait_until
from pyjoy.devtools import engine_running, run_async
from pyjoy.engine import wire
from pyjoy.engine.client import EngineClient
from pyjoy.rpc import RemoteError
from test_engine import ARRAYS as CLIENT_ARRAYS
from test_engine_browser import ARRAYS, CASES, ROUND_TRIPS, check_round_trips, load, open_connected, plugin

HOSTILE = Path(__file__).parent / "plugins" / "hostile"
TOKEN = "direct-test-token-" + "d" * 30
APP = "http://127.0.0.1:8000"

DROPPER = plugin("Dropper", '''
import asyncio, os, socket, stat

def tcp_sockets():
    """This process's TCP sockets: a plugin on the relay holds none (its pipe is AF_UNIX)."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            probe = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        if probe.family in (socket.AF_INET, socket.AF_INET6) and probe.type == socket.SOCK_STREAM:
            found.append(fd)
        probe.close()
    return found

class Dropper:
    def sockets(self):
        return len(tcp_sockets())

    async def drop_then(self, value, delay):
        for fd in tcp_sockets():   # the network fails under the direct socket
            socket.socket(fileno=os.dup(fd)).shutdown(socket.SHUT_RDWR)
        await asyncio.sleep(delay)  # answered while the socket is down: kept, sent on the re-open
        return value

    async def later(self, value, delay):
        await asyncio.sleep(delay)
        return value

api.export(Dropper())
''')


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, base_url: str):
    workdir = tmp_path_factory.mktemp("engine-direct")
    with engine_running(workdir, "--app", base_url, "--allow-origin", APP,
                        env={"PYJOY_ENGINE_TOKEN": TOKEN}) as (url, process):
        yield {"url": url, "process": process}


def direct_url(engine_url: str, plugin_id: str, ticket: str, token: str = TOKEN) -> str:
    parts = urlsplit(engine_url)
    return f"ws://{parts.netloc}/plugin?{urlencode({'token': token, 'plugin': plugin_id, 'ticket': ticket})}"


def stopped(engine: dict):
    """The engine process stopped (SIGSTOP) while the block runs: nothing it relays moves."""
    class Stopped:
        def __enter__(self):
            os.kill(engine["process"].pid, signal.SIGSTOP)

        def __exit__(self, *exc):
            os.kill(engine["process"].pid, signal.SIGCONT)
    return Stopped()


def test_the_page_calls_a_plugin_over_its_direct_socket_while_the_engine_is_stopped(page: Page, base_url: str,
                                                                                  engine: dict) -> None:
    open_connected(page, base_url, engine["url"])
    assert load(page, ARRAYS) == "ok"
    assert load(page, DROPPER) == "ok"
    assert page.evaluate("pyjoy.getPlugin('Dropper').then((p) => p.sockets())") == 1  # it holds the passed socket
    page.evaluate("pyjoy.getPlugin('Arrays')")
    with stopped(engine):
        results = page.evaluate(ROUND_TRIPS, [CASES])
        both = page.evaluate("""async () => {
          const arrays = await pyjoy.getPlugin("Arrays");
          const a = {_rtype: "ndarray", _rvalue: new Float32Array([1, 2, 3]).buffer, _rshape: [3], _rdtype: "float32"};
          const seen = [];
          const back = await arrays.through_page((x) => { seen.push(Array.from(new Float32Array(x._rvalue))); return x; }, a);
          const add = await arrays.adder(5);
          return {seen, back: Array.from(new Float32Array(back._rvalue)), added: await add(37)};
        }""")
    check_round_trips(results)
    assert both == {"seen": [[2.0, 4.0, 6.0]], "back": (np.array([1, 2, 3], np.float32) * 2 + 1).tolist(), "added": 42}


def test_a_dropped_direct_socket_is_opened_again_and_loses_no_message(page: Page, base_url: str, engine: dict) -> None:
    open_connected(page, base_url, engine["url"])
    assert load(page, DROPPER) == "ok"
    answers = page.evaluate("""async () => {
      const dropper = await pyjoy.getPlugin("Dropper");
      const dropped = dropper.drop_then("kept while down", 0.5);       // its answer comes while the socket is down
      await new Promise((resolve) => setTimeout(resolve, 100));
      const sent = [1, 2, 3].map((n) => dropper.later(`sent while down ${n}`, 0));  // kept by the page, sent on the re-open
      return Promise.all([dropped, ...sent, dropper.sockets()]);
    }""")
    assert answers == ["kept while down", "sent while down 1", "sent while down 2", "sent while down 3", 1]


def test_a_killed_plugin_process_fails_its_pending_direct_call_at_once(page: Page, base_url: str, engine: dict) -> None:
    open_connected(page, base_url, engine["url"])
    assert load(page, ARRAYS) == "ok"
    pid = page.evaluate("pyjoy.getPlugin('Arrays').then((p) => p.pid())")
    page.evaluate("""pyjoy.getPlugin('Arrays').then((p) => {
      window.pending = p.wait().then(() => 'answered', (e) => e.message);
    })""")
    started = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    failure = page.evaluate("window.pending")
    assert time.monotonic() - started < 5
    assert "Arrays" in failure and "SIGKILL" in failure, failure
    wait_until(page, "pyjoy.plugins().then((all) => all.find((p) => p.name === 'Arrays')?.state === 'crashed')")


def test_a_plugin_writing_other_channels_on_its_direct_socket_reaches_nothing(page: Page, base_url: str,
                                                                               engine: dict) -> None:
    open_connected(page, base_url, engine["url"])
    assert load(page, DROPPER) == "ok"
    assert load(page, (HOSTILE / "enginedirect_other_channels.imjoy.html").read_text()) == "ok"
    # 1,500 messages for the engine's channel and other plugins' ids, as raw frames on its socket.
    assert page.evaluate("pyjoy.getPlugin('Direct Channel Forger').then((p) => p.forge(3, 500))") == "forged"
    notices = page.locator("#message-log li").filter(has_text="carries only its own channel")
    expect(notices.first).to_be_attached()  # said, a few times at most, and dropped: none kept, none delivered
    expect(notices.filter(has_text="further ones dropped without a word")).to_have_count(1)
    assert notices.count() <= 3
    # Its forged `stop` calls reached no session: the other plugin runs on, and it answers still.
    assert page.evaluate("pyjoy.getPlugin('Dropper').then((p) => p.later('still here', 0))") == "still here"
    assert page.evaluate("pyjoy.getPlugin('Direct Channel Forger').then((p) => p.forge(0, 0))") == "forged"


def test_a_plugin_that_cannot_take_its_direct_socket_stays_on_the_relay(page: Page, base_url: str,
                                                                       tmp_path) -> None:
    # PYJOY_ENGINE_RELAY_ONLY=1: each plugin process closes the passed socket before any hello.
    with engine_running(tmp_path, "--app", base_url, env={"PYJOY_ENGINE_TOKEN": TOKEN, "PYJOY_ENGINE_RELAY_ONLY": "1"}) \
            as (url, process):
        open_connected(page, base_url, url)
        assert load(page, DROPPER) == "ok"
        assert page.evaluate("pyjoy.getPlugin('Dropper').then((p) => p.sockets())") == 0
        assert page.evaluate("pyjoy.getPlugin('Dropper').then((p) => p.later('relayed', 0))") == "relayed"
        assert any("cannot take the direct socket: PYJOY_ENGINE_RELAY_ONLY=1" in line for line in process.output)


# -- the Python client: the handshake's checks, the relay's counter, bad frames ----------------

def test_direct_sockets_are_checked_as_the_main_one_plus_a_one_time_ticket_for_one_plugin(engine: dict) -> None:
    async def scenario() -> None:
        first = await EngineClient.connect(engine["url"], origin=APP)
        other = await EngineClient.connect(engine["url"], origin=APP)
        started = await first.engine.start(DROPPER)
        pid, ticket = started["id"], (await first.engine.direct(started["id"]))["ticket"]
        # Another connection cannot have a ticket for it: it sees only the plugins it started.
        with pytest.raises(RemoteError, match="no running plugin"):
            await other.engine.direct(pid)
        async with aiohttp.ClientSession() as http:
            async def close_code(url: str, origin: str | None = APP) -> tuple[int | None, str]:
                try:
                    ws = await http.ws_connect(url, headers={"Origin": origin} if origin else None)
                except aiohttp.WSServerHandshakeError as error:
                    return error.status, ""
                message = await ws.receive()
                return ws.close_code, str(message.extra or message.data)

            assert await close_code(direct_url(engine["url"], pid, ticket), origin="https://evil.example") == (403, "")
            assert (await close_code(direct_url(engine["url"], pid, ticket, token="wrong")))[0] == 4401
            assert (await close_code(direct_url(engine["url"], "p" + "0" * 16, ticket)))[0] == 4403  # another plugin
            # The checks above did not use it up? They did: a ticket is checked, and spent, once.
            assert (await close_code(direct_url(engine["url"], pid, ticket)))[0] == 4403
            fresh = (await first.engine.direct(pid))["ticket"]
            assert (await close_code(direct_url(engine["url"], pid, fresh + "x")))[0] == 4403
        await first.close()
        await other.close()

    run_async(scenario())


def test_the_client_over_the_direct_socket_leaves_the_relay_counter_still_and_bad_frames_keep_it(engine: dict) -> None:
    async def scenario() -> None:
        client = await EngineClient.connect(engine["url"], origin=APP, direct=True)
        loaded = await client.load_plugin(CLIENT_ARRAYS)
        before = next(p for p in await client.engine.list() if p["id"] == loaded.id)
        assert before["direct"] == 1
        a = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
        for _ in range(20):
            assert np.array_equal(await loaded.api.plus_one(a), a + 1)
        add = await loaded.api.adder(2)
        assert await add(40) == 42
        after = next(p for p in await client.engine.list() if p["id"] == loaded.id)
        assert after["relayed"] == before["relayed"]  # none of those went through the engine

        ws = client._direct[0][0]
        await ws.send_str("not json")
        notice = await asyncio.wait_for(client.notices.get(), 10)
        assert "not JSON" in notice
        # A frame over MAX_FRAME_BYTES: an error for the message it belongs to; the socket stays.
        await ws.send_str(wire.dumps({"channel": "plugin", "message": {"type": "release", "ids": []},
                                      "buffers": [wire.MAX_FRAME_BYTES + 1]}))
        await ws.send_bytes(bytes(wire.MAX_FRAME_BYTES + 1))
        notice = await asyncio.wait_for(client.notices.get(), 10)
        assert "over the limit" in notice
        assert np.array_equal(await loaded.api.plus_one(a), a + 1)
        await client.close()

    run_async(scenario())
