"""A Python plugin's first inference in the browser: from `pyjoy.loadPlugin` to its model's
first runs with pyjoy.onnx, on fresh pages, beside the same model through the same
pyjoy/onnx/web.js in a JavaScript plugin (a process with no Python in it).

Run from the repository root after `python build.py`:

    python bench/onnx_first.py [--json PATH] [--fresh N] [--runs N]

Each route `--fresh` times (default 3), in turns, each on a new incognito context (what a
first visit gets: no service worker yet, an empty HTTP cache) once the page's console
Python is ready; the plugin loads the app's image-recognition model (EfficientNet-Lite0,
float32 [1, 3, 224, 224], as models.json names it) and runs it `--runs` times (default 16)
on zeros, each run timed:

- web-python, isolated (`"isolated": true`: a worker of a hidden frame, cross-origin
  isolated, so onnxruntime-web has a thread per core), bench/plugins/onnx_first.imjoy.html:
  `pyjoy.onnx.load_model(url)`, then `await model.run(x)`, timed in Python;
- the same, its runs timed in JavaScript one after the other (no Python between them);
- web-python in the page's process (one thread: not cross-origin isolated);
- JavaScript: a web-worker plugin (bench/plugins/onnx_first_js.imjoy.html) importing web.js
  and calling its `load`, then `session.run`, timed in JavaScript (one thread).

Reported, medians over the pages: loadPlugin (its Python's boot), load_model, runs 1, 2, 3,
5 and 10, the steady run (median of the last four), and the first run within 1.5x of the
steady one. Writes every sample, with the machine, to bench/results/onnx_first.json. About
2 minutes.
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

from playwright.sync_api import Browser, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyjoy.devtools import launch_options, machine_facts, served  # noqa: E402

PYTHON = (ROOT / "bench" / "plugins" / "onnx_first.imjoy.html").read_text()
ISOLATED = PYTHON.replace('"type": "web-python",', '"type": "web-python",\n  "isolated": true,')
JAVASCRIPT = (ROOT / "bench" / "plugins" / "onnx_first_js.imjoy.html").read_text()
WEB_JS = (ROOT / "pyjoy" / "onnx" / "web.js").read_text()
MODEL = "efficientnet-lite0"

# route -> (plugin source, how its runs are timed)
ROUTES = {
    "web-python, isolated": (ISOLATED, "python"),
    "web-python, isolated; runs timed in JavaScript": (ISOLATED, "javascript"),
    "web-python": (PYTHON, "python"),
    "JavaScript (web-worker, web.js)": (JAVASCRIPT, "javascript"),
}

RUN = """async ([text, timedIn, webSource, path, integrity, runs]) => {
  const asked = performance.timeOrigin + performance.now();
  const plugin = await pyjoy.loadPlugin(text);
  const loaded = performance.timeOrigin + performance.now();
  const url = new URL(path, document.baseURI).href;
  const result = webSource
    ? await plugin.first_runs(webSource, new URL(".", document.baseURI).href, url, integrity, runs)
    : await plugin.first_runs(url, integrity, runs, timedIn);
  return { loadPlugin: loaded - asked, started: result.started - asked, load_model: result.load_model,
           runs: result.runs, threads: result.threads };
}"""


def fresh_page(browser: Browser, url: str, route: str, model: dict, runs: int) -> dict:
    source, timed_in = ROUTES[route]
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(url)
        page.evaluate("pyjoy.ready")
        web_source = WEB_JS if source is JAVASCRIPT else None
        return page.evaluate(RUN, [source, timed_in, web_source, model["url"], model["integrity"], runs])
    finally:
        context.close()


def summary(samples: list[dict]) -> dict:
    def median(values) -> float:
        return round(statistics.median(values), 1)

    steady = [statistics.median(sample["runs"][-4:]) for sample in samples]
    # The first run within 1.5x of its page's steady run (1-based).
    settled = [next(index + 1 for index, ms in enumerate(sample["runs"]) if ms <= 1.5 * level)
               for sample, level in zip(samples, steady)]
    runs = {f"run {n}": median(sample["runs"][n - 1] for sample in samples) for n in (1, 2, 3, 5, 10)
            if n <= len(samples[0]["runs"])}
    return {"loadPlugin": median(s["loadPlugin"] for s in samples), "load_model": median(s["load_model"] for s in samples),
            **runs, "steady": median(steady), "settled_at_run": statistics.median(settled),
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
    parser.add_argument("--runs", type=int, default=16, help="runs of the model on each page (default 16)")
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="the built app (python build.py)")
    args = parser.parse_args(argv)
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
    print("ms, medians of fresh pages: loadPlugin, load_model, runs; settled_at_run: the first run within 1.5x of the steady one\n")
    print(table(summaries))
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
