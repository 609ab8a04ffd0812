"""Issue 10's compatibility test: a set of plugins in ImJoy's format, written for the tests
(no PyJoy-only imports), loaded together into one page, each checked for what it shows and
returns: dependencies installed and started first (plugins/imjoy_deps/), each built-in
window type (plugins/live/imjoy_windows.imjoy.html), an op without `run`, a form dialog and
a markdown window (plugins/imjoy_set/lab.imjoy.html), and a Python plugin using the global
`api` (plugins/live/imjoy_global_api.imjoy.html). The files' own tests
(test_imjoy_frame.py, test_imjoy_windows.py, test_imjoy_api.py, test_imjoy_python.py)
check each in depth; this checks that they work side by side."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from conftest import repository_server, user_plugins
from test_imjoy_windows import frame_where

PLUGINS = Path(__file__).parent / "plugins"


@pytest.fixture(scope="module")
def deps_url(tmp_path_factory) -> Iterator[str]:
    """plugins/imjoy_deps/ on its own origin, {{REPO}} in its files replaced by that origin's URL."""
    folder = tmp_path_factory.mktemp("imjoy_set_deps")
    with repository_server(folder) as url:
        for source in (PLUGINS / "imjoy_deps").iterdir():
            (folder / source.name).write_text(source.read_text().replace("{{REPO}}", url))
        yield url


def call(page: Page, name: str, method: str, *args):
    return page.evaluate("async ([name, method, args]) => (await pyjoy.getPlugin(name))[method](...args)", [name, method, list(args)])


def load(page: Page, path: str) -> None:
    outcome = page.evaluate("(text) => pyjoy.loadPlugin(text).then(() => 'ok', (e) => e.message)", (PLUGINS / path).read_text())
    assert outcome == "ok", f"{path}: {outcome}"


def test_a_set_of_imjoy_plugins_loaded_together_each_shows_and_returns_what_imjoy_documents(
        page: Page, base_url: str, deps_url: str) -> None:
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(f"{base_url}?w=compat-set")
    page.wait_for_function("window.pyjoy && pyjoy.timings.workbenchReady", timeout=30_000)

    # Loaded one after another, kept side by side.
    installed = page.evaluate("(url) => pyjoy.installPlugin(url).then(() => 'ok', (e) => e.message)", deps_url + "dep_user.imjoy.html")
    assert installed == "ok", installed
    load(page, "live/imjoy_windows.imjoy.html")
    lab = page.evaluate("(text) => pyjoy.installPlugin(text).then(() => 'ok', (e) => e.message)", (PLUGINS / "imjoy_set/lab.imjoy.html").read_text())
    assert lab == "ok", lab
    load(page, "live/imjoy_global_api.imjoy.html")

    # Dependencies: installed with the plugin and running; the plugin's window shows.
    assert {"Dep Base", "Dep Second", "Dep User", "Compat Lab"} <= {p["name"] for p in user_plugins(page)}
    assert {p["name"]: p["state"] for p in page.evaluate("pyjoy.plugins()")}["Dep Base"] == "running"
    expect(page.locator(".plugin-window h2", has_text="Dep User")).to_be_visible()
    assert call(page, "Dep User", "whoami") == "Dep User"

    # Each built-in window type, and a window plugin from source.
    windows = "ImJoy Windows Test"
    assert call(page, windows, "showGrey") is True
    assert call(page, windows, "showStack") is True
    assert call(page, windows, "showOthers", f"{base_url.rstrip('/')}/no-such-page.html") is True
    assert call(page, windows, "showFromSource") == "LOUD"
    for shown in ("canvas.image", ".pj-compare canvas.second", ".panel-text", "table.pj-generic", "li.file",
                  "ul.urls", "iframe.pj-url", ".inline"):
        frame_where(page, f"document.querySelector({shown!r})")
    assert "Panel text" in frame_where(page, "document.querySelector('.panel-text')").inner_text(".panel-text")

    # An op registered without run runs the plugin's run with ctx.config.type its name.
    threshold = page.locator(".op-form", has_text="Threshold")
    expect(threshold.get_by_label("Level")).to_have_value("5")
    threshold.get_by_label("Level").fill("8")
    threshold.get_by_role("button", name="Run").click()
    expect(page.locator(".toast").filter(has_text="Threshold: ran Threshold")).to_be_visible()
    assert call(page, "Compat Lab", "seen") == [{"level": 8, "type": "Threshold"}]

    # A form dialog from a ui string answers its values.
    page.evaluate("() => { window.answer = 'pending'; pyjoy.getPlugin('Compat Lab').then((p) => p.ask()).then((v) => { window.answer = v; }, (e) => { window.answer = 'error: ' + e.message; }); }")
    dialog = page.locator("dialog.dialog", has_text="Lab settings")
    expect(dialog.get_by_label("Sample")).to_have_value("cells")
    dialog.get_by_label("Sample").fill("nuclei")
    dialog.get_by_role("button", name="OK").click()
    page.wait_for_function("window.answer !== 'pending'")
    assert page.evaluate("window.answer") == {"sample": "nuclei"}

    # A markdown window, rendered.
    assert call(page, "Compat Lab", "notes") == "function"
    notes = frame_where(page, "[...document.querySelectorAll('h1')].some((h) => h.textContent === 'Lab notes')")
    assert notes.inner_text("em") == "all plugins loaded"

    # The Python plugin: the global api, imjoy-rpc's then, print() in Messages, a typed error.
    echoed, failed, same, awaited = call(page, "Global API", "then_style")
    assert (echoed, same, awaited) == ("green", True, "green")
    assert "No Such Plugin" in failed
    expect(page.locator("#message-log li", has_text="Global API: hello from print()")).to_have_count(1)
    error = page.evaluate("pyjoy.getPlugin('Global API').then((p) => p.fail()).then(() => 'no error', (e) => e.message)")
    assert error.startswith("ValueError: bad value"), error

    # All of them still there, none crashed.
    states = {p["name"]: p["state"] for p in page.evaluate("pyjoy.plugins()")}
    assert all(state != "crashed" for state in states.values()), states
