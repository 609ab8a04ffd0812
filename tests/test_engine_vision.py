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

from conftest import wait_until
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


TENSOR_BYTES = 3 * 224 * 224 * 4  # a float32 [1, 3, 224, 224]
LOGITS_BYTES = 1000 * 4


def watch_engine_frames(page: Page) -> dict[str, list[int]]:
    """The sizes of the binary frames the page sends to and gets from the engine: what shows,
    from outside the page's code, that an array went to the engine and an answer came back."""
    frames: dict[str, list[int]] = {"sent": [], "received": []}

    def on_socket(socket) -> None:
        socket.on("framesent", lambda payload: frames["sent"].append(len(payload)) if isinstance(payload, bytes) else None)
        socket.on("framereceived", lambda payload: frames["received"].append(len(payload)) if isinstance(payload, bytes) else None)

    page.on("websocket", on_socket)
    return frames


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


def test_image_recognition_on_the_engine_gives_the_browsers_top_5(page: Page, base_url: str, engine: str, dist: Path, native) -> None:
    session, names = native
    photo = skimage.data.chelsea()
    (reference,) = session.run(None, {"input": pil_preprocess(photo)})  # onnxruntime here, PIL's preprocessing
    expected = softmax_top5(reference[0], names)

    frames = watch_engine_frames(page)
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
    assert TENSOR_BYTES not in frames["sent"]  # the browser's recognition sent nothing to the engine
    facts = call(page, "runOnEngine", True)["ok"]
    assert facts == {"connected": True, "on": True, "provider": "CPUExecutionProvider", "reason": facts["reason"]} and facts["reason"]
    assert frame_of(page).locator("#use-engine").is_checked()
    expect(frame_of(page).locator("#status")).to_contain_text("Ready on the PyJoy engine")
    on_engine = call(page, "classify", ndarray_js(photo))["ok"]
    # The tensor went to the engine, and the logits came back from it.
    assert frames["sent"].count(TENSOR_BYTES) == 1 and frames["received"].count(LOGITS_BYTES) == 1, frames
    model = json.loads((dist / "models.json").read_text())["models"]["efficientnet-lite0"]
    assert sum(frames["sent"]) >= (dist / model["url"]).stat().st_size + TENSOR_BYTES  # the model file went too

    # The same top 5, in order, as each other and as onnxruntime here.
    assert labels(on_engine) == labels(browser) == [label for label, _ in expected]
    assert on_engine[0]["label"] in CATS
    for ours, theirs, (_, probability) in zip(on_engine, browser, expected):
        assert abs(ours["probability"] - theirs["probability"]) < 1e-4
        assert abs(ours["probability"] - probability) < 1e-4
    # The engine's logits for PIL's tensor are onnxruntime's (the same model file, native onnxruntime).
    tensor = pil_preprocess(photo)
    assert np.abs(infer(page, tensor) - reference[0]).max() < 1e-4
    # Disconnected: "Run on engine" goes, and recognition is the browser's (nothing more is
    # sent); ticked, it is the engine's again once one connects.
    sent = frames["sent"].count(TENSOR_BYTES)
    page.locator("#engine-status .engine-chip").click()
    page.locator("dialog").get_by_role("button", name="Disconnect").click()
    expect(toggle).to_be_hidden()
    assert labels(call(page, "classify", ndarray_js(photo))["ok"]) == labels(browser)
    connect(page, engine)
    expect(toggle).to_be_visible()
    assert labels(call(page, "classify", ndarray_js(photo))["ok"]) == labels(browser)
    assert frames["sent"].count(TENSOR_BYTES) == sent + 1  # the new connection's model service
    # Unticked: the browser again (onnxruntime-web, to its own tolerance).
    assert call(page, "runOnEngine", False)["ok"]["on"] is False
    assert np.abs(infer(page, tensor) - reference[0]).max() < 1e-3
    assert frames["sent"].count(TENSOR_BYTES) == sent + 1


# A plugin of the test's own uses the calls the Image Recognition plugin uses.
MODEL_USER = """<config lang="json">{"name": "Model User", "type": "web-worker", "version": "0.1.0"}</config>
<script lang="javascript">
const seen = [];
const models = {};
const bytesOf = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
api.export({
  async setup() { seen.push((await api.engineStatus((status) => seen.push(status))).connected); },
  seen: () => seen,
  async load(b64, integrity) {
    const model = await api.engineModel({data: bytesOf(b64), integrity, name: "lite0"});
    models[model.id] = model;
    return {id: model.id, inputs: model.inputs, outputs: model.outputs, provider: model.provider};
  },
  async models(id) { return (await models[id].info()).models.map((m) => m.id); },
  async run(id, tensor) { return (await models[id].run(tensor)).logits; },
  async batch(id, tensor) { return (await models[id].runBatch([tensor, tensor])).map((out) => out.logits._rshape); },
  async fails(call, ...args) {
    try { await (call === "load" ? api.engineModel(...args) : models[args.shift()][call](...args)); return "answered"; } catch (e) { return e.message; }
  },
});
</script>"""


def tiny_model(name: str = "tiny") -> bytes:
    """An ONNX model of one Identity on float32 [2]: a second model, unlike the app's (and
    unlike another of another name)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["logits"])], name,
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return onnx.checker.check_model(model) or model.SerializeToString()


def sri(data: bytes) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_a_plugin_gets_models_bound_to_it_and_errors_name_what_is_wrong(page: Page, base_url: str, engine: str, dist: Path, native) -> None:
    session, _ = native
    entry = json.loads((dist / "models.json").read_text())["models"]["efficientnet-lite0"]
    lite0 = base64.b64encode((dist / entry["url"]).read_bytes()).decode()
    tiny = tiny_model()
    page.goto(base_url)
    page.evaluate("pyjoy.ready")
    page.evaluate("(s) => Promise.all([pyjoy.loadPlugin(s), pyjoy.loadPlugin(s.replace('Model User', 'Other User'))])", MODEL_USER)
    user, other = "pyjoy.getPlugin('Model User')", "pyjoy.getPlugin('Other User')"
    # Without an engine: the status says so, and engineModel rejects saying so.
    no_engine = page.evaluate(f"async () => (await {user}).fails('load', {{data: new Uint8Array(4), integrity: 'sha256-x'}})")
    assert "no PyJoy engine is connected" in no_engine
    connect(page, engine)
    page.wait_for_function(f"{user}.then((p) => p.seen()).then((seen) => seen.length === 2)")
    assert page.evaluate(f"{user}.then((p) => p.seen())") == [False, {"connected": True}]

    loaded = page.evaluate(f"async ([b64, i]) => (await {user}).load(b64, i)", [lite0, entry["integrity"]])
    lite0_id = loaded["id"]
    assert lite0_id == "m" + hashlib.sha256(base64.b64decode(lite0)).hexdigest()[:16]
    assert loaded["inputs"][0]["shape"] == [1, 3, 224, 224] and loaded["outputs"][0]["name"] == "logits"
    tiny_id = page.evaluate(f"async ([b64, i]) => (await {other}).load(b64, i)", [base64.b64encode(tiny).decode(), sri(tiny)])["id"]
    # Each plugin sees its own model, not the other's, though one service holds both.
    assert page.evaluate(f"async (id) => (await {user}).models(id)", lite0_id) == [lite0_id]
    assert page.evaluate(f"async (id) => (await {other}).models(id)", tiny_id) == [tiny_id]

    tensor = pil_preprocess(skimage.data.coffee())
    (reference,) = session.run(None, {"input": tensor})
    run = f"""async ([id, t]) => {{ {NDARRAY}
        const out = await (await PLUGIN).run(id, ndarray(t));
        return Array.from(new Float32Array(out._rvalue)); }}"""
    logits = page.evaluate(run.replace("PLUGIN", user), [lite0_id, ndarray_js(tensor)])
    assert np.abs(np.array(logits) - reference[0]).max() < 1e-4
    batch = page.evaluate(f"async ([id, t]) => {{ {NDARRAY} return (await {user}).batch(id, ndarray(t)); }}", [lite0_id, ndarray_js(tensor)])
    assert batch == [[1, 1000]] * 2
    # The service's errors reach the plugin, naming what is wrong.
    wrong = page.evaluate(f"async (id) => (await {user}).fails('run', id, {{_rtype: 'ndarray', _rvalue: new Float32Array(6).buffer, _rshape: [2, 3], _rdtype: 'float32'}})", lite0_id)
    assert "should have the shape [1, 3, 224, 224]" in wrong, wrong
    corrupt = page.evaluate(f"async (i) => (await {user}).fails('load', {{data: new Uint8Array([1, 2, 3]), integrity: i}})", entry["integrity"])
    assert "do not match its integrity" in corrupt, corrupt

    # The other plugin loads the same bytes (the same model in the service); when the first
    # plugin ends, the model stays for the one still holding it.
    assert page.evaluate(f"async ([b64, i]) => (await {other}).load(b64, i)", [lite0, entry["integrity"]])["id"] == lite0_id
    assert page.evaluate("pyjoy.terminatePlugin('Model User')") is True
    assert "Model User" not in [p["name"] for p in page.evaluate("pyjoy.plugins()")]
    logits = page.evaluate(run.replace("PLUGIN", other), [lite0_id, ndarray_js(tensor)])
    assert np.abs(np.array(logits) - reference[0]).max() < 1e-4

    # A plugin holds a few models, not the service's every slot: the fifth is refused.
    load = f"async ([b64, i]) => (await {other}).load(b64, i).then(() => 'loaded', (e) => e.message)"
    for name in ["third", "fourth", "fifth"]:
        variant = tiny_model(name)
        answer = page.evaluate(load, [base64.b64encode(variant).decode(), sri(variant)])
        if name == "fifth":
            assert "holds 4 models on the engine already" in answer, answer
        else:
            assert answer == "loaded"


def test_camera_frames_go_where_a_frame_took_less(camera_browser: Browser, base_url: str, engine: str) -> None:
    context = camera_browser.new_context()
    try:
        page = context.new_page()
        frames = watch_engine_frames(page)
        load_recognizer(page, base_url)
        connect(page, engine)
        assert call(page, "runOnEngine", True)["ok"]["on"] is True
        page.evaluate(f"() => {{ window.started = pyjoy.getPlugin({json.dumps(NAME)}).then(p => p.startCamera()); }}")
        allow_camera(page)
        page.evaluate("window.started")
        stats = wait_for_recognitions(page, 3 + 3 + 2)  # 3 timed frames on each, then the chosen one's
        assert stats["last"][0]["label"] in CATS, stats["last"]
        probe = stats["probe"]
        assert len(probe["browser"]) == len(probe["engine"]) == 3, stats
        medians = {where: float(np.median(times)) for where, times in probe.items()}
        assert stats["choice"] == min(medians, key=medians.get), stats
        assert stats["why"].startswith("a frame took"), stats
        # Frames were recognised on the engine (their tensors went there) and in the browser.
        call(page, "stopCamera")
        stats = call(page, "stats")["ok"]
        assert stats["on"]["engine"] >= 3 and stats["on"]["browser"] >= 3, stats
        assert frames["sent"].count(TENSOR_BYTES) >= stats["on"]["engine"], (frames["sent"].count(TENSOR_BYTES), stats)
        assert stats["runsOn"] == stats["choice"]
    finally:
        context.close()


def test_a_crashed_plugin_gives_back_its_models_at_once(page: Page, base_url: str, engine: str) -> None:
    unloads: list[list] = []  # the args of each call the page sends whose one argument is a model id

    def on_socket(socket) -> None:
        def sent(payload) -> None:
            if isinstance(payload, str) and '"call"' in payload:
                message = json.loads(payload).get("message", {})
                if message.get("type") == "call" and len(message.get("args", [])) == 1:
                    unloads.append(message["args"])
        socket.on("framesent", sent)

    page.on("websocket", on_socket)
    page.goto(base_url)
    page.evaluate("pyjoy.ready")
    connect(page, engine)
    source = (Path(__file__).parent / "plugins" / "hostile" / "engine_crashes_holding_models.imjoy.html").read_text()
    page.evaluate("(s) => pyjoy.loadPlugin(s).then(() => true)", source)
    plugin = "pyjoy.getPlugin('Engine Crashes Holding Models')"
    held = tiny_model("held")
    model_id = page.evaluate(f"async ([b64, i]) => (await {plugin}).load(b64, i)", [base64.b64encode(held).decode(), sri(held)])
    assert model_id == "m" + hashlib.sha256(held).hexdigest()[:16]
    assert [model_id] not in unloads
    assert page.evaluate(f"{plugin}.then((p) => p.leave())") == "leaving"
    wait_until(page, "pyjoy.plugins().then((all) => all.some((p) => p.name === 'Engine Crashes Holding Models' && p.state === 'crashed'))")
    # Crashed, and still listed (the person has not removed it): its model is unloaded already.
    for _ in range(50):
        if [model_id] in unloads:
            break
        page.wait_for_timeout(100)
    assert [model_id] in unloads
