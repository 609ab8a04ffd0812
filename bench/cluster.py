"""Cluster benchmark: the engine on Ray (`pyjoy engine --ray`) beside the local-process engine,
in one run.

Run from the repository root after `python build.py` (needs the cluster, engine and test extras):

    python bench/cluster.py [--json PATH] [--rounds N] [--images N]

It starts two real engines on 127.0.0.1: one running plugins as local processes, one with
`--ray` starting a local Ray (2 CPUs, a 500 MB object store, no dashboard). The Python client
(`pyjoy/engine/client.py`) measures:

1. Call latency, microseconds, median and p90 of many calls, each timed alone: `await
   plugin.noop()` through each engine (client -> engine -> plugin process or Ray actor ->
   back), the two alternating in rounds so that other load falls on both alike. The Ray row
   is what a call pays for the actor hop (two Ray actor calls: `deliver` and `outbox`).
2. A CPU-bound batch: Image Recognition on the engine, i.e. the app's EfficientNet-Lite0
   (dist/models.json) with onnxruntime in a native-python plugin asking for 1 CPU per
   replica (`"resources": {"cpus": 1}`, onnxruntime told to use one thread), mapped with
   `client.map` over N images (224x224 RGB uint8, normalised in the plugin), with 1 and
   with 2 replicas. Goal: at least 1.6x the images per second with 2 replicas on this 2-core
   machine. The plugin reads the model from this checkout's dist/ by path: the actors run on
   this machine (on a real cluster the model would come with the plugin or from a URL).

It prints one markdown table and writes every number, each sample included, with the
machine (CPUs, load average before the run) and the date, to bench/results/cluster.json.
About a minute and a half with 2 CPUs.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's pyjoy, for the client as for the engines (run from ROOT)

from pyjoy.devtools import engine_running, machine_facts  # noqa: E402
from pyjoy.engine.client import EngineClient  # noqa: E402

TOKEN = "bench-" + "x" * 40
APP = "http://127.0.0.1:8000"
RAY_INIT = {"num_cpus": 2, "object_store_memory": 500 * 10**6}
GOAL_SPEEDUP = 1.6  # images per second with 2 replicas / with 1
CALL_WARMUP = 100
CALLS_PER_ROUND = 200

NOOP = '''<config lang="json">
{"name": "Noop", "type": "native-python", "version": "0.1.0"}
</config>
<script lang="python">
class Noop:
    def noop(self):
        return None
api.export(Noop())
</script>
'''


def recognition_plugin(model: Path, replicas: int) -> str:
    config = {"name": f"Recognition x{replicas}", "type": "native-python", "version": "0.1.0",
              "replicas": replicas, "resources": {"cpus": 1}}
    return f'''<config lang="json">
{json.dumps(config)}
</config>
<script lang="python">
import numpy as np
import onnxruntime

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255

class Recognition:
    def setup(self):
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # one CPU per replica, as its resources say
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession({str(model)!r}, options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def top5(self, image):
        x = ((image.astype(np.float32) - MEAN) / STD).transpose(2, 0, 1)[None]
        logits = self.session.run(None, {{self.input: np.ascontiguousarray(x)}})[0][0]
        return [int(i) for i in np.argsort(logits)[::-1][:5]]

api.export(Recognition())
</script>
'''


async def call_times(plugin: Any, count: int) -> list[float]:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        await plugin.api.noop()
        times.append((time.perf_counter() - started) * 1e6)
    return times


async def calls(local_url: str, ray_url: str, rounds: int) -> dict[str, list[float]]:
    clients = {"local": await EngineClient.connect(local_url, origin=APP),
               "ray": await EngineClient.connect(ray_url, origin=APP)}
    try:
        plugins = {kind: await client.load_plugin(NOOP) for kind, client in clients.items()}
        for plugin in plugins.values():
            await call_times(plugin, CALL_WARMUP)
        samples: dict[str, list[float]] = {"local": [], "ray": []}
        for _ in range(rounds):
            for kind, plugin in plugins.items():
                samples[kind] += await call_times(plugin, CALLS_PER_ROUND)
        return samples
    finally:
        for client in clients.values():
            await client.close()


async def batch(ray_url: str, model: Path, images: list[np.ndarray], rounds: int) -> dict[str, Any]:
    client = await EngineClient.connect(ray_url, origin=APP)
    try:
        out: dict[str, Any] = {}
        answers = {}
        for replicas in (1, 2):
            plugin = await client.load_plugin(recognition_plugin(model, replicas))
            await client.map(plugin, "top5", images[:4])  # warm-up: each replica's first runs allocate
            rates = []
            for _ in range(rounds):
                started = time.perf_counter()
                answers[replicas] = await client.map(plugin, "top5", images)
                rates.append(len(images) / (time.perf_counter() - started))
            out[str(replicas)] = {"images_per_s": rates, "median": statistics.median(rates)}
            await client.engine.stop(plugin.id)
        assert answers[1] == answers[2], "two replicas answered otherwise than one"
        return out
    finally:
        await client.close()


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {"median": statistics.median(ordered), "p90": ordered[int(len(ordered) * 0.9)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/cluster.json")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--images", type=int, default=96)
    args = parser.parse_args()
    entry = json.loads((ROOT / "dist/models.json").read_text())["models"]["efficientnet-lite0"]
    model = ROOT / "dist" / entry["url"]
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 256, (224, 224, 3), dtype=np.uint8) for _ in range(args.images)]
    load_before = os.getloadavg()[0]
    started = time.time()
    env = {"PYJOY_ENGINE_TOKEN": TOKEN}
    with engine_running(Path(os.environ.get("TMPDIR", "/tmp")) / "pyjoy-bench-cluster-local", env=env) as (local, _):
        with engine_running(Path(os.environ.get("TMPDIR", "/tmp")) / "pyjoy-bench-cluster-ray", "--ray",
                            "--ray-init", json.dumps(RAY_INIT), env=env) as (ray_url, _):
            call_samples = asyncio.run(calls(local, ray_url, args.rounds))
            batches = asyncio.run(batch(ray_url, model, images, args.rounds))
    calls_summary = {kind: summary(times) for kind, times in call_samples.items()}
    speedup = batches["2"]["median"] / batches["1"]["median"]
    print(f"load average before: {load_before:.2f}\n")
    print("| measure | local process | Ray actor | ratio |")
    print("|---|---|---|---|")
    local_call, ray_call = calls_summary["local"], calls_summary["ray"]
    print(f"| call `noop()`, median / p90 (us) | {local_call['median']:.0f} / {local_call['p90']:.0f} | "
          f"{ray_call['median']:.0f} / {ray_call['p90']:.0f} | {ray_call['median'] / local_call['median']:.1f}x |")
    print(f"| image recognition, {args.images} images, 1 replica -> 2 (images/s) | "
          f"{batches['1']['median']:.1f} | {batches['2']['median']:.1f} | {speedup:.2f}x (goal {GOAL_SPEEDUP}x) |")
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {**machine_facts("", load_before), "ray": __import__("ray").__version__},
        "seconds": round(time.time() - started, 1),
        "settings": {"rounds": args.rounds, "calls_per_round": CALLS_PER_ROUND, "images": args.images,
                     "ray_init": RAY_INIT},
        "goals": {"speedup_2_replicas": GOAL_SPEEDUP},
        "calls_us": {kind: {**calls_summary[kind], "samples": [round(t, 1) for t in times]}
                     for kind, times in call_samples.items()},
        "recognition": {**batches, "speedup": speedup},
    }
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
