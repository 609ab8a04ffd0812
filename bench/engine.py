"""Engine benchmark: calls and array round trips through `pyjoy engine`, each beside its floor.

Run from the repository root:

    python bench/engine.py [--json PATH] [--rounds N]

It starts, on 127.0.0.1, a real `pyjoy engine` (its own process) running one native-python
plugin (`BENCH_PLUGIN` below: `noop()` and `roundtrip(a)`, each plugin in a process of its
own) and, beside it, a bare aiohttp WebSocket echo server (a process of its own too: it
sends back each frame it gets, as it got it). One client measures both in the same run,
with the kinds alternating in rounds so that other load on the machine falls on all of
them alike:

1. Call latency, microseconds, median and p90 of many calls, each timed alone:
   `await plugin.noop()` through the engine (client -> engine -> plugin process -> engine ->
   client), beside one small text frame echoed by the bare server (the floor).
   Goal: within 1.5x of the echo (medians).
2. Array round trips, milliseconds, median of several: `await plugin.roundtrip(a)` with `a`
   a float32 numpy array of 1, 16 and 64 MB, which comes back equal (checked, untimed),
   beside the same bytes sent raw to the echo server and received back: as frames of
   `wire.PIECE_BYTES` (what the engine's wire cuts them into) and, for context, as one frame
   (the floor is the faster of the two). Goal: within 1.5x of the floor (medians).

Beside each, the CPU time it cost all its processes together (the client's, and the echo
server's or the engine's and the plugin's), per call and per round trip: on a machine that
other work loads, wall times swing with it, and CPU time is what a path costs wherever it runs.

The client today is the Python one (`pyjoy/engine/client.py`, aiohttp, the same library the
floor's client uses): the page's WebSocket transport (`app/rpc/websocket.js`, ENGINE.md
"Not built yet") was not there when this was written, so there is no browser row (a page ->
engine -> page call beside a page -> bare echo -> page) yet; `CLIENTS` is where it goes.
Nor is there a model row (batch throughput of an ONNX model through the engine's model
service beside onnxruntime in one process): the model service was built beside this, with
a benchmark of its own (`bench/engine_model.py`), not on this branch.

It prints markdown tables and writes every number, each sample included, with the machine
(CPUs, load average before the run) and the date, to bench/results/engine.json. Seconds on
a quiet machine with 2 CPUs; a minute or more on a loaded one.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's pyjoy, for the client as for the engine (run from ROOT)

from pyjoy.devtools import engine_running, free_port, machine_facts
from pyjoy.engine import wire
from pyjoy.engine.client import EngineClient

TOKEN = "bench-" + "x" * 40
GOAL_CALL_RATIO = 1.5  # engine noop() median / bare echo median
GOAL_ROUNDTRIP_RATIO = 1.5  # engine round trip median / raw WebSocket round trip median, each size

CALL_WARMUP = 200
CALLS_PER_ROUND = 300
# Array sizes in MB -> (warm-up runs, timed runs per round).
SIZES: dict[int, tuple[int, int]] = {1: (5, 10), 16: (2, 3), 64: (1, 2)}

# The clients that measure the engine. Only the Python client for now (see the docstring).
CLIENTS = {"python": "Python client (pyjoy/engine/client.py, aiohttp)"}
CALLS = {
    "echo": "one small text frame, echoed by a bare aiohttp WebSocket server (floor)",
    "engine": "`await plugin.noop()` through the engine (client -> engine -> plugin process and back)",
}
ROUNDTRIPS = {
    "raw_pieces": f"raw binary sends of the bytes in {wire.PIECE_BYTES >> 20} MiB frames, echoed by the bare server",
    "raw_whole": "raw binary send of the bytes as one frame, echoed by the bare server",
    "engine": "`await plugin.roundtrip(a)` through the engine, `a` a float32 numpy array",
}

BENCH_PLUGIN = """<config lang="json">
{"name": "Engine bench", "type": "native-python", "version": "0.1.0", "api_version": "0.1.8"}
</config>
<script lang="python">
from imjoy import api

class Bench:
    def noop(self):
        return None

    def pid(self):
        import os
        return os.getpid()

    def roundtrip(self, a):
        return a

api.export(Bench())
</script>
"""


# -- the floor: a bare aiohttp WebSocket echo server, in a process of its own -------------

async def serve_echo(port: int) -> None:
    async def handle(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0, compress=False)
        await ws.prepare(request)
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                await ws.send_str(message.data)
            elif message.type == aiohttp.WSMsgType.BINARY:
                await ws.send_bytes(message.data)
        return ws

    app = web.Application()
    app.router.add_get("/", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


# -- the measurements ----------------------------------------------------------------------

def fresh(mb: int) -> np.ndarray:
    values = np.full(mb * 2**20 // 4, 0.5, dtype=np.float32)
    values[0], values[-1] = 1, 2
    return values


async def raw_roundtrip(ws: aiohttp.ClientWebSocketResponse, data: memoryview, piece: int) -> tuple[float, float]:
    """ms to send `data` in frames of `piece` bytes and get every byte back, and the client's CPU ms."""

    async def receive() -> None:  # while sending: the echo waits for room to send back
        got = 0
        while got < data.nbytes:
            got += len((await ws.receive()).data)

    start, cpu = time.perf_counter(), time.process_time()
    receiving = asyncio.ensure_future(receive())
    for at in range(0, data.nbytes, piece):
        await ws.send_bytes(data[at:at + piece])
    await receiving
    return (time.perf_counter() - start) * 1000, (time.process_time() - cpu) * 1000


async def engine_roundtrip(plugin: Any, values: np.ndarray) -> tuple[float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    back = await plugin.api.roundtrip(values)
    elapsed = (time.perf_counter() - start) * 1000, (time.process_time() - cpu) * 1000
    if not (isinstance(back, np.ndarray) and back.dtype == values.dtype and np.array_equal(back, values)):
        raise AssertionError(f"the {values.nbytes >> 20} MB array came back changed: {back!r:.200}")
    return elapsed


def cpu_ms(pids: list[int]) -> float:
    """CPU time (user and system) the processes used so far, ms (in clock ticks: 10 ms)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total * 1000 / os.sysconf("SC_CLK_TCK")


async def measure(echo_url: str, engine_url: str, rounds: int, echo_pid: int, engine_pid: int) -> dict[str, Any]:
    client = await EngineClient.connect(engine_url)
    http = aiohttp.ClientSession()
    try:
        plugin = await client.load_plugin(BENCH_PLUGIN)
        ws = await http.ws_connect(echo_url, max_msg_size=0, compress=0)

        async def echo() -> None:
            await ws.send_str("0")
            await ws.receive()

        calls = {"echo": echo, "engine": plugin.api.noop}
        # CPU time besides wall time: on a machine other work loads, what each path costs
        # all its processes together is steadier than how long it took.
        servers = {"echo": [echo_pid], "raw_pieces": [echo_pid], "raw_whole": [echo_pid],
                   "engine": [engine_pid, await plugin.api.pid()]}
        call_cpu: dict[str, dict[str, float]] = {kind: {"client": 0.0, "servers": 0.0, "n": 0} for kind in calls}
        trip_cpu: dict[str, dict[int, dict[str, float]]] = {
            kind: {size: {"client": 0.0, "servers": 0.0, "n": 0} for size in SIZES} for kind in ROUNDTRIPS}
        for call in calls.values():
            for _ in range(CALL_WARMUP):
                await call()
        call_ms: dict[str, list[float]] = {kind: [] for kind in calls}
        trip_ms: dict[str, dict[int, list[float]]] = {kind: {size: [] for size in SIZES} for kind in ROUNDTRIPS}
        arrays = {size: fresh(size) for size in SIZES}
        trips = {
            "raw_pieces": lambda a: raw_roundtrip(ws, memoryview(a).cast("B"), wire.PIECE_BYTES),
            "raw_whole": lambda a: raw_roundtrip(ws, memoryview(a).cast("B"), a.nbytes),
            "engine": lambda a: engine_roundtrip(plugin, a),
        }
        for size, (warmup, _) in SIZES.items():
            for trip in trips.values():
                for _ in range(warmup):
                    await trip(arrays[size])
        for _ in range(rounds):
            for kind, call in calls.items():
                remote, cpu = cpu_ms(servers[kind]), time.process_time()
                for _ in range(CALLS_PER_ROUND):
                    start = time.perf_counter()
                    await call()
                    call_ms[kind].append((time.perf_counter() - start) * 1000)
                call_cpu[kind]["client"] += (time.process_time() - cpu) * 1000
                call_cpu[kind]["servers"] += cpu_ms(servers[kind]) - remote
                call_cpu[kind]["n"] += CALLS_PER_ROUND
            for size, (_, runs) in SIZES.items():
                for kind, trip in trips.items():
                    for _ in range(runs):
                        remote = cpu_ms(servers[kind])
                        wall, client_cpu = await trip(arrays[size])
                        trip_ms[kind][size].append(wall)
                        trip_cpu[kind][size]["client"] += client_cpu
                        trip_cpu[kind][size]["servers"] += cpu_ms(servers[kind]) - remote
                        trip_cpu[kind][size]["n"] += 1
        return {"calls": call_ms, "roundtrips": trip_ms, "calls_cpu": call_cpu, "roundtrips_cpu": trip_cpu}
    finally:
        await client.close()
        await http.close()


# -- statistics and tables ---------------------------------------------------------------

def summary(samples: list[float], scale: float = 1.0) -> dict[str, float]:
    values = sorted(x * scale for x in samples)
    p90 = statistics.quantiles(values, n=10, method="inclusive")[-1] if len(values) > 1 else values[0]
    return {"median": statistics.median(values), "p90": p90, "min": values[0], "max": values[-1], "n": len(values)}


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def results_of(samples: dict[str, Any]) -> dict[str, Any]:
    calls = {kind: summary(times, 1000) for kind, times in samples["calls"].items()}
    trips = {kind: {size: summary(times) for size, times in by_size.items()} for kind, by_size in samples["roundtrips"].items()}
    floors = {size: min(("raw_pieces", "raw_whole"), key=lambda kind: trips[kind][size]["median"]) for size in SIZES}
    call_ratio = calls["engine"]["median"] / calls["echo"]["median"]
    goals = [{"goal": f"a call within {GOAL_CALL_RATIO}x of a bare aiohttp WebSocket echo (medians)",
              "ratio": call_ratio, "met": call_ratio <= GOAL_CALL_RATIO,
              "measured": f"{calls['engine']['median']:.0f} us vs {calls['echo']['median']:.0f} us"}]
    for size in SIZES:
        engine, floor = trips["engine"][size]["median"], trips[floors[size]][size]["median"]
        goals.append({"goal": f"{size} MB round trip within {GOAL_ROUNDTRIP_RATIO}x of raw WebSocket sends of the "
                              "same bytes (medians)", "ratio": engine / floor, "met": engine / floor <= GOAL_ROUNDTRIP_RATIO,
                      "measured": f"{engine:.1f} ms vs {floor:.1f} ms ({floors[size]})"})
    per = lambda c: {"client": c["client"] / c["n"], "servers": c["servers"] / c["n"],  # noqa: E731
                     "total": (c["client"] + c["servers"]) / c["n"]}
    cpu = {"calls_us": {kind: {k: v * 1000 for k, v in per(c).items()} for kind, c in samples["calls_cpu"].items()},
           "roundtrips_ms": {kind: {size: per(c) for size, c in by_size.items()}
                             for kind, by_size in samples["roundtrips_cpu"].items()}}
    return {"calls_us": calls, "roundtrips_ms": trips, "floors": floors, "goals": goals, "cpu": cpu}


def table(results: dict[str, Any]) -> str:
    calls, trips, floors, goals = (results[k] for k in ("calls_us", "roundtrips_ms", "floors", "goals"))
    engine, echo = calls["engine"], calls["echo"]
    lines = [
        "| measure (Python client) | through the engine | floor | engine / floor | goal |",
        "|---|---|---|---|---|",
        f"| call `noop()`, median us | {engine['median']:.0f} | {echo['median']:.0f} (bare aiohttp echo of a text "
        f"frame) | {engine['median'] / echo['median']:.2f}x | <= {GOAL_CALL_RATIO}x: {verdict(goals[0]['met'])} |",
        f"| call `noop()`, p90 us | {engine['p90']:.0f} | {echo['p90']:.0f} | {engine['p90'] / echo['p90']:.2f}x | - |",
    ]
    for goal, size in zip(goals[1:], SIZES):
        ours, floor = trips["engine"][size]["median"], trips[floors[size]][size]["median"]
        how = "4 MiB frames" if floors[size] == "raw_pieces" else "one frame"
        lines.append(f"| round trip {size} MB float32, median ms | {ours:.1f} | {floor:.1f} (raw binary echo, {how}) "
                     f"| {ours / floor:.2f}x | <= {GOAL_ROUNDTRIP_RATIO}x: {verdict(goal['met'])} |")
    return "\n".join(lines)


def context_table(results: dict[str, Any]) -> str:
    trips, cpu = results["roundtrips_ms"], results["cpu"]
    lines = ["| round trip (ms, median / min; CPU ms per trip, all processes) | "
             + " | ".join(f"{size} MB" for size in SIZES) + " |", "|---" * (len(SIZES) + 1) + "|"]
    for kind, label in ROUNDTRIPS.items():
        cells = [f"{trips[kind][size]['median']:.1f} / {trips[kind][size]['min']:.1f}; "
                 f"CPU {cpu['roundtrips_ms'][kind][size]['total']:.0f}" for size in SIZES]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    calls = cpu["calls_us"]
    lines.append("")
    lines.append(f"CPU per call, all processes: {calls['engine']['total']:.0f} us through the engine, "
                 f"{calls['echo']['total']:.0f} us for the echo")
    return "\n".join(lines)


# -- the run -------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "engine.json")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of alternating measurements (default 5)")
    parser.add_argument("--serve-echo", type=int, help=argparse.SUPPRESS)  # the floor's server, in its own process
    args = parser.parse_args(argv)
    if args.serve_echo:
        asyncio.run(serve_echo(args.serve_echo))
        return 0

    load_before = os.getloadavg()[0]
    started = time.monotonic()
    env = {"PYJOY_ENGINE_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}  # the engine runs this checkout's pyjoy too
    port = free_port()
    echo = subprocess.Popen([sys.executable, __file__, "--serve-echo", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        if echo.stdout.readline().strip() != "ready":
            raise RuntimeError("the echo server did not start")
        with tempfile.TemporaryDirectory(prefix="pyjoy-bench-engine-") as workdir, \
                engine_running(Path(workdir), env=env) as (url, engine):
            samples = asyncio.run(measure(f"ws://127.0.0.1:{port}/", url, args.rounds, echo.pid, engine.pid))
    finally:
        echo.terminate()
        echo.wait()
    results = results_of(samples)
    print(f"load average before: {load_before:.2f}\n")
    print(table(results) + "\n\n" + context_table(results))
    record = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_facts("none (the Python client)", load_before),
        "client": CLIENTS["python"],
        "not_measured": {
            "browser": "a page -> engine -> page row needs the page's WebSocket transport (app/rpc/websocket.js), "
                       "not built when this ran",
            "model": "model batch throughput: the engine's ONNX model service and its bench/engine_model.py were "
                     "not on this branch when this ran",
        },
        "seconds": round(time.monotonic() - started, 1),
        "settings": {"rounds": args.rounds, "call_warmup": CALL_WARMUP, "calls_per_round": CALLS_PER_ROUND,
                     "sizes_mb": {size: {"warmup": w, "runs_per_round": n} for size, (w, n) in SIZES.items()},
                     "piece_bytes": wire.PIECE_BYTES},
        "labels": {"calls": CALLS, "roundtrips": ROUNDTRIPS},
        **results,
        "samples": samples,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=1) + "\n")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
