"""ImJoy's Python plugin API in real Chromium, with a plugin written as ImJoy's docs show
one (tests/plugins/live/imjoy_global_api.imjoy.html: no import of `api`, no PyJoy-only
names): the global `api`, `.then` on a call's result, a Python exception's type in the JS
error's message, print() and stderr in Messages; and a web-python plugin with JavaScript
(tests/plugins/live/imjoy_python_javascript.imjoy.html): js:/mjs:/cache:/css: requirements
and <script lang="javascript"> blocks run as ImJoy's web-python runtime ran them, in the
plugin's own opaque-origin worker, never through micropip."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import Page, expect

from conftest import repository_server

PLUGINS = Path(__file__).parent / "plugins"
PLUGIN = (PLUGINS / "live" / "imjoy_global_api.imjoy.html").read_text()


@pytest.fixture
def loaded(page: Page, base_url: str) -> Page:
    page.goto(base_url)
    page.evaluate("pyjoy.ready")
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


# --- JavaScript in a web-python plugin ---------------------------------------------------


@pytest.fixture(scope="module")
def requirements_url() -> Iterator[str]:
    """tests/plugins/imjoy_requirements/ on another origin of 127.0.0.1."""
    with repository_server(PLUGINS / "imjoy_requirements") as url:
        yield url


def python_with_javascript(url: str) -> str:
    return (PLUGINS / "live" / "imjoy_python_javascript.imjoy.html").read_text().replace("{{REQ}}", url)


def load(page: Page, base_url: str, text: str) -> str:
    page.goto(base_url)
    page.evaluate("pyjoy.ready")
    return page.evaluate("(text) => pyjoy.loadPlugin(text).then(() => 'ok', (e) => e.message)", text)


def test_js_requirements_and_javascript_blocks_run_where_python_reaches_them(page: Page, base_url: str, requirements_url: str) -> None:
    # The default build's package index holds nothing from the network: had a requirement
    # gone to micropip, it could not be installed and the plugin would not load.
    assert load(page, base_url, python_with_javascript(requirements_url)) == "ok"
    state = page.evaluate("pyjoy.getPlugin('Python With JavaScript').then((p) => p.state())")
    # js: ran as a classic script and mjs: as a module (import.meta exists only there);
    # cache: was fetched, never run; the javascript block ran after the requirements and
    # between the two Python blocks; Python called what it defined.
    assert state == {"classic": 1, "module": "string", "cachedRan": False, "product": 42, "blockSawRequirement": 1,
                     "seenBeforeTheBlock": False,
                     # In the plugin's own worker: an opaque origin, no page.
                     "blockOrigin": "null", "hasDocument": False}, state
    # Nothing of it reached the page.
    assert page.evaluate("[typeof window.classicLoaded, typeof window.fromBlock]") == ["undefined", "undefined"]
    log = page.locator("#message-log li")
    expect(log.filter(has_text=f"Python With JavaScript: requirement 'css:{requirements_url}style.css' skipped: "
                               "a web-python plugin runs in a worker, which has no page for a stylesheet to style")).to_have_count(1)


def test_a_js_requirement_that_cannot_load_names_itself(page: Page, base_url: str, requirements_url: str) -> None:
    text = python_with_javascript(requirements_url).replace("classic.js", "missing.js")
    message = load(page, base_url, text)
    assert f"requirement js:{requirements_url}missing.js could not be loaded" in message, message


def test_a_failing_javascript_block_names_its_line(page: Page, base_url: str, requirements_url: str) -> None:
    text = python_with_javascript(requirements_url).replace("var fromBlock", "null.boom; var fromBlock")
    line = next(i for i, each in enumerate(text.splitlines(), 1) if "null.boom" in each)
    message = load(page, base_url, text)
    assert f'the <script lang="javascript"> block at line {line - 1} failed: ' in message, message
    assert "Cannot read properties of null (reading 'boom')" in message, message


def test_a_javascript_block_cannot_reach_the_pages_storage(page: Page, base_url: str) -> None:
    # It runs in the plugin's Python worker (an opaque origin), never in the page's.
    text = (PLUGINS / "hostile" / "pyjs_reaches_for_the_page.imjoy.html").read_text()
    assert load(page, base_url, text) == "ok"
    reached = page.evaluate("pyjoy.getPlugin('Reaches For The Page').then((p) => p.reached())")
    assert reached == {"origin": "null", "parent": "undefined", "document": "undefined",
                       "indexedDB": "SecurityError", "caches": "SecurityError"}, reached
    # The page's own storage is there, and was never the plugin's to open.
    assert page.evaluate("indexedDB.databases().then((dbs) => dbs.length > 0)") is True
