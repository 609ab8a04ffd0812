"""ImJoy's built-in windows (app/windows/), opened by an ImJoy-format plugin as ImJoy's docs
show: the image viewer's pixels against numpy's contrast mapping, its pixel readout and
zoom, a label overlay, a 3-D stack's slices; sanitised markdown; each other window type."""

from __future__ import annotations

import base64
import struct
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Frame, Page, expect

from conftest import wait_until

LIVE = Path(__file__).parent / "plugins" / "live"
HOSTILE = Path(__file__).parent / "plugins" / "hostile"
PLUGIN = "ImJoy Windows Test"


@pytest.fixture
def app(page: Page, base_url: str) -> Page:
    page.goto(base_url)
    page.evaluate("pyjoy.ready")
    result = page.evaluate(
        "async (text) => { try { await pyjoy.loadPlugin(text); return 'ok'; } catch (e) { return e.message; } }",
        (LIVE / "imjoy_windows.imjoy.html").read_text(),
    )
    assert result == "ok"
    return page


def call(page: Page, method: str, *args):
    return page.evaluate(
        "async ([name, method, args]) => (await pyjoy.getPlugin(name))[method](...args)", [PLUGIN, method, list(args)]
    )


def frame_where(page: Page, condition: str) -> Frame:
    """The plugin frame in which the JS expression `condition` is true."""
    for frame in page.frames:
        if frame != page.main_frame:
            try:
                if frame.evaluate(f"Boolean({condition})"):
                    return frame
            except Exception:  # a frame still loading, or gone
                continue
    raise AssertionError(f"no frame where {condition}")


def canvas_rgba(frame: Frame, selector: str = "canvas.image") -> np.ndarray:
    """The canvas's pixels as shown, once no draw is on its way (copied through a 2-D canvas:
    the viewer's canvases show the frames its worker draws on them)."""
    frame.wait_for_function("(selector) => !document.querySelector(selector).hasAttribute('data-drawing')", arg=selector)
    data = frame.evaluate(
        """(selector) => { const c = document.querySelector(selector);
             const copy = new OffscreenCanvas(c.width, c.height).getContext('2d');
             copy.drawImage(c, 0, 0);
             return {w: c.width, h: c.height, px: Array.from(copy.getImageData(0, 0, c.width, c.height).data)}; }""",
        selector,
    )
    return np.array(data["px"], dtype=np.uint8).reshape(data["h"], data["w"], 4)


# The plugin's arrays, recomputed here.
def grey16() -> np.ndarray:
    y, x = np.mgrid[0:40, 0:60]
    return ((x * 37 + y * 101) % 4000 + 100).astype(np.uint16)


def stack16() -> np.ndarray:
    z, y, x = np.mgrid[0:6, 0:50, 0:70].astype(np.int64)
    return ((z * 9001 + x * 131 + y * 577 + ((x * y) % 97) * 13) % 60000).astype(np.uint16)


def percentile_limits(values: np.ndarray, low: float, high: float) -> list[int]:
    """For each percentile p, the least value with at least p% of the values at or below it."""
    ordered = np.sort(values.ravel())
    return [int(ordered[max(1, int(np.ceil(p / 100 * ordered.size))) - 1]) for p in (low, high)]


def stack8() -> np.ndarray:
    z, y, x = np.mgrid[0:5, 0:30, 0:20]
    return ((z * 50 + x * 3 + y * 7) % 256).astype(np.uint8)


def contrast(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The documented mapping: floor((v - lo) * 255 / (hi - lo) + 0.5), clamped to 0..255."""
    return np.clip(np.floor((values.astype(np.float64) - lo) * 255 / (hi - lo) + 0.5), 0, 255).astype(np.uint8)


def hover(page: Page, frame: Frame, x: int, y: int, width: int, height: int) -> str:
    box = frame.locator("canvas.image").bounding_box()
    page.mouse.move(box["x"] + (x + 0.5) * box["width"] / width, box["y"] + (y + 0.5) * box["height"] / height)
    frame.wait_for_function(f"document.querySelector('.readout').textContent.startsWith('x={x} y={y} ')")
    return frame.evaluate("document.querySelector('.readout').textContent")


def test_a_2d_uint16_image_shows_with_its_contrast_readout_zoom_and_labels(app: Page) -> None:
    assert call(app, "showGrey") is True
    frame = frame_where(app, "document.querySelector('canvas.image')?.width === 60")
    values = grey16()
    rgba = canvas_rgba(frame)
    expected = contrast(values, values.min(), values.max())
    assert np.array_equal(rgba[..., 0], expected) and np.array_equal(rgba[..., 1], expected) and np.array_equal(rgba[..., 2], expected)
    assert (rgba[..., 3] == 255).all()
    # The mapping ran in a worker of the window's sandbox (an opaque origin: blob:null/...).
    assert any(worker.url.startswith("blob:null/") for worker in app.workers)

    call(app, "image", "grey", "setContrastLimits", 1000, 3000)
    assert np.array_equal(canvas_rgba(frame)[..., 0], contrast(values, 1000, 3000))

    assert hover(app, frame, 17, 9, 60, 40) == f"x=17 y=9 value={values[9, 17]}"
    before = frame.locator("canvas.image").bounding_box()["width"]
    scale = call(app, "image", "grey", "getView")["scale"]
    app.mouse.wheel(0, -300)
    frame.wait_for_function(f"document.querySelector('canvas.image').getBoundingClientRect().width > {before} * 1.5")
    assert call(app, "image", "grey", "getView")["scale"] == pytest.approx(scale * np.exp(300 / 500), rel=1e-6)
    assert hover(app, frame, 19, 12, 60, 40) == f"x=19 y=12 value={values[12, 19]}"  # the readout follows the zoom

    assert call(app, "addLabels") is True
    overlay = canvas_rgba(frame, "canvas.labels")
    labelled = np.zeros((40, 60), dtype=bool)
    labelled[5:15, 10:30] = labelled[20:30, 40:50] = True
    assert np.array_equal(overlay[..., 3] == 128, labelled) and (overlay[~labelled][:, 3] == 0).all()
    assert not np.array_equal(overlay[10, 20, :3], overlay[25, 45, :3])  # two labels, two colours


def test_a_3d_uint8_stack_shows_each_slice(app: Page) -> None:
    assert call(app, "showStack") is True
    frame = frame_where(app, "document.querySelector('canvas.image')?.width === 20")
    values = stack8()
    assert np.array_equal(canvas_rgba(frame)[..., 0], values[0])  # uint8: 0..255 as it is
    assert frame.evaluate("!document.querySelector('.slice').hidden")
    call(app, "image", "stack", "setSlice", 3)
    assert np.array_equal(canvas_rgba(frame)[..., 0], values[3])
    frame.evaluate("(() => { const s = document.querySelector('.slider'); s.value = '2'; s.dispatchEvent(new Event('input')); })()")
    assert np.array_equal(canvas_rgba(frame)[..., 1], values[2])
    # A slider dragged fast: draws are coalesced, and the one it stops on is what shows.
    frame.evaluate("(() => { const s = document.querySelector('.slider'); for (const i of [1, 4, 0, 3, 2]) { s.value = String(i); s.dispatchEvent(new Event('input')); } })()")
    assert np.array_equal(canvas_rgba(frame)[..., 1], values[2])
    call(app, "image", "stack", "setContrastLimits", 50, 150)
    assert np.array_equal(canvas_rgba(frame)[..., 2], contrast(values[2], 50, 150))
    assert hover(app, frame, 4, 20, 20, 30) == f"x=4 y=20 value={values[2, 20, 4]}"


def test_a_uint16_stack_slices_reads_out_and_takes_percentile_contrast(app: Page) -> None:
    # The values moved to the viewer's worker: every pixel, value and limit below comes from it.
    assert call(app, "showStack16") is True
    frame = frame_where(app, "document.querySelector('canvas.image')?.width === 70")
    values = stack16()
    lo, hi = int(values.min()), int(values.max())  # the whole stack's range, not slice 0's
    assert call(app, "image", "stack16", "getView")["contrast_limits"] == [lo, hi]
    rgba = canvas_rgba(frame)
    assert np.array_equal(rgba[..., 0], contrast(values[0], lo, hi)) and np.array_equal(rgba[..., 2], contrast(values[0], lo, hi))

    call(app, "image", "stack16", "setSlice", 4)
    assert frame.evaluate("document.querySelector('canvas.image').dataset.shownSlice") == "4"
    assert np.array_equal(canvas_rgba(frame)[..., 1], contrast(values[4], lo, hi))
    frame.evaluate("(() => { const s = document.querySelector('.slider'); s.value = '5'; s.dispatchEvent(new Event('input')); })()")
    assert np.array_equal(canvas_rgba(frame)[..., 0], contrast(values[5], lo, hi))
    assert frame.evaluate("document.querySelector('canvas.image').dataset.shownSlice") == "5"
    assert hover(app, frame, 61, 33, 70, 50) == f"x=61 y=33 value={values[5, 33, 61]}"
    assert call(app, "image", "stack16", "getPixelValue", 12, 44) == values[5, 44, 12]
    assert call(app, "image", "stack16", "getPixelValue", 70, 0) is None  # outside

    limits = percentile_limits(values, 2, 98)
    assert call(app, "tryAutoContrast", 2, 98) == limits
    assert lo < limits[0] < limits[1] < hi
    assert np.array_equal(canvas_rgba(frame)[..., 0], contrast(values[5], *limits))
    assert "low < high" in call(app, "tryAutoContrast", 98, 2)
    assert call(app, "image", "stack16", "getView")["contrast_limits"] == limits  # a refused call changed nothing

    # A stack of labels: the shown slice's over the image, drawn by the worker too.
    def boxes(z: int) -> np.ndarray:
        box = np.zeros((50, 70), dtype=bool)
        box[10:20, 5 + 5 * z:15 + 5 * z] = True
        return box

    assert "6x50x70" in call(app, "addStackLabels", 4)  # not the image's depth
    assert call(app, "addStackLabels", 6) is True
    assert np.array_equal(canvas_rgba(frame, "canvas.labels")[..., 3] == 128, boxes(5))
    call(app, "image", "stack16", "setSlice", 2)
    overlay = canvas_rgba(frame, "canvas.labels")
    assert np.array_equal(overlay[..., 3] == 128, boxes(2)) and (overlay[~boxes(2)][:, 3] == 0).all()
    call(app, "image", "stack16", "removeLayers")
    assert (canvas_rgba(frame, "canvas.labels")[..., 3] == 0).all()


def test_a_hidden_viewer_still_answers_and_shows_its_slice_when_shown_again(app: Page) -> None:
    # A window out of view gets no animation frames: the viewer's waits for them are bounded.
    assert call(app, "showStack16") is True
    frame = frame_where(app, "document.querySelector('canvas.image')?.width === 70")
    iframe = frame.frame_element()
    iframe.evaluate("(element) => { element.style.display = 'none'; }")
    app.wait_for_timeout(200)
    started = app.evaluate("performance.now()")
    call(app, "image", "stack16", "setSlice", 3)
    assert call(app, "image", "stack16", "getPixelValue", 7, 8) == stack16()[3, 8, 7]
    assert app.evaluate("performance.now()") - started < 10_000
    iframe.evaluate("(element) => { element.style.display = ''; }")
    values = stack16()
    frame.wait_for_function("document.querySelector('canvas.image').dataset.shownSlice === '3'")
    call(app, "image", "stack16", "setContrastLimits", int(values.min()), int(values.max()))  # a draw while shown
    assert np.array_equal(canvas_rgba(frame)[..., 0], contrast(values[3], values.min(), values.max()))


def test_bad_window_configs_are_clear_errors(app: Page) -> None:
    message = call(app, "badImage")
    assert "complex64" in message and "_rdtype" in message
    assert "no built-in window imjoy/nope" in call(app, "tryWindow", {"type": "imjoy/nope"})
    assert "src must be" in call(app, "tryWindow", {"src": "ftp://example.org/x"})
    assert call(app, "tryWindow", {"type": "imjoy/image", "name": "empty"}) == "opened"  # as ImJoy: a viewer without data
    assert call(app, "tryWindow", "imjoy/markdown") == "opened"  # a string is a type


def test_markdown_is_rendered_and_sanitised(app: Page) -> None:
    hostile = (HOSTILE / "windows_markdown_runs_script.imjoy.html").read_text()
    app.evaluate("async (text) => (await pyjoy.loadPlugin(text), await (await pyjoy.getPlugin('Windows Hostile Markdown')).run())", hostile)
    frame = frame_where(app, "document.querySelector('.pj-window h1')?.textContent === 'Title'")
    assert frame.evaluate("document.querySelector('.pj-window strong').textContent") == "bold"
    html = frame.evaluate("document.querySelector('.pj-window').innerHTML")
    for left_out in ("<script", "onerror", "onload", "ontoggle", "<iframe", "<object", "javascript:"):
        assert left_out not in html
    frame.evaluate("document.querySelector('.pj-window a')?.click()")
    app.wait_for_timeout(300)  # an image's error event, a frame's load, would have fired by now
    assert frame.evaluate("self.__pwned ?? null") is None

    markdown = "(await pyjoy.getPlugin('Windows Hostile Markdown'))"
    app.evaluate(f"async () => {markdown}.setContent('## Second')")
    assert frame.evaluate("document.querySelector('.pj-window h2').textContent") == "Second"
    app.evaluate(f"async () => {markdown}.update('## Third')")  # api.updateWindow, as older plugins use it
    assert frame.evaluate("document.querySelector('.pj-window h2').textContent") == "Third"


def test_each_other_window_type_opens_and_its_method_works(app: Page, base_url: str) -> None:
    page_url = f"{base_url.rstrip('/')}/no-such-page.html"
    assert call(app, "showOthers", page_url) is True
    compare = frame_where(app, "document.querySelector('.pj-compare canvas.second')")
    assert compare.evaluate("document.querySelector('.pj-compare .second').style.clipPath") == "inset(0px 0px 0px 30%)"
    assert np.array_equal(canvas_rgba(compare, ".pj-compare .first")[..., 0], contrast(grey16(), grey16().min(), grey16().max()))

    panel = frame_where(app, "document.querySelector('.panel-text')")
    assert panel.evaluate("document.querySelector('.panel-text').textContent") == "Panel text"
    assert panel.evaluate("document.querySelector('.pj-window script') === null && self.__panelRan === undefined")

    generic = frame_where(app, "document.querySelector('table.pj-generic')")
    assert "generic updated" in generic.evaluate("document.body.innerText")

    files = frame_where(app, "document.querySelector('li.file')")
    assert files.evaluate("[...document.querySelectorAll('li.file')].map((li) => li.textContent)") == [
        "cells.tif (image/tiff, 1234 bytes)", "notes.txt (text/plain, 5 bytes)"]

    urls = frame_where(app, "document.querySelector('ul.urls')")
    assert urls.evaluate("[...document.querySelectorAll('ul.urls a')].map((a) => a.textContent)") == [
        "https://example.org/one.png", "https://example.org/two.png"]

    page = frame_where(app, "document.querySelector('iframe.pj-url')")
    assert page.evaluate("[document.querySelector('iframe.pj-url').getAttribute('sandbox'), document.querySelector('iframe.pj-url').src]") == [
        "allow-scripts", page_url]
    # The page's window is a sandbox: an opaque origin, nothing of the host's.
    assert page.evaluate("self.origin") == "null"

    assert call(app, "closeGeneric") == "closed"
    with pytest.raises(AssertionError):
        frame_where(app, "document.querySelector('table.pj-generic')")


def png_bytes(rgb: np.ndarray) -> bytes:
    """A PNG of an RGB uint8 array, written here (zlib, no imaging library)."""
    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(height))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def png_data_url(rgb: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(rgb)).decode()


@contextmanager
def image_elsewhere(png: bytes) -> Iterator[str]:
    """Another origin serving one PNG as an image embeddable anywhere (CORP cross-origin), without CORS."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(png)))
            self.send_header("Cross-Origin-Resource-Policy", "cross-origin")
            self.end_headers()
            self.wfile.write(png)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/cells.png"
    finally:
        server.shutdown()
        server.server_close()


def test_an_image_by_url_and_a_window_plugin_by_source(app: Page) -> None:
    y, x = np.mgrid[0:12, 0:16]
    rgb = np.stack([x * 15, y * 20, (x + y) * 5], axis=-1).astype(np.uint8)
    assert call(app, "showSrcImage", png_data_url(rgb)) is True  # ImJoy's documented data.src
    frame = frame_where(app, "document.querySelector('canvas.image')?.width === 16")
    assert np.array_equal(canvas_rgba(frame)[..., :3], rgb)
    assert hover(app, frame, 5, 7, 16, 12) == f"x=5 y=7 value={rgb[7, 5, 0]},{rgb[7, 5, 1]},{rgb[7, 5, 2]},255"

    assert call(app, "showFromSource") == "LOUD"
    inline = frame_where(app, "document.querySelector('p.inline')")
    assert inline.evaluate("document.querySelector('p.inline').textContent") == "inline hello"


def test_an_image_of_another_origin_shows_without_its_values(app: Page) -> None:
    # From the opaque-origin sandbox every http(s) image is another origin's: its pixels cannot
    # be read (nor handed to the viewer's worker), so the image element itself is shown.
    with image_elsewhere(png_bytes(np.full((150, 192, 3), 90, dtype=np.uint8))) as url:
        assert call(app, "showSrcImage", url) is True
    frame = frame_where(app, "document.querySelector('img.source')?.naturalWidth === 192")
    assert frame.evaluate("document.querySelector('canvas.image').hidden") is True
    box = frame.locator("img.source").bounding_box()
    assert box["width"] > 100 and box["height"] == pytest.approx(box["width"] * 150 / 192)  # fitted to the view
    scale = call(app, "image", "src", "getView")["scale"]
    app.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    app.mouse.wheel(0, -300)
    frame.wait_for_function(f"document.querySelector('img.source').getBoundingClientRect().width > {box['width']} * 1.5")
    assert call(app, "image", "src", "getView")["scale"] == pytest.approx(scale * np.exp(300 / 500), rel=1e-6)
    assert call(app, "image", "src", "getPixelValue", 5, 5) is None  # values unknown
    assert frame.evaluate("document.querySelector('.readout').textContent") == ""


def test_touch_pans_and_pinches_the_image(app: Page) -> None:
    assert call(app, "showGrey") is True
    frame = frame_where(app, "document.querySelector('canvas.image')?.width === 60")
    cdp = app.context.new_cdp_session(app)
    cdp.send("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5})
    box = frame.locator(".view").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2

    def touch(kind: str, points: list[tuple[float, float]]) -> None:
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": [{"x": x, "y": y, "id": i} for i, (x, y) in enumerate(points)]})

    view = call(app, "image", "grey", "getView")
    touch("touchStart", [(cx - 20, cy)])
    for step in range(1, 6):
        touch("touchMove", [(cx - 20 + 6 * step, cy + 4 * step)])
    touch("touchEnd", [])
    panned = call(app, "image", "grey", "getView")
    assert (panned["x"] - view["x"], panned["y"] - view["y"]) == pytest.approx((30, 20), abs=1)
    assert panned["scale"] == view["scale"]

    touch("touchStart", [(cx - 20, cy), (cx + 20, cy)])
    for step in range(1, 6):
        touch("touchMove", [(cx - 20 - 4 * step, cy), (cx + 20 + 4 * step, cy)])
    touch("touchEnd", [])
    pinched = call(app, "image", "grey", "getView")
    assert pinched["scale"] / panned["scale"] == pytest.approx(80 / 40, rel=0.05)


def test_float32_rgb_and_int32_with_given_contrast_limits(app: Page) -> None:
    assert call(app, "showFloatAndInt") is True
    rgb = ((np.arange(8 * 10 * 3) % 7) * 0.25 - 0.5).astype(np.float32).reshape(8, 10, 3)
    frame = frame_where(app, "document.querySelector('canvas.image')?.width === 10")
    rgba = canvas_rgba(frame)
    assert np.array_equal(rgba[..., :3], contrast(rgb, rgb.min(), rgb.max())) and (rgba[..., 3] == 255).all()

    grey = ((np.arange(9 * 11, dtype=np.int64) * 7919) % 20001 - 10000).reshape(9, 11)
    frame = frame_where(app, "document.querySelector('canvas.image')?.width === 11")
    assert np.array_equal(canvas_rgba(frame)[..., 0], contrast(grey, -5000, 5000))
    assert hover(app, frame, 3, 4, 11, 9) == f"x=3 y=4 value={grey[4, 3]}"


def test_image_windows_open_offline(profile_context, base_url: str) -> None:
    from conftest import open_offline

    page = open_offline(profile_context, base_url)
    assert page.evaluate("async (text) => { await pyjoy.loadPlugin(text); return 'ok'; }", (LIVE / "imjoy_windows.imjoy.html").read_text()) == "ok"
    assert call(page, "showStack") is True
    frame = frame_where(page, "document.querySelector('canvas.image')?.width === 20")
    assert np.array_equal(canvas_rgba(frame)[..., 0], stack8()[0])


# -- imjoy/plugin-editor and Joy forms ------------------------------------------------------

EDITOR_PLUGIN = "ImJoy Editor Joy Test"
EDITED = """<config lang="json">
{"name": "Edited Plugin", "type": "web-worker", "version": "0.1.0"}
</config>
<script lang="javascript">
api.export({setup() {}, run() {}, answer() { return 42; }});
</script>
"""


@pytest.fixture
def editor_app(page: Page, base_url: str) -> Page:
    page.goto(base_url)
    page.evaluate("pyjoy.ready")
    text = (LIVE / "imjoy_editor_joy.imjoy.html").read_text()
    assert page.evaluate("async (text) => { await pyjoy.loadPlugin(text); return 'ok'; }", text) == "ok"
    return page


def editor_call(page: Page, method: str, *args):
    return page.evaluate("async ([name, method, args]) => (await pyjoy.getPlugin(name))[method](...args)", [EDITOR_PLUGIN, method, list(args)])


def plugin_names(page: Page) -> list[str]:
    return [plugin["name"] for plugin in page.evaluate("pyjoy.plugins()")]


def test_a_plugin_editor_shows_the_code_the_person_edits_and_installs_only_after_asking(editor_app: Page) -> None:
    app = editor_app
    methods = editor_call(app, "openEditor", EDITED)
    assert {"getCode", "setCode", "run", "close", "on"} <= set(methods)
    assert not {"save", "install"} & set(methods)  # saving is the person's click, not the plugin's call
    window = app.locator(".plugin-window.editor-window", has_text="Edit demo")
    expect(window).to_be_visible()
    text = "(element) => element.editor.getText()"
    assert window.evaluate(text) == EDITED

    # What the person types, the plugin reads back.
    window.locator(".cm-content").click()
    app.keyboard.press("Control+End")
    app.keyboard.type("<!-- typed by the person -->")
    assert editor_call(app, "getCode") == EDITED + "<!-- typed by the person -->"
    # ImJoy's win.run({data: {code}}) replaces the code, as PyJoy's setCode does.
    editor_call(app, "replaceData", "<!-- other -->")
    assert window.evaluate(text) == "<!-- other -->"
    editor_call(app, "setCode", EDITED)
    assert window.evaluate(text) == EDITED
    assert "Edited Plugin" not in plugin_names(app)

    # Run saves first: the person is asked, naming the plugin that gave the text; "no" installs nothing.
    window.locator("button.editor-run").click()
    ask = app.locator("dialog", has_text="Install plugin")
    expect(ask).to_contain_text(f"{EDITOR_PLUGIN} wants to install the web-worker plugin Edited Plugin given as text by plugin {EDITOR_PLUGIN}")
    ask.get_by_role("button", name="Cancel").click()
    expect(window.locator(".editor-message")).to_contain_text("said no")
    assert "Edited Plugin" not in plugin_names(app)

    window.locator("button.editor-run").click()
    ask.get_by_role("button", name="Install").click()
    # Installing and starting take a while after the click (the workspace is stored first).
    wait_until(app, "pyjoy.plugins().then((list) => list.some((p) => p.name === 'Edited Plugin' && p.state === 'running'))", timeout_ms=15000)
    assert app.evaluate("async () => (await pyjoy.getPlugin('Edited Plugin')).answer()") == 42

    assert editor_call(app, "closeEditor") is True  # on("close") fired
    expect(window).to_have_count(0)


def test_a_plugin_editor_closes_with_the_plugin_that_opened_it(editor_app: Page) -> None:
    editor_call(editor_app, "openEditor", EDITED)
    window = editor_app.locator(".plugin-window.editor-window", has_text="Edit demo")
    expect(window).to_be_visible()
    editor_app.evaluate("(name) => pyjoy.terminatePlugin(name)", EDITOR_PLUGIN)
    expect(window).to_have_count(0)


def test_a_joy_window_is_a_sandboxed_form_whose_updates_and_values_reach_the_plugin(editor_app: Page) -> None:
    app = editor_app
    assert editor_call(app, "openJoy") is True
    frame = frame_where(app, "document.querySelector('.form-fields [data-field=sigma]')")
    assert frame.evaluate("self.origin") == "null"  # in the built-in windows' sandbox
    field = lambda name: frame.locator(f"[data-field={name}]")  # noqa: E731
    assert [field("sigma").input_value(), field("mode").input_value(), field("label").input_value()] == ["5", "fast", "cells"]

    field("label").fill("nuclei")
    deadline = 50
    while not (seen := editor_call(app, "seen")) and deadline:
        app.wait_for_timeout(100)
        deadline -= 1
    assert seen[-1] == {"sigma": 5, "mode": "fast", "label": "nuclei"}  # Joy's onupdate({data})
    field("mode").select_option("slow")
    assert editor_call(app, "joyValues") == {"sigma": 5, "mode": "slow", "label": "nuclei"}

    editor_call(app, "joyRun", {"sigma": 7})  # run({data}) sets the values it names
    assert [field("sigma").input_value(), field("mode").input_value()] == ["7", "slow"]

    assert "ui must be a string or a list" in editor_call(app, "tryJoy", 5)
    assert "cannot read the ui field" in editor_call(app, "tryJoy", "Bad: {id: 'x', type: [}")


PY_JOY = """<config lang="json">
{"name": "Python Joy", "type": "web-python", "version": "0.1.0", "api_version": "0.1.8"}
</config>
<script lang="python">
class ImJoyPlugin:
    async def setup(self):
        self.updates = []

    async def open(self):
        self.win = await api.createWindow({
            "name": "Python joy", "type": "imjoy/joy", "update": self.update,
            "ui": [{"Sigma": {"id": "sigma", "type": "number", "placeholder": 3}}, "Name: {id: 'name', type: 'string', placeholder: 'x'}"],
        })
        return True

    def update(self, ctx):
        self.updates.append(dict(ctx.config))

    def seen(self):
        return self.updates

    async def values(self):
        return dict(await self.win.get_config())

api.export(ImJoyPlugin())
</script>
"""


def test_a_python_plugins_joy_window_calls_its_update_with_the_values(page: Page, base_url: str) -> None:
    page.goto(base_url)
    page.evaluate("pyjoy.ready")
    page.evaluate("async (text) => { await pyjoy.loadPlugin(text); }", PY_JOY)
    py = lambda method: page.evaluate("async (m) => (await pyjoy.getPlugin('Python Joy'))[m]()", method)  # noqa: E731
    assert py("open") is True
    frame = frame_where(page, "document.querySelector('.form-fields [data-field=name]')")
    assert frame.locator("[data-field=sigma]").input_value() == "3"
    frame.locator("[data-field=sigma]").fill("4.5")
    deadline = 50
    while not (seen := py("seen")) and deadline:
        page.wait_for_timeout(100)
        deadline -= 1
    assert seen[-1] == {"sigma": 4.5, "name": "x"}  # update(ctx), ctx.config as an op's update gets it
    assert py("values") == {"sigma": 4.5, "name": "x"}


def test_a_plugin_cannot_install_what_its_editor_window_holds(page: Page, base_url: str) -> None:
    page.goto(base_url)
    page.evaluate("pyjoy.ready")
    hostile = (HOSTILE / "windows_editor_installs_itself.imjoy.html").read_text()
    tried = page.evaluate("async (text) => (await pyjoy.loadPlugin(text), await (await pyjoy.getPlugin('Windows Hostile Editor')).run())", hostile)
    assert "save: win.save is not a function" in tried
    assert any(entry.startswith("bad code: ") and "data.code must be a plugin's source text" in entry for entry in tried)
    window = page.locator(".plugin-window.editor-window", has_text="Hostile editor")
    expect(window).to_be_visible()
    assert "Editor Smuggled" in window.evaluate("(element) => element.editor.getText()")  # shown, as given
    page.wait_for_timeout(500)
    expect(page.locator("dialog[open]")).to_have_count(0)  # nothing asked: nothing was tried in the person's name
    assert "Editor Smuggled" not in plugin_names(page)
