"""ImJoy's Python plugin API in real Chromium, with a plugin written as ImJoy's docs show
one (tests/plugins/live/imjoy_global_api.imjoy.html: no import of `api`, no PyJoy-only
names): the global `api`, `.then` on a call's result, a Python exception's type in the JS
error's message, print() and stderr in Messages, and requirements that are not Python
packages kept away from micropip."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

PLUGIN = (Path(__file__).parent / "plugins" / "live" / "imjoy_global_api.imjoy.html").read_text()


@pytest.fixture
def loaded(page: Page, base_url: str) -> Page:
    page.goto(base_url)
    page.evaluate("pyjoy.ready")
    # The default build's package index holds nothing from the network: had a js: or cache:
    # requirement gone to micropip, it could not be installed and the plugin would not load.
    outcome = page.evaluate("(text) => pyjoy.loadPlugin(text).then(() => 'ok', (e) => e.message)", PLUGIN)
    assert outcome == "ok"
    return page


def test_a_plugin_uses_the_global_api_and_runs_every_script_block(loaded: Page) -> None:
    # setup() ran (api.log from the first block), and the second block's api.export worked.
    expect(loaded.locator("#message-log li", has_text="Global API: setup done")).to_have_count(1)
    assert loaded.evaluate("pyjoy.getPlugin('Global API').then((p) => typeof p.then_style)") == "function"


def test_then_on_a_remote_calls_result(loaded: Page) -> None:
    echoed, failed, same, awaited = loaded.evaluate("pyjoy.getPlugin('Global API').then((p) => p.then_style())")
    assert echoed == "green"
    # As imjoy-rpc's FuturePromise: then returns the call itself, which can still be awaited
    # (Pyodide's own futures' then would return a new one).
    assert same is True and awaited == "green"
    assert failed.startswith("PluginError: no plugin named No Such Plugin"), failed


def test_a_python_exception_names_its_type_in_the_js_message(loaded: Page) -> None:
    error = loaded.evaluate(
        "pyjoy.getPlugin('Global API').then((p) => p.fail()).catch((e) => ({name: e.name, message: e.message, "
        "type: e.remoteType, traceback: e.traceback}))"
    )
    assert error["name"] == "RemoteError" and error["type"] == "ValueError"
    assert error["message"] == "ValueError: bad value"
    raise_line = next(i for i, line in enumerate(PLUGIN.splitlines(), 1) if 'raise ValueError("bad value")' in line)
    assert f"line {raise_line}, in fail" in error["traceback"]


def test_print_and_stderr_reach_messages_under_the_plugins_name(loaded: Page) -> None:
    log = loaded.locator("#message-log li")
    expect(log.filter(has_text="Global API: hello from print()")).to_have_count(1)
    # traceback.print_exc() writes to stderr, line by line.
    expect(log.filter(has_text="Global API: ZeroDivisionError: division by zero")).to_have_count(1)
    expect(log.filter(has_text="Global API: Traceback (most recent call last)")).to_have_count(1)


def test_js_and_cache_requirements_are_skipped_with_a_line_naming_them(loaded: Page) -> None:
    log = loaded.locator("#message-log li")
    for requirement in ("js:https://cdn.jsdelivr.net/npm/not-a-python-package@1.0.0/dist/lib.min.js",
                        "cache:https://example.com/model-weights.bin"):
        expect(log.filter(has_text=f"Global API: requirement '{requirement}' skipped")).to_have_count(1)
