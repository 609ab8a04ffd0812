"""The frame model (pyjoy/build/model_frame.py): EfficientNet-Lite0 with the preprocessing in
its ONNX graph, fed a raw uint8 frame of any size.

- Native onnxruntime on real photographs at several sizes against the existing model on the
  Python preprocessing and on PIL's (the independent reference); slips in the preprocessing
  that the tolerance catches; bad frames; its models.json entry; the preprocessing model
  alone against PIL; the engine's model service on a raw frame.
- onnxruntime-web in a plugin's window on a canvas's ImageData, against native onnxruntime
  on the same pixels; on WebGPU (Chromium's software adapter), the preprocessing model on
  WASM then the existing model on WebGPU.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
import onnxruntime
import pytest
import skimage.data
import skimage.io
from PIL import Image

from pyjoy.build.model import preprocess
from pyjoy.build.model_frame import INPUT, MAX_FRAME_LOGIT_DIFFERENCE, NETWORK_INPUT, OUTPUT, PREFIX
from pyjoy.devtools import engine_running, run_async
from pyjoy.engine.client import EngineClient
from test_model import pil_preprocess

if TYPE_CHECKING:
    from playwright.sync_api import Page

PLUGIN = Path(__file__).parent / "plugins/vision/frame_model.imjoy.html"
PHOTOS = {"chelsea": skimage.data.chelsea(), "coffee": skimage.data.coffee()}
# [height, width] and channels: a camera's VGA, 1080p, landscape and portrait odd sizes, one
# smaller than the 224 crop (enlarged), each RGB and RGBA somewhere.
SIZES = [(None, 3), ((480, 640), 4), ((1080, 1920), 4), ((300, 451), 3), ((451, 300), 4), ((120, 97), 4)]


def frame(photo: np.ndarray, size: tuple[int, int] | None, channels: int) -> np.ndarray:
    """The photograph at size (PIL's Lanczos: another resize than the build's frames), RGB or RGBA."""
    if size is not None:
        photo = np.asarray(Image.fromarray(photo).resize((size[1], size[0]), Image.Resampling.LANCZOS))
    if channels == 4:
        photo = np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])
    return np.ascontiguousarray(photo)


FRAMES = {
    f"{name}-{'own' if size is None else f'{size[0]}x{size[1]}'}-{'RGBA' if channels == 4 else 'RGB'}": frame(photo, size, channels)
    for name, photo in PHOTOS.items() for size, channels in SIZES
}


def top5(logits: np.ndarray) -> list[int]:
    return list(np.argsort(-logits.ravel())[:5])


@pytest.fixture(scope="module")
def catalog(dist: Path) -> dict:
    return json.loads((dist / "models.json").read_text())["models"]


@pytest.fixture(scope="module")
def sessions(dist: Path, catalog: dict) -> tuple[onnxruntime.InferenceSession, onnxruntime.InferenceSession]:
    """(the frame model, the existing model), native onnxruntime on the CPU."""
    cpu = ["CPUExecutionProvider"]
    return (
        onnxruntime.InferenceSession(str(dist / catalog["efficientnet-lite0-frame"]["url"]), providers=cpu),
        onnxruntime.InferenceSession(str(dist / catalog["efficientnet-lite0"]["url"]), providers=cpu),
    )


@pytest.mark.parametrize("name", FRAMES)
def test_the_frame_model_gives_the_existing_models_logits(sessions, name: str) -> None:
    framed, existing = sessions
    image = FRAMES[name]
    (logits,) = framed.run(None, {INPUT: image})
    assert logits.shape == (1, 1000) and logits.dtype == np.float32
    for reference in (preprocess(image), pil_preprocess(image)):  # pyjoy's numpy, and PIL's own resize
        (expected,) = existing.run(None, {NETWORK_INPUT: reference})
        assert np.abs(logits - expected).max() < MAX_FRAME_LOGIT_DIFFERENCE
        assert top5(logits) == top5(expected)


def with_preprocessing_changed(model: onnx.ModelProto, change) -> onnx.ModelProto:
    changed = onnx.ModelProto()
    changed.CopyFrom(model)
    for node in changed.graph.node:
        if node.output[0].startswith(PREFIX):
            change(node)
    return changed


def mean_of_127_5(node: onnx.NodeProto) -> None:
    if node.output[0] == PREFIX + "mean":
        node.attribute[0].t.CopyFrom(onnx.numpy_helper.from_array(np.array(127.5, np.float32), node.output[0]))


def no_antialias(node: onnx.NodeProto) -> None:
    for attribute in node.attribute:
        if node.op_type == "Resize" and attribute.name == "antialias":
            attribute.i = 0


@pytest.mark.parametrize("slip", [mean_of_127_5, no_antialias])
def test_the_tolerance_catches_a_slip_in_the_preprocessing(dist: Path, catalog: dict, sessions, slip) -> None:
    # Half a grey level in the mean, or PIL's filter without its antialiasing: each moves the
    # logits past the tolerance the test above (and the build's check) allows.
    model = onnx.load(str(dist / catalog["efficientnet-lite0-frame"]["url"]))
    slipped = onnxruntime.InferenceSession(with_preprocessing_changed(model, slip).SerializeToString(), providers=["CPUExecutionProvider"])
    image = FRAMES["chelsea-480x640-RGBA"]
    (logits,) = slipped.run(None, {INPUT: image})
    (expected,) = sessions[1].run(None, {NETWORK_INPUT: preprocess(image)})
    assert np.abs(logits - expected).max() > MAX_FRAME_LOGIT_DIFFERENCE


@pytest.mark.parametrize("name", ["chelsea-own-RGB", "coffee-480x640-RGBA", "chelsea-1080x1920-RGBA", "coffee-120x97-RGBA"])
def test_the_preprocessing_model_gives_pils_tensor(dist: Path, catalog: dict, name: str) -> None:
    entry = catalog["efficientnet-lite0-preprocessing"]
    session = onnxruntime.InferenceSession(str(dist / entry["url"]), providers=["CPUExecutionProvider"])
    (tensor,) = session.run(None, {INPUT: FRAMES[name]})
    assert tensor.shape == (1, 3, 224, 224) and tensor.dtype == np.float32
    assert np.abs(tensor - pil_preprocess(FRAMES[name])).max() < 1e-4  # half a grey level is 3.9e-3


@pytest.mark.parametrize(("image", "said"), [
    (np.zeros((64, 64, 1), np.uint8), "rgb_needs_3_or_4_channels"),
    (np.zeros((64, 64, 2), np.uint8), "rgb_needs_3_or_4_channels"),
    (np.zeros((64, 64, 4), np.float32), r"Unexpected input data type.*expected: \(tensor\(uint8\)\)"),
    (np.zeros((64, 64), np.uint8), "Invalid rank for input: image"),
    # No pixels: infinitely long, or a division by zero, whichever node runs first.
    (np.zeros((0, 64, 4), np.uint8), "aspect_ratio_at_most_64_to_1|Integer division by zero"),
    (np.zeros((3, 193, 4), np.uint8), "aspect_ratio_at_most_64_to_1"),  # memory would grow with the length
    (np.zeros((193, 3, 3), np.uint8), "aspect_ratio_at_most_64_to_1"),
])
def test_a_frame_it_cannot_take_is_an_error_that_says_why(sessions, image: np.ndarray, said: str) -> None:
    with pytest.raises(Exception, match=said):
        sessions[0].run(None, {INPUT: image})


def test_a_strip_of_64_to_1_is_still_a_frame(sessions) -> None:
    strip = np.ascontiguousarray(np.tile(FRAMES["coffee-120x97-RGBA"][:3], (1, 2, 1))[:, :192])  # 3 x 192
    (logits,) = sessions[0].run(None, {INPUT: strip})
    (expected,) = sessions[1].run(None, {NETWORK_INPUT: preprocess(strip)})
    assert np.abs(logits - expected).max() < MAX_FRAME_LOGIT_DIFFERENCE


def test_the_frame_model_is_in_models_json_and_precached(dist: Path, catalog: dict) -> None:
    entry, existing = catalog["efficientnet-lite0-frame"], catalog["efficientnet-lite0"]
    data = (dist / entry["url"]).read_bytes()
    assert entry["integrity"] == "sha256-" + base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert entry["input"]["name"] == INPUT and entry["input"]["dtype"] == "uint8" and entry["input"]["shape"] == ["height", "width", "channels"]
    assert entry["output"] == {"name": OUTPUT, "shape": [1, 1000]}
    assert entry["labels"] == existing["labels"] and (dist / existing["url"]).is_file()  # the old model stays
    model = onnx.load_from_string(data)
    assert [i.name for i in model.graph.input] == [INPUT] and [o.name for o in model.graph.output] == [OUTPUT]
    precached = {e["url"] for e in json.loads((dist / "precache-manifest.json").read_text())["files"] if e["precache"]}
    assert entry["url"] in precached and "vendor/models" in entry["url"]
    # What the build's check measured, frame by frame, against preprocess and PyTorch.
    frames = entry["check"]["frames"]
    assert any("1080x1920" in name for name in frames) and any("120x97" in name for name in frames)
    assert all(f["vs_preprocess"] < MAX_FRAME_LOGIT_DIFFERENCE and f["vs_pytorch"] < MAX_FRAME_LOGIT_DIFFERENCE for f in frames.values())
    assert entry["backends"] == ["wasm"] and catalog["efficientnet-lite0-preprocessing"]["url"] in precached


def test_the_engines_model_service_runs_the_frame_model_on_a_raw_frame(dist: Path, catalog: dict, sessions, tmp_path: Path) -> None:
    # "Run on engine" can send the frame itself: uint8, any size, through the model service.
    entry = catalog["efficientnet-lite0-frame"]
    frames = [FRAMES["chelsea-480x640-RGBA"], FRAMES["coffee-own-RGB"]]

    async def scenario() -> list[np.ndarray]:
        client = await EngineClient.connect(url, origin="http://127.0.0.1:8000")
        models = (await client.model_service()).api
        loaded = await models.load((dist / entry["url"]).read_bytes(), entry["integrity"], name="efficientnet-lite0-frame")
        assert loaded["inputs"] == [{"name": INPUT, "shape": ["height", "width", "channels"], "type": "tensor(uint8)", "dtype": "uint8"}]
        out = [(await models.run(loaded["id"], frame))[OUTPUT] for frame in frames]
        await client.close()
        return out

    with engine_running(tmp_path) as (url, _):
        answers = run_async(scenario())
    for frame, logits in zip(frames, answers):
        (native,) = sessions[0].run(None, {INPUT: frame})
        assert np.abs(logits - native).max() <= 1e-5  # the same kernels on the same bytes


# ---- onnxruntime-web, in a window plugin's frame ------------------------------------------


def plugin(page: Page, base_url: str, backend: str) -> str:
    page.goto(base_url)
    page.evaluate("pyjoy.ready")
    page.evaluate("async (text) => { await pyjoy.loadPlugin(text); }", PLUGIN.read_text())
    return call(page, "start", backend)


def call(page: Page, method: str, *args):
    return page.evaluate("async ([method, args]) => (await pyjoy.getPlugin('Frame Model Test'))[method](...args)", [method, list(args)])


def check_in_browser(page: Page, models: list[str], sessions, cases: list[tuple[str, tuple[int, int] | None]]) -> None:
    """Each photograph drawn on the plugin's canvas at each size, through `models` in
    onnxruntime-web: the top 5 of native onnxruntime's frame model on the same pixels, and of
    today's pipeline (Python preprocessing + the existing model)."""
    framed, existing = sessions
    photos = Path(skimage.data.__file__).parent
    for file, size in cases:
        width, height = (size[1], size[0]) if size else (None, None)
        result = call(page, "classify", base64.b64encode((photos / file).read_bytes()).decode(), width, height, models)
        pixels = np.frombuffer(base64.b64decode(result["pixels"]), np.uint8).reshape(result["height"], result["width"], 4)
        if size is None:  # the canvas holds the PNG's own pixels (lossless, opaque)
            assert np.array_equal(pixels[..., :3], skimage.io.imread(photos / file)[..., :3])
        else:
            assert pixels.shape[:2] == size
        logits = np.array(result["logits"], np.float32)
        (native,) = framed.run(None, {INPUT: pixels})
        assert result["shape"] == [1, 1000]
        assert top5(logits) == top5(native), (file, size)
        assert np.abs(logits - native[0]).max() < MAX_FRAME_LOGIT_DIFFERENCE
        (today,) = existing.run(None, {NETWORK_INPUT: preprocess(pixels)})
        assert top5(logits) == top5(today), (file, size)


def test_onnxruntime_web_on_a_canvas_imagedata_gives_native_onnxruntimes_top5(page: Page, base_url: str, sessions) -> None:
    plugin(page, base_url, "wasm")
    assert call(page, "open", "efficientnet-lite0-frame", "wasm") == {"inputs": [INPUT], "outputs": [OUTPUT]}
    cases = [("coffee.png", None), ("chelsea.png", (480, 640)), ("chelsea.png", (1080, 1920)), ("coffee.png", (120, 97))]
    check_in_browser(page, ["efficientnet-lite0-frame"], sessions, cases)


WEBGPU = ["--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader"]  # Chromium's software WebGPU


def test_on_webgpu_the_preprocessing_model_runs_on_wasm_and_the_network_on_webgpu(playwright, base_url: str, sessions) -> None:
    from pyjoy.devtools import launch_options

    browser = playwright.chromium.launch(**launch_options(args=WEBGPU))
    try:
        page = browser.new_page()
        plugin(page, base_url, "webgpu")
        # What models.json says (backends: wasm): onnxruntime-web's WebGPU Resize has no antialias.
        call(page, "open", "efficientnet-lite0-frame", "webgpu")
        with pytest.raises(Exception, match="antialias attribute of Resize operator is NOT implemented"):
            check_in_browser(page, ["efficientnet-lite0-frame"], sessions, [("coffee.png", None)])
        assert call(page, "open", "efficientnet-lite0-preprocessing", "wasm") == {"inputs": [INPUT], "outputs": [NETWORK_INPUT]}
        call(page, "open", "efficientnet-lite0", "webgpu")
        check_in_browser(page, ["efficientnet-lite0-preprocessing", "efficientnet-lite0"], sessions, [("coffee.png", None), ("chelsea.png", (480, 640))])
    finally:
        browser.close()
