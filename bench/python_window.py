"""Python window boot: how long a window plugin written in Python (PyScript in its frame,
app/sandbox/python-window.js) takes from the page asking for it to its Python running, in
real Chromium, in the app as served from dist/.

Run from the repository root after `python build.py`:

    python bench/python_window.py [--json PATH] [--runs N]

Each run loads tests/plugins/live/python_window.imjoy.html (the test suite's Python window)
with pyjoy.loadPlugin into the same page, after ending the previous one; the first run is
the page's first Python window (PyScript fetched and compiled), the others reuse what the
browser keeps. Timed, in ms since the epoch on one clock (the page's and the frame's
performance.timeOrigin + now):

- python: from the call that creates the window to the plugin's first line of Python
  (PyScript loaded, Pyodide restored from the build's snapshot, the kernel serving), and
- loaded: to loadPlugin resolving (the plugin's script run and its setup() answered).

Writes every number, with the machine, to bench/results/python_window.json. About 30 s.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from pyjoy.devtools import launch_options, machine_facts, served

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "tests" / "plugins" / "live" / "python_window.imjoy.html"

RUN = """async (text) => {
  await pyjoy.terminatePlugin("Python Window").catch(() => {});
  const asked = performance.timeOrigin + performance.now();
  const plugin = await pyjoy.loadPlugin(text);
  const loaded = performance.timeOrigin + performance.now();
  const runtime = await plugin.runtime();
  return { python: runtime.started - asked, loaded: loaded - asked, via: runtime.via };
}"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "python_window.json")
    parser.add_argument("--runs", type=int, default=6, help="windows opened one after another (default 6)")
    args = parser.parse_args(argv)
    build = json.loads((ROOT / "dist" / ".build-stamp").read_text())["build"]
    load_before = os.getloadavg()[0]
    began = time.perf_counter()
    with served(ROOT / "dist") as url, sync_playwright() as p:
        browser = p.chromium.launch(**launch_options())
        try:
            page = browser.new_page()
            page.goto(url)
            page.evaluate("pyjoy.ready")
            runs = [page.evaluate(RUN, PLUGIN.read_text()) for _ in range(args.runs)]
            chromium = browser.version
        finally:
            browser.close()
    later = runs[1:] or runs
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "build": build,
        "machine": machine_facts(chromium, load_before),
        "seconds": round(time.perf_counter() - began, 1),
        "via": sorted({run["via"] for run in runs}),
        "first_ms": {key: round(runs[0][key]) for key in ("python", "loaded")},
        "later_median_ms": {key: round(statistics.median(run[key] for run in later)) for key in ("python", "loaded")},
        "runs": runs,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    print(f"# Python window boot, {results['date']}, Chromium {chromium}, {results['machine']['nproc']} CPUs "
          f"(load average {results['machine']['loadavg_1min_before']} before), Python from: {', '.join(results['via'])}\n")
    print("| ms from creating the window | first window | later windows (median) |\n|---|---|---|")
    print(f"| to Python running | {results['first_ms']['python']} | {results['later_median_ms']['python']} |")
    print(f"| to the plugin loaded | {results['first_ms']['loaded']} | {results['later_median_ms']['loaded']} |")
    print(f"\nAll numbers: {args.json} ({results['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
