"""The engine, end to end on CPython: a real `pyjoy engine` process on 127.0.0.1, real plugin
processes, and aiohttp's client connecting as a page would (with an Origin header), through
pyjoy/engine/client.py or raw frames. No browser, no network: the requirement test installs
a wheel this file writes, from a local directory, with uv told --offline --no-index."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import zipfile
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from pyjoy.devtools import engine_running, run_async
from pyjoy.engine import server, wire
from pyjoy.engine.client import EngineClient, EngineRefused
from pyjoy.rpc import ClosedError, RemoteError

APP = "http://127.0.0.1:8000"
TOKEN = "test-token-" + "x" * 30
PROBE = "pyjoy_engine_probe"  # the package the requirement test builds, as a wheel


def plugin(name: str, code: str, **config) -> str:
    """An ImJoy native-python plugin file, as ImJoy's docs write one."""
    fields = {"name": name, "type": "native-python", "version": "0.1.0", "api_version": "0.1.8", **config}
    return f'<config lang="json">\n{json.dumps(fields)}\n</config>\n<script lang="python">\n{code}\n</script>\n'


ARRAYS = plugin("Arrays", '''
from imjoy import api
import numpy as np

class Arrays:
    def setup(self):
        api.log("arrays ready")

    def describe(self, a):
        return {"dtype": str(a.dtype), "shape": list(a.shape), "sum": float(a.sum()), "is_numpy": isinstance(a, np.ndarray)}

    def plus_one(self, a):
        return a + np.ones(1, dtype=a.dtype) if a.dtype != np.bool_ else ~a

    def make(self, dtype, shape):
        return np.arange(int(np.prod(shape))).astype(dtype).reshape(shape)

    async def through_page(self, callback, a):
        back = await callback(a * 2)          # the page's function, called with an array
        return back + 1

    def adder(self, n):
        def add(x):
            return x + n
        return add                            # a function of the plugin, for the page to call

    async def log_twice(self, text):
        await api.log(text)
        await api.log(text)
        return "logged"

api.export(Arrays())
''')

SLOW = plugin("Slow", '''
import asyncio, os
class Slow:
    def pid(self):
        return os.getpid()
    async def wait(self):
        await asyncio.sleep(3600)
    def environment(self):
        return {"environ": dict(os.environ), "cwd": os.getcwd()}
    def shout(self, text):
        print("shout:", text)
        return True
api.export(Slow())                             # `api` as a global: ImJoy's plugins need no import
''')


def write_wheel(folder: Path) -> Path:
    """A tiny wheel of PROBE 0.1.0 (pure Python), written by hand: no build tool, no network."""
    name = f"{PROBE}-0.1.0-py3-none-any.whl"
    info = f"{PROBE}-0.1.0.dist-info"
    files = {
        f"{PROBE}/__init__.py": "VALUE = 'probe 0.1.0'\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {PROBE.replace('_', '-')}\nVersion: 0.1.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test_engine\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{path},,\n" for path in files) + f"{info}/RECORD,,\n"
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(folder / name, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return folder / name


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("engine")
    wheels = root / "wheels"
    write_wheel(wheels)
    env = {"PYJOY_ENGINE_TOKEN": TOKEN, "UV_OFFLINE": "1", "UV_NO_INDEX": "1", "UV_FIND_LINKS": str(wheels),
           "UV_CACHE_DIR": str(root / "uv-cache")}
    with engine_running(root / "work", "--allow-origin", "https://lab.example", env=env) as (url, process):
        yield {"url": url, "process": process, "workdir": root / "work"}


def connect(engine: dict, origin: str | None = APP, url: str | None = None):
    return EngineClient.connect(url or engine["url"], origin=origin)


def test_the_printed_url_holds_the_token_and_a_link_that_opens_the_app_connected(tmp_path: Path) -> None:
    with engine_running(tmp_path) as (url, process):
        assert url.startswith("ws://127.0.0.1:") and "?token=" in url
        token = url.split("token=")[1]
        assert len(token) >= 40  # 32 random bytes, base64url
    with engine_running(tmp_path) as (other, _):
        assert other.split("token=")[1] != token  # a fresh one each start


def test_arrays_go_both_ways_as_numpy_with_their_dtype_and_shape(engine: dict) -> None:
    async def scenario() -> None:
        client = await connect(engine)
        logs: list[str] = []
        loaded = await client.load_plugin(ARRAYS, host={"log": logs.append})
        assert logs == ["arrays ready"]  # setup() ran, and called the page
        api = loaded.api
        for dtype, shape in [("float32", (5,)), ("uint16", (4, 3)), ("int64", (3,)), ("bool", (2, 2)),
                             ("float32", (2, 3, 4))]:
            sent = (np.arange(int(np.prod(shape))) % 3 == 1) if dtype == "bool" else \
                np.arange(int(np.prod(shape)), dtype=dtype) * 3
            sent = sent.reshape(shape).astype(dtype)
            described = await api.describe(sent)
            assert described == {"dtype": dtype, "shape": list(shape), "sum": float(sent.sum()), "is_numpy": True}
            back = await api.plus_one(sent)
            expected = ~sent if dtype == "bool" else sent + np.ones(1, dtype=dtype)
            assert back.dtype == np.dtype(dtype) and back.shape == shape
            np.testing.assert_array_equal(back, expected)
            made = await api.make(dtype, list(shape))
            np.testing.assert_array_equal(made, np.arange(int(np.prod(shape))).astype(dtype).reshape(shape))
        big = np.random.default_rng(1).random((256, 256, 40), dtype=np.float32)  # 10 MB: several pieces
        back = await api.plus_one(big)
        np.testing.assert_array_equal(back, big + np.float32(1))
        await client.close()

    run_async(scenario())


def test_callbacks_go_both_ways(engine: dict) -> None:
    async def scenario() -> None:
        client = await connect(engine)
        logs: list[str] = []
        api = (await client.load_plugin(ARRAYS, host={"log": logs.append})).api
        seen = []

        def page_function(a):  # called by the plugin, with an array, returning one
            seen.append(a.copy())
            return a * 10

        result = await api.through_page(page_function, np.array([1, 2, 3], dtype=np.int64))
        np.testing.assert_array_equal(seen[0], [2, 4, 6])
        np.testing.assert_array_equal(result, [21, 41, 61])
        add = await api.adder(5)  # a function made in the plugin
        assert await add(10) == 15
        assert await api.log_twice("hello") == "logged"
        assert logs[-2:] == ["hello", "hello"]
        await client.close()

    run_async(scenario())


def test_a_wrong_token_a_missing_one_and_a_wrong_origin_are_refused(engine: dict) -> None:
    async def scenario() -> None:
        base = engine["url"].split("?")[0]
        with pytest.raises(EngineRefused, match="wrong token"):
            await connect(engine, url=base + "?token=" + TOKEN[:-1] + "y")
        with pytest.raises(EngineRefused, match="wrong token"):
            await connect(engine, url=base)
        with pytest.raises(EngineRefused, match="403"):
            await connect(engine, origin="http://evil.example")
        with pytest.raises(EngineRefused, match="403"):
            await connect(engine, origin="null")  # an opaque-origin sandbox: a plugin's frame
        for origin in (APP, "http://localhost:8000", "https://lab.example", None):
            client = await connect(engine, origin=origin)
            assert (await client.engine.info())["engine"]
            await client.close()
        # The token is not in what the engine printed.
        assert not any(TOKEN in line for line in engine["process"].output)

    run_async(scenario())


def test_a_plugin_process_has_no_token_and_runs_in_its_own_folder_under_the_workdir(engine: dict) -> None:
    async def scenario() -> None:
        client = await connect(engine)
        outputs: list[dict] = []
        api = (await client.load_plugin(SLOW, output=outputs.append)).api
        seen = await api.environment()
        assert not [key for key, value in seen["environ"].items() if TOKEN in value or "TOKEN" in key]
        assert Path(seen["cwd"]).resolve().is_relative_to(engine["workdir"].resolve())
        assert await api.shout("hi") is True
        for _ in range(100):
            if outputs:
                break
            await asyncio.sleep(0.02)
        assert outputs == [{"stream": "stdout", "text": "shout: hi"}]
        await client.close()

    run_async(scenario())


LOOP = plugin("Loop", """
import asyncio, os
from imjoy import api

class Loop:
    def describe(self):
        return {"loop": type(asyncio.get_running_loop()).__module__.split(".")[0], "pid": os.getpid()}

api.export(Loop())
""")


def test_the_engine_and_its_plugin_processes_run_on_uvloop_where_it_is_installed(engine: dict) -> None:
    # pyjoy/engine/tuning.py: uvloop is in the engine extra; the test extra installs it too.
    import importlib.util

    expected = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"

    async def scenario() -> None:
        client = await connect(engine)
        seen = await (await client.load_plugin(LOOP)).api.describe()
        await client.close()
        assert seen["loop"] == expected
        # The engine's own loop, from outside: uvloop's module is mapped into its process.
        maps = Path(f"/proc/{engine['process'].pid}/maps").read_text()
        assert ("uvloop" in maps) == (expected == "uvloop")

    run_async(scenario())


SINK = plugin("Sink", """
from imjoy import api

class Sink:
    def take(self, batch):
        return len(batch)

api.export(Sink())
""")


def minor_faults(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="counts the kernel's page faults in /proc")
def test_relayed_batches_of_arrays_reuse_the_engines_memory_without_page_faults(engine: dict) -> None:
    # Batches of 600 KB images (a model's float32 input) relayed to a plugin: each arrives in
    # the engine as aiohttp's fresh bytes. Without tuning.keep_freed_memory() glibc gives the
    # freed memory back and every image's pages fault afresh (about 150 an image, measured);
    # with it they are reused. Counted by the kernel, for the engine's process.
    images = [np.full((1, 3, 224, 224), i, dtype=np.float32) for i in range(8)]

    async def scenario() -> int:
        client = await connect(engine)
        sink = (await client.load_plugin(SINK)).api
        for _ in range(3):  # warm-up: the heap grows to what a batch needs
            assert await sink.take(images) == 8
        before = minor_faults(engine["process"].pid)
        for _ in range(10):
            assert await asyncio.gather(sink.take(images), sink.take(images)) == [8, 8]
        faults = minor_faults(engine["process"].pid) - before
        await client.close()
        return faults

    faults = run_async(scenario())
    assert faults / 160 < 15, f"{faults} page faults in the engine for 160 images relayed"


def test_a_requirement_is_installed_into_its_environment_and_reused_the_second_time(engine: dict) -> None:
    source = plugin("Probe", '''
import sys
import pyjoy_engine_probe
class Probe:
    def value(self):
        return {"value": pyjoy_engine_probe.VALUE, "prefix": sys.prefix}
api.export(Probe())
''', requirements=["pip: -U pyjoy-engine-probe==0.1.0"])

    async def scenario() -> None:
        client = await connect(engine)
        first_progress: list[dict] = []
        first = await client.load_plugin(source, progress=first_progress.append)
        got = await first.api.value()
        assert got["value"] == "probe 0.1.0"
        venvs = list((engine["workdir"] / "envs").glob("venv-*"))
        assert len(venvs) == 1 and Path(got["prefix"]).resolve() == venvs[0].resolve()
        assert first.info["env"] == venvs[0].name.removeprefix("venv-")
        assert any("making an environment" in event["message"] for event in first_progress)
        assert any(event["stage"] == "install" for event in first_progress)  # uv's own lines
        made = (venvs[0] / ".pyjoy-ready").stat().st_mtime_ns

        again_progress: list[dict] = []
        again = await client.load_plugin(source, progress=again_progress.append)
        assert (await again.api.value())["prefix"] == got["prefix"]
        assert [event["stage"] for event in again_progress] == ["environment"]
        assert "reusing" in again_progress[0]["message"]
        assert (venvs[0] / ".pyjoy-ready").stat().st_mtime_ns == made
        await client.close()

    run_async(scenario())


def test_a_failed_install_names_the_requirement_and_uvs_message_and_refused_kinds_say_why(engine: dict) -> None:
    async def scenario() -> None:
        client = await connect(engine)
        with pytest.raises(RemoteError) as failed:
            await client.engine.start(plugin("Missing", "api.export({})", requirements=["pyjoy-engine-missing==1.0"]))
        assert failed.value.remote_type == "RequirementError"
        assert "pyjoy-engine-missing" in failed.value.message and "not found" in failed.value.message.lower()
        for requirement, why in [("repo:https://github.com/x/y", "clone"), ("cmd:rm -rf /", "run commands"),
                                 ("../outside", "local paths"), ("file:///etc/passwd", "local paths"),
                                 ("pip: --index-url http://x numpy", "option")]:
            with pytest.raises(RemoteError, match=why) as refused:
                await client.engine.start(plugin("Refused", "api.export({})", requirements=[requirement]))
            assert refused.value.remote_type == "RequirementError"
        if not (os.environ.get("PATH") and any((Path(p) / tool).exists() for p in os.environ["PATH"].split(":")
                                                for tool in ("conda", "mamba"))):
            with pytest.raises(RemoteError, match="neither conda nor mamba is on the engine's PATH"):
                await client.engine.start(plugin("Conda", "api.export({})", requirements=["conda:numpy"]))
        with pytest.raises(RemoteError, match="web-python plugin, which runs in the browser"):
            await client.engine.start(plugin("Web", "api.export({})", type="web-python"))
        with pytest.raises(RemoteError, match=r"config \(line 2\): invalid JSON") as malformed:
            await client.engine.start('<config lang="json">\n{"name": }\n</config><script>x</script>')
        assert malformed.value.remote_type == "PluginFileError"
        assert (await client.engine.info())["engine"]  # the connection stays
        await client.close()

    run_async(scenario())


def test_a_killed_plugin_fails_its_pending_calls_at_once_and_can_be_started_again(engine: dict) -> None:
    async def scenario() -> None:
        client = await connect(engine)
        exits: list[dict] = []
        slow = await client.load_plugin(SLOW, exited=exits.append)
        other = await client.load_plugin(ARRAYS, host={"log": lambda _: None})
        pending = asyncio.ensure_future(slow.api.wait())
        await asyncio.sleep(0.2)
        assert not pending.done()
        os.kill(await slow.api.pid(), signal.SIGKILL)
        started = time.monotonic()
        with pytest.raises(ClosedError) as failed:
            await asyncio.wait_for(pending, 5)
        assert time.monotonic() - started < 3  # at once, not a timeout
        assert "'Slow'" in str(failed.value) and "status -9 (killed by SIGKILL)" in str(failed.value)
        for _ in range(100):
            if exits:
                break
            await asyncio.sleep(0.02)
        assert exits == [{"id": slow.id, "name": "Slow", "status": -9, "reason": failed.value.reason.split(": ", 1)[1]}]
        listed = {p["id"]: p for p in await client.engine.list()}
        assert listed[slow.id]["state"] == "exited" and listed[slow.id]["status"] == -9
        assert (await other.api.describe(np.ones(3, dtype=np.float32)))["sum"] == 3.0  # the others go on
        again = await client.load_plugin(SLOW)
        assert await again.api.pid() > 0
        # stop(): the pending call fails at once too
        pending = asyncio.ensure_future(again.api.wait())
        await asyncio.sleep(0.1)
        assert await client.engine.stop(again.id) is True
        with pytest.raises(ClosedError, match="exited with status"):
            await asyncio.wait_for(pending, 5)
        await client.close()

    run_async(scenario())


def test_two_connections_each_see_only_their_plugins(engine: dict) -> None:
    async def scenario() -> None:
        first, second = await connect(engine), await connect(engine)
        mine = await first.load_plugin(SLOW)
        assert [p["id"] for p in await first.engine.list()] == [mine.id]
        assert await second.engine.list() == []
        with pytest.raises(RemoteError, match="unknown plugin"):
            await second.engine.stop(mine.id)
        # Its channel is unknown on the other connection: a call there is an error, not a relay.
        intruder = second.open_session(mine.id)
        intruder.set_root({})
        with pytest.raises(RemoteError, match="unknown plugin"):
            await asyncio.wait_for(intruder._call("f1", (), {}), 5)
        assert await mine.api.pid() > 0
        await first.close()
        await second.close()

    run_async(scenario())


async def raw_connection(engine: dict):
    """A bare WebSocket, to send frames no client would; returns (http, ws, the engine's root)."""
    http = aiohttp.ClientSession()
    ws = await http.ws_connect(engine["url"], headers={"Origin": APP}, max_msg_size=0)
    hello = json.loads((await ws.receive()).data)  # ENGINE.md, A page that drops
    assert set(hello) == {"hello"} and hello["hello"]["received"] is None and hello["hello"]["resume"]
    first = json.loads((await ws.receive()).data)
    assert first["channel"] == "engine" and first["message"]["type"] == "root"
    return http, ws, first["message"]["value"]


async def next_text(ws) -> dict:
    received = await asyncio.wait_for(ws.receive(), 10)
    assert received.type == aiohttp.WSMsgType.TEXT, received
    return json.loads(received.data)


def test_malformed_and_oversized_frames_are_errors_and_the_connection_stays(engine: dict) -> None:
    async def scenario() -> None:
        http, ws, root = await raw_connection(engine)
        info = root["info"]["_rtarget"]

        def call(call_id: str, channel: str = "engine", **extra) -> str:
            return json.dumps({"channel": channel, "message": {"type": "call", "id": call_id, "target": info,
                                                              "args": [], "kwargs": {}}, **extra})

        async def still_answers(call_id: str) -> None:
            await ws.send_str(call(call_id))
            answer = await next_text(ws)
            assert answer["message"]["type"] == "result" and answer["message"]["id"] == call_id

        await ws.send_str("this is not JSON")
        assert "not JSON" in (await next_text(ws))["error"]
        await still_answers("ok1")

        await ws.send_str(call("bad-buffers", buffers="many"))
        answer = await next_text(ws)
        assert answer["message"] == {"type": "error", "id": "bad-buffers", "error": {
            "_rtype": "error", "type": "RPCError", "message": '"buffers" should be a list of sizes (integers from 0)',
            "traceback": ""}}

        await ws.send_str(call("lost", channel="pnobody"))
        answer = await next_text(ws)
        assert answer["channel"] == "pnobody" and "unknown plugin 'pnobody'" in answer["message"]["error"]["message"]

        await ws.send_bytes(b"\0" * 10)  # no message announced it
        assert "no message announced" in (await next_text(ws))["error"]

        await ws.send_str(" " * (wire.MAX_FRAME_BYTES + 1))  # an oversized text frame
        assert "over the limit" in (await next_text(ws))["error"]
        await still_answers("ok2")

        await ws.send_str(call("big", buffers=[wire.MAX_FRAME_BYTES]))  # an oversized piece of a call's buffer
        await ws.send_bytes(b"\0" * (wire.MAX_FRAME_BYTES + 10))
        answer = await next_text(ws)
        assert answer["message"]["id"] == "big" and "over the limit" in answer["message"]["error"]["message"]
        await ws.send_str(call("engine-bound", buffers=[wire.MAX_ENGINE_MESSAGE_BYTES + 1]))
        assert "engine's channel holds more than" in (await next_text(ws))["message"]["error"]["message"]
        await ws.send_bytes(b"\0" * 1000)  # its pieces are dropped quietly
        await ws.send_str(call("too-many", buffers=[1] * (wire.MAX_BUFFERS + 1)))
        assert "over the limit of 1000" in (await next_text(ws))["message"]["error"]["message"]

        # A message with its buffer in two pieces is read whole.
        await ws.send_str(json.dumps({"channel": "engine", "message": {
            "type": "call", "id": "pieces", "target": info, "args": [{"_pyjoy_rpc_buffer": 0}], "kwargs": {}},
            "buffers": [6]}))
        await ws.send_bytes(b"abc")
        await ws.send_bytes(b"def")
        answer = await next_text(ws)
        assert answer["message"]["id"] == "pieces" and "takes 1 positional argument" in answer["message"]["error"]["message"]
        await still_answers("ok3")

        # Past CLOSE_FRAME_BYTES the WebSocket library itself closes the connection.
        try:
            await ws.send_bytes(b"\0" * (wire.CLOSE_FRAME_BYTES + 1))
        except ConnectionError:
            pass  # closed before the frame was all sent
        closed = await asyncio.wait_for(ws.receive(), 10)
        await http.close()
        assert (closed.type, closed.data) == (aiohttp.WSMsgType.CLOSE, 1009)  # "message too big"

    run_async(scenario())


def test_ctrl_c_ends_the_engine_and_its_plugin_processes(tmp_path: Path) -> None:
    async def start_one(url: str) -> int:
        client = await EngineClient.connect(url, origin=APP)
        loaded = await client.load_plugin(SLOW)
        pid = await loaded.api.pid()
        await client.ws.close()  # leave it running: the engine must end it
        return pid

    with engine_running(tmp_path) as (url, process):
        pid = run_async(start_one(url))
        for _ in range(100):  # the connection closed: the engine ends its plugins
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the plugin of a closed connection is still running")

    async def interrupted(url: str, process) -> int:
        client = await EngineClient.connect(url, origin=APP)
        pid = await (await client.load_plugin(SLOW)).api.pid()
        process.send_signal(signal.SIGINT)  # Ctrl+C, with a connection and its plugin open
        assert await asyncio.to_thread(process.wait, 15) == 0
        await client.close()
        return pid

    with engine_running(tmp_path) as (url, process):
        pid = run_async(interrupted(url, process))
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_plugin_writing_to_its_pipe_cannot_speak_for_the_engine_and_one_breaking_it_is_ended(engine: dict) -> None:
    source = (Path(__file__).parent / "plugins" / "hostile" / "engine_breaks_its_pipe.imjoy.html").read_text()

    async def scenario() -> None:
        client = await connect(engine)
        breaker = await client.load_plugin(source)
        # The frame is relayed on the plugin's own channel: the page closes that session (a
        # plugin may close its own; the call's answer never comes), and the engine's is untouched.
        with pytest.raises(ClosedError, match="the other side closed: spoofed by a plugin"):
            await asyncio.wait_for(breaker.api.spoof_engine_close(), 5)
        assert not client.engine_session.closed and (await client.engine.info())["engine"]

        breaker = await client.load_plugin(source)
        pending = asyncio.ensure_future(breaker.api.wait())
        await asyncio.sleep(0.1)
        breaker.api.break_pipe()  # its answer never comes: the engine ends it (SIGTERM ignored: SIGKILL)
        with pytest.raises(ClosedError, match=r"'Engine Pipe Breaker' .* exited with status -9 \(killed by SIGKILL\)"):
            await asyncio.wait_for(pending, 10)
        assert (await client.engine.info())["engine"]
        await client.close()

    run_async(scenario())


def test_a_plugin_printing_without_end_reaches_the_page_bounded(engine: dict) -> None:
    source = (Path(__file__).parent / "plugins" / "hostile" / "engine_floods_output.imjoy.html").read_text()

    async def scenario() -> None:
        client = await connect(engine)
        outputs: list[tuple[float, dict]] = []
        flood = await client.load_plugin(source, output=lambda event: outputs.append((time.monotonic(), event)))
        started = time.monotonic()
        printed = await flood.api.flood(1.0)
        assert (await client.engine.info())["engine"]  # the engine's channel answers during and after
        await asyncio.sleep(0.5)  # the last batch
        elapsed = time.monotonic() - started
        assert printed > 1000
        # At most 8 output calls per 100 ms (and a few more at the edges of the intervals).
        assert len(outputs) <= 8 * (elapsed / 0.1 + 2), len(outputs)
        text = "\n".join(event["text"] for _, event in outputs)
        assert "lines of output dropped" in text and len(text) < 16_384 * (elapsed / 0.1 + 2)
        assert outputs[0][1]["text"].startswith("line 0 ")
        await client.close()

    run_async(scenario())


def test_two_hundred_concurrent_calls_from_two_connections_each_get_their_own_answer(engine: dict) -> None:
    async def one_connection(seed: int) -> None:
        client = await connect(engine)
        api = (await client.load_plugin(ARRAYS, host={"log": lambda _: None})).api
        rng = np.random.default_rng(seed)
        # Mixed sizes, some over PIECE_BYTES: their frames must never interleave with others'.
        sent = [rng.random(int(rng.choice([3, 1000, 300_000, 1_500_000])), dtype=np.float32) for _ in range(100)]
        answers = await asyncio.gather(*(api.plus_one(a) for a in sent))
        for a, b in zip(sent, answers):
            np.testing.assert_array_equal(b, a + np.float32(1))
        assert len(await client.engine.list()) == 1  # its own plugin only
        await client.close()

    async def scenario() -> None:
        await asyncio.gather(one_connection(1), one_connection(2))

    run_async(scenario())


def test_an_engine_stopped_mid_call_fails_the_call_at_once(tmp_path: Path) -> None:
    async def scenario(url: str, process) -> None:
        client = await EngineClient.connect(url, origin=APP)
        slow = await client.load_plugin(SLOW)
        pending = asyncio.ensure_future(slow.api.wait())
        await asyncio.sleep(0.1)
        process.send_signal(signal.SIGINT)
        started = time.monotonic()
        with pytest.raises(ClosedError, match="exited with status|the engine closed the connection"):
            await asyncio.wait_for(pending, 10)
        assert time.monotonic() - started < 5
        with pytest.raises(ClosedError):
            await client.engine.info()
        await client.close()

    with engine_running(tmp_path) as (url, process):
        run_async(scenario(url, process))
