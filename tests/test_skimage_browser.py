"""The built-in image-analysis plugins in the app, on a build whose package index is a
closed port of 127.0.0.1 (as a site without the internet, or this machine, sees it):
loaded as web-python, a plugin says which packages could not be fetched, from where, and
that the engine runs it instead; loaded by its tag `native-python` with an engine
connected, its op's form runs it there, its mask shows in the image viewer and its
measurements save as CSV. The plugins' logic is tested in test_skimage_plugins.py (CPython)
and test_skimage_engine.py (the engine without a browser)."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from playwright.sync_api import Page, expect
from skimage import data

from conftest import run_build
from pyjoy.devtools import engine_running, free_port, served
from test_imjoy_windows import canvas_rgba, frame_where
from test_skimage_plugins import PLUGINS, otsu_reference

TOKEN = "skimage-browser-" + "x" * 30


@pytest.fixture(scope="module")
def closed_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(the site's URL, its package index): a build whose index nothing answers."""
    site = tmp_path_factory.mktemp("skimage_site") / "site"
    index = f"http://127.0.0.1:{free_port()}/pyodide-index/"
    result = run_build("--out", str(site), "--package-index", index)
    assert result.returncode == 0, result.stderr
    with served(site) as url:
        yield url, index


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, closed_index: tuple[str, str]) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("skimage_browser_engine")
    env = {"PYJOY_ENGINE_TOKEN": TOKEN, "UV_OFFLINE": "1", "UV_NO_INDEX": "1", "UV_CACHE_DIR": str(workdir / "uv-cache")}
    with engine_running(workdir / "work", "--app", closed_index[0], env=env) as (url, _process):
        yield url


def test_as_web_python_without_its_packages_it_names_them_where_from_and_the_engine(
        page: Page, closed_index: tuple[str, str]) -> None:
    url, index = closed_index
    page.goto(url)
    page.wait_for_function("window.pyjoy && pyjoy.timings.workbenchReady", timeout=60_000)
    source = (PLUGINS / "skimage-threshold.imjoy.html").read_text()
    message = page.evaluate("(text) => pyjoy.loadPlugin(text).then(() => 'loaded', (e) => `${e.code}: ${e.message}`)", source)
    assert message.startswith("plugin-load-failed: plugin Threshold failed to load"), message
    assert "requirements numpy, scikit-image could not be installed" in message, message
    assert re.search(rf"\d+ packages could not be fetched from {re.escape(index)} \(numpy, scikit-image, ", message), message
    assert 'connect it (Engines…) and load "Threshold@native-python"' in message, message
    # Every other analysis plugin the same way: its own name, its packages, the index, the engine.
    for file in sorted(PLUGINS.glob("skimage-*.imjoy.html")):
        name = json.loads(re.search(r'<config lang="json">(.*?)</config>', file.read_text(), re.S).group(1))["name"]
        message = page.evaluate("(text) => pyjoy.loadPlugin(text).then(() => 'loaded', (e) => e.message)", file.read_text())
        assert f"plugin {name} failed to load" in message and re.search(r"requirements numpy, .*scikit-image", message), message
        assert f"could not be fetched from {index}" in message and f'load "{name}@native-python"' in message, message
        assert re.search(r"more they need\): Failed to fetch\. A PyJoy engine", message), message  # one reason, not one a wheel
    # The built-in copy in the workspace says the same when run, and the app goes on.
    row = page.locator(".plugin-item", has_text="Count Objects")
    row.get_by_role("button", name="Run").click()
    expect(row.locator(".plugin-error")).to_contain_text('load "Count Objects@native-python"', timeout=60_000)
    assert page.evaluate("pyjoy.runPython('1 + 1')") == 2


def test_by_its_native_python_tag_its_ops_run_on_the_engine_and_show_their_results(
        page: Page, closed_index: tuple[str, str], engine: str, tmp_path: Path) -> None:
    url, _index = closed_index
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(f"{url}?engine={quote(engine, safe='')}")
    expect(page.locator("#engine-status .engine-chip")).to_have_attribute("data-state", "connected", timeout=30_000)
    for file in ("skimage-threshold.imjoy.html", "skimage-measure.imjoy.html"):
        loaded = page.evaluate("(file) => pyjoy.loadPlugin(new URL('plugins/' + file + '@native-python', location.href).href)"
                               ".then(() => 'ok', (e) => e.message)", file)
        assert loaded == "ok", loaded
    coins = data.coins()
    level = otsu_reference(coins)

    # The Threshold op's form, run: the mask in an image viewer, the threshold in the toast.
    form = page.locator(".op-form", has_text="Threshold to mask")
    expect(form.get_by_label("Method")).to_have_value("otsu")
    expect(form.locator("[data-field]")).to_have_count(4)  # sample, method, value, dark: the image is data, no field
    form.get_by_role("button", name="Run").click()
    toast = page.locator(".toast", has_text="Threshold to mask:")
    expect(toast).to_be_visible(timeout=30_000)
    assert json.loads(toast.inner_text().split("Threshold to mask: ", 1)[1].splitlines()[0])["threshold"] == pytest.approx(level, abs=1)
    viewer = frame_where(page, "document.querySelector('canvas.image')?.width === 384")
    shown = canvas_rgba(viewer)
    np.testing.assert_array_equal(shown[..., 0] == 255, coins > level)

    # From the page, the plugin's API: an ndarray in, a mask out.
    mask = page.evaluate("""async (pixels) => {
        const thresholder = await pyjoy.getPlugin('Threshold');
        const image = {_rtype: 'ndarray', _rvalue: new Uint8Array(pixels).buffer, _rshape: [303, 384], _rdtype: 'uint8'};
        const result = await thresholder.threshold(image, 'otsu');
        return {dtype: result.mask._rdtype, shape: result.mask._rshape, values: Array.from(new Uint8Array(result.mask._rvalue))};
    }""", coins.ravel().tolist())
    assert (mask["dtype"], mask["shape"]) == ("bool", [303, 384])
    np.testing.assert_array_equal(np.array(mask["values"], bool).reshape(303, 384), coins > level)

    # Count Objects: its table saved as CSV after the person's click.
    counter = page.locator(".op-form", has_text="Count objects")
    counter.get_by_label("Minimum area (pixels)").fill("100")
    counter.get_by_label("Save the table as CSV").check()
    counter.get_by_role("button", name="Run").click()
    ask = page.locator("dialog", has_text="Save file")
    expect(ask).to_contain_text('Count Objects wants to save the file "objects.csv"', timeout=30_000)
    with page.expect_download() as download:
        ask.get_by_role("button", name="Save").click()
    saved = tmp_path / "objects.csv"
    download.value.save_as(saved)
    rows = list(csv.DictReader(io.StringIO(saved.read_text())))
    from test_skimage_plugins import fill_holes_reference, objects_reference
    expected = objects_reference(coins, fill_holes_reference(coins > level), 100)
    assert [int(row["area"]) for row in rows] == [row["area"] for row in expected]
    expect(page.locator(".toast", has_text="Count objects:")).to_contain_text(f'"count":{len(expected)}')
    frame_where(page, f"[...document.querySelectorAll('td')].length >= {len(expected)}")  # the table's window
