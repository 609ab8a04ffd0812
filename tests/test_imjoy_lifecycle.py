"""ImJoy plugins' lifecycle in real Chromium, with plugins written in ImJoy's format: a
window plugin's close handlers run before its frame goes (closed by its button, by
win.close(), by api.close() or from its menu), bounded for a hostile one."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

PLUGINS = Path(__file__).resolve().parent / "plugins"
HOSTILE = PLUGINS / "hostile"


def plugin(name: str, kind: str, body: str, config: dict | None = None, window: str = "") -> str:
    """An ImJoy plugin file: a <config>, a <window> for window plugins, one script."""
    meta = {"name": name, "type": kind, "version": "0.1.0", "api_version": "0.1.8", **(config or {})}
    lang = "python" if kind == "web-python" else "javascript"
    block = f"<window>\n{window}\n</window>\n" if window else ""
    return f'<config lang="json">\n{json.dumps(meta)}\n</config>\n{block}<script lang="{lang}">\n{body}\n</script>\n'


@pytest.fixture
def app(page: Page, base_url: str) -> Page:
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{base_url}?w=lifecycle")
    page.wait_for_function("window.pyjoy && pyjoy.timings.workbenchReady", timeout=30_000)
    return page


def load(page: Page, text: str) -> None:
    outcome = page.evaluate("(text) => pyjoy.loadPlugin(text).then(() => 'ok', (e) => e.message)", text)
    assert outcome == "ok", outcome


def call(page: Page, name: str, fn: str, *args):
    return page.evaluate("([name, fn, args]) => pyjoy.getPlugin(name).then((p) => p[fn](...args))", [name, fn, list(args)])


def wait_for(page: Page, read, done, timeout_s: float = 10.0):
    """Reads until done(what it read) holds; returns the last reading."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if done(value) or time.monotonic() > deadline:
            return value
        page.wait_for_timeout(100)


# -- close handlers of window plugins ----------------------------------------------------

# What the window plugin's close handlers tell: a plugin of the page's, called back from
# inside the closing window's frame (an RPC round trip, so the frame must still be there).
RECORDER = plugin("Close Recorder", "web-worker", """
const heard = [];
api.export({ setup() {}, heard(what) { heard.push(what); }, list() { return heard; } });
""")

CLOSING_WINDOW = plugin("Closing Window", "window", """
class ImJoyPlugin {
  async setup() {
    api.on("close", async () => {
      const recorder = await api.getPlugin("Close Recorder");
      await recorder.heard("on(close)");
    });
    api.onClose(async () => {
      const recorder = await api.getPlugin("Close Recorder");
      await recorder.heard("onClose");
    });
  }
  async run(ctx) {}
  async closeMyself() { await api.close(); }
}
api.export(new ImJoyPlugin());
""", window='<p id="closing">closing window</p>')

WINDOW = ".plugin-window:has(h2:text-is('Closing Window'))"


def heard(page: Page) -> list[str]:
    return sorted(wait_for(page, lambda: call(page, "Close Recorder", "list"), lambda got: len(got) >= 2))


def test_closing_a_window_plugin_by_its_button_runs_its_close_handlers_first(app: Page) -> None:
    load(app, RECORDER)
    load(app, CLOSING_WINDOW)
    window = app.locator(WINDOW)
    expect(window).to_be_visible()
    window.locator(".window-close").click()
    expect(window).to_be_hidden()  # gone for the person at once
    assert heard(app) == ["on(close)", "onClose"]
    expect(app.locator(WINDOW)).to_have_count(0)  # and its element and frame after
    assert "Closing Window" not in [p["name"] for p in app.evaluate("pyjoy.plugins()")]


def test_stopping_an_installed_window_plugin_from_its_menu_runs_its_close_handlers(app: Page) -> None:
    load(app, RECORDER)
    assert app.evaluate("(text) => pyjoy.installPlugin(text).then(() => 'ok', (e) => e.message)", CLOSING_WINDOW) == "ok"
    expect(app.locator(WINDOW)).to_be_visible()
    app.locator(".plugin-item[data-name='Closing Window']").get_by_role("button", name="Stop").click()
    assert heard(app) == ["on(close)", "onClose"]
    expect(app.locator(WINDOW)).to_have_count(0)


def test_a_window_closing_itself_with_api_close_runs_its_close_handlers(app: Page) -> None:
    load(app, RECORDER)
    load(app, CLOSING_WINDOW)
    expect(app.locator(WINDOW)).to_be_visible()
    app.evaluate("pyjoy.getPlugin('Closing Window').then((p) => { p.closeMyself(); })")  # its answer never comes: it is gone
    assert heard(app) == ["on(close)", "onClose"]
    expect(app.locator(WINDOW)).to_have_count(0)


def test_win_close_resolves_after_the_windows_close_handlers_ran(app: Page) -> None:
    load(app, RECORDER)
    load(app, CLOSING_WINDOW)
    load(app, plugin("Window Maker", "web-worker", """
api.export({
  setup() {},
  async openAndClose() {
    const win = await api.createWindow({type: "Closing Window", name: "Made Window"});
    await win.close();
    const recorder = await api.getPlugin("Close Recorder");
    return await recorder.list();  // ImJoy's close() resolves once the handlers had their time
  },
});
"""))
    assert sorted(call(app, "Window Maker", "openAndClose")) == ["on(close)", "onClose"]
    expect(app.locator(".plugin-window:has(h2:text-is('Made Window'))")).to_have_count(0)


@pytest.mark.parametrize("how", ["button", "terminatePlugin"])
def test_a_close_handler_cannot_keep_its_window_or_frame(app: Page, how: str) -> None:
    """Hostile: the window plugin's close handler never returns."""
    lines: list[str] = []
    app.on("console", lambda message: lines.append(message.text))
    load(app, (HOSTILE / "lifecycle_window_close_forever.imjoy.html").read_text())
    window = app.locator(".plugin-window:has(h2:text-is('Hostile Window Closer'))")
    expect(window).to_be_visible()
    if how == "button":
        window.locator(".window-close").click()
    else:
        assert app.evaluate("pyjoy.terminatePlugin('Hostile Window Closer')") is True
    expect(window).to_be_hidden()
    expect(app.locator(".plugin-window:has(h2:text-is('Hostile Window Closer'))")).to_have_count(0, timeout=2500)  # the grace is 1 s
    alive = [line for line in lines if "window still alive" in line]
    # It ticks every 50 ms: its frame lived through (most of) the grace, then went.
    assert len(alive) >= 5, f"the close handler did not run on in its frame: {alive}"
    app.wait_for_timeout(1000)
    assert [line for line in lines if "window still alive" in line] == alive, "the frame outlived its grace"
    assert app.evaluate("document.querySelectorAll('#windows iframe').length") == 0
    assert app.evaluate("Promise.race([pyjoy.runPython('1+1'), new Promise((r) => setTimeout(() => r('stuck'), 20000))])") == 2
