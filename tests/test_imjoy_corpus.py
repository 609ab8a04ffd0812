"""Public ImJoy plugins (bench/imjoy_corpus/) and the gaps the compatibility measure
(bench/imjoy_compat.py) found, in real Chromium.

- The corpus plugins that passed the measure still load and run, offline, unmodified, the
  way the measure runs them (its run_one: the workbench's install, then run with ImJoy's
  default context, dialogs answered OK).
- A `passive` plugin (the docs runner, docsify-imjoy, marks code without `api.export(`
  passive) need not export: its code runs and it loads (imjoy-core jailedPlugin.js gives it
  an API with an empty setup); without `passive` a plugin that does not export is an error.
- `api.getPlugin(URL)` loads the plugin at that URL, as imjoy-core's getPlugin does.
- The native-python corpus plugins that passed the measure still run on a real `pyjoy
  engine` (uv offline, no index, an empty cache), through the same run_one; and a native
  plugin whose requirements the engine's Python satisfies already starts offline (uv would
  fetch them again; pip, which ImJoy's engine used, would not).
- A native plugin gets what ImJoy's native runtime gave it itself: `api.WORK_DIR` and
  `api.utils.kill(pid)` (beside the host's utils).
"""

from __future__ import annotations

import json
import time
import sys
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from conftest import open_offline
from pyjoy.devtools import engine_running

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from imjoy_compat import CORPUS, connect_engine, run_one  # noqa: E402  (the measure's own way to run a plugin)

RESULTS = ROOT / "bench" / "results" / "imjoy_compat.json"


def passing_corpus_plugins(kind: str = "offline") -> list[dict]:
    """The offline-runnable corpus plugins (in the browser: "offline"; native-python on the
    engine: "engine") the last measure found to pass."""
    rows = json.loads(RESULTS.read_text())["plugins"]
    return [row for row in rows if row["class"] == kind and row.get("result") == "pass"]


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


# -- native-python plugins on the engine ---------------------------------------------------

@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, base_url: str):
    """A real `pyjoy engine` for the app's origin that cannot install from the network."""
    workdir = tmp_path_factory.mktemp("corpus-engine")
    env = {"UV_OFFLINE": "1", "UV_NO_INDEX": "1", "UV_CACHE_DIR": str(workdir / "uv-cache")}
    with engine_running(workdir / "work", "--app", base_url, env=env) as (url, _):
        yield url


def connected_page(page: Page, base_url: str, engine: str) -> Page:
    page.goto(base_url)
    page.wait_for_function("window.pyjoy && pyjoy.timings.workbenchReady", timeout=30_000)
    page.on("dialog", lambda dialog: dialog.accept(dialog.default_value))
    assert connect_engine(page.context, page, engine)["state"] == "connected"
    return page


def test_the_native_corpus_plugins_that_passed_still_run_on_the_engine(page: Page, base_url: str, engine: str) -> None:
    plugins = passing_corpus_plugins("engine")
    assert len(plugins) >= 2, "the measure's results file lists fewer passing native-python plugins than it did"
    connected_page(page, base_url, engine)
    requests: list[tuple[str, str]] = []
    failures = []
    for row in plugins:
        outcome = run_one(page, (CORPUS / row["file"]).read_text(), row["name"], requests, settle_s=0.2)
        if not outcome["ok"] or outcome["messages"]:
            failures.append(f"{row['file']}: {outcome['error'] or outcome['messages']}")
    assert not failures, "\n".join(failures)
    # What their files say they do, seen in Messages: ImJoy's template logs in setup; the
    # tutorial shows the answer to its prompt (its default, as OK answers it).
    log = page.locator("#message-log li")
    expected = {"imjoy-templates/nativePythonTemplate.imjoy.html": "Untitled Plugin: initialized",
                "imjoy-docs/i2k_tutorial-19.imjoy.html": "Your have chose Pikachu as your Pokémon."}
    for file, text in expected.items():
        if any(row["file"] == file for row in plugins):
            assert log.filter(has_text=text).count() >= 1, f"{file} ran without showing {text!r}"


NEEDS_WHAT_THE_ENGINE_HAS = """<config lang="json">
{"name": "Engine Packages", "type": "native-python", "version": "0.1.0", "api_version": "0.1.8",
 "requirements": ["numpy", "pip: packaging"]}
</config>
<script lang="python">
from imjoy import api
import sys
import numpy

class ImJoyPlugin:
    def setup(self):
        pass

    def where(self):
        return {"prefix": sys.prefix, "numpy": numpy.__version__, "sum": int(numpy.arange(10).sum())}

api.export(ImJoyPlugin())
</script>
"""


def test_requirements_the_engines_python_satisfies_are_not_fetched_again(page: Page, base_url: str, engine: str) -> None:
    import numpy  # the engine runs on this Python: its numpy is the one the plugin must get

    connected_page(page, base_url, engine)
    got = page.evaluate("(text) => pyjoy.loadPlugin(text).then((p) => p.where(), (e) => 'error: ' + e.message)",
                        NEEDS_WHAT_THE_ENGINE_HAS)
    assert isinstance(got, dict), got  # with uv offline and an empty cache, anything fetched fails
    assert "/envs/venv-" in got["prefix"] and got["numpy"] == numpy.__version__ and got["sum"] == 45
    page.locator("#message-log li", has_text="already in the engine's Python: numpy, packaging").wait_for(
        state="attached", timeout=5_000)
    # A version the engine's Python does not have still goes to uv, and fails here saying which.
    older = NEEDS_WHAT_THE_ENGINE_HAS.replace('"numpy", "pip: packaging"', '"numpy<1"').replace("Engine Packages", "Old Numpy")
    error = page.evaluate("(text) => pyjoy.loadPlugin(text).then(() => 'loaded', (e) => e.message)", older)
    assert "Old Numpy failed to start" in error and "numpy<1" in error, error


def test_a_docs_block_on_the_engine_drives_the_window_plugin_of_the_block_before_it(page: Page, base_url: str,
                                                                                     engine: str) -> None:
    # ImJoy's docs run i2k_tutorial-24 after i2k_tutorial-23 has defined the window plugin
    # "Image Viewer" (alone it fails: bench NOTES). Together: the native plugin opens that
    # window with its own function as data, and the window's button calls it on the engine.
    connected_page(page, base_url, engine)
    docs = CORPUS / "imjoy-docs"
    assert page.evaluate("(text) => pyjoy.loadPlugin(text).then(() => 'ok', (e) => e.message)",
                         (docs / "i2k_tutorial-23.imjoy.html").read_text()) == "ok"
    ran = page.evaluate("(text) => pyjoy.loadPlugin(text).then((p) => p.run({config: {}, data: {}})).then(() => 'ran', (e) => e.message)",
                        (docs / "i2k_tutorial-24.imjoy.html").read_text())
    assert ran == "ran", ran
    frames = [frame for frame in page.frames if frame.locator("#process").count()]
    assert len(frames) == 2, len(frames)  # the loaded window plugin's own frame, and the window createWindow opened
    button = frames[-1].locator("#process")
    expect(button).to_be_enabled(timeout=10_000)  # its run enabled it: it was given the function
    button.click()
    alert = page.locator("dialog[open]", has_text="I am on it!")  # the native plugin's api.alert
    expect(alert).to_be_visible(timeout=10_000)
    alert.locator(".dialog-buttons button").last.click()


LOCAL_API = """<config lang="json">
{"name": "Local API", "type": "native-python", "version": "0.1.0", "api_version": "0.1.8"}
</config>
<script lang="python">
from imjoy import api
import os
import subprocess

class ImJoyPlugin:
    def setup(self):
        pass

    def work_dir(self):
        return {"WORK_DIR": api.WORK_DIR, "cwd": os.getcwd(), "utils": sorted(api.utils)}

    def start_tree(self):
        # a shell with a child of its own, as liveStream starts ffmpeg and a relay
        self.shell = subprocess.Popen(["sh", "-c", "sleep 300 & echo $!; wait"], stdout=subprocess.PIPE, text=True)
        return {"shell": self.shell.pid, "child": int(self.shell.stdout.readline())}

    def kill_tree(self):
        api.utils.kill(self.shell.pid)
        return self.shell.wait(timeout=10)

api.export(ImJoyPlugin())
</script>
"""


def ended(pid: int) -> bool:
    """Gone, or a zombie waiting for its parent (it runs no more)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_a_native_plugin_gets_imjoys_work_dir_and_utils_kill(page: Page, base_url: str, engine: str) -> None:
    # ImJoy's native-python runtime set these itself (imjoy-engine python_worker.py):
    # liveStream in the corpus ends the processes it started with api.utils.kill(pid).
    connected_page(page, base_url, engine)
    plugin = "pyjoy.loadPlugin(text)"
    got = page.evaluate(f"(text) => {plugin}.then((p) => p.work_dir())", LOCAL_API)
    assert got["WORK_DIR"] == got["cwd"] and "/plugins/Local_API-" in got["cwd"]
    assert {"kill", "openUrl", "sleep"} <= set(got["utils"])  # ImJoy's, beside the host's utils
    pids = page.evaluate("pyjoy.getPlugin('Local API').then((p) => p.start_tree())")
    assert not ended(pids["shell"]) and not ended(pids["child"])
    status = page.evaluate("pyjoy.getPlugin('Local API').then((p) => p.kill_tree())")
    assert status == -9  # the shell, by SIGKILL
    for _ in range(50):
        if ended(pids["child"]):
            break
        time.sleep(0.1)
    assert ended(pids["child"]), "the shell's own child outlived api.utils.kill"
