"""ImJoy's plugin API as ImJoy documents it (imjoy-core docs/api.md), in real Chromium, with
plugins written in ImJoy's format as its docs show them: constants, reserved config keys,
settings removal, getPlugins/getPlugin/call/run/loadPlugin, close handlers, utils, the
calls that need an engine, form dialogs from `ui`, and ops without `run` with `update`.
Each call is checked in a web-worker and in a web-python plugin where ImJoy has it in both."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

HOSTILE = Path(__file__).parent / "plugins" / "hostile"
WORKSPACE = "api-lab"  # the test's choice: api.WORKSPACE must say it


def plugin(name: str, kind: str, body: str, config: dict | None = None) -> str:
    """An ImJoy plugin file: a <config> block and one script in the kind's language."""
    meta = {"name": name, "type": kind, "version": "0.3.1", "api_version": "0.1.8", **(config or {})}
    lang = "python" if kind == "web-python" else "javascript"
    return f'<config lang="json">\n{json.dumps(meta)}\n</config>\n<script lang="{lang}">\n{body}\n</script>\n'


@pytest.fixture
def app(page: Page, base_url: str) -> Page:
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{base_url}?w={WORKSPACE}")
    page.wait_for_function("window.pyjoy && pyjoy.timings.workbenchReady", timeout=30_000)
    assert page.evaluate("pyjoy.workspace()") == WORKSPACE
    return page


def install(page: Page, text: str) -> None:
    outcome = page.evaluate("(text) => pyjoy.installPlugin(text).then(() => 'ok', (e) => e.message)", text)
    assert outcome == "ok", outcome


def call(page: Page, name: str, fn: str, *args):
    return page.evaluate(
        "([name, fn, args]) => pyjoy.getPlugin(name).then((p) => p[fn](...args))",
        [name, fn, list(args)],
    )


def poll(page: Page, name: str, fn: str, done, timeout_s: float = 10.0):
    """Calls the plugin's fn until done(its answer) holds; returns that answer."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = call(page, name, fn)
        if done(answer) or time.monotonic() > deadline:
            return answer
        page.wait_for_timeout(100)


def states(page: Page) -> dict[str, str]:
    return {p["name"]: p["state"] for p in page.evaluate("pyjoy.plugins()")}


# -- constants, reserved config keys, settings removal, calls that need an engine ----------

FACTS_JS = """
class ImJoyPlugin {
  async setup() {}
  async facts() {
    const error = async (work) => { try { await work(); return null; } catch (e) { return String(e.message ?? e); } };
    await api.setConfig("sigma", 3);
    const stored = await api.getConfig("sigma");
    await api.setConfig("sigma", null);
    return {
      tag: api.TAG, workspace: api.WORKSPACE, configWorkspace: api.config.workspace, engineUrl: api.ENGINE_URL ?? null,
      name: await api.getConfig("_name"), version: await api.getConfig("_version"), tags: await api.getConfig("_tags"),
      stored, removed: await api.getConfig("sigma"),
      readOnly: await error(() => api.setConfig("_name", "Other")),
      fileManager: await error(() => api.getFileManager("http://127.0.0.1:9")),
      engine: await error(() => api.getEngine("http://127.0.0.1:9")),
    };
  }
  async keep(key, value) { await api.setConfig(key, value); }
  async read(key) { return await api.getConfig(key); }
}
api.export(new ImJoyPlugin());
"""

FACTS_PY = """
from imjoy import api


class ImJoyPlugin:
    async def setup(self):
        pass

    async def facts(self):
        async def error(work):
            try:
                await work()
            except Exception as e:
                return str(e)
            return None

        await api.setConfig("sigma", 3)
        stored = await api.getConfig("sigma")
        await api.setConfig("sigma", None)
        return {
            "tag": api.TAG, "workspace": api.WORKSPACE, "configWorkspace": api.config["workspace"],  # plain data is a dict here (see the report) "engineUrl": api.ENGINE_URL,
            "name": await api.getConfig("_name"), "version": await api.getConfig("_version"), "tags": await api.getConfig("_tags"),
            "stored": stored, "removed": await api.getConfig("sigma"),
            "readOnly": await error(lambda: api.setConfig("_name", "Other")),
            "fileManager": await error(lambda: api.getFileManager("http://127.0.0.1:9")),
            "engine": await error(lambda: api.getEngine("http://127.0.0.1:9")),
        }

    async def keep(self, key, value):
        await api.setConfig(key, value)

    async def read(self, key):
        return await api.getConfig(key)


api.export(ImJoyPlugin())
"""


@pytest.mark.parametrize("kind", ["web-worker", "web-python"])
def test_constants_config_fields_settings_removal_and_engine_calls(app: Page, kind: str) -> None:
    name = f"Facts {kind}"
    install(app, plugin(name, kind, FACTS_PY if kind == "web-python" else FACTS_JS, {"tags": ["stable", "beta"]}))
    facts = call(app, name, "facts")
    # ImJoy picks a plugin's first tag unless told otherwise; the workspace is the URL's.
    assert facts["tag"] == "stable"
    assert facts["workspace"] == WORKSPACE and facts["configWorkspace"] == WORKSPACE
    assert facts.get("engineUrl") is None  # a Python None may arrive as a missing key
    # "_" + a <config> field reads that field; it cannot be set.
    assert (facts["name"], facts["version"], facts["tags"]) == (name, "0.3.1", ["stable", "beta"])
    assert "_name" in facts["readOnly"] and "read-only" in facts["readOnly"]
    # Settings are text; a null / None value removes the key.
    assert facts["stored"] == "3" and facts.get("removed") is None
    # Calls that need an engine name themselves and say that none is connected.
    for key, call_name in (("fileManager", "getFileManager"), ("engine", "getEngine")):
        assert f"api.{call_name}" in facts[key] and "engine is not connected" in facts[key], facts[key]
    # The removal is stored: after a reload the removed key stays gone, a kept one stays.
    call(app, name, "keep", "kept", 1)
    call(app, name, "keep", "dropped", "x")
    call(app, name, "keep", "dropped", None)
    app.reload()
    app.wait_for_function("window.pyjoy && pyjoy.timings.workbenchReady", timeout=30_000)
    assert call(app, name, "read", "kept") == "1"
    assert call(app, name, "read", "dropped") is None


# -- other plugins: getPlugins, getPlugin, call, run, loadPlugin ---------------------------

HELPER = plugin("Helper", "web-worker", """
class ImJoyPlugin {
  async setup() {}
  async run(ctx) { return `ran with ${JSON.stringify(ctx.data)}`; }
  double(x) { return 2 * x; }
}
api.export(new ImJoyPlugin());
""")

LOADED_SOURCE = plugin("Loaded On The Fly", "web-worker", """
class ImJoyPlugin { async setup() {} answer() { return 7; } }
api.export(new ImJoyPlugin());
""")

CALLER_JS = """
class ImJoyPlugin {
  async setup() {}
  async viaCall() { return await api.call("Helper", "double", 21); }
  async viaGetPlugin() { const helper = await api.getPlugin({name: "Helper"}); return await helper.double(2); }
  async viaRun() { return await api.run("Helper", {data: {x: 1}}); }
  async listed() { return (await api.getPlugins()).map((p) => [p.name, p.config.version ?? null, typeof p.api?.double]); }
  async loadBySource(src) { const p = await api.loadPlugin({src}); return await p.answer(); }
  async loadByName() { const p = await api.loadPlugin("Helper"); return await p.double(5); }
  async getBySource(src) { const p = await api.getPlugin({src}); return await p.answer(); }
}
api.export(new ImJoyPlugin());
"""

CALLER_PY = """
from imjoy import api


class ImJoyPlugin:
    async def setup(self):
        pass

    async def viaCall(self):
        return await api.call("Helper", "double", 21)

    async def viaGetPlugin(self):
        helper = await api.getPlugin({"name": "Helper"})
        return await helper.double(2)

    async def viaRun(self):
        return await api.run("Helper", {"data": {"x": 1}})

    async def listed(self):
        return [[p["name"], p["config"].get("version"), "function" if p["api"] and "double" in p["api"] else "undefined"] for p in await api.getPlugins()]

    async def loadBySource(self, src):
        loaded = await api.loadPlugin({"src": src})
        return await loaded.answer()

    async def loadByName(self):
        helper = await api.loadPlugin("Helper")
        return await helper.double(5)

    async def getBySource(self, src):
        loaded = await api.getPlugin({"src": src})
        return await loaded.answer()


api.export(ImJoyPlugin())
"""


@pytest.mark.parametrize("kind", ["web-worker", "web-python"])
def test_calls_to_other_plugins_start_an_installed_one_that_was_stopped(app: Page, kind: str) -> None:
    name = f"Caller {kind}"
    install(app, HELPER)
    install(app, plugin(name, kind, CALLER_PY if kind == "web-python" else CALLER_JS))
    for fn, expected in (("viaCall", 42), ("viaGetPlugin", 4), ("viaRun", 'ran with {"x":1}'), ("loadByName", 10)):
        assert app.evaluate("pyjoy.terminatePlugin('Helper')") is True
        assert states(app)["Helper"] != "running"  # the workbench shows a stopped installed plugin as "installed"
        assert call(app, name, fn) == expected, fn
        assert states(app)["Helper"] == "running", fn
    listed = {entry[0]: entry for entry in call(app, name, "listed")}
    assert listed["Helper"] == ["Helper", "0.3.1", "function"]
    assert listed[name][:2] == [name, "0.3.1"]
    assert call(app, name, "loadBySource", LOADED_SOURCE) == 7
    assert states(app)["Loaded On The Fly"] == "running"
    assert app.evaluate("pyjoy.terminatePlugin('Loaded On The Fly')") is True
    assert call(app, name, "getBySource", LOADED_SOURCE.replace("return 7", "return 8")) == 8  # ImJoy's getPlugin({src}) loads too


# -- close handlers ------------------------------------------------------------------------

CLOSING_JS = """
class ImJoyPlugin {
  async setup() {
    api.on("close", async () => { await api.showMessage("bye via on(close)"); });
    api.onClose(async () => { await api.showMessage("bye via onClose"); });
  }
}
api.export(new ImJoyPlugin());
"""

CLOSING_PY = """
from imjoy import api


class ImJoyPlugin:
    async def setup(self):
        await api.on("close", self.bye)

    async def bye(self):
        await api.showMessage("bye via on(close)")


api.export(ImJoyPlugin())
"""


@pytest.mark.parametrize("kind", ["web-worker", "web-python"])
def test_a_plugins_close_handlers_run_when_it_is_stopped(app: Page, kind: str) -> None:
    name = f"Closing {kind}"
    install(app, plugin(name, kind, CLOSING_PY if kind == "web-python" else CLOSING_JS))
    toasts = app.locator(".toast")
    expect(toasts.filter(has_text="bye via")).to_have_count(0)
    assert app.evaluate("(name) => pyjoy.terminatePlugin(name)", name) is True
    expect(toasts.filter(has_text=f"{name}: bye via on(close)")).to_have_count(1)
    if kind == "web-worker":
        expect(toasts.filter(has_text=f"{name}: bye via onClose")).to_have_count(1)
    assert states(app)[name] != "running"


# -- utils -----------------------------------------------------------------------------

UTILS_JS = """
class ImJoyPlugin {
  async setup() {}
  async utils() {
    const error = async (work) => { try { await work(); return null; } catch (e) { return String(e.message ?? e); } };
    const started = Date.now();
    await api.utils.sleep(0.2);
    return {
      slept: Date.now() - started,
      forceUpdate: (await api.utils.$forceUpdate()) ?? null,
      assertTrue: await error(() => api.utils.assert(1 + 1 === 2, "arithmetic")),
      assertFalse: await error(() => api.utils.assert(false, "sigma must be positive")),
      picker: await error(() => api.utils.showOpenFilePicker()),
      openUrlBad: await error(() => api.utils.openUrl("javascript:alert(1)")),
    };
  }
}
api.export(new ImJoyPlugin());
"""


def test_utils_as_imjoy_has_them(app: Page) -> None:
    install(app, plugin("Utils", "web-worker", UTILS_JS))
    result = call(app, "Utils", "utils")
    assert result["slept"] >= 190
    assert result["forceUpdate"] is None and result["assertTrue"] is None
    assert "sigma must be positive" in result["assertFalse"]
    assert "api.utils.showOpenFilePicker" in result["picker"]
    assert "javascript:" in result["openUrlBad"]


# -- form dialogs --------------------------------------------------------------------------

UI_STRING = "Hey, please select a value for sigma: {id:'sigma', type:'choose', options:['1', '3'], placeholder: '1'}.<br>Size {id: 'size', type: 'number', min: 1, placeholder: 5}<br>Label: {id:'label', type:'string', placeholder:'cells'}"
UI_LIST = [
    {"Hey, please select a value for sigma": {"id": "sigma", "type": "choose", "options": ["1", "3"], "placeholder": "1"}},
    {"Size": "{id: 'size', type: 'number', min: 1, placeholder: 5}"},
    {"Label": {"id": "label", "type": "string", "placeholder": "cells"}},
]
EXPECTED_FIELDS = [("Hey, please select a value for sigma", "1"), ("Size", "5"), ("Label", "cells")]

DIALOG_JS = """
const updates = [];
class ImJoyPlugin {
  async setup() {}
  async ask(ui) { return await api.showDialog({name: "Pick sigma", ui, update: (ctx) => { updates.push(ctx.config); }}); }
  updates() { return updates; }
}
api.export(new ImJoyPlugin());
"""

DIALOG_PY = """
from imjoy import api


class ImJoyPlugin:
    async def setup(self):
        pass

    async def ask(self, ui):
        return await api.showDialog({"name": "Pick sigma", "ui": ui})


api.export(ImJoyPlugin())
"""


@pytest.mark.parametrize("kind,ui", [("web-worker", UI_STRING), ("web-worker", UI_LIST), ("web-python", UI_LIST)], ids=["js-string", "js-list", "python-list"])
def test_show_dialog_with_a_ui_is_a_form_that_answers_its_values(app: Page, kind: str, ui) -> None:
    name = f"Dialog {kind}"
    install(app, plugin(name, kind, DIALOG_PY if kind == "web-python" else DIALOG_JS))
    app.evaluate("([name, ui]) => { window.answer = 'pending'; pyjoy.getPlugin(name).then((p) => p.ask(ui)).then((v) => { window.answer = v ?? null; }, (e) => { window.answer = 'error: ' + e.message; }); }", [name, ui])
    dialog = app.locator("dialog.dialog", has_text="Pick sigma")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(name)
    # The fields are those the ui names, in its order, with its placeholders.
    labels = dialog.locator("label.field")
    expect(labels).to_have_count(len(EXPECTED_FIELDS))
    for index, (label, value) in enumerate(EXPECTED_FIELDS):
        expect(labels.nth(index)).to_contain_text(label)
        expect(dialog.get_by_label(label)).to_have_value(value)
    dialog.get_by_label(EXPECTED_FIELDS[0][0]).select_option("3")
    dialog.get_by_label("Size").fill("7")
    dialog.get_by_label("Label").fill("nuclei")
    if kind == "web-worker":  # an update callback hears the form's values as they change
        updates = poll(app, name, "updates", lambda u: bool(u) and u[-1].get("label") == "nuclei")
        assert updates[-1] == {"sigma": "3", "size": 7, "label": "nuclei"}
    dialog.get_by_role("button", name="OK").click()
    app.wait_for_function("window.answer !== 'pending'")
    assert app.evaluate("window.answer") == {"sigma": "3", "size": 7, "label": "nuclei"}
    # Cancel answers nothing, as ImJoy's dialog does.
    app.evaluate("([name, ui]) => { window.answer = 'pending'; pyjoy.getPlugin(name).then((p) => p.ask(ui)).then((v) => { window.answer = v ?? null; }, (e) => { window.answer = 'error: ' + e.message; }); }", [name, ui])
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Cancel").click()
    app.wait_for_function("window.answer !== 'pending'")
    assert app.evaluate("window.answer") is None


# -- ops without run, and update ----------------------------------------------------------

OPS_JS = """
const seen = {runs: [], updates: []};
class ImJoyPlugin {
  async setup() {
    await api.register({name: "Blur", ui: "Sigma {id:'sigma', type:'number', placeholder: 2}"});
    await api.register({name: "Sharpen", ui: [{"Amount": {id: "amount", type: "number", placeholder: 1}}]});
  }
  async run(ctx) { seen.runs.push(ctx.config); return `ran ${ctx.config.type}`; }
  async update(ctx) { seen.updates.push(ctx.config); }
  seen() { return seen; }
}
api.export(new ImJoyPlugin());
"""

OPS_PY = """
from imjoy import api


class ImJoyPlugin:
    async def setup(self):
        self.runs = []
        self.updates = []
        await api.register({"name": "Blur", "ui": "Sigma {id:'sigma', type:'number', placeholder: 2}"})
        await api.register({"name": "Sharpen", "ui": [{"Amount": {"id": "amount", "type": "number", "placeholder": 1}}]})

    async def run(self, ctx):
        self.runs.append(dict(ctx["config"]))
        return "ran " + ctx["config"]["type"]

    async def update(self, ctx):
        self.updates.append(dict(ctx["config"]))

    def seen(self):
        return {"runs": self.runs, "updates": self.updates}


api.export(ImJoyPlugin())
"""


@pytest.mark.parametrize("kind", ["web-worker", "web-python"])
def test_ops_without_run_call_the_plugins_run_with_their_name_and_updates_fire(app: Page, kind: str) -> None:
    name = f"Ops {kind}"
    install(app, plugin(name, kind, OPS_PY if kind == "web-python" else OPS_JS))
    blur = app.locator(".op-form", has_text="Blur")
    sharpen = app.locator(".op-form", has_text="Sharpen")
    expect(blur.get_by_label("Sigma")).to_have_value("2")
    expect(sharpen.get_by_label("Amount")).to_have_value("1")
    blur.get_by_label("Sigma").fill("4")
    assert poll(app, name, "seen", lambda seen: bool(seen["updates"]))["updates"][-1] == {"sigma": 4, "type": "Blur"}
    blur.get_by_role("button", name="Run").click()
    expect(app.locator(".toast").filter(has_text="Blur: ran Blur")).to_be_visible()
    sharpen.get_by_role("button", name="Run").click()
    expect(app.locator(".toast").filter(has_text="Sharpen: ran Sharpen")).to_be_visible()
    seen = call(app, name, "seen")
    assert seen["runs"] == [{"sigma": 4, "type": "Blur"}, {"amount": 1, "type": "Sharpen"}]
    assert seen["updates"][-1] == {"sigma": 4, "type": "Blur"}


def test_a_close_handler_cannot_keep_its_plugin_alive(app: Page) -> None:
    """Hostile: the handler never returns and makes things after its plugin was ended."""
    lines: list[str] = []
    app.on("console", lambda message: lines.append(message.text))
    app.evaluate("(text) => pyjoy.loadPlugin(text)", (HOSTILE / "apisurface_close_forever.imjoy.html").read_text())
    # Close handlers are bounded: one plus 99 more, then a clear refusal.
    assert call(app, "Hostile Closer", "refused") == '99: PluginError: on("close"): plugin Hostile Closer already has 100 close handlers; this one was refused'
    assert app.evaluate("pyjoy.terminatePlugin('Hostile Closer')") is True
    app.wait_for_timeout(2500)  # past the grace (one second), with room for a slow machine
    alive = [line for line in lines if "still alive" in line]
    assert alive, "the close handler never ran"
    app.wait_for_timeout(1000)
    assert [line for line in lines if "still alive" in line] == alive, "the sandbox outlived its grace"
    # What it made after it was ended went with it.
    assert app.evaluate("pyjoy.api.getServices({type: 'apisurface-late'})") == []
    app.evaluate("pyjoy.api.emit('apisurface-late-event', 1)")
    app.wait_for_timeout(200)
    assert not [line for line in lines if "heard after close" in line]
    assert app.evaluate("Promise.race([pyjoy.runPython('1+1'), new Promise((r) => setTimeout(() => r('stuck'), 20000))])") == 2


CONFIG_UI_JS = """
const runs = [];
class ImJoyPlugin {
  async setup() {}
  async run(ctx) { runs.push(ctx.config); return `smoothed with ${ctx.config.sigma}`; }
  runs() { return runs; }
}
api.export(new ImJoyPlugin());
"""


def test_a_plugins_config_ui_is_its_own_op(app: Page) -> None:
    # As in ImJoy: a plugin whose <config> has a ui gets a form of its name; Run calls its run.
    install(app, plugin("Smoother", "web-worker", CONFIG_UI_JS, {"ui": "Sigma {id:'sigma', type:'number', placeholder: 2}"}))
    install(app, plugin("No Form", "web-worker", CONFIG_UI_JS))
    form = app.locator(".op-form", has_text="Smoother")
    expect(form.get_by_label("Sigma")).to_have_value("2")
    expect(app.locator(".op-form")).to_have_count(1)  # the plugin without a ui has none
    form.get_by_label("Sigma").fill("3.5")
    form.get_by_role("button", name="Run").click()
    expect(app.locator(".toast").filter(has_text="Smoother: smoothed with 3.5")).to_be_visible()
    assert call(app, "Smoother", "runs") == [{"sigma": 3.5, "type": "Smoother"}]
