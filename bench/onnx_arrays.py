"""pyjoy.onnx in the browser: what Python's arrays cost on their way into onnxruntime-web
and back, beside onnxruntime-web called directly from JavaScript on the same session.

Run from the repository root after `python build.py`:

    python bench/onnx_arrays.py [--json PATH] [--runs N]

A model made here with onnx.helper, y = x + 1 (x: float32 [N]), is loaded by pyjoy.onnx in
a web-python plugin (Pyodide in its worker; onnxruntime-web's WASM, one thread: the worker
is not cross-origin isolated). For 1 MB and 16 MB inputs, in the same worker and run:

- pyjoy.onnx: `await model.run({"x": ndarray})` from Python, an NDArray in, a new NDArray
  out (the inputs viewed in place, onnxruntime's copy into its heap and out of it, one copy
  into Python's memory);
- floor: the same session's `session.run` from JavaScript on a Float32Array made there
  (onnxruntime's copies in and out, nothing of Python's);

so the difference is what crossing from Python costs. Medians of --runs (default 20).
Prints a markdown table and writes every number, with the machine, to bench/results/onnx_arrays.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path

from onnx import TensorProto, helper, numpy_helper
import numpy as np
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's pyjoy
sys.path.insert(0, str(ROOT / "bench"))

from pyjoy.devtools import launch_options, machine_facts, served  # noqa: E402
from rpc import summary, wait_until_idle  # noqa: E402  (bench/rpc.py: the same statistics)

SIZES_MB = (1, 16)
TIMEOUT_MS = 300_000

PLUGIN = """<config lang="json">
{"name": "ONNX bench", "type": "web-python", "version": "0.1.0", "api_version": "0.1.8"}
</config>
<script lang="python">
import time
from imjoy import api
from pyodide.code import run_js
from pyjoy.onnx import load_model
from pyjoy.rpc.ndarray import NDArray

DIRECT = run_js('''async (handle, n, runs) => {
  const x = new Float32Array(n).fill(2);
  const times = [];
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    const outputs = await handle.session.run({ x: new handle.ort.Tensor("float32", x, [n]) });
    times.push(performance.now() - started);
    if (outputs.y.data[n - 1] !== 3) throw new Error("wrong output");
  }
  return times;
}''')


class Bench:
    async def run(self, model_bytes, sizes, runs):
        model = await load_model(model_bytes, name="add-one")
        handle = model._backend._handle  # the same session, for the floor
        results = {"info": model.info(), "ms": {}}
        for n in sizes:
            x = NDArray(memoryview(bytearray(b"\\0\\0\\0@" * n)), (n,), "float32")  # 2.0 each
            ours = []
            for _ in range(runs):
                started = time.perf_counter()
                y = (await model.run({"x": x}))["y"]
                ours.append((time.perf_counter() - started) * 1000)
            assert y.data[-4:] == b"\\0\\0\\x40\\x40", "wrong output"  # 3.0
            direct = (await DIRECT(handle, n, runs)).to_py()
            results["ms"][str(n)] = {"pyjoy.onnx": ours, "direct": direct}
        return results


api.export(Bench())
</script>
"""


def add_one() -> bytes:
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["y"])], "add_one",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N"])],
        [numpy_helper.from_array(np.ones(1, np.float32), "one")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "onnx_arrays.json")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    build = json.loads((ROOT / "dist" / ".build-stamp").read_text())["build"]
    load_before = os.getloadavg()[0]
    sizes = [mb * 2**20 // 4 for mb in SIZES_MB]
    with served(ROOT / "dist") as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(**launch_options())
        chromium = browser.version
        page = browser.new_page()
        page.goto(url)
        page.evaluate("pyjoy.ready")
        assert page.evaluate("(text) => pyjoy.loadPlugin(text).then(() => 'ok', (e) => e.message)", PLUGIN) == "ok"
        wait_until_idle()
        measured = page.evaluate("""async ([model, sizes, runs]) => {
          const bench = await pyjoy.getPlugin("ONNX bench");
          return bench.run(new Uint8Array(model).buffer, sizes, runs);
        }""", [list(add_one()), sizes, args.runs])
        browser.close()
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "build": build,
        "machine": machine_facts(chromium, load_before),
        "runs": args.runs,
        "info": measured["info"],
        "ms": {f"{mb} MB": {kind: summary(values) for kind, values in measured["ms"][str(n)].items()}
               for mb, n in zip(SIZES_MB, sizes)},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    info = results["info"]
    print(f"# pyjoy.onnx, {results['date']}, Chromium {chromium}, {results['machine']['nproc']} CPUs, "
          f"load {load_before:.1f}; {info['provider']}, {info['threads']} thread(s)\n")
    print("| y = x + 1, float32 | pyjoy.onnx from Python, ms | onnxruntime-web from JS, ms | ratio |")
    print("|---|---|---|---|")
    for size, kinds in results["ms"].items():
        ours, floor = kinds["pyjoy.onnx"]["median"], kinds["direct"]["median"]
        print(f"| {size} | {ours:.2f} | {floor:.2f} | {ours / floor:.2f}x |")


if __name__ == "__main__":
    main()
