"""Isolation benchmark: a web-worker plugin in a worker of the page's own process (a data:
URL worker) against the same worker inside a hidden sandboxed frame (Chromium's process
for sandboxed frames), in real Chromium, in one page and one run.

Run from the repository root (needs node_modules/, as the build does):

    python bench/isolation.py [--json PATH] [--calls N] [--starts N]

Both modes are the app's own code: the page imports app/plugins/sandbox.js (bundled here
by esbuild with the sandbox scripts, served by `pyjoy serve` with the app's COOP/COEP
headers) and makes `Sandbox.create({kind: "web-worker", isolated})` with isolated false
(`data:` worker in the page's process) and true (worker in a hidden frame, another
process; RPC buffers over 1 MiB go in chunks, as to window plugins). Each loads
bench/plugins/rpc_worker.imjoy.html (`noop()`, `roundtrip(array)`) the way the host does
(setRoot, load_plugin). Measured, alternating the modes so that other load falls on both:

1. Start: ms from Sandbox.create to the plugin's API in hand, median of --starts.
2. Call latency: `await plugin.noop()`, us, median and p90 of --calls each, timed one by one.
3. Round trips of 1, 16 and 64 MB float32 ndarrays (checked: shape, values, the sent buffer
   detached), ms, with the page's longest task during each (Long Tasks API): how long a
   click could have waited.

Prints a markdown table and writes every number, with the machine, to
bench/results/isolation.json. About 10 s on 2 CPUs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from pyjoy.devtools import launch_options, machine_facts, served

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rpc import summary, wait_until_idle  # noqa: E402  (bench/rpc.py: the same statistics)

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "bench" / "plugins" / "rpc_worker.imjoy.html"
TIMEOUT_MS = 120_000
MODES = {"page": "data: worker in the page's process (before)", "frame": "worker in a hidden sandboxed frame (now)"}
SIZES: dict[int, tuple[int, int]] = {1: (3, 15), 16: (1, 7), 64: (1, 5)}  # MB -> (warm-up, timed)
ROUNDS = 5

HARNESS = """
import { Sandbox } from "APP/plugins/sandbox.js";
import { parsePlugin } from "APP/plugins/format.js";

const build = { sandbox: { frame: "./frame.js", "js-worker": "./js-worker.js" } };
const SHAPES = { 1: [512, 512], 16: [2048, 2048], 64: [4096, 4096] };
const longTasks = [];
new PerformanceObserver((list) => longTasks.push(...list.getEntries())).observe({ type: "longtask" });
const longest = (start, end) => Math.max(0, ...longTasks
  .filter((task) => task.startTime < end && task.startTime + task.duration > start).map((task) => task.duration));

async function start(text, isolated) {
  const started = performance.now();
  const sandbox = await Sandbox.create({ build, kind: "web-worker", container: document.body, isolated });
  await sandbox.session.setRoot({});
  const api = await sandbox.kernel.load_plugin(parsePlugin(text));
  return { sandbox, api, ms: performance.now() - started };
}

window.bench = {
  plugins: {},
  async setUp(text) {
    for (const mode of ["page", "frame"]) this.plugins[mode] = await start(text, mode === "frame");
    await Promise.all(Object.values(this.plugins).map(({ api }) => api.noop()));
  },
  async starts(text, mode, n) {
    const times = [];
    for (let i = 0; i < n; i++) {
      const { sandbox, ms } = await start(text, mode === "frame");
      times.push(ms);
      sandbox.terminate();
    }
    return times;
  },
  async calls(mode, n) {
    const { api } = this.plugins[mode];
    const times = [];
    for (let i = 0; i < n; i++) {
      const t = performance.now();
      await api.noop();
      times.push(performance.now() - t);
    }
    return times;
  },
  async roundtrips(mode, size, warmup, n) {
    const { api } = this.plugins[mode];
    const times = [], stalls = [];
    for (let i = 0; i < warmup + n; i++) {
      const values = new Float32Array((size << 20) / 4).fill(0.5);
      values[0] = 1;
      values[values.length - 1] = 2;
      const count = values.length;
      await new Promise((resolve) => setTimeout(resolve, 0));
      const t = performance.now();
      const back = await api.roundtrip({ _rtype: "ndarray", _rvalue: values.buffer, _rshape: SHAPES[size], _rdtype: "float32" });
      const elapsed = performance.now() - t;
      const array = new Float32Array(back._rvalue);
      if (values.buffer.byteLength !== 0) throw new Error(`${mode} ${size} MB: the buffer was copied, not moved`);
      if (array.length !== count || array[0] !== 1 || array[count - 1] !== 2 || String(back._rshape) !== String(SHAPES[size])) {
        throw new Error(`${mode} ${size} MB: the array came back changed`);
      }
      await new Promise((resolve) => setTimeout(resolve, 0)); // the observer reports after the task
      if (i >= warmup) { times.push(elapsed); stalls.push(longest(t, t + elapsed)); }
    }
    return { times, stalls };
  },
};
"""


def make_site(folder: Path) -> None:
    """The harness and the sandbox scripts, bundled by esbuild as the build does."""
    esbuild = ROOT / "node_modules" / ".bin" / "esbuild"
    (folder / "harness.src.js").write_text(HARNESS.replace("APP/", (ROOT / "app").as_posix() + "/"))
    (folder / "index.html").write_text('<!doctype html><meta charset="utf-8"><title>isolation</title>'
                                       '<script type="module" src="harness.js"></script>')
    common = ["--bundle", "--target=es2022", "--log-level=error"]
    subprocess.run([str(esbuild), str(folder / "harness.src.js"), "--format=esm", f"--outfile={folder / 'harness.js'}", *common], check=True)
    for name in ("frame", "js-worker"):
        subprocess.run([str(esbuild), str(ROOT / "app" / "sandbox" / f"{name}.js"), "--format=iife",
                        f"--outfile={folder / f'{name}.js'}", *common], check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "isolation.json")
    parser.add_argument("--calls", type=int, default=3000, help="timed noop() calls per mode (default 3000)")
    parser.add_argument("--starts", type=int, default=20, help="timed starts per mode (default 20)")
    args = parser.parse_args(argv)
    text = PLUGIN.read_text()
    load_before = os.getloadavg()[0]
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        make_site(Path(folder))
        with served(Path(folder)) as url, sync_playwright() as p:
            browser = p.chromium.launch(**launch_options())
            try:
                page = browser.new_page()
                page.set_default_timeout(TIMEOUT_MS)
                page.goto(url)
                page.wait_for_function("window.bench !== undefined")
                page.evaluate("text => bench.setUp(text)", text)
                starts = {mode: [] for mode in MODES}
                calls = {mode: [] for mode in MODES}
                trips = {mode: {size: [] for size in SIZES} for mode in MODES}
                stalls = {mode: {size: [] for size in SIZES} for mode in MODES}
                for mode in MODES:
                    page.evaluate("([mode, n]) => bench.calls(mode, n)", [mode, 200])  # warm-up
                wait_until_idle()
                for _ in range(ROUNDS):
                    for mode in MODES:
                        starts[mode] += page.evaluate("([text, mode, n]) => bench.starts(text, mode, n)",
                                                      [text, mode, max(1, args.starts // ROUNDS)])
                        calls[mode] += page.evaluate("([mode, n]) => bench.calls(mode, n)", [mode, max(1, args.calls // ROUNDS)])
                for size, (warmup, runs) in SIZES.items():
                    wait_until_idle()
                    for mode in MODES:
                        measured = page.evaluate("([m, s, w, n]) => bench.roundtrips(m, s, w, n)", [mode, size, warmup, runs])
                        trips[mode][size] += measured["times"]
                        stalls[mode][size] += measured["stalls"]
                    print(f"{size} MB: " + ", ".join(f"{m} {statistics.median(trips[m][size]):.1f} ms" for m in MODES), file=sys.stderr)
                chromium = browser.version
            finally:
                browser.close()

    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_facts(chromium, load_before),
        "seconds": round(time.perf_counter() - began, 1),
        "modes": MODES,
        "start_ms": {m: summary(starts[m]) for m in MODES},
        "noop_us": {m: summary(calls[m], scale=1000) for m in MODES},
        "roundtrip_ms": {m: {size: summary(trips[m][size]) for size in SIZES} for m in MODES},
        "longest_page_task_ms": {m: {size: max(stalls[m][size]) for size in SIZES} for m in MODES},
        "samples": {"start_ms": starts, "roundtrip_ms": trips},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))

    print(f"# Worker plugin isolation, {results['date']}, Chromium {chromium}, {results['machine']['nproc']} CPUs "
          f"(load average {results['machine']['loadavg_1min_before']} before)\n")
    print("| web-worker plugin | " + " | ".join(MODES.values()) + " | frame / page |")
    print("|---|---|---|---|")
    rows = [("start, ms", "start_ms", None), ("call `noop()`, us", "noop_us", None)]
    rows += [(f"round trip {size} MB, ms", "roundtrip_ms", size) for size in SIZES]
    for label, key, size in rows:
        cells = [results[key][m] if size is None else results[key][m][size] for m in MODES]
        medians = [cell["median"] for cell in cells]
        print(f"| {label} (median) | " + " | ".join(f"{v:.3g}" for v in medians) + f" | {medians[1] / medians[0]:.1f}x |")
    longest = results["longest_page_task_ms"]
    print("| the page's longest task in a 64 MB round trip, ms | " + " | ".join(f"{longest[m][64]:.0f}" for m in MODES) + " | - |")
    print(f"\nAll numbers: {args.json} ({results['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
