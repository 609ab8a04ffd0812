"""Engine benchmark: calls, array round trips and model throughput through `pyjoy engine`,
each beside its floor, in one run.

Run from the repository root after `python build.py` (needs the engine and test extras):

    python bench/engine.py [--json PATH] [--rounds N] [--dist DIST]

It starts, on 127.0.0.1, a real `pyjoy engine` (its own process, allowing the served app's
origin) running one native-python plugin (`BENCH_PLUGIN` below: `noop()`, `call_back(f)`
and `roundtrip(a)`, in a process of its own) and, beside it, a bare aiohttp WebSocket echo
server (a process of its own too: it sends back each frame it gets, as it got it). Two
clients measure both, one after the other, each with the kinds alternating in rounds so
that other load on the machine falls on all of them alike:

- the page: dist/ served, in Chromium; the page connects with `pyjoy.connectEngine`, loads
  the plugin with `pyjoy.loadPlugin` (app/rpc/websocket.js carries it) and times, in the
  page, calls and float32 ndarray round trips (`{_rtype: "ndarray", _rvalue: ArrayBuffer,
  ...}`, a fresh buffer each time, made untimed: a sent buffer is moved), beside a raw
  WebSocket of the same page (binaryType arraybuffer) to the echo server;
- the Python client (`pyjoy/engine/client.py` with `direct=True`, aiohttp, the same library as its floor's
  client), with the CPU time each path cost all its processes (client, engine and plugin,
  or client and echo server): on a machine that other work loads, wall times swing with
  it, and CPU time is what a path costs wherever it runs.

1. Call latency, microseconds, median and p90 of many calls, each timed alone:
   `await plugin.noop()` on the engine's plugin (client -> plugin process -> client, on the
   plugin's direct socket that the engine passed to its process, as the page and the client
   use it: ENGINE.md, The direct socket), beside one small text frame echoed by the bare server (the floor); from the
   page also `await plugin.call_back(f)`, the plugin calling the page's `f` before it
   answers, beside two echoes one after the other. Goal: within 1.5x of the floor (medians).
2. Array round trips, milliseconds, median of several: a float32 array of 1, 16 and 64 MB
   to `plugin.roundtrip(a)`, which comes back equal (checked, untimed), beside the same
   bytes sent raw to the echo server and received back in frames of `wire.PIECE_BYTES`
   (what the engine's wire cuts them into; the Python client also as one frame, for
   context: its floor is the faster of the two). Goal: within 1.5x of the floor (medians).
3. Model batch throughput (bench/engine_model.py's `model_throughput`): the app's
   image-recognition model through the engine's model service beside onnxruntime called
   directly in this process. Goal: at least 0.9x (medians).

It prints one markdown table and writes every number, each sample included, with the
machine (CPUs, Chromium, load average before the run) and the date, to
bench/results/engine.json. About two minutes with 2 CPUs (5 rounds; the 64 MB page trips most of it).
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
import onnxruntime
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's pyjoy, for the client as for the engine (run from ROOT)

from pyjoy.devtools import engine_running, free_port, launch_options, machine_facts, served
from pyjoy.engine import wire
from pyjoy.engine.client import EngineClient

from engine_model import app_model, model_throughput  # bench/engine_model.py: the model row

TOKEN = "bench-" + "x" * 40
GOAL_CALL_RATIO = 1.5  # engine noop() median / bare echo median
GOAL_ROUNDTRIP_RATIO = 1.5  # engine round trip median / raw WebSocket round trip median, each size
GOAL_MODEL_RATIO = 0.9  # images per second through the engine / onnxruntime in one process (at least)

CALL_WARMUP = 200
CALLS_PER_ROUND = 300
# Array sizes in MB -> (warm-up runs, timed runs per round).
SIZES: dict[int, tuple[int, int]] = {1: (5, 10), 16: (2, 3), 64: (1, 2)}

# The Python client's measures (the page's are PAGE_CALLS and PAGE_TRIPS below).
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

    async def call_back(self, f):
        return await f()

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
    client = await EngineClient.connect(engine_url, direct=True)  # as the page: the direct socket
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


# -- the page: the same measures from Chromium, timed in the page ---------------------------

# Set up once in the page: the engine connected with pyjoy.connectEngine, the bench plugin
# loaded with pyjoy.loadPlugin, and a raw WebSocket to the echo server (the floor).
PAGE_SETUP = """async ([engineUrl, echoUrl, source, piece]) => {
  const engine = await pyjoy.connectEngine(engineUrl);
  const bench = await pyjoy.loadPlugin(source);
  const ws = new WebSocket(echoUrl);
  ws.binaryType = "arraybuffer";
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error(`the echo server at ${echoUrl} did not answer`));
  });
  let waiting = null; // {need, got, resolve}: what the echo still owes
  ws.onmessage = ({ data }) => {
    waiting.got += typeof data === "string" ? data.length : data.byteLength;
    if (waiting.got >= waiting.need) waiting.resolve();
  };
  const echoed = (need) => new Promise((resolve) => { waiting = { need, got: 0, resolve }; });
  const echo = () => {
    const back = echoed(1);
    ws.send("0");
    return back;
  };
  const calls = {
    echo,
    echo_twice: async () => { await echo(); await echo(); },
    engine: () => bench.noop(),
    engine_callback: () => bench.call_back(() => null),
  };
  const trips = {
    raw_pieces: async (buffer) => {
      const back = echoed(buffer.byteLength);
      for (let at = 0; at < buffer.byteLength; at += piece) {
        ws.send(new Uint8Array(buffer, at, Math.min(piece, buffer.byteLength - at)));
      }
      await back;
      return null;
    },
    engine: (buffer) => bench.roundtrip({ _rtype: "ndarray", _rvalue: buffer, _rshape: [buffer.byteLength / 4], _rdtype: "float32" }),
  };
  const fresh = (mb) => {
    const values = new Float32Array(mb * 2 ** 18).fill(0.5);
    values[0] = 1;
    values[values.length - 1] = 2;
    return values.buffer;
  };
  const check = (back, n) => {  // untimed: every value, against what was sent
    if (back === null) return;
    const values = new Float32Array(back._rvalue);
    if (back._rdtype !== "float32" || values.length !== n || values[0] !== 1 || values[n - 1] !== 2 ||
        values.subarray(1, n - 1).some((v) => v !== 0.5)) throw new Error(`the ${n * 4 >> 20} MB array came back changed`);
  };
  window.engineBench = {
    async calls(kind, n) {
      const out = [];
      for (let i = 0; i < n; i += 1) {
        const start = performance.now();
        await calls[kind]();
        out.push(performance.now() - start);
      }
      return out;
    },
    async trips(kind, mb, n) {
      const out = [];
      for (let i = 0; i < n; i += 1) {
        const buffer = fresh(mb); // a sent buffer is moved: a fresh one each time, untimed
        const start = performance.now();
        const back = await trips[kind](buffer);
        out.push(performance.now() - start);
        check(back, mb * 2 ** 18);
      }
      return out;
    },
  };
  return { engine: engine.state, isolated: crossOriginIsolated };
}"""

# Page call kinds: the two engine calls, each beside its floor.
PAGE_CALLS = {
    "echo": "one small text frame, echoed by the bare aiohttp server (floor of a call)",
    "echo_twice": "two echoes one after the other (floor of a call with a call back: two crossings each way)",
    "engine": "`await plugin.noop()` through the engine (page -> engine -> plugin process -> engine -> page)",
    "engine_callback": "`await plugin.call_back(f)`: the plugin calls the page's `f` back before it answers",
}
PAGE_TRIPS = {
    "raw_pieces": f"raw binary sends of the bytes in {wire.PIECE_BYTES >> 20} MiB frames on a page WebSocket, "
                  "echoed by the bare server",
    "engine": "`await plugin.roundtrip({_rtype: 'ndarray', ...})` through the engine, a float32 ArrayBuffer",
}


def measure_page(app_url: str, engine_url: str, echo_url: str, rounds: int) -> tuple[dict[str, Any], str]:
    """Per-call and per-trip samples in ms, timed in Chromium's page; and Chromium's version."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(**launch_options())
        try:
            page = browser.new_page()
            page.goto(app_url)
            page.wait_for_function("window.pyjoy && pyjoy.timings.workbenchReady", timeout=60_000)
            # A quiet page: Python started and the service worker's caching done, so that
            # neither competes with what is timed.
            page.evaluate("Promise.all([pyjoy.ready, pyjoy.offlineReady]).then(() => null)")
            ready = page.evaluate(PAGE_SETUP, [engine_url, echo_url, BENCH_PLUGIN, wire.PIECE_BYTES])
            if ready["engine"] != "connected":
                raise RuntimeError(f"the page did not connect the engine: {ready}")
            if not ready["isolated"]:  # else performance.now() is coarsened to 100 us
                raise RuntimeError("the page is not cross-origin isolated: its clock is too coarse to time calls")
            for kind in PAGE_CALLS:
                page.evaluate("([kind, n]) => engineBench.calls(kind, n)", [kind, CALL_WARMUP])
            for size, (warmup, _) in SIZES.items():
                for kind in PAGE_TRIPS:
                    page.evaluate("([kind, mb, n]) => engineBench.trips(kind, mb, n)", [kind, size, warmup])
            calls: dict[str, list[float]] = {kind: [] for kind in PAGE_CALLS}
            trips: dict[str, dict[int, list[float]]] = {kind: {size: [] for size in SIZES} for kind in PAGE_TRIPS}
            for _ in range(rounds):
                for kind in PAGE_CALLS:
                    calls[kind] += page.evaluate("([kind, n]) => engineBench.calls(kind, n)", [kind, CALLS_PER_ROUND])
                for size, (_, runs) in SIZES.items():
                    for kind in PAGE_TRIPS:
                        trips[kind][size] += page.evaluate("([kind, mb, n]) => engineBench.trips(kind, mb, n)",
                                                           [kind, size, runs])
            return {"calls": calls, "roundtrips": trips}, browser.version
        finally:
            browser.close()


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


def page_results_of(samples: dict[str, Any]) -> dict[str, Any]:
    calls = {kind: summary(times, 1000) for kind, times in samples["calls"].items()}
    trips = {kind: {size: summary(times) for size, times in by_size.items()} for kind, by_size in samples["roundtrips"].items()}
    goals = []
    for kind, floor, what in (("engine", "echo", "a call"),
                              ("engine_callback", "echo_twice", "a call whose plugin calls the page back")):
        ratio = calls[kind]["median"] / calls[floor]["median"]
        goals.append({"goal": f"{what} from the page within {GOAL_CALL_RATIO}x of the page's bare WebSocket "
                              f"{'echo' if floor == 'echo' else 'two echoes'} (medians)",
                      "ratio": ratio, "met": ratio <= GOAL_CALL_RATIO,
                      "measured": f"{calls[kind]['median']:.0f} us vs {calls[floor]['median']:.0f} us"})
    for size in SIZES:
        engine, floor = trips["engine"][size]["median"], trips["raw_pieces"][size]["median"]
        goals.append({"goal": f"{size} MB round trip from the page within {GOAL_ROUNDTRIP_RATIO}x of the page's raw "
                              "WebSocket sends of the same bytes (medians)",
                      "ratio": engine / floor, "met": engine / floor <= GOAL_ROUNDTRIP_RATIO,
                      "measured": f"{engine:.1f} ms vs {floor:.1f} ms"})
    return {"calls_us": calls, "roundtrips_ms": trips, "goals": goals}


def model_goal(model: dict[str, Any]) -> dict[str, Any]:
    engine, direct = statistics.median(model["engine_images_per_s"]), statistics.median(model["direct_images_per_s"])
    return {"goal": f"model batch throughput through the engine at least {GOAL_MODEL_RATIO}x of onnxruntime called "
                    "directly in one process (medians)", "ratio": engine / direct,
            "met": engine / direct >= GOAL_MODEL_RATIO, "measured": f"{engine:.0f} vs {direct:.0f} images/s"}


def table(page: dict[str, Any], python: dict[str, Any], model: dict[str, Any]) -> str:
    """The whole table: each measure through the engine beside its floor, from the page and
    from the Python client, and the model row."""
    lines = ["| medians | through the engine | floor | engine / floor | goal |", "|---|---|---|---|---|"]
    goal = lambda g, bound: f"{bound}: {verdict(g['met'])}"  # noqa: E731
    calls, trips, goals = page["calls_us"], page["roundtrips_ms"], page["goals"]
    lines.append(f"| page: call `noop()`, µs | {calls['engine']['median']:.0f} | {calls['echo']['median']:.0f} "
                 f"(page WebSocket, bare aiohttp echo of a text frame) | {goals[0]['ratio']:.2f}x "
                 f"| {goal(goals[0], f'<= {GOAL_CALL_RATIO}x')} |")
    lines.append(f"| page: call whose plugin calls the page back, µs | {calls['engine_callback']['median']:.0f} "
                 f"| {calls['echo_twice']['median']:.0f} (two echoes) | {goals[1]['ratio']:.2f}x "
                 f"| {goal(goals[1], f'<= {GOAL_CALL_RATIO}x')} |")
    for g, size in zip(goals[2:], SIZES):
        lines.append(f"| page: round trip {size} MB float32, ms | {trips['engine'][size]['median']:.1f} "
                     f"| {trips['raw_pieces'][size]['median']:.1f} (raw binary echo, {wire.PIECE_BYTES >> 20} MiB "
                     f"frames) | {g['ratio']:.2f}x | {goal(g, f'<= {GOAL_ROUNDTRIP_RATIO}x')} |")
    calls, trips, floors, goals = (python[k] for k in ("calls_us", "roundtrips_ms", "floors", "goals"))
    lines.append(f"| Python client: call `noop()`, µs | {calls['engine']['median']:.0f} | {calls['echo']['median']:.0f} "
                 f"(aiohttp client, bare echo) | {goals[0]['ratio']:.2f}x | {goal(goals[0], f'<= {GOAL_CALL_RATIO}x')} |")
    for g, size in zip(goals[1:], SIZES):
        how = f"{wire.PIECE_BYTES >> 20} MiB frames" if floors[size] == "raw_pieces" else "one frame"
        lines.append(f"| Python client: round trip {size} MB float32, ms | {trips['engine'][size]['median']:.1f} "
                     f"| {trips[floors[size]][size]['median']:.1f} (raw binary echo, {how}) | {g['ratio']:.2f}x "
                     f"| {goal(g, f'<= {GOAL_ROUNDTRIP_RATIO}x')} |")
    g = model_goal(model)
    lines.append(f"| model: {model['model'].split('-')[0]} ({model['images']} images, batches of {model['batch']}, "
                 f"{model['in_flight']} in flight), images/s | {statistics.median(model['engine_images_per_s']):.0f} "
                 f"| {statistics.median(model['direct_images_per_s']):.0f} (onnxruntime in one process, "
                 f"{model['provider_direct']}) | {g['ratio']:.2f}x | {goal(g, f'>= {GOAL_MODEL_RATIO}x')} |")
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
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="the built app (python build.py)")
    parser.add_argument("--serve-echo", type=int, help=argparse.SUPPRESS)  # the floor's server, in its own process
    args = parser.parse_args(argv)
    if args.serve_echo:
        asyncio.run(serve_echo(args.serve_echo))
        return 0

    load_before = os.getloadavg()[0]
    started = time.monotonic()
    env = {"PYJOY_ENGINE_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}  # the engine runs this checkout's pyjoy too
    port = free_port()
    echo_url = f"ws://127.0.0.1:{port}/"
    echo = subprocess.Popen([sys.executable, __file__, "--serve-echo", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        if echo.stdout.readline().strip() != "ready":
            raise RuntimeError("the echo server did not start")
        # One engine for all: the served app's origin may use it (the page), and so may
        # clients that send no Origin (the Python client).
        with served(args.dist) as app_url, tempfile.TemporaryDirectory(prefix="pyjoy-bench-engine-") as workdir, \
                engine_running(Path(workdir), "--app", app_url, env=env) as (url, engine):
            python_samples = asyncio.run(measure(echo_url, url, args.rounds, echo.pid, engine.pid))
            page_samples, chromium = measure_page(app_url, url, echo_url, args.rounds)
            model = asyncio.run(model_throughput(url, *app_model(args.dist), repeats=args.rounds))
    finally:
        echo.terminate()
        echo.wait()
    python, page = results_of(python_samples), page_results_of(page_samples)
    print(f"load average before: {load_before:.2f}\n")
    print(table(page, python, model) + "\n\nPython client, context:\n\n" + context_table(python))
    print(f"\nmodel, the transfer alone (to a plugin that only counts the batches): "
          f"{statistics.median(model['transfer_only_images_per_s']):.0f} images/s; each round's engine / direct: "
          f"{', '.join(f'{r:.2f}' for r in model['paired_ratios'])}")
    record = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {**machine_facts(chromium, load_before), "onnxruntime": onnxruntime.__version__},
        "seconds": round(time.monotonic() - started, 1),
        "settings": {"rounds": args.rounds, "call_warmup": CALL_WARMUP, "calls_per_round": CALLS_PER_ROUND,
                     "sizes_mb": {size: {"warmup": w, "runs_per_round": n} for size, (w, n) in SIZES.items()},
                     "piece_bytes": wire.PIECE_BYTES},
        "goals": page["goals"] + python["goals"] + [model_goal(model)],
        "page": {"client": "Chromium page: pyjoy.connectEngine, pyjoy.loadPlugin (app/rpc/websocket.js), "
                           "timed in the page", "labels": {"calls": PAGE_CALLS, "roundtrips": PAGE_TRIPS},
                 **page, "samples": page_samples},
        "python": {"client": CLIENTS["python"], "labels": {"calls": CALLS, "roundtrips": ROUNDTRIPS},
                   **python, "samples": python_samples},
        "model": model,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=1) + "\n")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
