"""A Python plugin's first inference in the browser: from `pyjoy.loadPlugin` to its model's
first runs with pyjoy.onnx, on fresh pages, beside the same model through the same
pyjoy/onnx/web.js in a JavaScript plugin (a process with no Python in it).

Run from the repository root after `python build.py`:

    python bench/onnx_first.py [--json PATH] [--fresh N] [--runs N]

Each route `--fresh` times (default 3), in turns, each on a new incognito context (what a
first visit gets: no service worker yet, an empty HTTP cache; one route reloads first) once
the page's console Python is ready; the plugin loads the app's image-recognition model
(EfficientNet-Lite0, float32 [1, 3, 224, 224], as models.json names it) and runs it
`--runs` times (default 40) on zeros, each run timed:

- web-python, isolated (`"isolated": true`: a worker of a hidden frame, cross-origin
  isolated, so onnxruntime-web has a thread per core), bench/plugins/onnx_first.imjoy.html:
  `pyjoy.onnx.load_model(url)`, then `await model.run(x)`, timed in Python;
- the same, its runs timed in JavaScript one after the other (no Python between them);
- the same, its Python idle for 6 s before it loads the model (the boot's work done);
- the same, reaching pyjoy.onnx with `__import__` instead of an import line, so that its
  worker does not load onnxruntime-web while Python boots (plugins/host.js) and the
  runtime loads with the model, as before that preload;
- that plugin, the model loaded with web.js in a worker of the plugin's worker (the
  same process, a JavaScript realm with no Python; bench/plugins/onnx_first_runner.js);
- the same plugin on a second visit: the page's service worker installed (its cache
  filled), then the page reloaded, as an installed app opens;
- web-python in the page's process (one thread: not cross-origin isolated);
- the same script as a Python window (PyScript in the window's frame), and as one reaching
  pyjoy.onnx with `__import__`;
- JavaScript: the same runner in a window plugin's frame (bench/plugins/onnx_first_js.imjoy.html:
  cross-origin isolated, a process with no Python in it, as the JavaScript Image
  Recognition plugin's worker is).
- on a settled page: the page's service worker installed and the page idle 6 s before the
  plugin is loaded (what a person gets who looks at the app before opening a plugin), for
  the isolated plugin, the Python window and JavaScript; and the isolated plugin with a spare
  Python booted (a trivial isolated web-python plugin, bench/plugins/python_boot.imjoy.html,
  loaded first: the host then boots a spare once the page is quiet, plugins/host.js).

Reported, medians over the pages of each page's: loadPlugin (its Python's boot), load_model,
the first run, the three summed (the first inference, from loadPlugin), the median of runs
2-10, 11-20, 21-30 and of the last four. Writes every
sample, with the machine, to bench/results/onnx_first.json. About 6 minutes (9 with --fresh 5).
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
from typing import NamedTuple

from playwright.sync_api import Browser, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyjoy.devtools import launch_options, machine_facts, served  # noqa: E402


def isolated(source: str) -> str:
    """A web-python plugin's source, isolated (`"isolated": true`: a worker of a hidden frame)."""
    return source.replace('"type": "web-python",', '"type": "web-python",\n  "isolated": true,')


PYTHON = (ROOT / "bench" / "plugins" / "onnx_first.imjoy.html").read_text()
ISOLATED = isolated(PYTHON)
# A trivial isolated web-python plugin: loaded first, it has the host keep a spare Python.
TRIVIAL = isolated((ROOT / "bench" / "plugins" / "python_boot.imjoy.html").read_text())
# The same plugin reaching pyjoy.onnx without an import line: its worker does not load
# onnxruntime-web while Python boots (plugins/host.js), as every plugin's did before.
NOT_AHEAD = ISOLATED.replace("        import pyjoy.onnx\n", "        pyjoy = __import__('pyjoy.onnx')\n")
assert NOT_AHEAD != ISOLATED
# The same script as a Python window (PyScript in its frame, on the frame's own thread).
WINDOW, WINDOW_NOT_AHEAD = (text.replace('"type": "web-python",\n  "isolated": true,', '"type": "window",')
                            for text in (ISOLATED, NOT_AHEAD))
assert WINDOW != ISOLATED
JAVASCRIPT = (ROOT / "bench" / "plugins" / "onnx_first_js.imjoy.html").read_text()
WEB_JS = (ROOT / "pyjoy" / "onnx" / "web.js").read_text()
# A function expression after its comment lines (run_js and `export default` take it so).
RUNNER = "\n".join(line for line in (ROOT / "bench" / "plugins" / "onnx_first_runner.js").read_text().splitlines()
                   if not line.startswith("//"))
MODEL = "efficientnet-lite0"


class Route(NamedTuple):
    source: str  # the plugin's
    timed_in: str  # where its runs are timed: "python", "javascript" or "nested worker"
    idle_s: float = 0  # how long its Python idles before it loads the model
    second_visit: bool = False  # the page's service worker installed, then the page reloaded
    settled: bool = False  # the page's service worker installed, then the page idle SETTLE_S
    spare: bool = False  # a trivial isolated plugin loaded before the wait: a spare Python boots meanwhile


ROUTES = {
    "web-python, isolated": Route(ISOLATED, "python"),
    "web-python, isolated; runs timed in JavaScript": Route(ISOLATED, "javascript"),
    "web-python, isolated; Python idle 6 s first": Route(ISOLATED, "python", idle_s=6),
    "web-python, isolated; onnxruntime-web not loaded ahead": Route(NOT_AHEAD, "python"),
    "web-python, isolated; the model in a nested worker": Route(NOT_AHEAD, "nested worker"),
    "web-python, isolated; a second visit": Route(ISOLATED, "python", second_visit=True),
    "web-python": Route(PYTHON, "python"),
    "Python window": Route(WINDOW, "python"),
    "Python window; onnxruntime-web not loaded ahead": Route(WINDOW_NOT_AHEAD, "python"),
    "JavaScript (a window's worker, web.js)": Route(JAVASCRIPT, "nested worker"),
    "web-python, isolated; a settled page": Route(ISOLATED, "python", settled=True),
    "web-python, isolated; a settled page, a spare Python": Route(ISOLATED, "python", settled=True, spare=True),
    "Python window; a settled page": Route(WINDOW, "python", settled=True),
    "JavaScript; a settled page": Route(JAVASCRIPT, "nested worker", settled=True),
}
# The host boots its spare once no plugin has loaded for 2 s (app/quiet.js), in about 0.6 s.
SETTLE_S = 6

RUN = """async ([text, timedIn, idle, javascript, webSource, runnerSource, path, integrity, runs]) => {
  const asked = performance.now();
  const plugin = await pyjoy.loadPlugin(text);
  const loaded = performance.now();
  const url = new URL(path, document.baseURI).href;
  const result = javascript
    ? await plugin.first_runs(runnerSource, webSource, new URL(".", document.baseURI).href, url, runs)
    : await plugin.first_runs(url, integrity, runs, timedIn, idle, webSource, runnerSource);
  return { loadPlugin: loaded - asked, load_model: result.load_model, runs: result.runs, threads: result.threads };
}"""


def fresh_page(browser: Browser, url: str, name: str, model: dict, runs: int) -> dict:
    route = ROUTES[name]
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(url)
        page.evaluate("pyjoy.ready")
        if route.second_visit:
            # Active only once its install has filled the cache (service_worker/sw.js).
            page.evaluate("navigator.serviceWorker.ready.then(() => true)")
            page.reload()
            page.evaluate("pyjoy.ready")
        if route.settled:
            page.evaluate("pyjoy.offlineReady")
            if route.spare:
                page.evaluate("(text) => pyjoy.loadPlugin(text).then(() => true)", TRIVIAL)
            time.sleep(SETTLE_S)
        javascript = route.source is JAVASCRIPT
        return page.evaluate(RUN, [route.source, route.timed_in, route.idle_s, javascript, WEB_JS, RUNNER,
                                   model["url"], model["integrity"], runs])
    finally:
        context.close()


def summary(samples: list[dict]) -> dict:
    def median(values) -> float:
        return round(statistics.median(values), 1)

    return {"loadPlugin": median(s["loadPlugin"] for s in samples), "load_model": median(s["load_model"] for s in samples),
            "run 1": median(s["runs"][0] for s in samples),
            "first inference": median(s["loadPlugin"] + s["load_model"] + s["runs"][0] for s in samples),
            "runs 2-10": median(statistics.median(s["runs"][1:10]) for s in samples),
            "runs 11-20": median(statistics.median(s["runs"][10:20]) for s in samples),
            "runs 21-30": median(statistics.median(s["runs"][20:30]) for s in samples),
            "last 4 runs": median(statistics.median(s["runs"][-4:]) for s in samples),
            "threads": sorted({s["threads"] for s in samples})}


def table(summaries: dict) -> str:
    keys = [key for key in next(iter(summaries.values())) if key != "threads"]
    lines = ["| route (threads) | " + " | ".join(keys) + " |", "|---|" + "---|" * len(keys)]
    for route, row in summaries.items():
        threads = "/".join(str(t) for t in row["threads"])
        lines.append(f"| {route} ({threads}) | " + " | ".join(f"{row[key]:g}" for key in keys) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "onnx_first.json")
    parser.add_argument("--fresh", type=int, default=3, help="fresh pages per route (default 3)")
    parser.add_argument("--runs", type=int, default=40, help="runs of the model on each page (default 40, at least 34)")
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="the built app (python build.py)")
    args = parser.parse_args(argv)
    if args.runs < 34:  # the table has runs 21-30 and the last four apart
        parser.error(f"--runs {args.runs}: at least 34 runs, for the table's runs 21-30 and last four")
    model = json.loads((args.dist / "models.json").read_text())["models"][MODEL]
    load_before = os.getloadavg()[0]
    began = time.perf_counter()
    samples: dict[str, list[dict]] = {route: [] for route in ROUTES}
    with served(args.dist) as url, sync_playwright() as p:
        browser = p.chromium.launch(**launch_options())
        try:
            for _ in range(args.fresh):
                for route in ROUTES:  # in turns: other load falls on all alike
                    samples[route].append(fresh_page(browser, url, route, model, args.runs))
            chromium = browser.version
        finally:
            browser.close()
    summaries = {route: summary(route_samples) for route, route_samples in samples.items()}
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_facts(chromium, load_before),
        "loadavg_1min_after": round(os.getloadavg()[0], 2),
        "seconds": round(time.perf_counter() - began, 1),
        "build": json.loads((args.dist / ".build-stamp").read_text())["build"],
        "model": {"name": MODEL, "url": model["url"]},
        "settings": {"fresh": args.fresh, "runs": args.runs},
        "median_ms": summaries,
        "samples": samples,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    print(f"# A Python plugin's first inference, {results['date']}, Chromium {chromium}, "
          f"{results['machine']['nproc']} CPUs, load average {load_before:.2f} before\n")
    print("ms, medians over fresh pages of each page's loadPlugin, load_model and runs\n")
    print(table(summaries))
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
