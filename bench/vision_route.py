"""Where Image Recognition's Python could run: measured before rewriting the plugin.

    python bench/vision_route.py [--runs N] [--dist DIR] [--json PATH]

In one Chromium page on one build, on scikit-image's `chelsea`:

1. The JavaScript plugin (the build's py_plugins/image-recognition): from loadPlugin to the
   first classify() answered, then timings() (inside its worker, WASM, its threads).
2. The shape proposed for the Python version: a web-python plugin (its own Python worker,
   booted from the snapshot) that loads the frame model with pyjoy.onnx from models.json
   and runs it: from loadPlugin to the first top 1 answered; then model.run alone (timed
   in Python) on a 256x256 RGBA frame (what a window would draw: the shorter side scaled
   to 256, the centre square), on the whole 451x300 frame, and classify() from the page.
3. Both opened at once (the window and its Python part started together): until both
   answered.

Prints the figures and writes every sample to bench/results/vision_route.json.
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import statistics
import sys
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyjoy.devtools import launch_options, machine_facts, served  # noqa: E402

CORE = '''
import json
import time
from imjoy import api
from pyjoy.onnx import load_model, read_url


class Core:
    async def setup(self):
        self.loading = None

    async def _load(self):
        catalog = json.loads(await read_url("models.json"))
        entry = catalog["models"]["efficientnet-lite0-frame"]
        self.labels = json.loads(await read_url(entry["labels"], entry["labelsIntegrity"]))
        self.model = await load_model(entry["url"], integrity=entry["integrity"], name="frame")
        await self.model.run({"image": self.blank})

    async def ready(self, blank):
        if self.loading is None:
            import asyncio
            self.blank = blank
            self.loading = asyncio.ensure_future(self._load())
        await self.loading
        return self.model.info()

    async def top1(self, frame):
        await self.loading
        logits = (await self.model.run({"image": frame}))["logits"]
        values = logits.data.cast("f").tolist() if hasattr(logits, "data") and not hasattr(logits, "ravel") else logits.ravel().tolist()
        best = max(range(len(values)), key=values.__getitem__)
        return self.labels[best]

    async def timings(self, frame, runs):
        out = []
        for _ in range(runs):
            started = time.perf_counter()
            await self.model.run({"image": frame})
            out.append((time.perf_counter() - started) * 1000)
        return out


api.export(Core())
'''


def core_source() -> str:
    config = {"name": "Recognition Core", "type": "web-python", "version": "0.1.0", "api_version": "0.1.8"}
    return f'<config lang="json">\n{json.dumps(config)}\n</config>\n<script lang="python">{CORE}</script>\n'


ARRAY = """const array = (a) => ({_rtype: 'ndarray', _rvalue: Uint8Array.from(atob(a.b64), c => c.charCodeAt(0)).buffer, _rshape: a.shape, _rdtype: 'uint8'});"""


def sent(image: np.ndarray) -> dict:
    return {"b64": base64.b64encode(image.tobytes()).decode(), "shape": list(image.shape)}


def square_256(image: np.ndarray) -> np.ndarray:
    """The shorter side to 256 (PIL, antialiased bilinear), the centre 256x256, RGBA."""
    h, w = image.shape[:2]
    size = (round(w * 256 / h), 256) if h <= w else (256, round(h * 256 / w))
    resized = np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))
    top, left = (resized.shape[0] - 256) // 2, (resized.shape[1] - 256) // 2
    crop = resized[top:top + 256, left:left + 256]
    return np.concatenate([crop, np.full((256, 256, 1), 255, np.uint8)], axis=2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--dist", type=Path, default=ROOT / "dist")
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/vision_route.json")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    image = skimage.data.chelsea()
    full, square = sent(image), sent(square_256(image))
    blank = {"b64": base64.b64encode(bytes(256 * 256 * 4)).decode(), "shape": [256, 256, 4]}
    results: dict = {}
    with served(args.dist) as url, sync_playwright() as p:
        chromium = p.chromium.launch(**launch_options())
        for order in ("js", "python", "both"):
            page = chromium.new_page()
            page.goto(url)
            page.evaluate("pyjoy.ready")
            results[order] = page.evaluate(f"""async ([order, core, full, square, blank, runs]) => {{ {ARRAY}
              const t0 = performance.now();
              const out = {{}};
              const js = async () => {{
                await pyjoy.loadPlugin('./plugins/image-recognition.imjoy.html');
                const top = await (await pyjoy.getPlugin('Image Recognition')).classify(array(full));
                out.js_open_ms = performance.now() - t0; out.js_label = top[0].label;
              }};
              const py = async () => {{
                const plugin = await pyjoy.loadPlugin(core);
                out.py_started_ms = performance.now() - t0;
                out.py_info = await plugin.ready(array(blank));
                out.py_label = await plugin.top1(array(square));
                out.py_open_ms = performance.now() - t0;
              }};
              if (order === 'js') await js();
              else if (order === 'python') await py();
              else await Promise.all([js(), py()]);
              out.both_ms = performance.now() - t0;
              if (order === 'js') {{
                const plugin = await pyjoy.getPlugin('Image Recognition');
                const t = await plugin.timings(array(full), runs);
                out.js_infer_ms = t.infer; out.js_preprocess_ms = t.preprocess;
                out.js_classify_ms = [];
                for (let i = 0; i < runs; i++) {{ const a = array(full); const s = performance.now(); await plugin.classify(a); out.js_classify_ms.push(performance.now() - s); }}
              }}
              if (order === 'python') {{
                const plugin = await pyjoy.getPlugin('Recognition Core');
                out.py_run_256_ms = await plugin.timings(array(square), runs);
                out.py_run_full_ms = await plugin.timings(array(full), runs);
                out.py_top1_256_ms = [];
                for (let i = 0; i < runs; i++) {{ const a = array(square); const s = performance.now(); await plugin.top1(a); out.py_top1_256_ms.push(performance.now() - s); }}
              }}
              return out; }}""", [order, core_source(), full, square, blank, args.runs])
            page.close()
            print(order, {k: (round(statistics.median(v), 1) if isinstance(v, list) else v) for k, v in results[order].items()}, file=sys.stderr, flush=True)
        version = chromium.version
        chromium.close()
    record = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": machine_facts(version, load_before), "results": results}
    args.json.write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
