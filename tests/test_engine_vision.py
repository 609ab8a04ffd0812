"""Image Recognition's "Run on engine": a real `pyjoy engine` (allowing the test server's
origin), real Chromium connected with pyjoy.connectEngine, the built-in plugin classifying
the same photograph in the browser and on the engine's model service. Both are checked
against onnxruntime run here, in the test's process, on PIL's preprocessing: the
independent reference. And the plugin API the plugin uses (api.engineStatus,
api.engineModel), from a plugin of the test's own."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from playwright.sync_api import Browser, Page, expect

from pyjoy.build.model import CATS
from pyjoy.devtools import engine_running
from test_model import pil_preprocess
from test_vision import (NAME, NDARRAY, allow_camera, call, camera_browser, cat_video, frame_of,  # noqa: F401 (fixtures)
                         labels, load_recognizer, native, ndarray_js, wait_for_recognitions)

TOKEN = "vision-test-token-" + "v" * 30


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, base_url: str):
    workdir = tmp_path_factory.mktemp("engine-vision")
    with engine_running(workdir, "--app", base_url, env={"PYJOY_ENGINE_TOKEN": TOKEN}) as (url, process):
        yield url


def connect(page: Page, url: str) -> None:
    connected = page.evaluate("(url) => pyjoy.connectEngine(url)", url)
    assert connected["state"] == "connected", connected


def softmax_top5(logits: np.ndarray, names: list[str]) -> list[tuple[str, float]]:
    exps = np.exp(logits.astype(np.float64) - logits.max())
    probabilities = exps / exps.sum()
    return [(names[i], float(probabilities[i])) for i in np.argsort(-probabilities)[:5]]


def infer(page: Page, tensor: np.ndarray) -> np.ndarray:
    out = page.evaluate(
        f"""async (t) => {{ {NDARRAY}
             const out = await (await pyjoy.getPlugin({json.dumps(NAME)})).infer(ndarray(t));
             return {{shape: out._rshape, values: Array.from(new Float32Array(out._rvalue))}}; }}""",
        ndarray_js(tensor),
    )
    assert out["shape"] == [1, 1000]
    return np.array(out["values"], np.float32)


def test_image_recognition_on_the_engine_gives_the_browsers_top_5(page: Page, base_url: str, engine: str, native) -> None:
    session, names = native
    photo = skimage.data.chelsea()
    (reference,) = session.run(None, {"input": pil_preprocess(photo)})  # onnxruntime here, PIL's preprocessing
    expected = softmax_top5(reference[0], names)

    page.goto(base_url)
    page.evaluate("pyjoy.ready")
    # Loaded before the engine connects: "Run on engine" appears when it does.
    page.evaluate(f"async () => {{ await pyjoy.loadPlugin({json.dumps('./plugins/image-recognition.imjoy.html')}); }}")
    toggle = frame_of(page).locator("#on-engine")
    expect(toggle).to_be_hidden()
    assert "no PyJoy engine is connected" in call(page, "runOnEngine", True)["error"]
    connect(page, engine)
    expect(toggle).to_be_visible()

    browser = call(page, "classify", ndarray_js(photo))["ok"]
    facts = call(page, "runOnEngine", True)["ok"]
    assert facts == {"connected": True, "on": True, "provider": "CPUExecutionProvider", "reason": facts["reason"]} and facts["reason"]
    assert frame_of(page).locator("#use-engine").is_checked()
    expect(frame_of(page).locator("#status")).to_contain_text("Ready on the PyJoy engine")
    on_engine = call(page, "classify", ndarray_js(photo))["ok"]

    # The same top 5, in order, as each other and as onnxruntime here.
    assert labels(on_engine) == labels(browser) == [label for label, _ in expected]
    assert on_engine[0]["label"] in CATS
    for ours, theirs, (_, probability) in zip(on_engine, browser, expected):
        assert abs(ours["probability"] - theirs["probability"]) < 1e-4
        assert abs(ours["probability"] - probability) < 1e-4
    # The engine's logits for PIL's tensor are onnxruntime's (the same model file, native onnxruntime).
    tensor = pil_preprocess(photo)
    assert np.abs(infer(page, tensor) - reference[0]).max() < 1e-4
    # Unticked: the browser again (onnxruntime-web, to its own tolerance).
    assert call(page, "runOnEngine", False)["ok"]["on"] is False
    assert np.abs(infer(page, tensor) - reference[0]).max() < 1e-3


# A plugin of the test's own uses the calls the Image Recognition plugin uses.
MODEL_USER = """<config lang="json">{"name": "Model User", "type": "web-worker", "version": "0.1.0"}</config>
<script lang="javascript">
const seen = [];
api.export({
  async setup() { seen.push((await api.engineStatus((status) => seen.push(status))).connected); },
  seen: () => seen,
  async load(bytes, integrity) {
    const model = await api.engineModel({data: bytes, integrity, name: "lite0"});
    self.model = model;
    return {id: model.id, inputs: model.inputs, outputs: model.outputs, provider: model.provider, models: (await model.info()).models.map((m) => m.id)};
  },
  async run(tensor) { return (await self.model.run(tensor)).logits; },
  async batch(tensor) { return (await self.model.runBatch([tensor, tensor])).map((out) => out.logits._rshape); },
  async fails(call, ...args) { try { await (call === "load" ? api.engineModel(...args) : self.model[call](...args)); return "answered"; } catch (e) { return e.message; } },
});
</script>"""


def test_a_plugin_gets_a_model_bound_to_it_and_errors_name_what_is_wrong(page: Page, base_url: str, engine: str, dist: Path, native) -> None:
    session, _ = native
    entry = json.loads((dist / "models.json").read_text())["models"]["efficientnet-lite0"]
    data = (dist / entry["url"]).read_bytes()
    page.goto(base_url)
    page.evaluate("pyjoy.ready")
    page.evaluate("(s) => pyjoy.loadPlugin(s)", MODEL_USER)
    user = "pyjoy.getPlugin('Model User')"
    # Without an engine: the status says so, and engineModel rejects saying so.
    no_engine = page.evaluate(f"async () => (await {user}).fails('load', {{data: new Uint8Array(4), integrity: 'sha256-x'}})")
    assert "no PyJoy engine is connected" in no_engine
    connect(page, engine)
    page.wait_for_function(f"{user}.then((p) => p.seen()).then((seen) => seen.length === 2)")
    assert page.evaluate(f"{user}.then((p) => p.seen())") == [False, {"connected": True}]

    loaded = page.evaluate(f"""async ([b64, integrity]) => {{
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        return (await {user}).load(bytes, integrity); }}""", [base64.b64encode(data).decode(), entry["integrity"]])
    assert loaded["id"] == "m" + hashlib.sha256(data).hexdigest()[:16]
    assert loaded["inputs"][0]["shape"] == [1, 3, 224, 224] and loaded["outputs"][0]["name"] == "logits"
    assert loaded["models"] == [loaded["id"]]
    tensor = pil_preprocess(skimage.data.coffee())
    (reference,) = session.run(None, {"input": tensor})
    logits = page.evaluate(f"""async (t) => {{ {NDARRAY}
        const out = await (await {user}).run(ndarray(t));
        return Array.from(new Float32Array(out._rvalue)); }}""", ndarray_js(tensor))
    assert np.abs(np.array(logits) - reference[0]).max() < 1e-4
    assert page.evaluate(f"async (t) => {{ {NDARRAY} return (await {user}).batch(ndarray(t)); }}", ndarray_js(tensor)) == [[1, 1000]] * 2
    # The service's errors reach the plugin, naming what is wrong.
    wrong = page.evaluate(f"async () => (await {user}).fails('run', {{_rtype: 'ndarray', _rvalue: new Float32Array(6).buffer, _rshape: [2, 3], _rdtype: 'float32'}})")
    assert "should have the shape [1, 3, 224, 224]" in wrong, wrong
    corrupt = page.evaluate(f"async (i) => (await {user}).fails('load', {{data: new Uint8Array([1, 2, 3]), integrity: i}})", entry["integrity"])
    assert "do not match its integrity" in corrupt, corrupt
