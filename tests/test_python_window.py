"""Window plugins written in Python, run in their sandboxed frame with PyScript, in real
Chromium: DOM from Python, a real click, calls to and from other plugins and the page,
ImJoy's web-python-window type, tracebacks, offline, and PyJoy's own runtime and snapshot."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from conftest import open_offline

LIVE = Path(__file__).parent / "plugins" / "live"


def source(name: str) -> str:
    return (LIVE / name).read_text()


def load(page: Page, text: str):
    """Loads a plugin from its source; returns {ok: true} or {error, name, traceback}."""
    return page.evaluate(
        """async (text) => {
             try { await pyjoy.loadPlugin(text); return {ok: true}; }
             catch (e) { return {error: e.message, name: e.name, traceback: e.traceback ?? null}; }
           }""",
        text,
    )


@pytest.fixture
def app(page: Page, base_url: str) -> Page:
    page.on("console", lambda message: print("console:", message.text))
    page.goto(base_url)
    page.evaluate("pyjoy.ready")
    return page


def test_a_python_window_builds_its_dom_reads_a_click_and_calls_a_web_python_plugin(app: Page) -> None:
    assert load(app, source("echo_python.imjoy.html")) == {"ok": True}
    assert load(app, source("python_window.imjoy.html")) == {"ok": True}
    frame = app.frame_locator(".plugin-window iframe")
    expect(frame.locator("h2")).to_have_text("Python Window")  # its <window> block
    expect(frame.locator("#app")).to_contain_text("drawn by Python")  # pyscript.display
    expect(frame.locator("body > :last-child")).to_have_text("shown after the window's HTML")  # display() without a target
    expect(app.locator("#message-log li", has_text="Python Window: printed by the Python window")).to_have_count(1)
    frame.locator("button#ask").click()  # a button Python made (pyscript.web), a real click
    expect(frame.locator("#answer")).to_have_text("Echo Python says 41")  # Echo Python's add(1, 40)
    assert app.evaluate("pyjoy.getPlugin('Python Window').then(p => p.clicks())") == 1


def test_the_page_calls_what_a_python_window_exported_with_the_api_web_python_plugins_get(app: Page) -> None:
    requests: list[str] = []
    app.on("request", lambda request: requests.append(request.url))
    assert load(app, source("python_window.imjoy.html")) == {"ok": True}
    assert app.evaluate("pyjoy.getPlugin('Python Window').then(p => p.greet('Ada'))") == "Hello Ada, from Python Window"
    # setup()'s api.log reached Messages under the plugin's name, as a web-python plugin's does.
    expect(app.locator("#message-log li", has_text="Python Window: python window ready")).to_have_count(1)
    # `api` is also a global, the same object `from imjoy import api` gives.
    assert app.evaluate("pyjoy.getPlugin('Python Window').then(p => p.uses_the_global_api())") is True
    # An exception in an exported function reaches the page with Python's type and traceback.
    error = app.evaluate("pyjoy.getPlugin('Python Window').then(p => p.fail()).catch(e => [e.name, e.remoteType, e.message, e.traceback])")
    assert error[:3] == ["RemoteError", "ValueError", "ValueError: the window says no"]
    raise_line = source("python_window.imjoy.html").splitlines().index('        raise ValueError("the window says no")') + 1
    assert f'"<plugin Python Window>", line {raise_line}, in fail' in error[3]  # the plugin file's own line
    # PyJoy's own runtime: Python 3.14 from the build's memory snapshot, its files from our
    # server (the page answers the sandbox's asset requests), none from a CDN.
    runtime = app.evaluate("pyjoy.getPlugin('Python Window').then(p => p.runtime())")
    assert runtime["via"] == "snapshot" and runtime["python"].startswith("3.14")
    assert any("/pyodide/314.0.7/pyodide.asm.wasm" in url for url in requests)
    assert any("/vendor/pyscript-0.7.31/core.js" in url for url in requests)
    assert all(url.startswith(("http://127.0.0.1", "data:", "blob:")) for url in requests), requests


def test_a_web_python_window_plugin_in_imjoys_format_runs(app: Page) -> None:
    assert load(app, source("imjoy_web_python_window.imjoy.html")) == {"ok": True}
    plugins = app.evaluate("pyjoy.plugins()")
    assert {"name": "Web Python Window", "type": "web-python-window"}.items() <= plugins[-1].items()
    expect(app.locator(".plugin-window", has_text="Web Python Window")).to_have_count(1)  # a window, as ImJoy showed one
    frame = app.frame_locator(".plugin-window iframe")
    expect(frame.locator("#output")).to_have_text("waiting")
    assert app.evaluate("pyjoy.getPlugin('Web Python Window').then(p => p.run({config: {greeting: 'hi'}, data: {}}))") == "done"
    expect(frame.locator("#output")).to_have_text("ran with hi and micropip")
    expect(app.locator("#message-log li", has_text="Web Python Window: initialized")).to_have_count(1)


BROKEN = """<config lang="json">
{"name": "Broken Python Window", "type": "window", "version": "0.1.0"}
</config>
<window><p>broken</p></window>
<script lang="python">
def helper():
    return 1 / 0

helper()
</script>
"""


def test_a_python_exception_at_load_shows_with_its_traceback(app: Page) -> None:
    result = load(app, BROKEN)
    assert result["name"] == "PluginError"
    assert "ZeroDivisionError" in result["error"] and "Broken Python Window" in result["error"]
    # The traceback names the plugin file's own lines: helper() at line 9, 1 / 0 at line 7.
    assert "line 9, in <module>" in result["traceback"] and "line 7, in helper" in result["traceback"]


def test_a_python_window_runs_offline(profile_context, base_url: str) -> None:
    # After one visit (the service worker holds the build, PyScript with it), reloaded offline.
    page = open_offline(profile_context, base_url)
    assert load(page, source("echo_python.imjoy.html")) == {"ok": True}
    assert load(page, source("python_window.imjoy.html")) == {"ok": True}
    frame = page.frame_locator(".plugin-window iframe")
    frame.locator("button#ask").click()
    expect(frame.locator("#answer")).to_have_text("Echo Python says 41")
    assert page.evaluate("pyjoy.getPlugin('Python Window').then(p => p.runtime())")["via"] == "snapshot"


def test_the_python_window_template_runs_as_written(app: Page, browser, modules_url: str) -> None:
    # The editor's own template (tests/test_editor.py runs every template the same way too).
    blank = browser.new_page()
    blank.goto(modules_url + "blank.html")
    template = blank.evaluate("import('./modules/workbench/editor.js').then((m) => m.TEMPLATES['python-window'])")
    blank.close()
    app.evaluate("(text) => pyjoy.loadPlugin(text).then((p) => p.run({}))", template)
    expect(app.locator(".toast", has_text="Hello from a Python window: the squares of 1..5 add up to 55")).to_have_count(1)
    frame = app.frame_locator(".plugin-window iframe")
    expect(frame.locator("#squares li")).to_have_count(5)
    frame.locator("button#more").click()
    expect(frame.locator("#squares li")).to_have_count(6)
    expect(frame.locator("#squares li").last).to_have_text("6 squared is 36")


def test_a_python_window_cannot_reach_the_pages_storage_or_document(app: Page) -> None:
    hostile = (Path(__file__).parent / "plugins" / "hostile" / "pyscript_window_reaches_for_the_page.imjoy.html").read_text()
    assert load(app, hostile) == {"ok": True}
    reached = app.evaluate("pyjoy.getPlugin('PyScript Reaches For The Page').then(p => p.reached())")
    # The in-memory IndexedDB PyScript boots with is gone: the frame's own refuses, as every sandbox's.
    assert reached == {"origin": "null", "indexedDB": "SecurityError", "localStorage": "SecurityError",
                       "caches": "SecurityError", "parent": "SecurityError"}, reached
    assert app.locator(".plugin-window iframe").get_attribute("sandbox") == "allow-scripts allow-modals"
    # The page and its workspace are untouched, and Python answers.
    assert app.evaluate("pyjoy.runPython('1+1')") == 2


def test_a_python_window_opens_with_create_window_as_imjoy_windows_do(app: Page) -> None:
    # api.createWindow({src}) with a Python window plugin's source: an instance in a window,
    # its exported functions on the handle.
    greeting = app.evaluate(
        """async (text) => {
             const win = await pyjoy.api.createWindow({ src: text, name: "Made Window" });
             return await win.greet("Bo");
           }""",
        source("python_window.imjoy.html"),
    )
    assert greeting == "Hello Bo, from Python Window"
    expect(app.frame_locator(".plugin-window iframe").locator("button#ask")).to_have_count(1)


def test_a_python_window_whose_pyscript_cannot_be_fetched_fails_naming_it(app: Page) -> None:
    app.route("**/vendor/pyscript-*/core.js", lambda route: route.fulfill(status=404, body="gone"))
    result = load(app, source("python_window.imjoy.html"))
    assert result["name"] == "PluginError", result
    assert "PyScript could not be loaded" in result["error"] and "vendor/pyscript-0.7.31/core.js answered 404" in result["error"], result
    # The page goes on: a web-python plugin still loads.
    assert load(app, source("echo_python.imjoy.html")) == {"ok": True}
