"""Plugins in real Chromium: each type, calls across plugins and the page, arrays moved by
transfer, errors with tracebacks, malformed files, endless loops, and the sandbox walls."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from conftest import user_plugins

LIVE = Path(__file__).parent / "plugins" / "live"
MALFORMED = Path(__file__).parent / "plugins"


def source(name: str) -> str:
    return (LIVE / name).read_text()


def load(page: Page, text: str):
    """Loads a plugin from its source; returns {ok, value} or {error, name, block, line}."""
    return page.evaluate(
        """async (text) => {
             try { await pyjoy.loadPlugin(text); return {ok: true}; }
             catch (e) { return {error: e.message, name: e.name, block: e.block ?? null, line: e.line ?? null, traceback: e.traceback ?? null}; }
           }""",
        text,
    )


@pytest.fixture
def app(page: Page, base_url: str) -> Page:
    page.goto(base_url)
    page.evaluate("pyjoy.ready")
    return page


@pytest.fixture
def python_plugin(app: Page) -> Page:
    assert load(app, source("echo_python.imjoy.html")) == {"ok": True}
    return app


def plugin_frame(page: Page, title_text: str):
    for frame in page.frames:
        if frame != page.main_frame and frame.evaluate("document.body?.innerText ?? ''").find(title_text) >= 0:
            return frame
    raise AssertionError(f"no plugin frame shows {title_text!r}")


def test_web_python_plugin_loads_sets_up_and_answers(python_plugin: Page) -> None:
    page = python_plugin
    assert page.evaluate("pyjoy.getPlugin('Echo Python').then(p => p.add(1, 2))") == 3
    # ImJoy's keyword-argument convention from JS.
    assert page.evaluate("pyjoy.getPlugin('Echo Python').then(p => p.add(1, {b: 5, _rkwargs: true}))") == 6
    plugins = user_plugins(page)
    assert plugins == [{"name": "Echo Python", "type": "web-python", "version": "0.1.0", "state": "running", "error": None}]
    # setup() ran, and its api.log reached the Messages panel (the host's own page).
    expect(page.locator("#message-log li", has_text="Echo Python: echo python ready")).to_have_count(1)
    assert page.evaluate("pyjoy.api.echo('pong')") == "pong"


def test_web_worker_plugin_runs_javascript_in_a_worker(python_plugin: Page) -> None:
    page = python_plugin
    assert load(page, source("echo_worker.imjoy.html")) == {"ok": True}
    assert page.evaluate("pyjoy.getPlugin('Echo Worker').then(p => p.multiply(6, 7))") == 42
    expect(page.locator("#message-log li", has_text="Echo Worker: echo worker ready")).to_have_count(1)
    # A JS plugin calls a Python plugin through the host.
    assert page.evaluate("pyjoy.getPlugin('Echo Worker').then(p => p.callPython([40, 2]))") == 42
    error = page.evaluate("pyjoy.getPlugin('Echo Worker').then(p => p.fail()).catch(e => [e.name, e.remoteType, e.message])")
    assert error == ["RemoteError", "TypeError", "TypeError: worker says no"]


def test_window_plugin_calls_python_with_a_callback(python_plugin: Page) -> None:
    page = python_plugin
    assert load(page, source("probe_window.imjoy.html")) == {"ok": True}
    expect(page.locator(".plugin-window h2")).to_have_text("Probe Window")
    result = page.evaluate("pyjoy.getPlugin('Probe Window').then(p => p.countInPython(3))")
    assert result == {"total": 3, "seen": ["1/3", "2/3", "3/3"]}
    # The window's own document shows what the Python callbacks did.
    frame = plugin_frame(page, "Probe")
    assert frame.evaluate("[...document.querySelectorAll('#progress li')].map(li => li.textContent)") == ["1/3", "2/3", "3/3"]


def test_a_64_mb_array_moves_by_transfer_both_ways(python_plugin: Page) -> None:
    page = python_plugin
    result = page.evaluate(
        """async () => {
             const crc32 = (bytes) => {
               let table = new Uint32Array(256);
               for (let n = 0; n < 256; n++) { let c = n; for (let k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320 ^ (c >>> 1) : c >>> 1; table[n] = c >>> 0; }
               let crc = 0xFFFFFFFF;
               for (let i = 0; i < bytes.length; i++) crc = table[(crc ^ bytes[i]) & 0xFF] ^ (crc >>> 8);
               return (crc ^ 0xFFFFFFFF) >>> 0;
             };
             const n = 16 * 1024 * 1024;  // 64 MB of float32
             const values = new Float32Array(n);
             for (let i = 0; i < n; i++) values[i] = Math.sin(i) * 1000;
             const sent = crc32(new Uint8Array(values.buffer));
             const python = await pyjoy.getPlugin('Echo Python');
             const array = {_rtype: 'ndarray', _rvalue: values.buffer, _rshape: [4096, 4096], _rdtype: 'float32'};
             const seen = await python.checksum(array);
             const detached = values.buffer.byteLength === 0;
             const again = new Float32Array(n);
             for (let i = 0; i < n; i++) again[i] = Math.sin(i) * 1000;
             const back = await python.roundtrip({_rtype: 'ndarray', _rvalue: again.buffer, _rshape: [4096, 4096], _rdtype: 'float32'});
             return {sent, seen, detached, backShape: back._rshape, backType: back._rdtype,
                     backCrc: crc32(new Uint8Array(back._rvalue)), againDetached: again.buffer.byteLength === 0};
           }"""
    )
    assert result["detached"] and result["againDetached"]  # moved, not copied, into the sandbox
    assert result["seen"] == {"crc": result["sent"], "shape": [4096, 4096], "dtype": "float32"}
    assert result["backShape"] == [4096, 4096] and result["backType"] == "float32"
    assert result["backCrc"] == result["sent"]


def test_a_big_array_crosses_to_a_window_plugin_and_back(app: Page) -> None:
    # A frame is another process: 32 MB go there and back in chunks (rpc/transport.js).
    assert load(app, source("probe_window.imjoy.html")) == {"ok": True}
    result = app.evaluate(
        """async () => {
             const n = 8 * 1024 * 1024;
             const values = Float32Array.from({length: n}, (_, i) => (i % 65536) - 7);
             const probe = await pyjoy.getPlugin('Probe Window');
             const back = await probe.reverse({_rtype: 'ndarray', _rvalue: values.buffer, _rshape: [2048, 4096], _rdtype: 'float32'});
             const reversed = new Float32Array(back._rvalue);
             let mismatches = 0;
             for (let i = 0; i < n; i++) if (reversed[i] !== ((n - 1 - i) % 65536) - 7) mismatches++;
             return {detached: values.buffer.byteLength === 0, length: reversed.length, mismatches, shape: back._rshape};
           }"""
    )
    assert result == {"detached": True, "length": 8 * 1024 * 1024, "mismatches": 0, "shape": [2048, 4096]}


def test_a_python_exception_reaches_js_with_its_traceback(python_plugin: Page) -> None:
    error = python_plugin.evaluate(
        "pyjoy.getPlugin('Echo Python').then(p => p.fail('bad input')).catch(e => ({name: e.name, type: e.remoteType, message: e.message, traceback: e.traceback}))"
    )
    assert error["name"] == "RemoteError"
    assert error["type"] == "ValueError"
    assert "bad input" in error["message"]
    lines = source("echo_python.imjoy.html").splitlines()
    raise_line = next(i for i, line in enumerate(lines, 1) if "raise ValueError(message)" in line)
    # The traceback names the plugin's own functions at the plugin file's line numbers.
    assert "in _deeper" in error["traceback"] and "in fail" in error["traceback"]
    assert f"line {raise_line}" in error["traceback"]


@pytest.mark.parametrize(
    ("file", "block", "line", "words"),
    [
        ("bad_json.imjoy.html", "config", None, "config"),
        ("bad_type.imjoy.html", "config", None, "unknown plugin type"),
        ("bad_no_script.imjoy.html", "script", None, "script"),
        ("bad_requirement.imjoy.html", "config", None, "requirement"),
        ("bad_unclosed.imjoy.html", None, None, "never closed"),
    ],
)
def test_a_malformed_plugin_is_a_clear_error_and_breaks_nothing(python_plugin: Page, file: str, block, line, words: str) -> None:
    page = python_plugin
    result = load(page, (MALFORMED / file).read_text())
    assert result["name"] == "PluginError"
    assert words in result["error"]
    assert result["line"] and f"line {result['line']}" in result["error"]
    if block:
        assert result["block"] == block
    # What was loaded goes on working.
    assert page.evaluate("pyjoy.getPlugin('Echo Python').then(p => p.add(2, 2))") == 4


def test_a_plugin_that_crashes_in_setup_is_reported_and_can_be_fixed(app: Page) -> None:
    broken = source("echo_worker.imjoy.html").replace('await api.log("echo worker ready");', 'throw new Error("setup exploded");')
    result = load(app, broken)
    assert "setup exploded" in result["error"]
    assert user_plugins(app)[0]["state"] == "crashed"
    assert load(app, source("echo_worker.imjoy.html")) == {"ok": True}
    assert app.evaluate("pyjoy.getPlugin('Echo Worker').then(p => p.multiply(2, 3))") == 6


def test_an_endless_loop_is_terminated_and_the_host_goes_on(python_plugin: Page) -> None:
    page = python_plugin
    page.evaluate("pyjoy.getPlugin('Echo Python').then(p => { window.spinning = p.spin().catch(e => e.message); })")
    time.sleep(0.5)
    # The page stays responsive while the plugin spins in its worker.
    started = time.monotonic()
    assert page.evaluate("1 + 1") == 2
    assert time.monotonic() - started < 2
    assert page.evaluate("pyjoy.terminatePlugin('Echo Python')") is True
    assert "closed" in page.evaluate("window.spinning")  # the pending call fails, naming why
    assert user_plugins(page) == []
    # It can be started again.
    assert load(page, source("echo_python.imjoy.html")) == {"ok": True}
    assert page.evaluate("pyjoy.getPlugin('Echo Python').then(p => p.add(20, 22))") == 42


def test_a_window_plugin_cannot_reach_the_host(python_plugin: Page) -> None:
    page = python_plugin
    page.evaluate("localStorage.setItem('secret', 'host only')")
    assert load(page, source("probe_window.imjoy.html")) == {"ok": True}
    escapes = page.evaluate("pyjoy.getPlugin('Probe Window').then(p => p.escapes())")
    assert escapes == {
        "parent.document": "SecurityError",
        "localStorage": "SecurityError",
        "top.location": "SecurityError",
        "indexedDB": "SecurityError",
        "document.cookie": "SecurityError",
        "origin": "null",
    }
    frame = page.locator(".plugin-window iframe")
    assert frame.get_attribute("sandbox") == "allow-scripts allow-modals"  # native alert/confirm/prompt; never allow-same-origin
    # Its declared permission, and nothing else beyond cross-origin isolation.
    assert frame.get_attribute("allow") == "cross-origin-isolated; camera"


def test_worker_plugins_cannot_reach_the_hosts_storage(python_plugin: Page) -> None:
    page = python_plugin
    escapes = page.evaluate("pyjoy.getPlugin('Echo Python').then(p => p.escape())")
    assert escapes["origin"] == "null"
    assert "SecurityError" in escapes["indexedDB"]
    assert "allowed" not in escapes["caches"]
    assert load(page, source("echo_worker.imjoy.html")) == {"ok": True}
    assert page.evaluate("pyjoy.getPlugin('Echo Worker').then(p => p.escape())") == {"indexedDB": "SecurityError", "origin": "null"}


def test_plugin_settings_persist_across_a_reload(python_plugin: Page) -> None:
    page = python_plugin
    # ImJoy keeps settings as text: numbers come back as strings, objects as JSON.
    assert page.evaluate("pyjoy.getPlugin('Echo Python').then(p => p.get_config('remembered'))") is None  # nothing set yet
    assert page.evaluate("pyjoy.getPlugin('Echo Python').then(p => p.config_round_trip(123))") == "123"
    # A later call reads what an earlier one set.
    assert page.evaluate("pyjoy.getPlugin('Echo Python').then(p => p.get_config('remembered'))") == "123"
    assert page.evaluate("pyjoy.getPlugin('Echo Python').then(p => p.config_round_trip({threshold: 0.5}))") == '{"threshold":0.5}'
    page.reload()
    page.evaluate("pyjoy.ready")
    assert load(page, source("echo_python.imjoy.html")) == {"ok": True}
    assert page.evaluate("pyjoy.api.echo(1)") == 1
    assert page.evaluate("pyjoy.api.getConfig('x')") is None  # the page's own settings are separate
    assert page.evaluate("pyjoy.getPlugin('Echo Python').then(p => p.get_config('remembered'))") == '{"threshold":0.5}'
    assert page.evaluate("pyjoy.getPlugin('Echo Python').then(p => p.get_config('never_set'))") is None


def test_plugin_dialogs_wait_for_the_person(python_plugin: Page) -> None:
    page = python_plugin
    page.evaluate("() => { window.answer = pyjoy.api.confirm('Delete everything?'); }")
    dialog = page.locator("dialog.dialog")
    expect(dialog).to_contain_text("Delete everything?")
    dialog.get_by_role("button", name="Cancel").click()
    assert page.evaluate("window.answer") is False
    page.evaluate("() => { window.answer = pyjoy.api.prompt('Your name?', 'Ada'); }")
    page.locator("dialog.dialog input").fill("Grace")
    page.locator("dialog.dialog").get_by_role("button", name="OK").click()
    assert page.evaluate("window.answer") == "Grace"


def test_an_iframe_plugin_runs_without_a_window_and_reloads(app: Page) -> None:
    hidden = """<config lang="json">{"name": "Hidden Frame", "type": "iframe", "version": "0.1.0", "api_version": "0.1.8"}</config>
<window><p id="state">ready</p></window>
<script lang="javascript">
api.export({ state: () => document.getElementById("state").textContent, version: () => 1 });
</script>"""
    assert load(app, hidden) == {"ok": True}
    assert app.evaluate("pyjoy.getPlugin('Hidden Frame').then(p => p.state())") == "ready"
    expect(app.locator(".plugin-window")).to_have_count(0)
    assert app.locator("#sandboxes iframe").count() >= 1
    # Loading a new version by the same name replaces the running one.
    assert load(app, hidden.replace("version: () => 1", "version: () => 2")) == {"ok": True}
    assert app.evaluate("pyjoy.getPlugin('Hidden Frame').then(p => p.version())") == 2
    assert app.evaluate("pyjoy.reloadPlugin('Hidden Frame').then(p => p.version())") == 2
    assert [p["name"] for p in user_plugins(app)] == ["Hidden Frame"]


def test_requirements_install_from_the_package_index(page: Page, tmp_path: Path) -> None:
    import json

    from conftest import ROOT, run_build
    from pyjoy.devtools import free_port, served
    from pyodide_dist import make_distribution

    runtime_lock = json.loads((ROOT / "node_modules/pyodide/pyodide-lock.json").read_text())
    dist = make_distribution(tmp_path / "pyodide-dist", runtime_lock, {"pyjoy_sample": "ANSWER = 42\n"})
    site = tmp_path / "site"
    index = f"http://127.0.0.1:{free_port()}/"  # closed: only vendored packages can load
    assert run_build("--out", str(site), "--pyodide-dist", str(dist), "--package-index", index).returncode == 0
    plugin = """<config lang="json">{"name": "Needs Sample", "type": "web-python", "version": "0.1.0",
  "api_version": "0.1.8", "requirements": ["pyjoy-sample"]}</config>
<script lang="python">
from imjoy import api
import pyjoy_sample

class Plugin:
    def answer(self):
        return pyjoy_sample.ANSWER

api.export(Plugin())
</script>"""
    with served(site) as url:
        page.goto(url)
        page.evaluate("pyjoy.ready")
        assert load(page, plugin) == {"ok": True}
        assert page.evaluate("pyjoy.getPlugin('Needs Sample').then(p => p.answer())") == 42
        # A requirement that cannot be had is an error naming it; the host goes on.
        missing = load(page, plugin.replace('"Needs Sample"', '"Needs Six"').replace('"pyjoy-sample"', '"six"'))
        assert missing["name"] == "PluginError" and "six" in missing["error"]
        assert page.evaluate("pyjoy.getPlugin('Needs Sample').then(p => p.answer())") == 42


@pytest.mark.parametrize("check", ["services", "settings", "attachment", "runAndCall", "codec", "windows", "events"])
def test_imjoy_api_as_imjoy_plugins_use_it(app: Page, check: str) -> None:
    for name in ("tour_helper.imjoy.html", "tour_window.imjoy.html", "api_tour.imjoy.html"):
        assert load(app, source(name)) == {"ok": True}, name
    outcome = app.evaluate(f"pyjoy.getPlugin('API Tour').then(p => p.{check}()).catch(e => e.message)")
    assert outcome is True, outcome


def test_plugins_start_offline(profile_context, base_url: str) -> None:
    from conftest import open_offline

    page = open_offline(profile_context, base_url)
    for name in ("echo_python.imjoy.html", "echo_worker.imjoy.html"):
        assert load(page, source(name)) == {"ok": True}, name
    assert page.evaluate("pyjoy.getPlugin('Echo Worker').then(p => p.callPython([40, 2]))") == 42


def test_messages_progress_files_and_downloads(app: Page, tmp_path: Path) -> None:
    app.evaluate("pyjoy.api.showMessage('segmentation done')")
    expect(app.locator(".toast", has_text="segmentation done")).to_be_visible()
    app.evaluate("pyjoy.api.showProgress(40)")
    expect(app.locator("#progress")).to_have_attribute("aria-valuenow", "40")
    app.evaluate("pyjoy.api.showStatus('counting cells')")
    expect(app.locator("#status-line")).to_have_text("PyJoy: counting cells")
    # exportFile saves a download with the plugin's content and name.
    with app.expect_download() as download:
        app.evaluate("pyjoy.api.exportFile(new Blob(['a,b\\n1,2\\n']), 'table.csv')")
    saved = tmp_path / "table.csv"
    download.value.save_as(saved)
    assert saved.read_text() == "a,b\n1,2\n"
    # showFileDialog hands the chosen file to the caller.
    picked = tmp_path / "cells.txt"
    picked.write_text("42 cells")
    with app.expect_file_chooser() as chooser:
        app.evaluate("() => { window.chosen = pyjoy.api.showFileDialog().then(f => f.text()); }")
    chooser.value.set_files(str(picked))
    assert app.evaluate("window.chosen") == "42 cells"
