"""Image-recognition benchmark: the browser beside native onnxruntime, on the same image.

Run from the repository root after `python build.py` (needs the test extra: onnxruntime,
scikit-image):

    python bench/vision.py [--runs N] [--seconds S] [--openings N] [--json PATH] [--dist DIR] [--baseline DIR ...]

`--baseline DIR` (repeatable) also measures the plugin of another build, served beside
this one in the same run (e.g. the JavaScript plugin before it became a Python window:
`git worktree add /tmp/base COMMIT && cd /tmp/base && python3 build.py --out DIR`).

In one run, on scikit-image's `chelsea` (451x300), for each build:

1. Native, the floor: onnxruntime on CPython (CPU, one intra-op thread per core) running
   dist/'s own model file on the build's preprocessing of the image; median of N runs of
   inference, and of preprocessing (numpy).
0. Opening: from loadPlugin (the window opens) to the first classify() answered, at once
   after the page's Python is ready, on a first visit (a new browser context: no service
   worker yet, an empty HTTP cache); median of --openings such pages.
2. The browser: the built-in Image Recognition plugin in Debian's Chromium, timed inside
   the plugin (`timings()`; the Python plugin's "inference" is the frame model, its
   preprocessing included, and its "preprocess" what is left outside onnxruntime), median of N: onnxruntime-web's WASM backend with SIMD and one
   thread per core (the default), then one thread; WebGPU where Chromium has an adapter
   (here, with --disable-gpu, it has none: reported as absent). Also `classify()` called
   from the page, end to end (RPC, copy of the pixels, preprocessing, inference, top 5).
3. Live camera: Chromium's fake capture device fed a Y4M of the same image; recognitions per
   second over S seconds (each frame grabbed, moved to the worker, preprocessed, classified).

Goals: browser inference within 2x of native; at least 10 recognitions per second.
Prints a markdown table and writes every sample, with the machine, to bench/results/vision.json.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import skimage.data
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from pyjoy.build.model import preprocess  # noqa: E402
from pyjoy.devtools import launch_options, machine_facts, served  # noqa: E402
from test_vision import write_y4m  # noqa: E402  (the tests' camera file, one implementation)

NAME = "Image Recognition"
GOAL_RATIO = 2.0
GOAL_PER_SECOND = 10.0


def median(values: list[float]) -> float:
    return statistics.median(values)


def native(dist: Path, image: np.ndarray, runs: int) -> dict:
    catalog = json.loads((dist / "models.json").read_text())["models"]["efficientnet-lite0"]
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = len(os.sched_getaffinity(0))
    session = onnxruntime.InferenceSession(str(dist / catalog["url"]), options, providers=["CPUExecutionProvider"])
    pre, infer = [], []
    for i in range(runs + 3):
        started = time.perf_counter()
        tensor = preprocess(image)
        middle = time.perf_counter()
        session.run(None, {"input": tensor})
        done = time.perf_counter()
        if i >= 3:  # warm-up
            pre.append((middle - started) * 1000)
            infer.append((done - middle) * 1000)
    return {"preprocess_ms": pre, "infer_ms": infer, "threads": options.intra_op_num_threads, "onnxruntime": onnxruntime.__version__}


def evaluate_plugin(page: Page, script: str, arg=None):
    return page.evaluate(f"async (arg) => {{ const plugin = await pyjoy.getPlugin({json.dumps(NAME)}); {script} }}", arg)


def as_ndarray(image: np.ndarray) -> dict:
    return {"b64": base64.b64encode(image.tobytes()).decode(), "shape": list(image.shape)}


NDARRAY = "const array = () => ({_rtype: 'ndarray', _rvalue: Uint8Array.from(atob(arg.image.b64), c => c.charCodeAt(0)).buffer, _rshape: arg.image.shape, _rdtype: 'uint8'});"


def browser_backend(page: Page, image: dict, runs: int, options: dict) -> dict:
    info = evaluate_plugin(page, "return plugin.configure(arg);", options)
    times = evaluate_plugin(page, f"{NDARRAY} return plugin.timings(array(), arg.runs);", {"image": image, "runs": runs + 3})
    end_to_end = evaluate_plugin(
        page,
        f"""{NDARRAY} const out = [];
        for (let i = 0; i < arg.runs + 3; i++) {{ const a = array(); const t = performance.now(); await plugin.classify(a); out.push(performance.now() - t); }}
        return out.slice(3);""",
        {"image": image, "runs": runs},
    )
    return {"info": info, "preprocess_ms": times["preprocess"][3:], "infer_ms": times["infer"][3:], "classify_ms": end_to_end}


OPEN_AND_CLASSIFY = f"""async (arg) => {{ {NDARRAY}
    const started = performance.now();
    await pyjoy.loadPlugin('./plugins/image-recognition.imjoy.html');
    const top = await (await pyjoy.getPlugin({json.dumps(NAME)})).classify(array());
    return {{ms: performance.now() - started, label: top[0].label}}; }}"""


def opening(page: Page, url: str, sent: dict) -> dict:
    page.goto(url)
    page.evaluate("pyjoy.ready")
    return page.evaluate(OPEN_AND_CLASSIFY, {"image": sent})


def browser(dist: Path, image: np.ndarray, video: Path, args: argparse.Namespace, p) -> dict:
    """One build's plugin, in a browser of its own: opening, backends, the live camera."""
    results: dict = {"dist": str(dist)}
    with served(dist) as url:
        chromium = p.chromium.launch(**launch_options(args=[
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={video}",
        ]))
        results["chromium"] = chromium.version
        sent = as_ndarray(image)
        openings = []
        for _ in range(args.openings - 1):  # each in a context of its own, closed after it
            context = chromium.new_context()
            openings.append(opening(context.new_page(), url, sent))
            context.close()
        page = chromium.new_page()  # the last opening's page goes on to the measurements below
        openings.append(opening(page, url, sent))
        results["open_to_first_recognition"] = {"ms": median([o["ms"] for o in openings]), "label": openings[-1]["label"],
                                                "samples_ms": [o["ms"] for o in openings]}
        print(f"{dist}: opened, {results['open_to_first_recognition']}", file=sys.stderr, flush=True)
        # What follows is the plugin at work, not a first visit's one-off: the service
        # worker's first install (the whole build downloaded, hashed and stored, ~2 s of
        # both cores) has ended before it is timed.
        page.evaluate("pyjoy.offlineReady")
        results["wasm_threads"] = browser_backend(page, sent, args.runs, {"backend": "wasm"})
        results["wasm_one_thread"] = browser_backend(page, sent, args.runs, {"backend": "wasm", "threads": 1})
        webgpu = results["wasm_threads"]["info"]["webgpu"]
        results["webgpu"] = browser_backend(page, sent, args.runs, {"backend": "webgpu"}) if webgpu.startswith("present") else {"absent": webgpu}
        evaluate_plugin(page, "return plugin.configure({backend: 'wasm'});")
        # startCamera asks the person first (the workbench's camera question): answered Allow.
        page.evaluate(f"() => {{ window.started = pyjoy.getPlugin({json.dumps(NAME)}).then((p) => p.startCamera()); }}")
        page.locator("dialog", has_text=f"Plugin {NAME} wants to use your camera").get_by_role("button", name="Allow").click()
        page.evaluate("window.started")
        time.sleep(2)  # the first frames, warm-up
        first = evaluate_plugin(page, "return plugin.stats();")
        time.sleep(args.seconds)
        last = evaluate_plugin(page, "return plugin.stats();")
        evaluate_plugin(page, "return plugin.stopCamera();")
        per_second = (last["recognitions"] - first["recognitions"]) / (last["seconds"] - first["seconds"])
        results["camera"] = {"per_second": per_second, "last": last["last"][:1], "ms": last["ms"]}
        chromium.close()
    return results


def table(name: str, n: dict, r: dict, runs: int) -> None:
    floor = median(n["infer_ms"])
    rows = [("native onnxruntime (CPython, %d threads), the floor" % n["threads"], median(n["preprocess_ms"]), floor, None)]
    for key, label in (("wasm_threads", "browser, WASM SIMD"), ("wasm_one_thread", "browser, WASM SIMD"), ("webgpu", "browser, WebGPU")):
        if "absent" in r[key]:
            rows.append((f"{label}: {r[key]['absent']}", None, None, None))
        else:
            threads = r[key]["info"]["threads"]  # as the plugin counted them started, not as asked
            label += f", {threads} thread{'s' if threads > 1 else ''}" if r[key]["info"]["backend"] == "wasm" else ""
            rows.append((label, median(r[key]["preprocess_ms"]), median(r[key]["infer_ms"]), median(r[key]["classify_ms"])))
    fmt = lambda v: "-" if v is None else f"{v:.1f}"  # noqa: E731
    print(f"\n{name}: image recognition, chelsea 451x300, medians of {runs} (ms)\n")
    print("| | preprocess | inference | classify() from the page | inference / native |")
    print("|---|---|---|---|---|")
    for label, pre, infer, classify in rows:
        ratio = "-" if infer is None else f"{infer / floor:.2f}x"
        print(f"| {label} | {fmt(pre)} | {fmt(infer)} | {fmt(classify)} | {ratio} |")
    camera = r["camera"]
    opened = r["open_to_first_recognition"]
    print(f"\nOpening the window to the first recognition (first visit): {opened['ms']:.0f} ms, median of "
          f"{len(opened['samples_ms'])} ({min(opened['samples_ms']):.0f}-{max(opened['samples_ms']):.0f}; {opened['label']})")
    print(f"Live camera (fake device, 450x300 frames): {camera['per_second']:.1f} recognitions/s, last {camera['last'][0]['label']}")
    best = median(r["wasm_threads"]["infer_ms"])
    print(f"Goals: browser within {GOAL_RATIO}x of native: {'met' if best / floor <= GOAL_RATIO else 'not met'} ({best / floor:.2f}x); "
          f"{GOAL_PER_SECOND:.0f} recognitions/s: {'met' if camera['per_second'] >= GOAL_PER_SECOND else 'not met'} ({camera['per_second']:.1f}/s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/vision.json")
    parser.add_argument("--openings", type=int, default=5, help="first visits timed from opening to the first recognition")
    parser.add_argument("--dist", type=Path, default=ROOT / "dist")
    parser.add_argument("--baseline", type=Path, action="append", default=[], help="another build's dist/ to measure beside it")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    image = skimage.data.chelsea()
    results: dict = {"native": native(args.dist, image, args.runs)}
    builds = {"this build": args.dist, **{f"baseline {i + 1}": dist for i, dist in enumerate(args.baseline)}}
    with tempfile.TemporaryDirectory() as scratch, sync_playwright() as p:
        video = Path(scratch) / "chelsea.y4m"
        write_y4m(image, video)
        # Baselines first, this build last: the same warm machine for the build under test.
        for name in [*list(builds)[1:], "this build"]:
            results[name] = browser(builds[name], image, video, args, p)
    for name in builds:
        table(name, results["native"], results[name], args.runs)
    chromium = results["this build"]["chromium"]
    record = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": machine_facts(chromium, load_before), "results": results}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
