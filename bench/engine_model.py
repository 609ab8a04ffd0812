"""The model row of bench/engine.py: model batch throughput through the engine's model
service beside onnxruntime called directly in one process, on the app's own model file
(dist/, as models.json names it). Not run by itself: bench/engine.py runs it against its
engine and puts it in its table and bench/results/engine.json.

    from engine_model import app_model, model_throughput
    path, integrity = app_model(Path("dist"))
    result = await model_throughput(url, path, integrity, images=128, batch=16)

Alternating R times so that the machine's other work falls on both alike: direct, an
`onnxruntime.InferenceSession` in this process (the providers the service would ask for)
running N images one after the other; then the engine, the same N images as `run_batch`
calls of B images each with up to K calls in flight, through pyjoy/engine/client.py on the
service's direct socket (as the page uses it). Both warmed up first; the model is
[1, 3, 224, 224], so an image is one run either way. The goal (issue 11): the engine at
least 0.9x of direct.

One call in flight by default: where onnxruntime's threads fill the cores (2 here), a
batch that travels while another runs takes its time from the run (measured with 8-image
batches: 2 in flight 0.77-0.82x, 1 in flight 0.84x; 16-image batches, 1 in flight
0.86-0.88x). With more cores than onnxruntime uses, `in_flight=2` hides the transfer.

Beside them, what the engine's transfer alone allows: the same batches, the same way, to a
plugin that only counts them (`SINK`), so that the engine's share of the time shows apart
from the model's.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyjoy.engine.client import EngineClient  # noqa: E402
from pyjoy.engine.model_service import choose_providers  # noqa: E402


# A native-python plugin that takes a batch and answers its length: the transfer alone.
SINK = """<config lang="json">{"name": "Batch sink", "type": "native-python", "version": "0.1.0"}</config>
<script lang="python">
class Sink:
    def setup(self):
        pass

    def run_batch(self, model_id, batch):
        return len(batch)

api.export(Sink())
</script>
"""


def app_model(dist: Path) -> tuple[Path, str]:
    """The app's image-recognition model file and its integrity, from dist/models.json."""
    entry = json.loads((dist / "models.json").read_text())["models"]["efficientnet-lite0"]
    return dist / entry["url"], entry["integrity"]


def tensors(count: int, shape: list[int]) -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    return [rng.uniform(-1, 1, shape).astype(np.float32) for _ in range(count)]


def direct_rate(data: bytes, providers: list[str], images: list[np.ndarray]) -> float:
    """Images per second through a session of this process's own, made for this round and
    ended after it: its thread pool (onnxruntime's threads spin a while after each run,
    waiting for more work) must not take the cores from the engine's rounds."""
    session = onnxruntime.InferenceSession(data, providers=providers)
    name = session.get_inputs()[0].name
    for image in images[:2]:  # warm-up: first runs allocate
        session.run(None, {name: image})
    started = time.perf_counter()
    for image in images:
        session.run(None, {name: image})
    rate = len(images) / (time.perf_counter() - started)
    del session
    return rate


async def engine_rate(models: Any, model_id: str, images: list[np.ndarray], batch: int, in_flight: int) -> float:
    batches = [images[i:i + batch] for i in range(0, len(images), batch)]
    waiting: set[asyncio.Future] = set()
    started = time.perf_counter()
    for items in batches:
        if len(waiting) >= in_flight:
            done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            for call in done:
                call.result()
        waiting.add(asyncio.ensure_future(models.run_batch(model_id, items)))
    for call in asyncio.as_completed(waiting):
        await call
    return len(images) / (time.perf_counter() - started)


async def model_throughput(url: str, model: Path, integrity: str, images: int = 128, batch: int = 16,
                           in_flight: int = 1, repeats: int = 3, origin: str | None = None) -> dict[str, Any]:
    """Images per second through the engine at `url` beside onnxruntime in this process;
    `ratio` is the engine's median over direct's median (goal: at least 0.9)."""
    data = model.read_bytes()
    providers, reason = choose_providers(onnxruntime.get_available_providers())
    session = onnxruntime.InferenceSession(data, providers=providers)
    node, provider = session.get_inputs()[0], session.get_providers()[0]
    del session
    inputs = tensors(images, [dim if isinstance(dim, int) else 1 for dim in node.shape])
    client = await EngineClient.connect(url, origin=origin, direct=True)  # as the page: the direct socket
    try:
        models = (await client.model_service()).api
        sink = (await client.load_plugin(SINK)).api
        loaded = await models.load(data, integrity, name=model.name)
        await models.run_batch(loaded["id"], inputs[:2])
        await sink.run_batch(loaded["id"], inputs[:2])
        direct, engine, transfer = [], [], []
        for _ in range(repeats):
            direct.append(direct_rate(data, providers, inputs))
            engine.append(await engine_rate(models, loaded["id"], inputs, batch, in_flight))
            transfer.append(await engine_rate(sink, loaded["id"], inputs, batch, in_flight))
    finally:
        await client.close()
    return {
        "model": model.name, "images": images, "batch": batch, "in_flight": in_flight, "repeats": repeats,
        "provider_direct": provider, "provider_engine": loaded["provider"], "reason": reason,
        "direct_images_per_s": direct, "engine_images_per_s": engine, "transfer_only_images_per_s": transfer,
        "ratio": statistics.median(engine) / statistics.median(direct),
        # Each round's engine over the direct run just before it (the goal stays `ratio`): load
        # that comes and goes on a shared machine falls on both runs of a pair alike.
        "paired_ratios": [e / d for e, d in zip(engine, direct)],
    }
