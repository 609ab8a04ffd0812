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
    frame.locator("button#ask").click()  # a button Python made (pyscript.web), a real click
    expect(frame.locator("#answer")).to_have_text("Echo Python says 41")  # Echo Python's add(1, 40)
    assert app.evaluate("pyjoy.getPlugin('Python Window').then(p => p.clicks())") == 1
