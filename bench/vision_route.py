"""Where Image Recognition's Python could run: measured before rewriting the plugin.

    python bench/vision_route.py [--runs N] [--dist DIR] [--json PATH]

In one Chromium, a fresh page for each route, on one build, on scikit-image's `chelsea`:

1. `js`: the JavaScript plugin (the build's py_plugins/image-recognition): from loadPlugin
   to the first classify() answered; then timings() (inside its worker: WASM, its threads)
   and classify() from the page.
2. The shape proposed for the Python version: a web-python plugin (its own Python, booted
   from the snapshot) that loads the frame model with pyjoy.onnx from models.json and runs
   it; from loadPlugin to the first top 1 answered; then model.run alone (timed in Python)
   on a 256x256 RGBA frame (what a window would draw: the shorter side scaled to 256, the
   centre square) and on the whole 451x300 frame, and top 1 of the 256x256 frame from the
   page. `py-page`: in the page's worker (not cross-origin isolated: one thread);
   `py-isolated`: `"isolated": true` (a frame's worker: a thread per core);
   `py-isolated-spare`: the same, once a spare Python was booted (another isolated plugin
   loaded first, then 10 s idle), as it would be if the host kept one from the start.
3. `both`: the JavaScript plugin and the isolated Python part opened at once: until each answered.

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
        marks = [time.perf_counter()]
        catalog = json.loads(await read_url("models.json"))
        entry = catalog["models"]["efficientnet-lite0-frame"]
        self.labels = json.loads(await read_url(entry["labels"], entry["labelsIntegrity"]))
        marks.append(time.perf_counter())
        self.model = await load_model(entry["url"], integrity=entry["integrity"], name="frame")
        marks.append(time.perf_counter())
        await self.model.run({"image": self.blank})
        marks.append(time.perf_counter())
        # ms: the catalog and labels, load_model (fetch, runtime, session), the first run
        self.phases = {name: (b - a) * 1000 for name, a, b in zip(("catalog", "load_model", "first_run"), marks, marks[1:])}

    async def ready(self, blank):
        if self.loading is None:
            import asyncio
            self.blank = blank
            self.loading = asyncio.ensure_future(self._load())
        await self.loading
        return {**self.model.info(), "phases": self.phases}

    async def top1(self, frame):
        await self.loading
        logits = (await self.model.run({"image": frame}))["logits"]
        values = logits.data.cast("f").tolist() if hasattr(logits, "data") and not hasattr(logits, "ravel") else logits.ravel().tolist()
        best = max(range(len(values)), key=values.__getitem__)
        return self.labels[best]

    async def timings(self, frame, runs):
        out = []
        for _ in range(runs + 3):  # 3 warm-up runs, left out
            started = time.perf_counter()
            await self.model.run({"image": frame})
            out.append((time.perf_counter() - started) * 1000)
        return out[3:]


api.export(Core())
'''


def core_source(isolated: bool, name: str = "Recognition Core") -> str:
    config = {"name": name, "type": "web-python", "version": "0.1.0", "api_version": "0.1.8", "isolated": isolated}
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
        for order in ("js", "py-page", "py-isolated", "py-isolated-spare", "both"):
            page = chromium.new_page()
            page.goto(url)
            page.evaluate("pyjoy.ready")
            if order == "py-isolated-spare":
                page.evaluate("(text) => pyjoy.loadPlugin(text)", core_source(True, "Another Python"))
                page.wait_for_timeout(10_000)  # the host boots a spare Python once the page is idle
            core = core_source(order != "py-page")
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
              else if (order === 'both') await Promise.all([js(), py()]);
              else await py();
              if (order === 'js') {{
                const plugin = await pyjoy.getPlugin('Image Recognition');
                const t = await plugin.timings(array(full), runs + 3);
                out.js_infer_ms = t.infer.slice(3); out.js_preprocess_ms = t.preprocess.slice(3);
                out.js_classify_ms = [];
                for (let i = 0; i < runs + 3; i++) {{ const a = array(full); const s = performance.now(); await plugin.classify(a); out.js_classify_ms.push(performance.now() - s); }}
                out.js_classify_ms = out.js_classify_ms.slice(3);
              }} else if (order !== 'both') {{
                const plugin = await pyjoy.getPlugin('Recognition Core');
                out.py_run_full_ms = await plugin.timings(array(full), runs);
                out.py_run_256_ms = await plugin.timings(array(square), runs);
                out.py_top1_256_ms = [];
                for (let i = 0; i < runs + 3; i++) {{ const a = array(square); const s = performance.now(); await plugin.top1(a); out.py_top1_256_ms.push(performance.now() - s); }}
                out.py_top1_256_ms = out.py_top1_256_ms.slice(3);
              }}
              return out; }}""", [order, core, full, square, blank, args.runs])
            page.close()
            shown = {k: (round(statistics.median(v), 1) if isinstance(v, list) else v) for k, v in results[order].items()}
            shown.pop("py_info", None)
            info = results[order].get("py_info", {})
            print(order, shown, info.get("threads"), info.get("phases"), file=sys.stderr, flush=True)
        version = chromium.version
        chromium.close()
    record = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "machine": machine_facts(version, load_before), "results": results}
    args.json.write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
