"""RPC benchmark: calls and array round trips into plugins, each beside its floor, in real Chromium.

Run from the repository root after `python build.py`:

    python bench/rpc.py [--json PATH] [--calls N] [--dist DIR]

It serves dist/ with `pyjoy serve` on 127.0.0.1, opens the app in Debian's Chromium (through
Playwright) and loads two plugins from bench/plugins/ with `pyjoy.loadPlugin(source)`: a
web-python one (Pyodide in a worker inside an opaque-origin iframe) and a web-worker (JS)
one, each exporting `noop()` and `roundtrip(array)`, and a window plugin with `roundtrip`. Everything is measured in that one
page, in one run, with `performance.now()` (5 us resolution: the page is cross-origin
isolated), after warm-up, and once Chromium is idle (the host boots a spare Python sandbox
after a plugin loads; that must not run during the measurements):

1. Call latency, in microseconds, median and p90 of many calls, each timed alone:
   `await plugin.noop()` on the web-python plugin; the floor, a raw `postMessage` echo to a
   bare worker started from a Blob URL in the same page (it posts each message back). For
   context: `noop()` on the web-worker plugin, and a raw echo over the route plugin calls
   take (a MessagePort to a worker inside an iframe with sandbox="allow-scripts", which
   Chromium runs in a process of its own), which separates what the sandbox costs from what
   the RPC costs. The kinds of call alternate in rounds, so that other load on the machine
   falls on all of them alike.
   Goal: the web-python call within 1.5x of the raw echo (medians).
2. Array round trips, in milliseconds, median of several runs: `await plugin.roundtrip(a)`
   where `a` is `{_rtype: "ndarray", _rvalue: ArrayBuffer, _rshape, _rdtype: "float32"}` of
   1, 16 and 64 MB, which comes back the same (checked: shape, dtype, size, values, and the
   sent buffer detached). The floor: one `TypedArray.set` of as many bytes in the page (both
   arrays allocated and touched beforehand). For context: a copy into a newly allocated
   array (what first touching fresh memory adds), a raw transfer echo to the bare worker and
   over the sandbox route, and the round trips to the web-worker plugin (no WASM heap) and
   to the window plugin (another process: chunked). For each, the page's longest task
   while it ran (Long Tasks API), which is how long a click could have waited.
   Goal: the 64 MB web-python round trip within 3x of one TypedArray.set (the buffer enters
   and leaves the WASM heap: two copies; nothing more should cost as much).

It prints markdown tables (numbers beside their floors, ratios, goals met or not) and writes
every number, each sample included, with the machine (CPUs, Chromium version, load average
before the run) and the date, to bench/results/rpc.json. About a minute on 2 CPUs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

from pyjoy.devtools import launch_options, machine_facts, served

ROOT = Path(__file__).resolve().parents[1]
DIST = ROOT / "dist"
PLUGINS = Path(__file__).resolve().parent / "plugins"
TIMEOUT_MS = 120_000

GOAL_CALL_RATIO = 1.5  # web-python noop() median / raw echo median
GOAL_ROUNDTRIP_RATIO = 3.0  # 64 MB web-python round trip / one TypedArray.set of 64 MB
GOAL_ROUNDTRIP_MB = 64

CALL_WARMUP = 200  # calls of each kind before any is timed
CALL_ROUNDS = 5  # the kinds alternate: one block of each per round
# Array sizes in MB, each with (warm-up runs, timed runs).
SIZES: dict[int, tuple[int, int]] = {1: (5, 21), 16: (2, 9), 64: (2, 7)}

CALLS = {  # key -> label, in table order
    "echo": "raw postMessage echo, bare Blob-URL worker in the page (floor)",
    "frame_echo": "raw postMessage echo over a MessagePort to a worker in a sandboxed iframe",
    "worker": "web-worker (JS) plugin, `await plugin.noop()`",
    "python": "web-python plugin, `await plugin.noop()`",
}
ROUNDTRIPS = {
    "copy": "one TypedArray.set in the page (floor)",
    "copy_fresh": "a new array, then one TypedArray.set into it (a copy into fresh memory)",
    "echo": "raw transfer echo, bare worker (postMessage both ways)",
    "frame_echo": "raw transfer echo over a MessagePort to a worker in a sandboxed iframe",
    "worker": "web-worker (JS) plugin, `await plugin.roundtrip(a)`",
    "window": "window plugin (a sandboxed frame: another process; buffers go in 1 MB chunks)",
    "python": "web-python plugin, `await plugin.roundtrip(a)`",
}
SENDERS = ("echo", "frame_echo", "worker", "window", "python")  # the round trips that cross to another thread

# Installed in the page once the app is ready: window.rpcBench.
HARNESS = """async ({ pythonSource, workerSource, windowSource }) => {
  const ECHO = "onmessage = ({ data }) => postMessage(data, data instanceof ArrayBuffer ? [data] : []);";
  const blobURL = (text, type = "text/javascript") => URL.createObjectURL(new Blob([text], { type }));

  // A postMessage endpoint as a call: post one message, resolve with the reply.
  const echoer = (endpoint) => {
    let resolve = null;
    endpoint.onmessage = ({ data }) => resolve(data);
    return (message, transfer = []) => new Promise((r) => { resolve = r; endpoint.postMessage(message, transfer); });
  };

  // The floor: a bare worker in this page.
  const echo = echoer(new Worker(blobURL(ECHO)));

  // The plugins' route without the plugins: a worker started from a blob inside an iframe
  // with sandbox="allow-scripts" (an opaque origin, as plugins/sandbox.js makes them), reached
  // over a MessagePort.
  const frame = document.createElement("iframe");
  frame.setAttribute("sandbox", "allow-scripts");
  frame.setAttribute("allow", "cross-origin-isolated");
  frame.style.display = "none";
  frame.srcdoc = `<!doctype html><script>
    addEventListener("message", ({ ports }) => {
      const worker = new Worker(URL.createObjectURL(new Blob([${JSON.stringify(
        "onmessage = ({ ports }) => { const port = ports[0]; port.onmessage = ({ data }) => port.postMessage(data, data instanceof ArrayBuffer ? [data] : []); };"
      )}], { type: "text/javascript" })));
      worker.postMessage(null, ports);
    }, { once: true });
  <\\/script>`;
  const loaded = new Promise((resolve) => frame.addEventListener("load", resolve, { once: true }));
  document.body.append(frame);
  await loaded;
  const channel = new MessageChannel();
  frame.contentWindow.postMessage(null, "*", [channel.port2]);
  const frameEcho = echoer(channel.port1);

  const python = await pyjoy.loadPlugin(pythonSource);
  const worker = await pyjoy.loadPlugin(workerSource);
  const windowPlugin = await pyjoy.loadPlugin(windowSource);

  // The page's long tasks (over 50 ms: input waits that long), to see what each round
  // trip stalls; an observer costs the page nothing while it is idle.
  const longTasks = [];
  new PerformanceObserver((list) => longTasks.push(...list.getEntries())).observe({ type: "longtask" });
  const longestStall = (start, end) => Math.max(0, ...longTasks
    .filter((task) => task.startTime < end && task.startTime + task.duration > start).map((task) => task.duration));
  // Each answers once before anything is timed.
  await Promise.all([echo(0), frameEcho(0), python.noop(), worker.noop()]);

  const calls = {
    echo: () => echo(0),
    frame_echo: () => frameEcho(0),
    worker: () => worker.noop(),
    python: () => python.noop(),
  };

  const SHAPES = { 1: [512, 512], 16: [2048, 2048], 64: [4096, 4096] };
  const fresh = (mb) => {
    const values = new Float32Array((mb * 1024 * 1024) / 4);
    values.fill(0.5);
    values[0] = 1;
    values[values.length - 1] = 2;
    return values;
  };
  const mb = (n) => (n * 4) / (1024 * 1024);
  const check = (what, back, values, n) => {
    if (values.buffer.byteLength !== 0) throw new Error(`${what}: the sent buffer was copied, not transferred`);
    const array = new Float32Array(back._rvalue ?? back);
    if (array.length !== n || array[0] !== 1 || array[n - 1] !== 2 || array[n >> 1] !== 0.5) throw new Error(`${what}: the array came back changed`);
    if (back._rtype !== undefined && (back._rtype !== "ndarray" || back._rdtype !== "float32" || String(back._rshape) !== String(SHAPES[mb(n)]))) {
      throw new Error(`${what}: came back as ${back._rtype} ${back._rdtype} [${back._rshape}]`);
    }
  };
  const send = {
    echo: (values) => echo(values.buffer, [values.buffer]),
    frame_echo: (values) => frameEcho(values.buffer, [values.buffer]),
    worker: (values, shape) => worker.roundtrip({ _rtype: "ndarray", _rvalue: values.buffer, _rshape: shape, _rdtype: "float32" }),
    window: (values, shape) => windowPlugin.roundtrip({ _rtype: "ndarray", _rvalue: values.buffer, _rshape: shape, _rdtype: "float32" }),
    python: (values, shape) => python.roundtrip({ _rtype: "ndarray", _rvalue: values.buffer, _rshape: shape, _rdtype: "float32" }),
  };

  window.rpcBench = {
    crossOriginIsolated,
    build: pyjoy.build,

    /** ms per call, each timed alone, after `warmup` untimed calls. */
    async calls(kind, warmup, n) {
      const call = calls[kind];
      for (let i = 0; i < warmup; i++) await call();
      const times = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const start = performance.now();
        await call();
        times[i] = performance.now() - start;
      }
      return Array.from(times);
    },

    /** ms per round trip of a fresh `size` MB float32 array (filled beforehand, not timed),
        and the page's longest task during each (0: none over 50 ms). */
    async roundtrips(kind, size, warmup, n) {
      const times = [];
      const stalls = [];
      for (let i = 0; i < warmup + n; i++) {
        const values = fresh(size);
        const count = values.length;
        await new Promise((resolve) => setTimeout(resolve, 0)); // filling it is not the round trip's stall
        const start = performance.now();
        const back = await send[kind](values, SHAPES[size]);
        const elapsed = performance.now() - start;
        check(`${kind} ${size} MB`, back, values, count);
        await new Promise((resolve) => setTimeout(resolve, 0)); // the observer reports after the task
        if (i >= warmup) {
          times.push(elapsed);
          stalls.push(longestStall(start, start + elapsed));
        }
      }
      return { times, stalls };
    },

    /** ms per TypedArray.set of `size` MB, between two arrays allocated and touched first
        (or, `intoFresh`, into a new array each time, its allocation timed too). */
    copies(size, warmup, n, intoFresh = false) {
      const source = fresh(size);
      let target = new Float32Array(source.length);
      target.fill(1);
      const times = [];
      for (let i = 0; i < warmup + n; i++) {
        const start = performance.now();
        if (intoFresh) target = new Float32Array(source.length);
        target.set(source);
        const elapsed = performance.now() - start;
        if (target[source.length - 1] !== 2) throw new Error("TypedArray.set did not copy");
        target[source.length - 1] = 0;
        if (i >= warmup) times.push(elapsed);
      }
      return times;
    },
  };
  return { crossOriginIsolated, build: pyjoy.build };
}"""


# -- waiting for an idle browser ---------------------------------------------------------

def _process_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds used), for every process we can read."""
    ticks = os.sysconf("SC_CLK_TCK")
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as file:
                fields = file.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        table[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    return table


def _children_cpu_seconds() -> float:
    """CPU seconds used so far by this process's descendants (the server, Playwright, Chromium)."""
    table = _process_table()
    ours, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {pid for pid, (parent, _) in table.items() if parent in frontier} - ours
        ours |= frontier
    return sum(table[pid][1] for pid in ours)


def wait_until_idle(max_cpus: float = 0.1, window_s: float = 0.5, timeout_s: float = 60.0) -> float:
    """Waits until Chromium and the server use under `max_cpus` CPUs over `window_s`; returns
    the seconds waited. Gives up (and goes on) after `timeout_s`."""
    started = time.monotonic()
    before = _children_cpu_seconds()
    while time.monotonic() - started < timeout_s:
        time.sleep(window_s)
        now = _children_cpu_seconds()
        if now - before < max_cpus * window_s:
            break
        before = now
    return round(time.monotonic() - started, 2)


# -- statistics and tables ---------------------------------------------------------------

def summary(samples_ms: list[float], scale: float = 1.0) -> dict[str, float]:
    """Median, p90, min and max of samples (ms), times `scale` (1000 for microseconds)."""
    values = sorted(x * scale for x in samples_ms)
    p90 = statistics.quantiles(values, n=10, method="inclusive")[-1] if len(values) > 1 else values[0]
    return {"median": statistics.median(values), "p90": p90, "min": values[0], "max": values[-1], "n": len(values)}


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def goals(calls: dict[str, dict], roundtrips: dict[str, dict[int, dict]]) -> list[dict[str, Any]]:
    call_ratio = calls["python"]["median"] / calls["echo"]["median"]
    size = GOAL_ROUNDTRIP_MB
    trip_ratio = roundtrips["python"][size]["median"] / roundtrips["copy"][size]["median"]
    return [
        {"goal": f"web-python call latency within {GOAL_CALL_RATIO}x of a raw postMessage echo (medians)",
         "ratio": call_ratio, "met": call_ratio <= GOAL_CALL_RATIO,
         "measured": f"{calls['python']['median']:.0f} us vs {calls['echo']['median']:.0f} us, {call_ratio:.2f}x"},
        {"goal": f"{size} MB web-python round trip within {GOAL_ROUNDTRIP_RATIO:g}x of one TypedArray.set (medians)",
         "ratio": trip_ratio, "met": trip_ratio <= GOAL_ROUNDTRIP_RATIO,
         "measured": f"{roundtrips['python'][size]['median']:.1f} ms vs {roundtrips['copy'][size]['median']:.1f} ms, "
                     f"{trip_ratio:.2f}x"},
    ]


def table(calls: dict[str, dict], roundtrips: dict[str, dict[int, dict]], goal_list: list[dict]) -> str:
    echo, python = calls["echo"], calls["python"]
    lines = [
        "| measure | PyJoy web-python | floor | PyJoy / floor | goal |",
        "|---|---|---|---|---|",
        f"| call `noop()`, median us | {python['median']:.0f} | {echo['median']:.0f} (raw postMessage echo, bare worker) "
        f"| {python['median'] / echo['median']:.2f}x | <= {GOAL_CALL_RATIO}x: {verdict(goal_list[0]['met'])} |",
        f"| call `noop()`, p90 us | {python['p90']:.0f} | {echo['p90']:.0f} | {python['p90'] / echo['p90']:.2f}x | - |",
    ]
    for size in SIZES:
        trip, copy = roundtrips["python"][size], roundtrips["copy"][size]
        goal = f"<= {GOAL_ROUNDTRIP_RATIO:g}x: {verdict(goal_list[1]['met'])}" if size == GOAL_ROUNDTRIP_MB else "-"
        lines.append(
            f"| round trip {size} MB float32, median ms | {trip['median']:.2f} | {copy['median']:.2f} "
            f"(one TypedArray.set of {size} MB) | {trip['median'] / copy['median']:.2f}x | {goal} |"
        )
    return "\n".join(lines)


def context_tables(calls: dict[str, dict], roundtrips: dict[str, dict[int, dict]]) -> str:
    floor, route = calls["echo"]["median"], calls["frame_echo"]["median"]
    lines = ["| call (us) | median | p90 | min | median / raw echo | median / sandbox-route echo |", "|---|---|---|---|---|---|"]
    for key, label in CALLS.items():
        stats = calls[key]
        lines.append(f"| {label} | {stats['median']:.0f} | {stats['p90']:.0f} | {stats['min']:.0f} | "
                     f"{stats['median'] / floor:.2f}x | {stats['median'] / route:.2f}x |")
    lines += ["", "| round trip (ms, median / min) | " + " | ".join(f"{size} MB" for size in SIZES) + " |",
              "|---" * (len(SIZES) + 1) + "|"]
    for key, label in ROUNDTRIPS.items():
        cells = [f"{roundtrips[key][size]['median']:.2f} / {roundtrips[key][size]['min']:.2f}" for size in SIZES]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    ratios = [roundtrips["python"][size]["median"] / roundtrips["frame_echo"][size]["median"] for size in SIZES]
    lines.append("| web-python / sandbox-route transfer echo (medians) | " + " | ".join(f"{r:.2f}x" for r in ratios) + " |")
    return "\n".join(lines)


def stall_table(stalls: dict[str, dict[int, list[float]]]) -> str:
    lines = ["| round trip | " + " | ".join(f"{size} MB" for size in SIZES) + " |", "|---" * (len(SIZES) + 1) + "|"]
    for kind in SENDERS:
        lines.append(f"| {ROUNDTRIPS[kind]} | " + " | ".join(f"{max(stalls[kind][size]):.0f}" for size in SIZES) + " |")
    return "\n".join(lines)


# -- the run -----------------------------------------------------------------------------

def measure(page: Page, calls_per_round: int) -> tuple[dict[str, list[float]], dict[str, dict[int, list[float]]],
                                                      dict[str, dict[int, list[float]]], dict]:
    """Every sample (ms): calls by kind, round trips and the page's longest task during each,
    by kind and size; and the idle waits (s)."""
    waits: dict[str, float] = {"before calls": wait_until_idle()}
    call_samples: dict[str, list[float]] = {kind: [] for kind in CALLS}
    for kind in CALLS:
        page.evaluate("([kind, n]) => rpcBench.calls(kind, n, 0)", [kind, CALL_WARMUP])
    for round_ in range(CALL_ROUNDS):
        for kind in CALLS:
            call_samples[kind] += page.evaluate("([kind, n]) => rpcBench.calls(kind, 0, n)", [kind, calls_per_round])
        print(f"calls, round {round_ + 1}/{CALL_ROUNDS}: "
              + ", ".join(f"{kind} {statistics.median(s) * 1000:.0f} us" for kind, s in call_samples.items()), file=sys.stderr)

    trip_samples: dict[str, dict[int, list[float]]] = {kind: {} for kind in ROUNDTRIPS}
    stall_samples: dict[str, dict[int, list[float]]] = {kind: {} for kind in SENDERS}
    for size, (warmup, runs) in SIZES.items():
        waits[f"before {size} MB"] = wait_until_idle()
        for kind, into_fresh in (("copy", False), ("copy_fresh", True)):
            trip_samples[kind][size] = page.evaluate(
                "([size, warmup, n, intoFresh]) => rpcBench.copies(size, warmup, n, intoFresh)", [size, warmup, runs, into_fresh])
        for kind in SENDERS:
            measured = page.evaluate(
                "([kind, size, warmup, n]) => rpcBench.roundtrips(kind, size, warmup, n)", [kind, size, warmup, runs])
            trip_samples[kind][size], stall_samples[kind][size] = measured["times"], measured["stalls"]
        print(f"round trips, {size} MB: "
              + ", ".join(f"{kind} {statistics.median(s[size]):.2f} ms" for kind, s in trip_samples.items()), file=sys.stderr)
    return call_samples, trip_samples, stall_samples, waits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "rpc.json", help="where to write the numbers")
    parser.add_argument("--calls", type=int, default=2000, help="timed calls of each kind (default: 2000)")
    parser.add_argument("--dist", type=Path, default=DIST, help="the built site to serve (default: dist/)")
    args = parser.parse_args(argv)
    if not (args.dist / "index.html").is_file():
        print(f"error: {args.dist}/index.html not found; build the site first: python build.py", file=sys.stderr)
        return 1
    sources = {"pythonSource": (PLUGINS / "rpc_python.imjoy.html").read_text(),
               "workerSource": (PLUGINS / "rpc_worker.imjoy.html").read_text(),
               "windowSource": (PLUGINS / "rpc_window.imjoy.html").read_text()}
    calls_per_round = max(1, args.calls // CALL_ROUNDS)

    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with served(args.dist) as url, sync_playwright() as p:
        browser = p.chromium.launch(**launch_options())
        try:
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url)
            ready = page.evaluate("pyjoy.ready")
            installed = page.evaluate(HARNESS, sources)
            if not installed["crossOriginIsolated"]:
                print("warning: the page is not cross-origin isolated: performance.now() is coarse (100 us)", file=sys.stderr)
            call_samples, trip_samples, stall_samples, waits = measure(page, calls_per_round)
            chromium = browser.version
        finally:
            browser.close()

    calls = {kind: summary(samples, scale=1000) for kind, samples in call_samples.items()}
    roundtrips = {kind: {size: summary(samples) for size, samples in by_size.items()} for kind, by_size in trip_samples.items()}
    goal_list = goals(calls, roundtrips)
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_facts(chromium, load_before),
        "build": installed["build"],
        "pyodide_boot": {key: ready.get(key) for key in ("python", "via", "ms")},
        "cross_origin_isolated": installed["crossOriginIsolated"],
        "seconds": round(time.perf_counter() - started, 1),
        "idle_waits_s": waits,
        "settings": {"call_warmup": CALL_WARMUP, "call_rounds": CALL_ROUNDS, "calls_per_round": calls_per_round,
                     "sizes_mb": {size: {"warmup": w, "runs": n} for size, (w, n) in SIZES.items()}},
        "labels": {"calls": CALLS, "roundtrips": ROUNDTRIPS},
        "calls_us": calls,
        "roundtrips_ms": roundtrips,
        "goals": goal_list,
        "longest_page_task_ms": {kind: {size: max(samples) for size, samples in by_size.items()}
                                 for kind, by_size in stall_samples.items()},
        "samples": {
            "calls_us": {kind: [round(x * 1000, 1) for x in samples] for kind, samples in call_samples.items()},
            "roundtrips_ms": {kind: {size: [round(x, 3) for x in samples] for size, samples in by_size.items()}
                              for kind, by_size in trip_samples.items()},
        },
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))

    machine = results["machine"]
    print(f"# PyJoy RPC, {results['date']}, Chromium {chromium}, {machine['nproc']} CPUs "
          f"(load average {machine['loadavg_1min_before']} before), build {results['build']}\n")
    print(table(calls, roundtrips, goal_list))
    print(f"\nContext ({calls['python']['n']} calls of each kind, timed one by one, in {CALL_ROUNDS} alternating rounds; "
          f"round trips: {', '.join(f'{size} MB x{n}' for size, (_, n) in SIZES.items())}):\n")
    print(context_tables(calls, roundtrips))
    print("\nThe page's longest task during any round trip (ms; 0: none over 50 ms, so input was never kept waiting longer):\n")
    print(stall_table(stall_samples))
    print("\nGoals:")
    for goal in goal_list:
        print(f"- [{verdict(goal['met'])}] {goal['goal']}: {goal['measured']}")
    print(f"\nAll numbers: {args.json} ({results['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
