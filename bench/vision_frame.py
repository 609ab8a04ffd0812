"""The frame model against today's pipeline, native onnxruntime: what moving the preprocessing
into the graph saves.

Run from the repository root after `python build.py` (needs the test extra: onnxruntime,
scikit-image):

    python bench/vision_frame.py [--runs N] [--json PATH] [--dist DIR]

On scikit-image's `chelsea` stretched to a 640x480 RGBA frame (what a VGA camera's canvas
gives), and to 1920x1080, median of N runs each, the two pipelines taking turns:

1. today: `preprocess` (numpy, pyjoy/build/model.py) then the existing model
   (efficientnet-lite0) on its float32 [1, 3, 224, 224];
2. the frame model (efficientnet-lite0-frame) on the raw uint8 frame, one session.run;
   and, to show what its preprocessing costs, the preprocessing model
   (efficientnet-lite0-preprocessing: the same ops alone).

Both sessions: CPUExecutionProvider, one intra-op thread per core, as bench/vision.py's
native row. Prints a markdown table and writes every sample, with the machine, to
bench/results/vision_frame.json.
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

import numpy as np
import onnxruntime
import skimage.data

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyjoy.build.model import preprocess  # noqa: E402
from pyjoy.build.model_frame import INPUT, NETWORK_INPUT  # noqa: E402
from pyjoy.devtools import machine_facts  # noqa: E402

SIZES = {"640x480": (480, 640), "1920x1080": (1080, 1920)}
WARM_UP = 3


def session(path: Path) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = len(os.sched_getaffinity(0))
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def rgba_frame(photo: np.ndarray, height: int, width: int) -> np.ndarray:
    rows = np.linspace(0, photo.shape[0] - 1, height).round().astype(int)
    columns = np.linspace(0, photo.shape[1] - 1, width).round().astype(int)
    return np.ascontiguousarray(np.dstack([photo[rows][:, columns], np.full((height, width), 255, np.uint8)]))


def measure(existing, framed, preprocessing, frame: np.ndarray, runs: int) -> dict:
    samples: dict = {"today_preprocess_ms": [], "today_infer_ms": [], "today_ms": [], "frame_model_ms": [], "preprocessing_model_ms": []}
    for i in range(runs + WARM_UP):
        started = time.perf_counter()
        tensor = preprocess(frame)
        middle = time.perf_counter()
        (today,) = existing.run(None, {NETWORK_INPUT: tensor})
        done = time.perf_counter()
        (logits,) = framed.run(None, {INPUT: frame})
        framed_done = time.perf_counter()
        preprocessing.run(None, {INPUT: frame})
        preprocessing_done = time.perf_counter()
        if i >= WARM_UP:
            samples["today_preprocess_ms"].append((middle - started) * 1000)
            samples["today_infer_ms"].append((done - middle) * 1000)
            samples["today_ms"].append((done - started) * 1000)
            samples["frame_model_ms"].append((framed_done - done) * 1000)
            samples["preprocessing_model_ms"].append((preprocessing_done - framed_done) * 1000)
    samples["max_logit_difference"] = float(np.abs(logits - today).max())
    samples["same_top5"] = bool((np.argsort(-logits[0])[:5] == np.argsort(-today[0])[:5]).all())
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/vision_frame.json")
    parser.add_argument("--dist", type=Path, default=ROOT / "dist")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    catalog = json.loads((args.dist / "models.json").read_text())["models"]
    existing = session(args.dist / catalog["efficientnet-lite0"]["url"])
    framed = session(args.dist / catalog["efficientnet-lite0-frame"]["url"])
    preprocessing = session(args.dist / catalog["efficientnet-lite0-preprocessing"]["url"])
    photo = skimage.data.chelsea()
    results = {name: measure(existing, framed, preprocessing, rgba_frame(photo, *size), args.runs) for name, size in SIZES.items()}

    median = statistics.median
    print("| frame | today: preprocess (numpy) | today: inference | today: total | frame model (one run) | speed-up | its preprocessing alone |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        today, frame_model = median(r["today_ms"]), median(r["frame_model_ms"])
        print(f"| {name} | {median(r['today_preprocess_ms']):.1f} ms | {median(r['today_infer_ms']):.1f} ms | {today:.1f} ms | {frame_model:.1f} ms | {today / frame_model:.2f}x | {median(r['preprocessing_model_ms']):.1f} ms |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_facts("none (native only)", load_before),
        "onnxruntime": onnxruntime.__version__,
        "threads": existing.get_session_options().intra_op_num_threads,
        "runs": args.runs,
        "results": results,
    }, indent=1))
    print(f"wrote {args.json.relative_to(ROOT) if args.json.is_relative_to(ROOT) else args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
