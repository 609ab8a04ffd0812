"""Sandboxed Python's boot: how long a plugin's Python takes to start in its sandbox, in real
Chromium, in the app as served from dist/: a Python window (PyScript in its frame,
app/sandbox/python-window.js), a web-python plugin (a worker in the page's process) and an
isolated one (`"isolated": true`: a worker in a hidden frame's process).

Run from the repository root after `python build.py`:

    python bench/python_window.py [--json PATH] [--runs N] [--fresh N] [--baseline DIR ...]

`--baseline DIR` (repeatable) also measures another build, served beside this one and
measured in turn with it in the same run (e.g. the commit before a change:
`git worktree add /tmp/base COMMIT && cd /tmp/base && python3 build.py --out DIR`).

Two measurements, each build in turn, timed in ms since the epoch on one clock (the page's
and the sandbox's performance.timeOrigin + now):

- Fresh page: `--fresh` times (default 3) per kind, a new incognito context (no service
  worker, an empty HTTP cache: what a first visit gets), the page opened and its console's
  Python ready, then one plugin loaded at once: tests/plugins/live/python_window.imjoy.html
  (the test suite's Python window) or bench/plugins/python_boot.imjoy.html (web-python, then
  the same isolated). The spare Python the page keeps for web-python plugins is booted only
  after a first one, so each of these boots its own.
- Windows in one page: the Python window `--runs` times (default 6) in one page, each after
  ending the last: the page's first, then what the browser keeps.

Each: from the call that loads the plugin to its first line of Python (python) and to
loadPlugin resolving (loaded). Medians. Writes every number, with the machine, to
bench/results/python_window.json. About 2 minutes with one baseline.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyjoy.devtools import launch_options, machine_facts, served  # noqa: E402
WINDOW = ROOT / "tests" / "plugins" / "live" / "python_window.imjoy.html"
WEB_PYTHON = ROOT / "bench" / "plugins" / "python_boot.imjoy.html"

# kind -> (the plugin's source, its name)
KINDS = {
    "Python window": (WINDOW.read_text(), "Python Window"),
    "web-python": (WEB_PYTHON.read_text(), "Python Boot Bench"),
    "web-python, isolated": (WEB_PYTHON.read_text().replace('"type": "web-python",', '"type": "web-python",\n  "isolated": true,'), "Python Boot Bench"),
}

RUN = """async ([text, name]) => {
  await pyjoy.terminatePlugin(name).catch(() => {});
  const asked = performance.timeOrigin + performance.now();
  const plugin = await pyjoy.loadPlugin(text);
  const loaded = performance.timeOrigin + performance.now();
  const runtime = await plugin.runtime();
  return { python: runtime.started - asked, loaded: loaded - asked, via: runtime.via ?? null };
}"""


def fresh_page(browser: Browser, url: str, kind: str) -> dict:
    """One plugin of `kind` loaded on a new page of a new context, once its console's Python is up."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(url)
        page.evaluate("pyjoy.ready")
        return page.evaluate(RUN, list(KINDS[kind]))
    finally:
        context.close()


def windows_in_one_page(browser: Browser, url: str, runs: int) -> list[dict]:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(url)
        page.evaluate("pyjoy.ready")
        return [page.evaluate(RUN, list(KINDS["Python window"])) for _ in range(runs)]
    finally:
        context.close()


def medians(runs: list[dict]) -> dict:
    return {key: round(statistics.median(run[key] for run in runs)) for key in ("python", "loaded")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "python_window.json")
    parser.add_argument("--runs", type=int, default=6, help="Python windows opened one after another in one page (default 6)")
    parser.add_argument("--fresh", type=int, default=3, help="fresh pages per kind and build (default 3)")
    parser.add_argument("--baseline", type=Path, action="append", default=[], help="another build's dist/ to measure beside this one")
    args = parser.parse_args(argv)
    dists = [ROOT / "dist", *args.baseline]
    builds = [json.loads((dist / ".build-stamp").read_text())["build"] for dist in dists]
    labels = ["this build"] + [f"baseline {build}" for build in builds[1:]]
    load_before = os.getloadavg()[0]
    began = time.perf_counter()
    fresh = {label: {kind: [] for kind in KINDS} for label in labels}
    windows = {}
    with contextlib.ExitStack() as stack, sync_playwright() as p:
        urls = [stack.enter_context(served(dist)) for dist in dists]
        browser = p.chromium.launch(**launch_options())
        try:
            for round_ in range(args.fresh):
                for kind in KINDS:
                    order = list(zip(labels, urls))
                    for label, url in order if round_ % 2 == 0 else order[::-1]:  # neither build always first
                        fresh[label][kind].append(fresh_page(browser, url, kind))
            for label, url in zip(labels, urls):
                windows[label] = windows_in_one_page(browser, url, args.runs)
            chromium = browser.version
        finally:
            browser.close()
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_facts(chromium, load_before),
        "loadavg_1min_after": round(os.getloadavg()[0], 2),
        "seconds": round(time.perf_counter() - began, 1),
        "builds": {label: {"dist": str(dist), "build": build} for label, dist, build in zip(labels, dists, builds)},
        "fresh_page_median_ms": {label: {kind: medians(runs) for kind, runs in kinds.items()} for label, kinds in fresh.items()},
        "windows_in_one_page_ms": {
            label: {"via": sorted({run["via"] for run in runs}), "first": medians(runs[:1]), "later_median": medians(runs[1:] or runs)}
            for label, runs in windows.items()
        },
        "fresh_page_runs": fresh,
        "windows_in_one_page_runs": windows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    print(f"# Sandboxed Python's boot, {results['date']}, Chromium {chromium}, {results['machine']['nproc']} CPUs "
          f"(load average {results['machine']['loadavg_1min_before']} before, {results['loadavg_1min_after']} after)\n")
    print(f"ms from loadPlugin to the plugin's first line of Python (to loadPlugin resolved), medians; a fresh page: {args.fresh} each\n")
    print("| | " + " | ".join(labels) + " |\n|---|" + "---|" * len(labels))
    for kind in KINDS:
        cells = [results["fresh_page_median_ms"][label][kind] for label in labels]
        print(f"| {kind}, on a fresh page | " + " | ".join(f"{cell['python']} ({cell['loaded']})" for cell in cells) + " |")
    for row in ("first", "later_median"):
        cells = [results["windows_in_one_page_ms"][label][row] for label in labels]
        name = "the page's first Python window" if row == "first" else f"later windows in that page (median of {args.runs - 1})"
        print(f"| {name} | " + " | ".join(f"{cell['python']} ({cell['loaded']})" for cell in cells) + " |")
    print(f"\nAll numbers: {args.json} ({results['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
