"""Startup benchmark: PyJoy beside the bare-Pyodide floor, in real Chromium.

Run from the repository root after `python build.py`:

    python bench/startup.py [--runs N] [--json PATH]

Each run starts `pyjoy serve` on 127.0.0.1 (COOP/COEP, precompressed files) and loads, in
Debian's Chromium through Playwright:

- PyJoy (dist/index.html). Cold: a fresh persistent profile, so an empty HTTP cache and no
  service worker. Warm: the same profile, once the service worker controls the page, opened
  again in a new tab, so files come from the service worker's cache. Reload: that tab
  reloaded, which keeps the renderer process and what it holds in memory.
- The floor: a bare page whose module worker loads Pyodide the documented way
  (`loadPyodide({indexURL, lockFileURL})`, no snapshot, no service worker) from the same
  pyodide/<version>/ files, then runs `1+1`. Cold, warm and reload as above; warm files
  come from the HTTP cache.

Measured in the page, in ms since navigation start: first paint and first contentful paint
(paint timing), the shell interactive (`pyjoy.timings.shellInteractive`), and Python
answering (`runPython('1+1')` returning 2, started at DOMContentLoaded, timed at its answer).
Also the bytes that came over the network (resource timing's transferSize, page and
workers) and where each file came from (deliveryType: "cache-storage" is the service worker's
cache, "cache" the HTTP cache, "" the network).

It prints a markdown table (median and min over runs) with the goals, and writes every
number to bench/results/startup.json. The floor page lives in a temporary copy of dist/
(hard links where possible); dist/ itself is not changed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from playwright.sync_api import BrowserContext, Page, Playwright, sync_playwright

from pyjoy.devtools import launch_options, machine_facts, served

ROOT = Path(__file__).resolve().parents[1]
DIST = ROOT / "dist"
FLOOR_DIR = "bench-floor"
SETTLE_S = 1.0  # after a cold load, before the warm one: lets Chromium finish writing its caches
TIMEOUT_MS = 120_000

STATES = ("cold", "warm", "reload")

GOAL_SHELL_WARM_MS = 300
GOAL_FLOOR_RATIO = 1.2
GOAL_PYTHON_WARM_MS = 1000

METRICS = {  # key -> label, in table order
    "first_paint": "first paint",
    "first_contentful_paint": "first contentful paint",
    "shell_interactive": "shell interactive",
    "python_ready": "Python answers 1+1",
    "network_mb": "MB over the network (page, workers)",
    "service_worker_mb": "MB over the network (SW install)",
}

# Starts PyJoy's 1+1 as soon as the page's module scripts have run: they run before
# DOMContentLoaded, and runPython waits for Python itself.
PYJOY_PROBE = """
document.addEventListener("DOMContentLoaded", () => {
  if (window.pyjoy) window.bench = pyjoy.runPython("1+1").then((value) => ({ value, at: performance.now() }));
});
"""

FLOOR_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Pyodide floor</title><link rel="icon" href="data:,"></head>
<body>
<p>Bare Pyodide in a module worker: no snapshot, no service worker.</p>
<script type="module">
const worker = new Worker("worker.mjs", { type: "module" });
window.bench = new Promise((resolve, reject) => {
  worker.onmessage = ({ data }) =>
    data.error ? reject(new Error(data.error)) : resolve({ value: data.value, at: performance.now() });
  worker.onerror = (event) => reject(new Error(event.message || "the worker did not load"));
});
</script>
</body>
</html>
"""

FLOOR_WORKER = """import { loadPyodide } from "INDEX_URLpyodide.mjs";

try {
  const pyodide = await loadPyodide({
    indexURL: new URL("INDEX_URL", import.meta.url).href,
    lockFileURL: new URL("LOCK_URL", import.meta.url).href,
  });
  postMessage({ value: pyodide.runPython("1+1") });
} catch (error) {
  postMessage({ error: String(error?.stack ?? error) });
}
"""

# Run in the page once Python answered: the timings, plus where every file came from.
COLLECT = """async (timeoutMs) => {
  const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error("Python did not answer")), timeoutMs));
  if (!window.bench) throw new Error("window.bench is missing: the page did not start its 1+1");
  const answer = await Promise.race([window.bench, timeout]);
  const paint = (name) => performance.getEntriesByName(name)[0]?.startTime ?? null;
  const ready = window.pyjoy ? await pyjoy.ready : null;
  return {
    value: answer.value,
    python_ready: answer.at,
    first_paint: paint("first-paint"),
    first_contentful_paint: paint("first-contentful-paint"),
    shell_interactive: window.pyjoy?.timings.shellInteractive ?? null,
    python_ready_event: window.pyjoy?.timings.pythonReady ?? null,
    via: ready?.via ?? null,
    phases: ready?.phases ?? null,
    resources: [...performance.getEntriesByType("navigation"), ...performance.getEntriesByType("resource")]
      .map((e) => ({ url: e.name, transferSize: e.transferSize, deliveryType: e.deliveryType })),
  };
}"""

WORKER_RESOURCES = """performance.getEntriesByType("resource")
  .map((e) => ({ url: e.name, transferSize: e.transferSize, deliveryType: e.deliveryType }))"""


def build_config(dist: Path) -> dict:
    """The build's configuration, from index.html's <script id="pyjoy-build">."""
    page = (dist / "index.html").read_text()
    start = page.index('id="pyjoy-build">') + len('id="pyjoy-build">')
    return json.loads(page[start:page.index("</script>", start)])


def link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def make_site(dist: Path, site: Path, config: dict) -> None:
    """Copies dist/ to site and adds the floor page, pointed at dist's Pyodide files."""
    shutil.copytree(dist, site, copy_function=link_or_copy)
    floor = site / FLOOR_DIR
    floor.mkdir()
    (floor / "index.html").write_text(FLOOR_PAGE)
    worker = FLOOR_WORKER.replace("INDEX_URL", "../" + config["pyodide"]["indexURL"])
    (floor / "worker.mjs").write_text(worker.replace("LOCK_URL", "../" + config["pyodide"]["lockFileURL"]))


def measure(page: Page, url: str, reload: bool = False) -> dict:
    """Loads url in page (or reloads it) and returns its timings once Python has answered."""
    if reload:
        page.reload(timeout=TIMEOUT_MS)
    else:
        page.goto(url, timeout=TIMEOUT_MS)
    load = page.evaluate(COLLECT, TIMEOUT_MS)
    if load["value"] != 2:
        raise RuntimeError(f"{url}: 1+1 gave {load['value']!r}")
    for worker in page.workers:
        load["resources"] += worker.evaluate(WORKER_RESOURCES)
    load["network_mb"] = sum(r["transferSize"] for r in load["resources"]) / 1e6
    load["served_from"] = served_from(load["resources"])
    return load


def served_from(resources: list[dict]) -> dict[str, int]:
    names = {"cache-storage": "service worker", "cache": "HTTP cache", "": "network"}
    return dict(Counter(names.get(r["deliveryType"], r["deliveryType"]) for r in resources))


def cold_and_warm(p: Playwright, url: str, pyjoy: bool) -> tuple[dict[str, dict], str]:
    """In a fresh profile: a cold load, then a warm one in a new tab, then a reload of that tab."""
    with tempfile.TemporaryDirectory(prefix="pyjoy-bench-profile-") as profile:
        context: BrowserContext = p.chromium.launch_persistent_context(profile, **launch_options())
        try:
            if pyjoy:
                context.add_init_script(PYJOY_PROBE)
            page = context.pages[0] if context.pages else context.new_page()
            cold = measure(page, url)
            if pyjoy:
                page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=TIMEOUT_MS)
                # What the service worker's install fetched besides the page's own loads.
                installed = [r for worker in context.service_workers for r in worker.evaluate(WORKER_RESOURCES)]
                cold["service_worker_mb"] = sum(r["transferSize"] for r in installed) / 1e6
            time.sleep(SETTLE_S)
            page.close()
            page = context.new_page()
            warm = measure(page, url)
            time.sleep(SETTLE_S)
            reload = measure(page, url, reload=True)
            return {"cold": cold, "warm": warm, "reload": reload}, context.browser.version
        finally:
            context.close()


def summarise(loads: list[dict]) -> dict[str, dict]:
    summary = {}
    for key in METRICS:
        values = [load[key] for load in loads if load.get(key) is not None]
        if values:
            summary[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    return summary


def goals(summary: dict) -> list[dict]:
    def median(side: str, state: str, key: str) -> float:
        return summary[side][state][key]["median"]

    shell = median("pyjoy", "warm", "shell_interactive")
    ratios = {state: median("pyjoy", state, "python_ready") / median("floor", state, "python_ready") for state in ("cold", "warm")}
    python_warm = median("pyjoy", "warm", "python_ready")
    python_reload = median("pyjoy", "reload", "python_ready")
    return [
        {"goal": f"shell interactive in under {GOAL_SHELL_WARM_MS} ms warm", "met": shell < GOAL_SHELL_WARM_MS,
         "measured": f"{shell:.0f} ms (median)"},
        {"goal": f"Python ready within {GOAL_FLOOR_RATIO}x of the bare-Pyodide floor at worst",
         "met": max(ratios.values()) <= GOAL_FLOOR_RATIO,
         "measured": f"cold {ratios['cold']:.2f}x, warm {ratios['warm']:.2f}x (medians)"},
        {"goal": f"real target: Python ready in under {GOAL_PYTHON_WARM_MS / 1000:g} s warm",
         "met": python_warm < GOAL_PYTHON_WARM_MS,
         "measured": f"{python_warm:.0f} ms (median; {python_reload:.0f} ms when the warm tab is reloaded)"},
    ]


def table(summary: dict, runs: int) -> str:
    columns = [(side, state) for state in STATES for side in ("pyjoy", "floor")]
    title = {"pyjoy": "PyJoy", "floor": "floor"}
    lines = [
        f"Median / min over {runs} runs; ms since navigation start unless noted.",
        "",
        "| metric | " + " | ".join(f"{title[side]} {state}" for side, state in columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for key, label in METRICS.items():
        cells = []
        for side, state in columns:
            stats = summary[side][state].get(key)
            digits = 2 if key.endswith("_mb") else 0
            cells.append(f"{stats['median']:.{digits}f} / {stats['min']:.{digits}f}" if stats else "-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    cells = []
    for side, state in columns:
        if side == "pyjoy":
            pyjoy, floor = summary["pyjoy"][state]["python_ready"], summary["floor"][state]["python_ready"]
            cells.append(f"{pyjoy['median'] / floor['median']:.2f}x / {pyjoy['min'] / floor['min']:.2f}x")
        else:
            cells.append("-")
    lines.append("| Python answers, PyJoy / floor | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def describe_sources(loads: dict) -> str:
    lines = []
    for side, states in loads.items():
        for state, runs in states.items():
            vias = [f"{via} {n}/{len(runs)}" for via, n in Counter(load["via"] for load in runs if load["via"]).items()]
            kinds = sorted({kind for load in runs for kind in load["served_from"]})
            counts = ", ".join(f"{kind} {sum(load['served_from'].get(kind, 0) for load in runs) / len(runs):g}" for kind in kinds)
            via = f"Python via {', '.join(vias)}; " if vias else ""
            lines.append(f"- {side} {state}: {via}files per load from {counts}")
    return "\n".join(lines)


def progress(loads: dict) -> str:
    return ", ".join(
        f"{side} {state} {loads[side][state][-1]['python_ready']:.0f} ms" for side in loads for state in STATES
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="cold+warm pairs per page (default: 5)")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "startup.json", help="where to write the numbers")
    args = parser.parse_args(argv)
    if not (DIST / "index.html").is_file():
        print(f"error: {DIST}/index.html not found; build the site first: python build.py", file=sys.stderr)
        return 1

    config = build_config(DIST)
    load_before = os.getloadavg()[0]
    loads: dict = {side: {state: [] for state in STATES} for side in ("pyjoy", "floor")}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="pyjoy-bench-site-") as temp:
        site = Path(temp) / "site"
        make_site(DIST, site, config)
        with served(site) as url, sync_playwright() as p:
            for run in range(args.runs):
                for side, page_url in [("pyjoy", url), ("floor", f"{url}{FLOOR_DIR}/")]:
                    by_state, chromium = cold_and_warm(p, page_url, pyjoy=side == "pyjoy")
                    for state, load in by_state.items():
                        loads[side][state].append(load)
                print(f"run {run + 1}/{args.runs}: Python answers, {progress(loads)}", file=sys.stderr)

    summary = {side: {state: summarise(runs) for state, runs in states.items()} for side, states in loads.items()}
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_facts(chromium, load_before),
        "build": {"id": config["build"], "pyodide": config["pyodide"]["version"], "snapshot_bytes": config["pyodide"]["snapshotBytes"]},
        "runs": args.runs,
        "seconds": round(time.perf_counter() - started, 1),
        "summary": summary,
        "goals": goals(summary),
        "loads": loads,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))

    machine = results["machine"]
    print(
        f"# PyJoy startup, {results['date']}, Chromium {chromium}, {machine['nproc']} CPUs "
        f"(load average {machine['loadavg_1min_before']} before), build {config['build']}\n"
    )
    print(table(summary, args.runs))
    print("\nWhere files came from (resource timing deliveryType, page and workers):")
    print(describe_sources(loads))
    print("\nGoals:")
    for goal in results["goals"]:
        print(f"- [{'met' if goal['met'] else 'NOT met'}] {goal['goal']}: {goal['measured']}")
    print(f"\nAll numbers: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
