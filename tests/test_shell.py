"""The app shell in real Chromium: isolation, Python in a worker, errors, phone layout."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect


def test_page_is_cross_origin_isolated(page: Page, base_url: str) -> None:
    page.goto(base_url)
    assert page.evaluate("crossOriginIsolated") is True
    assert page.evaluate("typeof SharedArrayBuffer") == "function"


def test_python_runs_in_a_worker_and_returns_values(page: Page, base_url: str) -> None:
    page.goto(base_url)
    ready = page.evaluate("pyjoy.ready")
    assert ready["python"].startswith("3.14")
    assert page.evaluate("pyjoy.runPython('sum(range(10))')") == 45
    assert page.evaluate("""pyjoy.runPython('{"a": [1, 2.5, None], "b": "x"}')""") == {"a": [1, 2.5, None], "b": "x"}
    # Top-level await works, and Python sees it runs in a worker, not on the page's thread.
    assert page.evaluate("""pyjoy.runPython('import asyncio, js\\nawait asyncio.sleep(0)\\njs.self.constructor.name + ":" + str(hasattr(js, "document"))')""") == "DedicatedWorkerGlobalScope:False"
    assert page.evaluate("typeof loadPyodide") == "undefined"
    expect(page.locator("#status-line")).to_have_text(f"Python {ready['python'][:4]} ready in {ready['ms']} ms")


def test_python_state_persists_between_calls(page: Page, base_url: str) -> None:
    page.goto(base_url)
    page.evaluate("pyjoy.runPython('counter = 41')")
    assert page.evaluate("pyjoy.runPython('counter + 1')") == 42


def test_a_python_exception_carries_its_type_and_traceback(page: Page, base_url: str) -> None:
    page.goto(base_url)
    error = page.evaluate(
        """pyjoy.runPython('def f():\\n    return 1 / 0\\nf()').then(
             () => null, e => ({name: e.name, type: e.pythonType, message: e.message, traceback: e.traceback}))"""
    )
    assert error["name"] == "PythonError"
    assert error["type"] == "ZeroDivisionError"
    assert error["message"] == "ZeroDivisionError: division by zero"
    assert 'line 2, in f' in error["traceback"]
    assert "_pyodide" not in error["traceback"]  # Pyodide's runner frames are dropped
    # The worker goes on after an error.
    assert page.evaluate("pyjoy.runPython('2 * 21')") == 42


def test_micropip_loads_from_the_vendored_wheel(page: Page, base_url: str) -> None:
    # Every request of the page and its workers, watched from before the page loads.
    requests = []
    page.context.on("request", lambda r: requests.append(r.url))
    page.goto(base_url)
    assert page.evaluate("pyjoy.runPython('import micropip; micropip.__version__')") == "0.11.1"
    page.evaluate("pyjoy.loadPackage('micropip')")
    assert base_url + "pyodide/packages/micropip-0.11.1-py3-none-any.whl" in requests
    # Nothing went anywhere but PyJoy's own server (the package index is a CDN by default).
    assert all(url.startswith((base_url, "blob:", "data:")) for url in requests), [u for u in requests if not u.startswith(base_url)]


def test_the_shell_is_usable_while_python_loads(page: Page, base_url: str) -> None:
    # Hold the snapshot download back, so Python stays loading while the shell is used.
    held = []
    page.route("**/assets/python-*.bin", lambda route: held.append(route))
    page.goto(base_url)
    expect(page.locator("h1")).to_have_text("PyJoy")
    page.wait_for_function("pyjoy.timings.shellInteractive > 0")
    expect(page.locator("#runtime-chip")).to_have_text("Python loading")
    expect(page.locator("#status-line")).to_contain_text("Python")
    # Typing and pressing Run work before Python is ready; the result comes once it is.
    page.fill("#console-input", "6 * 7")
    page.click("#console-run")
    expect(page.locator(".console-input")).to_have_text("6 * 7")
    assert not page.evaluate("document.querySelector('.console-value')")
    for route in held:
        route.continue_()
    page.unroute("**/assets/python-*.bin")
    expect(page.locator(".console-value")).to_have_text("42", timeout=60_000)
    expect(page.locator("#runtime-chip")).to_have_text("Python 3.14")


def test_console_shows_values_output_and_errors(page: Page, base_url: str) -> None:
    page.goto(base_url)
    page.evaluate("pyjoy.ready")
    page.fill("#console-input", "print('hello from python')\n'done'")
    page.press("#console-input", "Control+Enter")
    expect(page.locator(".console-stdout")).to_have_text("hello from python")
    expect(page.locator(".console-value")).to_have_text("done")
    page.fill("#console-input", "import no_such_module")
    page.click("#console-run")
    expect(page.locator(".console-error")).to_contain_text("ModuleNotFoundError")


@pytest.mark.parametrize("device", ["Pixel 7", "iPhone 13"])
def test_phone_layout(browser: Browser, playwright, base_url: str, device: str) -> None:
    profile = {**playwright.devices[device]}
    profile.pop("default_browser_type", None)
    context = browser.new_context(**{**profile, "viewport": {"width": 390, "height": 844}})
    page = context.new_page()
    page.goto(base_url)
    page.evaluate("pyjoy.ready")
    # Nothing wider than the screen (mobile Chromium would zoom out), and a thumb-sized Run.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.evaluate("innerWidth") == 390
    page.tap('.tabbar [data-view="console"]')  # one view at a time on a phone
    run_box = page.locator("#console-run").bounding_box()
    assert run_box["height"] >= 44 and run_box["x"] + run_box["width"] <= 390
    status = page.locator(".statusbar").bounding_box()
    assert status["y"] + status["height"] <= 844
    page.fill("#console-input", "'tapped'")
    page.tap("#console-run")
    expect(page.locator(".console-value")).to_have_text("tapped")
    context.close()


PYTHON_STATE = """
import os, sys, json
json.dumps({
    "path": sys.path, "cwd": os.getcwd(), "env": dict(os.environ), "platform": sys.platform,
    "executable": sys.executable, "argv": sys.argv, "prefix": sys.prefix,
    "stdlib_zip": os.path.exists(sys.path[1] if len(sys.path) > 1 else ""),
})
"""


def python_state(page: Page, base_url: str) -> tuple[str, dict]:
    page.goto(base_url)
    via = page.evaluate("pyjoy.ready")["via"]
    return via, page.evaluate(f"pyjoy.runPython({PYTHON_STATE!r}).then(JSON.parse)")


def test_a_snapshot_start_is_the_same_python_as_a_cold_start(browser: Browser, base_url: str) -> None:
    # The snapshot is made by Pyodide on Node at build time; what it restores in the browser
    # must not differ from Python started from scratch there.
    warm = browser.new_context()
    via, from_snapshot = python_state(warm.new_page(), base_url)
    assert via == "snapshot"
    cold = browser.new_context()
    cold.route("**/assets/python-*.bin", lambda route: route.abort())
    via, from_scratch = python_state(cold.new_page(), base_url)
    assert via == "cold"
    assert from_snapshot == from_scratch
    warm.close()
    cold.close()
