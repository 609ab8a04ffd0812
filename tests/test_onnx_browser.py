"""pyjoy.onnx in real Chromium (a web-python plugin and a Python window: Pyodide, onnxruntime-web) and on a real
engine (a native-python plugin: onnxruntime), with one plugin script for both. The tiny
model made by test_onnx.py (x @ W + b, n + n) gives outputs identical to numpy's, in the
browser, on the engine and under CPython; the app's own model, named by its relative URL,
gives onnxruntime's logits; bad inputs give the errors CPython gives; offline after one visit."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from playwright.sync_api import Page, Playwright

from conftest import open_offline
from pyjoy.devtools import CHROMIUM, CHROMIUM_ARGS, engine_running, run_async
from pyjoy.engine.client import EngineClient
from pyjoy.onnx import ModelError, load_model
from test_onnx import reference, sri, tiny_inputs, tiny_model
from test_python_isolated import LOADED_AHEAD

ROOT = Path(__file__).resolve().parents[1]

# One script, run unchanged as a web-python plugin and as a native-python one.
SCRIPT = '''
import hashlib
from imjoy import api
from pyjoy.onnx import ModelError, load_model, read_url


class Tiny:
    async def setup(self):
        self.models = {}

    async def load(self, key, source=None, attachment=None, integrity=None):
        model = await load_model(source, attachment=attachment, integrity=integrity, name=key)
        self.models[key] = model
        return {"inputs": model.inputs, "outputs": model.outputs, "info": model.info()}

    async def run(self, key, inputs):
        outputs = await self.models[key].run(inputs)
        return {"outputs": outputs, "kinds": sorted({type(value).__name__ for value in outputs.values()})}

    async def refused(self, key, inputs):
        try:
            await self.models[key].run(inputs)
        except ModelError as error:
            return str(error)
        return "no error"

    async def read(self, url, integrity=None):
        try:
            return hashlib.sha256(await read_url(url, integrity)).hexdigest()
        except ModelError as error:
            return str(error)

    async def load_refused(self, source=None, attachment=None, integrity=None, provider="auto"):
        try:
            await load_model(source, attachment=attachment, integrity=integrity, provider=provider)
        except ModelError as error:
            return str(error)
        return "no error"


api.export(Tiny())
'''


def plugin(kind: str, attachments: dict[str, str]) -> str:
    config = {"name": f"Tiny ONNX {kind}", "type": kind, "version": "0.1.0", "api_version": "0.1.8"}
    blocks = "".join(f'<attachment name="{name}">\n{text}\n</attachment>\n' for name, text in attachments.items())
    return f'<config lang="json">\n{json.dumps(config)}\n</config>\n<script lang="python">{SCRIPT}</script>\n{blocks}'


def app_model() -> dict:
    """The app's own model, as models.json names it (a URL relative to the app)."""
    entry = json.loads((ROOT / "dist" / "models.json").read_text())["models"]["efficientnet-lite0"]
    return {"url": entry["url"], "integrity": entry["integrity"], "path": ROOT / "dist" / entry["url"]}


def wire(array: np.ndarray) -> dict:
    return {"dtype": array.dtype.name, "shape": list(array.shape), "b64": base64.b64encode(array.tobytes()).decode()}


def unwire(value: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(value["b64"]), dtype=value["dtype"]).reshape(value["shape"])


# In the page: the plugin's calls, with arrays as ImJoy ndarrays; answers' arrays as base64.
CALLS = """
const toWire = ({dtype, shape, b64}) => ({_rtype: "ndarray", _rvalue: Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)).buffer, _rshape: shape, _rdtype: dtype});
const fromWire = (v) => {
  const bytes = new Uint8Array(v._rvalue.buffer ?? v._rvalue, v._rvalue.byteOffset ?? 0, v._rvalue.byteLength);
  let text = ""; for (const b of bytes) text += String.fromCharCode(b);
  return {dtype: v._rdtype, shape: v._rshape, b64: btoa(text)};
};
const arrays = (inputs) => Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, toWire(v)]));
"""


def browser_session(page: Page, kind: str, tiny: bytes) -> dict:
    """Loads the plugin (as `kind`) in the page and runs everything the tests check; returns what it saw."""
    name = f"Tiny ONNX {kind}"
    source = plugin(kind, {"tiny": base64.b64encode(tiny).decode()})
    assert page.evaluate("(text) => pyjoy.loadPlugin(text).then(() => 'ok', (e) => e.message)", source) == "ok"
    inputs = {key: wire(value) for key, value in tiny_inputs().items()}
    bad = bad_inputs()
    lite = app_model()
    return page.evaluate(CALLS + """async ([name, tiny, inputs, bad, lite]) => {
      const p = await pyjoy.getPlugin(name);
      const out = {};
      // Two models loading at once, first in this worker: both run (one copy of web.js).
      await Promise.all(["c1", "c2"].map((key) => p.load(key, new Uint8Array(tiny).buffer)));
      out.concurrent = (await Promise.all(["c1", "c2"].map((key) => p.run(key, arrays(inputs))))).map((r) => fromWire(r.outputs.y));
      out.loaded = await p.load("tiny", new Uint8Array(tiny).buffer);
      const ran = await p.run("tiny", arrays(inputs));
      out.kinds = ran.kinds;
      out.outputs = Object.fromEntries(Object.entries(ran.outputs).map(([k, v]) => [k, fromWire(v)]));
      out.attachment = await p.load("attached", null, "tiny");
      out.attachmentOutputs = Object.fromEntries(Object.entries((await p.run("attached", arrays(inputs))).outputs).map(([k, v]) => [k, fromWire(v)]));
      out.refused = [];
      for (const inputs of bad) out.refused.push(await p.refused("tiny", arrays(inputs)));
      out.read = [await p.read("models.json"), await p.read(lite.url, lite.integrity), await p.read(lite.url, "sha256-" + btoa("x".repeat(32)))];
      out.loadRefused = [await p.load_refused(null, "nope"), await p.load_refused("vendor/models/none.onnx"),
                         await p.load_refused(new Uint8Array(tiny).buffer, null, lite.integrity),
                         await p.load_refused(new Uint8Array(tiny).buffer, null, null, "webgpu")];
      // The app's model by its relative URL, with its integrity, run on zeros.
      out.lite = await p.load("lite", lite.url, null, lite.integrity);
      const zeros = {dtype: "float32", shape: [1, 3, 224, 224], b64: btoa("\\0".repeat(4 * 3 * 224 * 224))};
      out.logits = fromWire((await p.run("lite", arrays({input: zeros}))).outputs.logits);
      return out;
    }""", [name, list(tiny), inputs, bad, {"url": lite["url"], "integrity": lite["integrity"]}])


def bad_inputs() -> list[dict]:
    good = tiny_inputs()
    cases = [{**good, "x": good["x"].astype(np.float64)}, {**good, "x": good["x"][:, :2].copy()},
             {"x": good["x"], "b": good["b"], "m": good["n"]}]
    return [{key: wire(value) for key, value in case.items()} for case in cases]


def cpython_errors(tiny: bytes) -> list[str]:
    """What CPython's pyjoy.onnx says about the same bad inputs (the browser must say the same)."""
    async def scenario() -> list[str]:
        model = await load_model(tiny, name="tiny")
        messages = []
        for case in bad_inputs():
            try:
                await model.run({key: unwire(value) for key, value in case.items()})
            except ModelError as error:
                messages.append(str(error))
        return messages

    return run_async(scenario())


def zeros_logits() -> np.ndarray:
    """The reference for the app's model: onnxruntime in this process, on the same zeros."""
    session = onnxruntime.InferenceSession(str(app_model()["path"]), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": np.zeros((1, 3, 224, 224), np.float32)})[0]


def check_session(seen: dict, tiny: bytes) -> None:
    want = reference(tiny_inputs())
    for outputs in (seen["outputs"], seen["attachmentOutputs"]):
        got = {key: unwire(value) for key, value in outputs.items()}
        assert got["y"].dtype == np.float32 and got["y"].shape == (4, 2)
        # Exact: the inputs and weights are multiples of 1/4, so every runtime's sums are exact.
        assert np.array_equal(got["y"], want["y"]) and np.array_equal(got["n2"], want["n2"])
    assert all(np.array_equal(unwire(y), want["y"]) for y in seen["concurrent"])
    assert seen["kinds"] == ["NDArray"]  # Pyodide here has no numpy: NDArray in, NDArray out
    assert [i["name"] for i in seen["loaded"]["inputs"]] == ["x", "b", "n"]
    assert seen["loaded"]["inputs"][0]["shape"] == ["N", 3] and seen["loaded"]["inputs"][2]["dtype"] == "int64"
    assert seen["refused"] == cpython_errors(tiny)
    assert seen["refused"][0].startswith("run: input 'x' of model 'tiny' should be float32")
    nope, missing, corrupt, webgpu = seen["loadRefused"]
    # No GPU here (--disable-gpu): asked for, WebGPU is refused, saying why.
    assert 'provider "webgpu" was asked for, but WebGPU is absent' in webgpu, webgpu
    assert "attachment 'nope' could not be read" in nope and "has no attachment nope" in nope, nope
    assert "could not load the model none.onnx" in missing and "vendor/models/none.onnx" in missing, missing
    assert "do not match its integrity" in corrupt, corrupt
    check_read(seen["read"])
    assert seen["lite"]["inputs"] == [{"name": "input", "shape": [1, 3, 224, 224], "type": "tensor(float)", "dtype": "float32"}]
    logits = unwire(seen["logits"])
    reference_logits = zeros_logits()
    # WASM's kernels and native onnxruntime's: the same model, rounding apart.
    assert logits.shape == (1, 1000) and np.abs(logits - reference_logits).max() < 1e-3
    assert np.argmax(logits) == np.argmax(reference_logits)


def check_read(read: list[str]) -> None:
    """read_url of the app's files: their bytes (as hashed here from dist/), and a wrong integrity refused."""
    catalog, model, wrong = read
    assert catalog == hashlib.sha256((ROOT / "dist" / "models.json").read_bytes()).hexdigest()
    assert model == hashlib.sha256(app_model()["path"].read_bytes()).hexdigest()
    assert wrong.startswith("read_url: ") and "integrity" in wrong, wrong


def check_info(info: dict) -> None:
    """The provider and each choice, reported as the worker saw it."""
    assert info["runtime"] == "onnxruntime-web" and info["version"] == "1.30.0"
    print("\nbrowser info:", json.dumps(info))
    if info["provider"] == "wasm":
        assert "WASM" in info["reason"] and info["simd"] is True
        if not info["crossOriginIsolated"]:
            assert info["threads"] == 1 and "not cross-origin isolated" in info["reason"]
        assert info["webgpu"] in info["reason"]  # why not WebGPU
    else:
        assert info["provider"] == "webgpu" and "WebGPU" in info["reason"]


@pytest.mark.parametrize("kind", ["web-python", "web-python-window"])
def test_a_python_plugin_runs_the_tiny_model_as_numpy_does(page: Page, base_url: str, kind: str) -> None:
    """The same script as a web-python plugin (its worker) and as a Python window (PyScript in
    its own sandboxed frame, ImJoy's web-python-window: onnxruntime-web on the window's
    thread): the same outputs and errors."""
    tiny = tiny_model()
    page.goto(base_url)
    page.evaluate("pyjoy.ready")
    seen = browser_session(page, kind, tiny)
    check_session(seen, tiny)
    check_info(seen["loaded"]["info"])
    # Its Python imports pyjoy.onnx: its sandbox (a worker, a frame) loaded onnxruntime-web as Python booted.
    assert LOADED_AHEAD in seen["loaded"]["info"]["reason"], seen["loaded"]["info"]
    if kind == "web-python":
        assert seen["loaded"]["info"]["provider"] == "wasm"  # headless Chromium here: no GPU adapter
        assert seen["attachment"]["info"]["provider"] == "wasm"
    else:
        # A window frame is cross-origin isolated as a worker's frame is: one thread per core.
        assert seen["loaded"]["info"]["crossOriginIsolated"] is True and seen["loaded"]["info"]["threads"] >= 1


def test_offline_after_one_visit(profile_context, base_url: str) -> None:
    page = open_offline(profile_context, base_url)
    tiny = tiny_model()
    seen = browser_session(page, "web-python", tiny)
    check_session(seen, tiny)
    assert LOADED_AHEAD in seen["loaded"]["info"]["reason"]  # the build's web.js from the service worker's cache


# The console's Python (pyjoy.runPython): a same-origin module worker of the page, which is
# cross-origin isolated, so onnxruntime-web gets shared memory and one thread per core.
CONSOLE = """
import base64, json, struct
from pyjoy.onnx import load_model
from pyjoy.rpc.ndarray import NDArray
model = await load_model(base64.b64decode(TINY), name="tiny", provider=PROVIDER, threads=THREADS)
x = NDArray(struct.pack("<6f", *X), (2, 3), "float32")
b = NDArray(struct.pack("<2f", *B), (2,), "float32")
n = NDArray(struct.pack("<2q", *N), (2,), "int64")
outputs = await model.run({"x": x, "b": b, "n": n})
json.dumps({"info": model.info(), "y": outputs["y"].tolist(), "n2": outputs["n2"].tolist()})
"""


def console_run(page: Page, provider: str, threads: int | None = None) -> dict:
    inputs = {"x": np.array([[1, 2, 3], [4, 5, 6]], np.float32), "b": np.array([0.5, -1.5], np.float32),
              "n": np.array([5, -7], np.int64)}
    values = {"TINY": base64.b64encode(tiny_model()).decode(), "PROVIDER": provider, "THREADS": threads,
              "X": inputs["x"].ravel().tolist(), "B": inputs["b"].tolist(), "N": inputs["n"].tolist()}
    code = "".join(f"{key} = {value!r}\n" for key, value in values.items()) + CONSOLE
    seen = json.loads(page.evaluate("(code) => pyjoy.runPython(code)", code))
    want = reference(inputs)
    assert np.array_equal(np.array(seen["y"], np.float32), want["y"]) and seen["n2"] == want["n2"].tolist()
    return seen["info"]


def test_where_the_context_is_cross_origin_isolated_wasm_runs_one_thread_per_core(page: Page, base_url: str) -> None:
    page.goto(base_url)
    page.evaluate("pyjoy.ready")
    info = console_run(page, "auto")
    cores = page.evaluate("navigator.hardwareConcurrency")
    assert info["crossOriginIsolated"] is True and info["provider"] == "wasm"
    if cores > 1:  # threads that started, counted as each thread's module loaded
        assert info["threads"] == cores and f"cross-origin isolated: {cores} threads" in info["reason"], info
    one = console_run(page, "wasm", threads=1)  # as bench/vision.py compares them
    assert one["threads"] == 1 and "one thread, as asked for" in one["reason"], one


def test_webgpu_where_an_adapter_exists(playwright: Playwright, base_url: str) -> None:
    """Chromium with SwiftShader's WebGPU adapter (software): "auto" passes it by for WASM and
    says why; asked for, WebGPU runs the model, in a web-python plugin and in the console."""
    args = [arg for arg in CHROMIUM_ARGS if arg != "--disable-gpu"]
    args += ["--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader", "--enable-features=Vulkan"]
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
    try:
        page = browser.new_page()
        page.goto(base_url)
        page.evaluate("pyjoy.ready")
        chosen = console_run(page, "auto")
        assert chosen["provider"] == "wasm" and chosen["webgpu"].startswith("software only"), chosen
        assert f"WASM: WebGPU is {chosen['webgpu']}" in chosen["reason"]
        info = console_run(page, "webgpu")
        assert info["provider"] == "webgpu" and info["wasm"] == "ort-wasm-simd-threaded.asyncify.wasm", info
        assert info["reason"].startswith("WebGPU, as asked for")
        # In a web-python plugin's worker too (a data: worker: a secure context, with navigator.gpu).
        source = plugin("web-python", {}).replace("load_model(source, attachment=attachment, integrity=integrity, name=key)",
                                                  "load_model(source, attachment=attachment, integrity=integrity, name=key, provider='webgpu')")
        assert page.evaluate("(text) => pyjoy.loadPlugin(text).then(() => 'ok', (e) => e.message)", source) == "ok"
        inputs = {key: wire(value) for key, value in tiny_inputs().items()}
        seen = page.evaluate(CALLS + """async ([tiny, inputs]) => {
          const p = await pyjoy.getPlugin("Tiny ONNX web-python");
          const loaded = await p.load("tiny", new Uint8Array(tiny).buffer);
          const ran = await p.run("tiny", arrays(inputs));
          return {info: loaded.info, outputs: Object.fromEntries(Object.entries(ran.outputs).map(([k, v]) => [k, fromWire(v)]))};
        }""", [list(tiny_model()), inputs])
        assert seen["info"]["provider"] == "webgpu", seen["info"]
        want = reference(tiny_inputs())
        assert all(np.array_equal(unwire(seen["outputs"][key]), want[key]) for key in ("y", "n2"))
    finally:
        browser.close()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, base_url: str):
    # --app: the engine's plugins resolve the app's relative URLs against the served dist/.
    with engine_running(tmp_path_factory.mktemp("engine-onnx"), "--app", base_url) as (url, _process):
        yield url


def test_the_same_plugin_runs_natively_on_the_engine(engine: str, base_url: str) -> None:
    tiny = tiny_model()
    source = plugin("native-python", {})

    async def scenario() -> dict:
        client = await EngineClient.connect(engine, origin=base_url.rstrip("/"))
        try:
            tiny_plugin = (await client.load_plugin(source)).api
            seen = {"loaded": await tiny_plugin.load("tiny", tiny, None, sri(tiny))}
            ran = await tiny_plugin.run("tiny", tiny_inputs())
            seen["kinds"], seen["outputs"] = ran["kinds"], ran["outputs"]
            seen["refused"] = [await tiny_plugin.refused("tiny", {k: unwire(v) for k, v in case.items()})
                               for case in bad_inputs()]
            lite = app_model()
            seen["read"] = [await tiny_plugin.read("models.json"), await tiny_plugin.read(lite["url"], lite["integrity"]),
                            await tiny_plugin.read(lite["url"], "sha256-" + base64.b64encode(b"x" * 32).decode())]
            seen["lite"] = await tiny_plugin.load("lite", lite["url"], None, lite["integrity"])
            seen["logits"] = (await tiny_plugin.run("lite", {"input": np.zeros((1, 3, 224, 224), np.float32)}))["outputs"]["logits"]
            return seen
        finally:
            await client.close()

    seen = run_async(scenario())
    want = reference(tiny_inputs())
    assert seen["kinds"] == ["ndarray"]  # numpy on the engine: numpy in, numpy out
    assert np.array_equal(seen["outputs"]["y"], want["y"]) and np.array_equal(seen["outputs"]["n2"], want["n2"])
    assert seen["refused"] == cpython_errors(tiny)
    info = seen["loaded"]["info"]
    assert info["runtime"] == "onnxruntime" and info["provider"] in onnxruntime.get_available_providers()
    check_read(seen["read"])
    assert seen["lite"]["inputs"][0]["shape"] == [1, 3, 224, 224]
    np.testing.assert_allclose(seen["logits"], zeros_logits(), atol=1e-5)
    # The browser's outputs are numpy's bits too (the tests above): the three runtimes agree.
