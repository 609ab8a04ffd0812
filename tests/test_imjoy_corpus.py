"""Public ImJoy plugins (bench/imjoy_corpus/) and the gaps the compatibility measure
(bench/imjoy_compat.py) found, in real Chromium.

- The corpus plugins that passed the measure still load and run, offline, unmodified, the
  way the measure runs them (its run_one: the workbench's install, then run with ImJoy's
  default context, dialogs answered OK).
- A `passive` plugin (the docs runner, docsify-imjoy, marks code without `api.export(`
  passive) need not export: its code runs and it loads (imjoy-core jailedPlugin.js gives it
  an API with an empty setup); without `passive` a plugin that does not export is an error.
- `api.getPlugin(URL)` loads the plugin at that URL, as imjoy-core's getPlugin does.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from playwright.sync_api import Page

from conftest import open_offline

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from imjoy_compat import CORPUS, run_one  # noqa: E402  (the measure's own way to run a plugin)

RESULTS = ROOT / "bench" / "results" / "imjoy_compat.json"


def passing_corpus_plugins() -> list[dict]:
    """The offline-runnable corpus plugins the last measure found to pass."""
    rows = json.loads(RESULTS.read_text())["plugins"]
    return [row for row in rows if row["class"] == "offline" and row.get("result") == "pass"]


def test_the_corpus_plugins_that_passed_still_load_and_run_offline(profile_context, base_url: str) -> None:
    plugins = passing_corpus_plugins()
    assert len(plugins) >= 20, "the measure's results file lists fewer passing plugins than it did"
    requests: list[tuple[str, str]] = []
    profile_context.on("request", lambda request: requests.append((request.url, request.resource_type))
                       if not request.url.startswith(("http://127.0.0.1", "data:", "blob:")) else None)
    page = open_offline(profile_context, base_url)
    page.on("dialog", lambda dialog: dialog.accept(dialog.default_value))
    failures = []
    for row in plugins:
        outcome = run_one(page, (CORPUS / row["file"]).read_text(), row["name"], requests, settle_s=0.2)
        if not outcome["ok"] or outcome["messages"]:
            failures.append(f"{row['file']}: {outcome['error'] or outcome['messages']}")
    assert not failures, "\n".join(failures)


# -- passive plugins -----------------------------------------------------------------------

def docs_block(kind: str, code: str, **marker) -> str:
    """A plugin as ImJoy's docs runner makes one from a code block (bench/imjoy_corpus/extract.py)."""
    lang = "python" if kind == "web-python" else "javascript"
    config = {"type": kind, **marker, "name": f"Passive {kind}", "api_version": "0.1.8", "version": "0.1.0"}
    return f'<config lang="json">\n{json.dumps(config, indent=1)}\n</config>\n<script lang="{lang}">\n{code}</script>'


PASSIVE_CODE = {
    "web-worker": 'api.showMessage("passive code ran in a web-worker")',
    "window": 'api.showMessage("passive code ran in a window")',
    "web-python": 'await api.showMessage("passive code ran in a web-python")',
}


@pytest.mark.parametrize("kind", ["web-worker", "window", "web-python"])
def test_a_passive_plugin_runs_its_code_without_exporting(page: Page, base_url: str, kind: str) -> None:
    page.goto(base_url)
    page.wait_for_function("window.pyjoy && pyjoy.timings.workbenchReady", timeout=30_000)
    text = docs_block(kind, PASSIVE_CODE[kind], passive=True)
    loaded = page.evaluate("(text) => pyjoy.loadPlugin(text).then((api) => Object.keys(api).sort(), (e) => 'error: ' + e.message)", text)
    assert loaded == ["passive", "setup"], loaded  # imjoy-core's API for a passive plugin
    page.locator("#message-log li", has_text=f"passive code ran in a {kind}").wait_for(state="attached", timeout=10_000)

    # Without `passive`, not exporting is still an error that says what is missing.
    eager = docs_block(kind, PASSIVE_CODE[kind]).replace(f"Passive {kind}", f"Eager {kind}")
    error = page.evaluate("(text) => pyjoy.loadPlugin(text).then(() => 'loaded', (e) => e.message)", eager)
    assert "did not call api.export" in error, error


# -- getPlugin(URL) ------------------------------------------------------------------------

GETTER = """<config lang="json">
{"name": "Getter", "type": "web-worker", "version": "0.1.0", "api_version": "0.1.8"}
</config>
<script lang="javascript">
class ImJoyPlugin {
  async setup() {}
  async greetVia(url) {
    const hello = await api.getPlugin(url);
    return await hello.greet("corpus");
  }
}
api.export(new ImJoyPlugin());
</script>
"""


def test_get_plugin_with_a_url_loads_the_plugin_there(page: Page, base_url: str, repository_url: str) -> None:
    page.goto(base_url)
    page.wait_for_function("window.pyjoy && pyjoy.timings.workbenchReady", timeout=30_000)
    getter = "pyjoy.loadPlugin(text).then((p) => p.greetVia(url)).then((v) => v, (e) => 'error: ' + e.message)"
    greeting = page.evaluate(f"([text, url]) => {getter}", [GETTER, repository_url + "hello_worker.imjoy.html"])
    assert greeting == "Hello, corpus!"
