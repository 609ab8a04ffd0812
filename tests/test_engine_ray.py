"""The engine on a Ray cluster (`pyjoy engine --ray`), end to end: a real local Ray started by
the engine this module runs (2 CPUs, a 500 MB object store, no dashboard), real actors, and
the Python client connecting as a page would. No mocks of Ray. The requirement test installs
a wheel this file's sibling writes, through Ray's runtime_env (pip, told --no-index and the
wheel's folder by PIP_ variables the local Ray inherits from the engine)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray")

from pyjoy.devtools import engine_running, run_async  # noqa: E402
from pyjoy.engine.client import EngineClient  # noqa: E402
from pyjoy.rpc import ClosedError, RemoteError  # noqa: E402
from tests.test_engine import APP, ARRAYS, PROBE, SLOW, TOKEN, plugin, write_wheel  # noqa: E402

RAY_INIT = {"num_cpus": 2, "object_store_memory": 500 * 10**6}

REPLICATED = plugin("Replicated", '''
import os
class Replicated:
    def square(self, x):
        return {"square": x * x, "pid": os.getpid()}
    def pid(self):
        return os.getpid()
    def slow_square(self, x):
        import time
        time.sleep(0.05)
        return x * x
api.export(Replicated())
''', replicas=2)

SPREAD = plugin("Spread", '''
import os
class Spread:
    def setup(self):
        self.model = f"loaded in {os.getpid()}"  # what setup() makes is on every replica
    def where(self, x):
        return {"pid": os.getpid(), "model": self.model, "double": 2 * x}
    async def through_page(self, f):
        return {"pid": os.getpid(), "value": await f(3)}
    def maker(self):
        return lambda: os.getpid()
api.export(Spread())
''', replicas=2)

PROBED = plugin("Probed", '''
import pyjoy_engine_probe
class Probed:
    def value(self):
        return pyjoy_engine_probe.VALUE
api.export(Probed())
''', requirements=[f"{PROBE}==0.1.0"])


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("ray-engine")
    wheels = root / "wheels"
    write_wheel(wheels)
    env = {"PYJOY_ENGINE_TOKEN": TOKEN, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels),
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    with engine_running(root / "work", "--ray", "--ray-init", json.dumps(RAY_INIT), env=env) as (url, process):
        yield {"url": url, "process": process, "workdir": root / "work"}


def connect(engine: dict):
    return EngineClient.connect(engine["url"], origin=APP)


def test_the_engines_plugins_give_the_same_answers_as_ray_actors(engine: dict) -> None:
    async def main() -> None:
        client = await connect(engine)
        try:
            logged: list[str] = []
            arrays = await client.load_plugin(ARRAYS, host={"log": logged.append})
            assert arrays.info["env"] == "cluster"
            runs = arrays.info["runs"]
            assert runs["where"] == "cluster" and len(runs["replicas"]) == 1
            assert runs["replicas"][0]["pid"] != engine["process"].pid and runs["replicas"][0]["node"]
            assert logged == ["arrays ready"]
            for dtype in ("uint8", "int16", "float32", "float64", "bool"):
                a = (np.arange(24).reshape(2, 3, 4) % 2).astype(dtype) if dtype == "bool" else \
                    np.arange(24, dtype=dtype).reshape(2, 3, 4)
                described = await arrays.api.describe(a)
                assert described == {"dtype": dtype, "shape": [2, 3, 4], "sum": float(a.sum()), "is_numpy": True}
                back = await arrays.api.plus_one(a)
                expected = ~a if dtype == "bool" else a + np.ones(1, dtype=dtype)
                assert back.dtype == a.dtype and np.array_equal(back, expected)
            big = np.random.default_rng(1).random((1024, 1024), dtype=np.float32)  # 4 MiB: pieces both ways
            assert np.array_equal(await arrays.api.plus_one(big), big + 1)
            assert await arrays.api.through_page(lambda x: x + 10, np.arange(3)) == pytest.approx([11, 13, 15])
            add = await arrays.api.adder(5)
            assert await add(2) == 7
            assert await arrays.api.log_twice("twice") == "logged" and logged[-2:] == ["twice", "twice"]
            cluster = (await client.engine.info())["cluster"]
            assert cluster["address"] == "local" and cluster["nodes"] == 1 and cluster["resources"]["CPU"] == 2
            listed = await client.engine.list()
            assert [entry["runs"]["where"] for entry in listed] == ["cluster"]

            lines: list[dict] = []
            slow = await client.load_plugin(SLOW, output=lines.append)
            assert await slow.api.shout("from the actor") is True
            deadline = time.monotonic() + 10
            while not any(line["text"] == "shout: from the actor" for line in lines):
                assert time.monotonic() < deadline, lines
                await asyncio.sleep(0.05)
            assert {line["stream"] for line in lines} == {"stdout"}
            environment = await slow.api.environment()
            assert "PYJOY_ENGINE_TOKEN" not in environment["environ"]
            assert TOKEN not in json.dumps(environment)
        finally:
            await client.close()

    run_async(main())


def test_map_over_two_replicas_answers_two_hundred_items_in_order_with_progress(engine: dict) -> None:
    async def main() -> None:
        client = await connect(engine)
        try:
            replicated = await client.load_plugin(REPLICATED)
            replicas = replicated.info["runs"]["replicas"]
            assert len(replicas) == 2 and len({replica["pid"] for replica in replicas}) == 2
            progress: list[dict] = []
            items = [int(x) for x in np.random.default_rng(7).integers(-1000, 1000, 200)]
            results = await client.map(replicated, "square", items, progress=progress.append)
            assert [result["square"] for result in results] == [x * x for x in items]
            assert {result["pid"] for result in results} == {replica["pid"] for replica in replicas}
            await asyncio.sleep(0.2)  # the last progress call is not awaited by map's answer
            assert progress[-1] == {"done": 200, "total": 200}
            assert all(a["done"] <= b["done"] for a, b in zip(progress, progress[1:]))
            with pytest.raises(RemoteError, match="exports no function 'nothing'"):
                await client.map(replicated, "nothing", [1])
            bad = [*range(37), "seven", *range(38, 80)]  # items go in chunks: the failing one is still named
            with pytest.raises(RemoteError, match=r"map: square\(item 37\) failed on replica [01]: TypeError: can't "
                                                  "multiply sequence"):
                await client.map(replicated, "square", bad)
            # More arrays than one message to the engine holds (16 MiB): the client sends them as
            # several maps, the replicas answer all, in order, errors naming the item in the whole batch.
            arrays = [np.full(40_000, i, dtype=np.float32) for i in range(110)]  # 17.6 MB
            progress.clear()
            answers = await client.map(replicated, "square", arrays, progress=progress.append)
            assert [float(answer["square"][0]) for answer in answers] == [float(i * i) for i in range(110)]
            await asyncio.sleep(0.2)
            assert progress[-1] == {"done": 110, "total": 110}
            with pytest.raises(RemoteError, match=r"map: square\(item 100\) failed on replica [01]: TypeError"):
                await client.map(replicated, "square", [*arrays[:100], "seven", *arrays[101:]])
            with pytest.raises(ValueError, match="map: item 1 holds 20000000 bytes of arrays, over the 16777216"):
                await client.map(replicated, "square", [1, np.zeros(20_000_000, dtype=np.uint8)])
            three = await client.load_plugin(REPLICATED, replicas=3)  # a count chosen by the page, not the config's
            assert len(three.info["runs"]["replicas"]) == 3
            pids = {r["pid"] for r in await client.map(three, "square", list(range(30)))}
            assert pids == {replica["pid"] for replica in three.info["runs"]["replicas"]}
            with pytest.raises(RemoteError, match="replicas should be a whole number from 1 to 64"):
                await client.engine.start(REPLICATED, replicas=0)
            await client.engine.stop(three.id)
            arrays = await client.load_plugin(ARRAYS)
            stacked = [np.full((4, 4), i, dtype=np.float32) for i in range(10)]
            described = await client.map(arrays, "describe", stacked)
            assert [d["sum"] for d in described] == [16.0 * i for i in range(10)]
        finally:
            await client.close()

    run_async(main())


def test_ordinary_calls_are_spread_over_the_replicas_and_calls_with_callbacks_stay_on_the_first(engine: dict) -> None:
    async def main() -> None:
        client = await connect(engine)
        try:
            spread = await client.load_plugin(SPREAD)
            first, second = (replica["pid"] for replica in spread.info["runs"]["replicas"])
            answers = [await spread.api.where(i) for i in range(6)]  # one after another: round the replicas
            assert [answer["double"] for answer in answers] == [2 * i for i in range(6)]
            assert {answer["pid"] for answer in answers} == {first, second}
            assert all(answer["model"] == f"loaded in {answer['pid']}" for answer in answers)
            answers = await asyncio.gather(*(spread.api.where(i) for i in range(40)))  # at once: the least busy
            assert [answer["double"] for answer in answers] == [2 * i for i in range(40)]
            assert {answer["pid"] for answer in answers} == {first, second}
            # A callback is the page's, reached through the first replica's session: such calls run there.
            for _ in range(4):
                assert await spread.api.through_page(lambda x: x + 1) == {"pid": first, "value": 4}
            # A function made on another replica cannot come back: the call says so (the first's can).
            outcomes = []
            for _ in range(2):
                try:
                    outcomes.append(await (await spread.api.maker())())
                except RemoteError as error:
                    outcomes.append(str(error))
            assert first in outcomes and any("returned functions from replica 1" in str(o) for o in outcomes), outcomes

            os.kill(second, signal.SIGKILL)  # outside any map: the replica is started again
            deadline, pids = time.monotonic() + 60, set()
            while len(pids - {second}) < 2:
                assert time.monotonic() < deadline, pids
                try:
                    pids |= {(await spread.api.where(1))["pid"]}
                except RemoteError as error:
                    assert "replica 1 of plugin 'Spread' died during where()" in str(error)
                    await asyncio.sleep(0.2)
            assert first in pids
        finally:
            await client.close()

    run_async(main())


def test_a_request_no_node_can_satisfy_is_refused_at_once(engine: dict) -> None:
    async def main() -> None:
        client = await connect(engine)
        try:
            for resources, expected in (({"gpus": 1}, "no node in the cluster has a GPU"),
                                        ({"cpus": 64}, "no node in the cluster has 64 CPUs"),
                                        ({"memory": "4TB"}, "no node in the cluster has 4e\\+12 bytes of memory"),
                                        ({"gpu": 1}, "unknown 'gpu'")):
                started = time.monotonic()
                with pytest.raises(RemoteError, match=expected):
                    await client.engine.start(plugin("Greedy", "api.export({})", resources=resources))
                assert time.monotonic() - started < 5
            assert await client.engine.list() == []
        finally:
            await client.close()

    run_async(main())


def test_an_actor_killed_mid_call_fails_its_calls_at_once_and_a_replica_is_started_again(engine: dict) -> None:
    async def main() -> None:
        client = await connect(engine)
        try:
            slow = await client.load_plugin(SLOW)
            pid = await slow.api.pid()
            waiting = asyncio.ensure_future(slow.api.wait())
            await asyncio.sleep(0.3)
            os.kill(pid, signal.SIGKILL)
            started = time.monotonic()
            with pytest.raises((ClosedError, RemoteError), match="Ray actor .*died"):
                await waiting
            assert time.monotonic() - started < 15
            entry = next(e for e in await client.engine.list() if e["id"] == slow.id)
            assert entry["state"] == "exited"
            again = await client.load_plugin(SLOW)  # a new actor
            assert await again.api.pid() != pid

            replicated = await client.load_plugin(REPLICATED)
            second = replicated.info["runs"]["replicas"][1]["pid"]
            mapping = asyncio.ensure_future(client.map(replicated, "slow_square", list(range(400))))
            await asyncio.sleep(1.0)
            os.kill(second, signal.SIGKILL)
            with pytest.raises(RemoteError, match="replica 1 of plugin 'Replicated' died .*started again"):
                await mapping
            deadline = time.monotonic() + 60
            while True:  # the replica comes back: a later map uses two live actors again
                try:
                    results = await client.map(replicated, "square", list(range(40)))
                    break
                except RemoteError:
                    assert time.monotonic() < deadline
                    await asyncio.sleep(0.5)
            assert [r["square"] for r in results] == [x * x for x in range(40)]
            pids = {r["pid"] for r in results}
            assert len(pids) == 2 and second not in pids
        finally:
            await client.close()

    run_async(main())


def test_requirements_are_installed_on_the_node_through_ray_runtime_env(engine: dict) -> None:
    async def main() -> None:
        client = await connect(engine)
        try:
            progress: list[dict] = []
            probed = await client.load_plugin(PROBED, progress=progress.append)
            assert await probed.api.value() == "probe 0.1.0"
            assert any(PROBE in event["message"] and "runtime_env" in event["message"] for event in progress)
            with pytest.raises(RemoteError, match="file: URLs"):
                await client.engine.start(plugin("Local", "api.export({})", requirements=["x @ file:///etc"]))
        finally:
            await client.close()

    run_async(main())



def test_without_ray_the_engine_refuses_replicas_and_map_saying_they_need_it(tmp_path) -> None:
    async def main(url: str) -> None:
        client = await EngineClient.connect(url, origin=APP)
        try:
            arrays = await client.load_plugin(ARRAYS)
            assert arrays.info["runs"] == {"where": "local", "pid": arrays.info["runs"]["pid"]}
            assert "cluster" not in await client.engine.info()
            with pytest.raises(RemoteError, match="runs as a local process; map spreads calls .* --ray"):
                await client.map(arrays, "describe", [np.zeros(2)])
            with pytest.raises(RemoteError, match="replicas run on a Ray cluster"):
                await client.engine.start(REPLICATED, replicas=2)
        finally:
            await client.close()

    with engine_running(tmp_path, env={"PYJOY_ENGINE_TOKEN": TOKEN}) as (url, _):
        run_async(main(url))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def children(pid: int) -> list[int]:
    """The live processes whose parent is `pid` (from /proc: no process library needed)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
        except (OSError, IndexError):
            pass
    return found


def test_sigterm_to_the_ray_engine_ends_its_engine_process_and_the_actors_with_it(tmp_path) -> None:
    """`pyjoy engine --ray` is a supervisor running the engine as its child: a service manager's
    SIGTERM to it must end the child and its Ray (actors included), not orphan them."""
    async def actor_pid(url: str) -> int:
        client = await EngineClient.connect(url, origin=APP)
        try:
            return (await client.load_plugin(REPLICATED)).info["runs"]["replicas"][0]["pid"]
        finally:
            await client.close()

    env = {"PYJOY_ENGINE_TOKEN": TOKEN}
    with engine_running(tmp_path, "--ray", "--ray-init", json.dumps(RAY_INIT), env=env) as (url, supervisor):
        engine_children = children(supervisor.pid)
        assert len(engine_children) == 1, engine_children  # the engine itself, run by the supervisor
        actor = run_async(actor_pid(url))
        assert alive(actor)
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=40) == 0
    deadline = time.monotonic() + 20
    while alive(engine_children[0]) or alive(actor):
        assert time.monotonic() < deadline, "the engine's child or its Ray actor outlived the supervisor"
        time.sleep(0.2)


def test_a_local_ray_whose_driver_or_raylet_ends_is_started_again_and_the_reason_is_told(tmp_path) -> None:
    """A local Ray ends with its driver (the engine's child): the supervisor serves without it,
    saying why (the status), then starts the engine on a new local Ray, which runs plugins
    again. Its raylet killed (the driver lives on, the head answers): the engine notices once
    the head counts the node dead, and starts a new one likewise. Before, it waited for the
    dead head for ever, or stayed "connected" to a node that could run nothing."""
    from tests.test_engine_ray_lost import connect_when

    async def lost_then_back(url: str, reason: str) -> None:
        lost = await connect_when(url, "lost", within=60)
        try:
            assert (await lost.engine.info())["cluster"]["reason"] == reason
        finally:
            await lost.close()
        client = await connect_when(url, "connected", within=90)
        try:
            replicated = await client.load_plugin(REPLICATED)
            assert (await replicated.api.square(7))["square"] == 49
        finally:
            await client.close()

    async def main(url: str, supervisor: int) -> None:
        [first] = children(supervisor)
        os.kill(first, signal.SIGKILL)  # as a crash would: its local Ray's processes end with it
        await lost_then_back(url, "the Ray cluster at local was lost: the engine's Ray driver ended (status -9) "
                                  "(killed by SIGKILL)")
        [second] = children(supervisor)
        assert second != first and not alive(first)
        [raylet] = [pid for pid in children(second) if Path(f"/proc/{pid}/comm").read_text().strip() == "raylet"]
        os.kill(raylet, signal.SIGKILL)
        await lost_then_back(url, "the Ray cluster at local was lost: the head counts this engine's node (its raylet) "
                                  "as dead")
        [third] = children(supervisor)
        assert third != second

    env = {"PYJOY_ENGINE_TOKEN": TOKEN}
    with engine_running(tmp_path, "--ray", "--ray-init", json.dumps(RAY_INIT), env=env) as (url, supervisor):
        run_async(main(url, supervisor.pid))
