"""The built-in Image Recognition plugin in real Chromium: the same logits as native
onnxruntime, real photographs, the camera (Chromium's fake device fed a Y4M of a cat),
offline, on a phone, and each failure: a broken image, a denied camera, a model that
cannot be downloaded."""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import skimage.data
from playwright.sync_api import Browser, Page, Playwright, expect

from conftest import wait_for_service_worker
from pyjoy.build.model import CATS, COFFEE
from test_model import pil_preprocess
from pyjoy.devtools import launch_options

PLUGIN = "./plugins/image-recognition.imjoy.html"
NAME = "Image Recognition"
CAMERA_FLAGS = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]


def ndarray_js(image: np.ndarray) -> dict:
    """An array as page.evaluate can carry it; ndarray() in the page rebuilds it."""
    return {"b64": base64.b64encode(np.ascontiguousarray(image).tobytes()).decode(), "shape": list(image.shape), "dtype": str(image.dtype)}


NDARRAY = """const ndarray = ({b64, shape, dtype}) => ({_rtype: 'ndarray', _rvalue: Uint8Array.from(atob(b64), c => c.charCodeAt(0)).buffer, _rshape: shape, _rdtype: dtype});"""


def call(page: Page, method: str, *args) -> dict:
    """Calls the plugin; returns {ok: value} or {error: message}."""
    return page.evaluate(
        f"""async ([method, args]) => {{ {NDARRAY}
             const plugin = await pyjoy.getPlugin({json.dumps(NAME)});
             const decoded = args.map((a) => a && a.b64 !== undefined ? ndarray(a) : a);
             try {{ return {{ok: await plugin[method](...decoded)}}; }} catch (e) {{ return {{error: e.message}}; }}
           }}""",
        [method, list(args)],
    )


def load_recognizer(page: Page, base_url: str) -> Page:
    page.goto(base_url)
    page.evaluate("pyjoy.ready")
    page.evaluate(f"async () => {{ await pyjoy.loadPlugin({json.dumps(PLUGIN)}); }}")
    return page


def frame_of(page: Page):
    return page.frame_locator("iframe.plugin-frame")


def labels(top: list[dict]) -> list[str]:
    return [entry["label"] for entry in top]


@pytest.fixture
def recognizer(page: Page, base_url: str) -> Page:
    return load_recognizer(page, base_url)


@pytest.fixture(scope="module")
def native(dist: Path) -> tuple[onnxruntime.InferenceSession, list[str]]:
    catalog = json.loads((dist / "models.json").read_text())["models"]["efficientnet-lite0"]
    session = onnxruntime.InferenceSession(str(dist / catalog["url"]), providers=["CPUExecutionProvider"])
    return session, json.loads((dist / catalog["labels"]).read_text())


def test_built_in_plugins_manifest_and_files_are_precached(dist: Path) -> None:
    manifest = json.loads((dist / "plugins/manifest.imjoy.json").read_text())
    assert manifest["name"] == "PyJoy built-in plugins" and manifest["collections"] == []
    (entry,) = [p for p in manifest["plugins"] if p["name"] == NAME]
    assert set(entry) == {"name", "type", "version", "description", "tags", "icon", "uri"}
    assert (dist / "plugins" / entry["uri"]).is_file()
    catalog = json.loads((dist / "models.json").read_text())
    model = catalog["models"]["efficientnet-lite0"]
    precached = {e["url"] for e in json.loads((dist / "precache-manifest.json").read_text())["files"] if e["precache"]}
    runtime = [catalog["onnxruntime-web"]["base"] + name for name in catalog["onnxruntime-web"]["integrity"]]
    for url in ["plugins/manifest.imjoy.json", f"plugins/{entry['uri']}", "models.json", model["url"], model["labels"], *runtime]:
        assert url in precached, url
    # What the build's check measured against PyTorch.
    assert model["check"]["images"]["chelsea"]["max_logit_difference"] < 1e-3


def test_browser_logits_equal_native_onnxruntime(recognizer: Page, native) -> None:
    session, _ = native
    info = call(recognizer, "info")["ok"]
    assert info["backend"] == "wasm" and info["crossOriginIsolated"] is True
    for photo in (skimage.data.chelsea(), skimage.data.coffee()):
        tensor = pil_preprocess(photo)  # PIL's resize, the reference
        (expected,) = session.run(None, {"input": tensor})
        logits = recognizer.evaluate(
            f"""async (t) => {{ {NDARRAY}
                 const out = await (await pyjoy.getPlugin({json.dumps(NAME)})).infer(ndarray(t));
                 return {{shape: out._rshape, values: Array.from(new Float32Array(out._rvalue))}}; }}""",
            ndarray_js(tensor),
        )
        assert logits["shape"] == [1, 1000]
        assert np.abs(np.array(logits["values"]) - expected[0]).max() < 1e-3
        # The browser's preprocessing is PIL's, to float32 rounding.
        browser = recognizer.evaluate(
            f"""async (t) => {{ {NDARRAY}
                 const out = await (await pyjoy.getPlugin({json.dumps(NAME)})).preprocess(ndarray(t));
                 return Array.from(new Float32Array(out._rvalue)); }}""",
            ndarray_js(photo),
        )
        assert np.abs(np.array(browser) - tensor.ravel()).max() < 1e-4


def test_threads_and_simd_are_what_ran(page: Page, base_url: str, dist: Path) -> None:
    # What the page fetched for the sandbox over the asset port, watched from before the plugin loads.
    wasm_fetched = []
    page.on("request", lambda request: wasm_fetched.append(request.url.rsplit("/", 1)[1]) if request.url.endswith(".wasm") and "onnxruntime" in request.url else None)
    load_recognizer(page, base_url)
    info = call(page, "info")["ok"]
    runtime = json.loads((dist / "models.json").read_text())["onnxruntime-web"]
    simd_build = dist / runtime["base"] / "ort-wasm-simd-threaded.wasm"
    assert wasm_fetched == [simd_build.name]
    # The plugin measures the file ORT compiled (by its size) and SIMD in the engine.
    assert info["wasm"] == {"file": simd_build.name, "bytes": simd_build.stat().st_size}
    assert info["simd"] is True
    # Threads: the workers ORT started whose module loaded, counted in the plugin's worker.
    if info["cores"] > 1:  # one core: one thread, and info says so
        assert info["threads"] == info["cores"] and info["fallback"] is None, info
    assert info["webgpu"].startswith("absent")  # --disable-gpu: reported, not guessed
    # The count follows what ORT starts, not the number asked for: 1 thread starts no
    # worker; 3 start 2 besides the engine's own, whatever the cores.
    assert call(page, "configure", {"backend": "wasm", "threads": 1})["ok"]["threads"] == 1
    assert call(page, "configure", {"backend": "wasm", "threads": 3})["ok"]["threads"] == 3


def test_photographs_are_recognised_from_ndarray_blob_and_imagedata(recognizer: Page, native) -> None:
    _, names = native
    chelsea = call(recognizer, "classify", ndarray_js(skimage.data.chelsea()))["ok"]
    assert len(chelsea) == 5 and chelsea[0]["label"] in CATS
    assert chelsea[0]["probability"] >= chelsea[1]["probability"] > 0
    assert set(labels(chelsea)) <= set(names)
    coffee = call(recognizer, "classify", ndarray_js(skimage.data.coffee()))["ok"]
    assert COFFEE & set(labels(coffee)), coffee
    # An encoded file, decoded in the plugin's worker.
    png = (Path(skimage.data.__file__).parent / "coffee.png").read_bytes()
    from_blob = recognizer.evaluate(
        f"""async (b64) => {{
             const blob = new Blob([Uint8Array.from(atob(b64), c => c.charCodeAt(0))], {{type: 'image/png'}});
             return (await pyjoy.getPlugin({json.dumps(NAME)})).classify(blob); }}""",
        base64.b64encode(png).decode(),
    )
    assert labels(from_blob) == labels(coffee)
    # An ImageData (RGBA).
    rgba = np.dstack([skimage.data.chelsea(), np.full(skimage.data.chelsea().shape[:2], 255, np.uint8)])
    from_image_data = recognizer.evaluate(
        f"""async (t) => {{
             const bytes = Uint8ClampedArray.from(atob(t.b64), c => c.charCodeAt(0));
             return (await pyjoy.getPlugin({json.dumps(NAME)})).classify(new ImageData(bytes, t.shape[1], t.shape[0])); }}""",
        ndarray_js(rgba),
    )
    assert labels(from_image_data) == labels(chelsea)


def test_a_broken_image_is_named_and_the_plugin_goes_on(recognizer: Page, tmp_path: Path) -> None:
    error = recognizer.evaluate(
        f"""async () => {{
             const broken = new File([new Uint8Array([137, 80, 78, 71, 1, 2, 3])], 'broken.png', {{type: 'image/png'}});
             try {{ await (await pyjoy.getPlugin({json.dumps(NAME)})).classify(broken); return null; }} catch (e) {{ return e.message; }} }}"""
    )
    assert "could not decode the image broken.png" in error
    assert "expected an ImJoy ndarray (uint8 [h, w, 3|4]), an ImageData or a Blob" in call(recognizer, "classify", {"kind": "nothing"})["error"]
    wrong = call(recognizer, "classify", ndarray_js(np.zeros((4, 4, 2), np.uint8)))["error"]
    assert "[height, width, 3 or 4]" in wrong
    # Through the window: open a broken file.
    broken = tmp_path / "holiday.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")
    frame = frame_of(recognizer)
    frame.locator("#file").set_input_files(str(broken))
    expect(frame.locator("#status.error")).to_contain_text("Could not decode the image holiday.jpg")
    assert call(recognizer, "classify", ndarray_js(skimage.data.chelsea()))["ok"][0]["label"] in CATS


def test_a_model_that_cannot_be_downloaded_is_named_and_the_app_goes_on(browser: Browser, base_url: str) -> None:
    context = browser.new_context(service_workers="block")  # so that every fetch meets the route
    try:
        page = context.new_page()
        page.route("**/vendor/models/*.onnx", lambda route: route.abort("connectionfailed"))
        load_recognizer(page, base_url)
        error = call(page, "classify", ndarray_js(skimage.data.chelsea()))["error"]
        assert "the image-recognition model failed to load" in error and "the model efficientnet-lite0" in error, error
        expect(frame_of(page).locator("#status.error")).to_contain_text("model failed to load")
        assert page.evaluate("pyjoy.runPython('1 + 1')") == 2
        assert page.evaluate("pyjoy.plugins()")[0]["state"] == "running"
    finally:
        context.close()


def test_a_plugin_without_the_camera_permission_gets_no_camera(camera_browser: Browser, base_url: str) -> None:
    page = camera_browser.new_page()
    try:
        page.goto(base_url)
        page.evaluate("pyjoy.ready")
        source = """<config lang="json">{"name": "Peeker", "type": "iframe", "version": "0.1.0"}</config>
<script lang="javascript">
api.export({ async peek() { try { await navigator.mediaDevices.getUserMedia({video: true}); return "opened"; } catch (e) { return e.name + ": " + e.message; } } });
</script>"""
        result = page.evaluate("async (s) => (await pyjoy.loadPlugin(s)).peek()", source)
        assert result.startswith("NotAllowedError") and '"camera" permission' in result
    finally:
        page.close()


# --- The camera: Chromium's fake capture device, fed a Y4M of the cat photograph ---------


def write_y4m(image: np.ndarray, path: Path, frames: int = 5) -> None:
    """A YUV 4:2:0 video of one still image (BT.601 full range, as C420jpeg says)."""
    height, width = (image.shape[0] // 2) * 2, (image.shape[1] // 2) * 2
    rgb = image[:height, :width, :3].astype(np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    u = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    v = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
    half = lambda plane: plane.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))  # noqa: E731
    planes = [np.clip(np.round(p), 0, 255).astype(np.uint8).tobytes() for p in (y, half(u), half(v))]
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n" + b"".join(planes))


@pytest.fixture(scope="module")
def cat_video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("camera") / "chelsea.y4m"
    write_y4m(skimage.data.chelsea(), path)
    return path


@pytest.fixture(scope="module")
def camera_browser(playwright: Playwright, cat_video: Path) -> Iterator[Browser]:
    browser = playwright.chromium.launch(**launch_options(args=[*CAMERA_FLAGS, f"--use-file-for-fake-video-capture={cat_video}"]))
    yield browser
    browser.close()


def wait_for_recognitions(page: Page, at_least: int, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while (stats := call(page, "stats")["ok"])["recognitions"] < at_least:
        assert time.monotonic() < deadline, f"{stats['recognitions']} recognitions in {timeout_s} s"
        page.wait_for_timeout(200)
    return stats


def allow_camera(page: Page) -> None:
    """Answers the question a plugin's first use of the camera asks (workbench.consent)."""
    ask = page.locator("dialog", has_text=f"Plugin {NAME} wants to use your camera")
    ask.get_by_role("button", name="Allow").click()


def start_camera(page: Page) -> dict:
    """Calls startCamera, answering the camera question on the way; {ok} or {error}."""
    page.evaluate(f"() => {{ window.started = pyjoy.getPlugin({json.dumps(NAME)}).then(p => p.startCamera())"
                  ".then(ok => ({ok}), e => ({error: e.message})); }")
    allow_camera(page)
    return page.evaluate("window.started")


def recognise_live(page: Page, at_least: int = 3) -> dict:
    opened = start_camera(page)
    assert "ok" in opened, opened
    return wait_for_recognitions(page, at_least)


def test_the_camera_sees_a_cat(camera_browser: Browser, base_url: str) -> None:
    context = camera_browser.new_context()
    try:
        page = load_recognizer(context.new_page(), base_url)
        stats = recognise_live(page)
        assert stats["last"][0]["label"] in CATS, stats["last"]
        frame = frame_of(page)
        expect(frame.locator("#results li").first).to_contain_text(stats["last"][0]["label"])
        snap = call(page, "snapshot")["ok"]
        assert snap[0]["label"] in CATS
        expect(frame.locator("#still")).to_be_visible()
        assert call(page, "stats")["ok"]["running"] is False  # a snapshot stops the camera
    finally:
        context.close()


def test_the_camera_works_offline(playwright: Playwright, cat_video: Path, base_url: str) -> None:
    profile = tempfile.mkdtemp(prefix="pyjoy-profile-")
    context = playwright.chromium.launch_persistent_context(
        profile, **launch_options(args=[*CAMERA_FLAGS, f"--use-file-for-fake-video-capture={cat_video}"]),
    )
    try:
        page = context.pages[0] if context.pages else context.new_page()
        page.goto(base_url)
        wait_for_service_worker(page, timeout_ms=120_000)  # the build, model included, is cached
        context.set_offline(True)
        page.reload()
        page.evaluate("pyjoy.ready")
        page.evaluate(f"async () => {{ await pyjoy.loadPlugin({json.dumps(PLUGIN)}); }}")
        assert page.evaluate("navigator.onLine") is False
        stats = recognise_live(page, at_least=2)
        assert stats["last"][0]["label"] in CATS
    finally:
        context.close()
        shutil.rmtree(profile, ignore_errors=True)


def test_the_camera_on_a_phone(camera_browser: Browser, playwright: Playwright, base_url: str) -> None:
    context = camera_browser.new_context(**playwright.devices["Pixel 7"])
    try:
        page = load_recognizer(context.new_page(), base_url)
        frame = frame_of(page)
        frame.locator("#camera").tap()
        page.locator("dialog", has_text=f"Plugin {NAME} wants to use your camera").get_by_role("button", name="Allow").tap()
        last = wait_for_recognitions(page, 2)["last"]
        assert last[0]["label"] in CATS, last
        expect(frame.locator("#results li").first).to_be_visible()
        # The window fits the phone's width: nothing makes mobile Chromium zoom out.
        assert page.evaluate("window.innerWidth") == 412
    finally:
        context.close()


def test_a_denied_camera_is_named_and_files_still_work(playwright: Playwright, base_url: str) -> None:
    browser = playwright.chromium.launch(**launch_options(args=["--use-fake-device-for-media-stream", "--deny-permission-prompts"]))
    try:
        page = load_recognizer(browser.new_page(), base_url)
        error = start_camera(page)["error"]
        assert error.startswith("Error: camera access was denied"), error  # a RemoteError names its type
        expect(frame_of(page).locator("#status.error")).to_contain_text("Camera access was denied")
        assert call(page, "classify", ndarray_js(skimage.data.chelsea()))["ok"][0]["label"] in CATS
    finally:
        browser.close()
