"""web-python plugins isolated in a frame (`"isolated": true`, plugins/sandbox.js) and the
spare Python the host keeps booted (plugins/host.js), in real Chromium: an isolated plugin's
worker is cross-origin isolated (onnxruntime-web gets a thread per core, counted as started)
where a plain one's is not; arrays bigger than a chunk cross whole; a plugin started after
idle takes the spare (its worker was made before the load was asked for) and a new spare
follows; a spare that died while it waited is never handed out; a plugin that imports
pyjoy.onnx gets onnxruntime-web loading as its Python boots (or as it takes the spare), and a
runtime that fails on the way is told by load_model and loaded again."""

from __future__ import annotations

import base64
import json
import time

import numpy as np
from playwright.sync_api import Browser, Page, Route

from test_onnx import tiny_model

SCRIPT = '''
import js
from imjoy import api
from pyjoy.onnx import load_model


class Probe:
    async def facts(self, tiny_b64):
        import base64
        model = await load_model(base64.b64decode(tiny_b64), name="tiny")
        info = model.info()
        await model.close()
        return {"isolated": bool(js.crossOriginIsolated), "threads": info["threads"],
                "born": js.performance.timeOrigin, "reason": info["reason"]}

    def total(self, array):
        return sum(array.data) if hasattr(array, "data") and not hasattr(array, "sum") else int(array.sum())


api.export(Probe())
'''


# What a model's info() says when its onnxruntime-web was loaded as the plugin's Python
# started (pyjoy/onnx/web.js, preload): a plugin whose Python imports pyjoy.onnx.
LOADED_AHEAD = "onnxruntime-web loaded ahead, as the plugin's Python started (it imports pyjoy.onnx)"


def plugin(name: str, isolated: bool | None, script: str = SCRIPT) -> str:
    config = {"name": name, "type": "web-python", "version": "0.1.0", "api_version": "0.1.8"}
    if isolated is not None:
        config["isolated"] = isolated
    return f'<config lang="json">\n{json.dumps(config)}\n</config>\n<script lang="python">{script}</script>\n'


TINY = base64.b64encode(tiny_model()).decode()


def load_and_ask(page: Page, source: str) -> dict:
    """Loads the plugin; answers its facts and when the load was asked for (ms since the epoch)."""
    return page.evaluate(
        """async ([source, tiny]) => {
             const asked = performance.timeOrigin + performance.now();
             const plugin = await pyjoy.loadPlugin(source);
             const loaded = performance.timeOrigin + performance.now();
             return {asked, loaded, ...(await plugin.facts(tiny))};
           }""",
        [source, TINY],
    )


def wait_for_frames(page: Page, count: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while page.locator("iframe.plugin-worker-frame").count() < count:
        assert time.monotonic() < deadline, f"fewer than {count} worker frames: no spare was booted"
        page.wait_for_timeout(200)


def open_app(page: Page, base_url: str) -> None:
    page.goto(base_url)
    page.evaluate("pyjoy.ready")


def test_an_isolated_web_python_plugin_is_cross_origin_isolated_and_runs_threads(page: Page, base_url: str) -> None:
    open_app(page, base_url)
    cores = page.evaluate("navigator.hardwareConcurrency")
    plain = load_and_ask(page, plugin("Plain Python", None))
    assert plain["isolated"] is False and plain["threads"] == 1, plain
    assert LOADED_AHEAD in plain["reason"], plain  # in the page's process too
    assert page.locator("iframe.plugin-worker-frame").count() == 0  # in the page's process
    isolated = load_and_ask(page, plugin("Isolated Python", True))
    assert isolated["isolated"] is True, isolated
    assert isolated["threads"] == cores, isolated  # pyjoy.onnx: one per core where isolated
    assert page.locator("iframe.plugin-worker-frame").count() >= 1
    # An array bigger than a frame's chunk (1 MiB) crosses whole: Python takes no pieces.
    data = np.random.default_rng(1).integers(0, 256, 3 << 20, dtype=np.uint8)
    total = page.evaluate(
        """async (b64) => {
             const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
             const plugin = await pyjoy.getPlugin("Isolated Python");
             return plugin.total({_rtype: "ndarray", _rvalue: bytes.buffer, _rshape: [bytes.length], _rdtype: "uint8"});
           }""",
        base64.b64encode(data.tobytes()).decode(),
    )
    assert total == int(data.sum(dtype=np.int64))


# When each sandbox's worker frame was added to the page (epoch ms), watched from before the action.
WATCH_FRAMES = """() => {
  window.framesAdded = [];
  new MutationObserver((records) => {
    for (const record of records) for (const node of record.addedNodes) {
      if (node.matches?.("iframe.plugin-worker-frame")) framesAdded.push(performance.timeOrigin + performance.now());
    }
  }).observe(document.body, { childList: true, subtree: true });
}"""


def test_a_plugin_started_after_idle_takes_the_spare_and_a_new_spare_follows(page: Page, base_url: str) -> None:
    open_app(page, base_url)
    page.evaluate(WATCH_FRAMES)
    first = load_and_ask(page, plugin("Isolated One", True))
    assert first["born"] >= first["asked"]  # no spare yet: booted for it
    # It imports pyjoy.onnx: its worker loaded onnxruntime-web as its Python booted.
    assert LOADED_AHEAD in first["reason"], first
    wait_for_frames(page, 2)  # its frame and the spare's, booted once the page was idle
    # Not while the plugin did its first work: once no plugin had been loading for 2 s (quiet.js).
    added = page.evaluate("framesAdded")
    assert len(added) == 2 and added[1] > first["loaded"] + 1500, (added, first["loaded"])
    page.wait_for_timeout(1000)  # the spare's worker starts once its frame has loaded
    second = load_and_ask(page, plugin("Isolated Two", True))
    assert second["isolated"] is True
    assert second["born"] < second["asked"], second  # its worker existed before it was asked for: the spare
    # The spare was booted for no plugin in particular: told as this one started (its kernel).
    assert LOADED_AHEAD in second["reason"], second
    wait_for_frames(page, 3)  # and another spare after it


def test_a_plugin_that_does_not_import_pyjoy_onnx_gets_no_onnxruntime_web_ahead(page: Page, base_url: str) -> None:
    """Only an import line asks for it: a plugin that reaches pyjoy.onnx another way (here
    importlib, once called) loads onnxruntime-web when it loads its model, as before."""
    open_app(page, base_url)
    script = SCRIPT.replace("from pyjoy.onnx import load_model\n", "import importlib\n").replace(
        "model = await load_model(", "model = await importlib.import_module('pyjoy.onnx').load_model(")
    assert "import pyjoy" not in script and "from pyjoy" not in script
    for name, isolated in (("Plain Later", None), ("Isolated Later", True)):
        seen = load_and_ask(page, plugin(name, isolated, script))
        assert seen["threads"] >= 1 and LOADED_AHEAD not in seen["reason"], seen


def test_a_runtime_that_fails_to_load_ahead_is_told_by_load_model_and_loaded_again(browser: Browser, base_url: str) -> None:
    """onnxruntime-web's WASM corrupt on the way while it loads ahead: the plugin's first
    load_model says which file and why (the preload swallowed nothing), and once the file
    comes whole the next load_model loads the runtime again and runs."""
    context = browser.new_context(service_workers="block")  # every request through the page's fetch, routed here
    try:
        page = context.new_page()
        open_app(page, base_url)
        def corrupt(route: Route) -> None:
            route.fulfill(status=200, body=b"\0asm not onnxruntime", content_type="application/wasm")

        page.route("**/ort-wasm-simd-threaded.wasm", corrupt)
        source = plugin("Isolated Corrupt", True, SCRIPT.replace("    def total(self, array):", TRY_FACTS + "\n    def total(self, array):"))
        first = page.evaluate("async ([source, tiny]) => (await pyjoy.loadPlugin(source)).try_facts(tiny)", [source, TINY])
        assert "ort-wasm-simd-threaded.wasm" in first and "do not match its integrity" in first, first
        page.unroute("**/ort-wasm-simd-threaded.wasm", corrupt)
        second = page.evaluate("async (tiny) => (await pyjoy.getPlugin('Isolated Corrupt')).try_facts(tiny)", TINY)
        assert isinstance(second, dict) and second["isolated"] is True and second["threads"] >= 1, second
        assert LOADED_AHEAD not in second["reason"], second  # this runtime was loaded by load_model
    finally:
        context.close()


# A method for SCRIPT's class: facts(), or the ModelError's message.
TRY_FACTS = """
    async def try_facts(self, tiny_b64):
        from pyjoy.onnx import ModelError
        try:
            return await self.facts(tiny_b64)
        except ModelError as error:
            return str(error)
"""


def remove_the_spare(page: Page) -> None:
    """Takes the spare's frame (the last: no plugin holds it) out of the page: its sandbox dies."""
    page.evaluate("""() => {
        const frames = [...document.querySelectorAll("iframe.plugin-worker-frame")];
        frames[frames.length - 1].remove();
    }""")
    page.wait_for_timeout(1000)  # the host's liveness watch (250 ms) ends it


def test_a_spare_that_failed_or_died_is_never_handed_out(page: Page, base_url: str) -> None:
    open_app(page, base_url)
    first = load_and_ask(page, plugin("Isolated One", True))
    # Ended while it booted (its frame gone as soon as it came): a fresh sandbox, working.
    wait_for_frames(page, 2)
    remove_the_spare(page)
    second = load_and_ask(page, plugin("Isolated Two", True))
    assert second["isolated"] is True and second["born"] >= second["asked"], second
    # Ended once booted, while it waited (given the time the first plugin took to boot,
    # twice over): the same.
    wait_for_frames(page, 3)
    page.wait_for_timeout(max(2 * (first["born"] - first["asked"]), 0) + 6000)
    remove_the_spare(page)
    third = load_and_ask(page, plugin("Isolated Three", True))
    assert third["isolated"] is True and third["born"] >= third["asked"], third
