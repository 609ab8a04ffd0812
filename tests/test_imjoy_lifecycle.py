"""ImJoy plugins' lifecycle in real Chromium, with plugins written in ImJoy's format: a
window plugin's close handlers run before its frame goes (closed by its button, by
win.close(), by api.close() or from its menu), bounded for a hostile one; a plugin's tags
(config `tags`, per-tag fields and scripts) chosen by "@tag" for dependencies, links and
loads, kept in the workspace and shown in the plugin's menu; and api.loadPlugin loading a
plugin's dependencies (after a question naming them) as the loading plugin's own."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from conftest import user_plugins
from test_imjoy_frame import deps_url  # noqa: F401  (a fixture: tests/plugins/imjoy_deps/ on its own origin)

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


def test_a_window_plugin_stopped_before_its_frame_loads_fails_its_load_instead_of_waiting(app: Page) -> None:
    # The frame's script is held back, so the plugin is stopped (its window closed) before its
    # frame is made; a frame put into a window already gone never loads, and its load waited
    # for ever (so did whatever waited on it: a plugin needing it, a getPlugin).
    held = []
    app.route("**/assets/sandbox/frame-*.js", lambda route: held.append(route))
    source = plugin("Stopped Early", "window", "api.export({ping: () => 'pong'});", window="<p>early</p>")
    app.evaluate("(text) => { window.loading = pyjoy.loadPlugin(text).then(() => 'loaded', (e) => e.message); }", source)
    wait_for(app, lambda: held, bool)
    assert held, "the frame's script was never asked for"
    assert app.evaluate("pyjoy.terminatePlugin('Stopped Early')") is True
    for route in held:
        route.continue_()
    app.unroute("**/assets/sandbox/frame-*.js")
    outcome = app.evaluate("Promise.race([window.loading, new Promise((r) => setTimeout(() => r('still loading after 10 s'), 10000))])")
    assert "failed to load" in outcome and "taken out of the page" in outcome, outcome
    assert "Stopped Early" not in [p["name"] for p in user_plugins(app)]
    load(app, source)  # and it loads again
    assert call(app, "Stopped Early", "ping") == "pong"


# -- tags ----------------------------------------------------------------------------------

def install_error(page: Page, source: str) -> str:
    return page.evaluate("(source) => pyjoy.installPlugin(source).then(() => 'installed', (e) => e.message)", source)


def test_a_dependency_with_a_tag_gets_that_tag_kept_after_a_reload(app: Page, base_url: str, deps_url: str) -> None:
    assert install_error(app, f"{deps_url}tag_user_gpu.imjoy.html") == "installed"
    gpu = {"script": "GPU", "tag": "GPU", "labels": ["runs on the GPU"]}
    assert call(app, "Tag User GPU", "variant") == gpu
    # The plugin's menu shows the tag it loads among its tags.
    tool = app.locator(".plugin-item[data-name='Tagged Tool']")
    expect(tool.locator(".tag")).to_have_text(["CPU", "GPU"])
    expect(tool.locator(".tag[aria-current='true']")).to_have_text("GPU")
    # The workspace keeps the tag: after a reload the dependency starts as its GPU variant.
    app.goto(f"{base_url}?w=lifecycle")
    app.wait_for_function("window.pyjoy && pyjoy.timings.workbenchReady", timeout=30_000)
    assert call(app, "Tagged Tool", "whoami") == gpu
    # The person picks another tag in the plugin's menu; it is kept too.
    app.locator(".plugin-item[data-name='Tagged Tool'] .plugin-tag select").select_option("CPU")
    expect(app.locator(".plugin-item[data-name='Tagged Tool'] .tag[aria-current='true']")).to_have_text("CPU")
    assert call(app, "Tagged Tool", "whoami") == {"script": "CPU", "tag": "CPU", "labels": ["runs on the CPU"]}


def test_a_dependency_without_a_tag_gets_the_first_tag(app: Page, deps_url: str) -> None:
    assert install_error(app, f"{deps_url}tag_user_default.imjoy.html") == "installed"
    assert call(app, "Tag User Default", "variant") == {"script": "CPU", "tag": "CPU", "labels": ["runs on the CPU"]}


def test_an_unknown_tag_is_an_error_naming_it_and_the_plugins_tags(app: Page, deps_url: str) -> None:
    message = install_error(app, f"{deps_url}tag_user_unknown.imjoy.html")
    assert 'Tag User Unknown needs the plugin "Tagged Tool@TPU", which could not be installed:' in message, message
    assert 'tag "TPU" is not one of this plugin\'s tags; expected one of CPU, GPU' in message, message
    assert user_plugins(app) == []  # nothing installed


def test_a_link_with_a_tag_installs_that_tag(page: Page, base_url: str, deps_url: str) -> None:
    setups: list[str] = []
    page.on("console", lambda message: message.text.startswith("setup: ") and setups.append(message.text[7:]))
    page.goto(f"{base_url}?w=tag-link&plugin={deps_url}tagged_tool.imjoy.html@GPU")
    ask = page.locator("dialog", has_text="Install the web-worker plugin Tagged Tool (its tag GPU)")
    ask.get_by_role("button", name="OK").click()
    expect(page.locator(".plugin-item[data-name='Tagged Tool'] .tag[aria-current='true']")).to_have_text("GPU")
    wait_for(page, lambda: setups, lambda got: bool(got))
    assert setups == ["Tagged Tool (GPU)"]


def test_a_plugin_installed_by_url_with_a_tag_gets_that_tag(app: Page, deps_url: str) -> None:
    assert install_error(app, f"{deps_url}tagged_tool.imjoy.html@GPU") == "installed"
    assert call(app, "Tagged Tool", "whoami") == {"script": "GPU", "tag": "GPU", "labels": ["runs on the GPU"]}
    expect(app.locator(".plugin-item[data-name='Tagged Tool'] .tag[aria-current='true']")).to_have_text("GPU")


def test_a_plugin_loaded_by_url_with_a_tag_gets_that_tag(app: Page, deps_url: str) -> None:
    variant = app.evaluate("(url) => pyjoy.loadPlugin(url).then((p) => p.whoami())", f"{deps_url}tagged_tool.imjoy.html@GPU")
    assert variant == {"script": "GPU", "tag": "GPU", "labels": ["runs on the GPU"]}


# -- api.loadPlugin and dependencies -------------------------------------------------------

LOADER = plugin("Plugin Loader", "web-worker", """
api.export({
  setup() {},
  async load(src, asString) {
    try {
      const loaded = await api.loadPlugin(asString ? src : {src});  // ImJoy takes both
      return {whoami: await loaded.whoami()};
    } catch (error) {
      return {error: String(error.message ?? error)};
    }
  },
});
""")


def start_loading(page: Page, url: str, as_string: bool = False) -> None:
    load(page, LOADER)
    page.evaluate("([url, asString]) => { window.loading = pyjoy.getPlugin('Plugin Loader').then((p) => p.load(url, asString)); }", [url, as_string])


def loaded(page: Page) -> dict[str, dict]:
    """The plugins the page has loaded, by name: their ids and states (the host's list)."""
    return {p["name"]: p for p in page.evaluate("pyjoy.api.getPlugins()")}


@pytest.mark.parametrize("form", ["{src}", "url"])
def test_load_plugin_asks_naming_the_dependencies_and_loads_them_first_as_the_loaders(app: Page, deps_url: str, form: str) -> None:
    setups: list[str] = []
    app.on("console", lambda message: message.text.startswith("setup: ") and setups.append(message.text[7:]))
    start_loading(app, f"{deps_url}dep_user.imjoy.html", as_string=form == "url")
    ask = app.locator("dialog", has_text="Plugin Loader wants to load the window plugin Dep User")
    expect(ask).to_contain_text("It needs 2 other plugins, loaded and started before it:")
    expect(ask).to_contain_text(f"Dep Base (window plugin from {deps_url}dep_base.imjoy.html")
    expect(ask).to_contain_text(f"Dep Second (window plugin from {deps_url}dep_second.imjoy.html")
    assert [name for name in loaded(app) if name.startswith("Dep ")] == []  # nothing before the answer
    ask.get_by_role("button", name="Load").click()
    assert app.evaluate("window.loading") == {"whoami": "Dep User"}
    # The frames' console lines reach this process on their own, maybe after the answer did.
    wait_for(app, lambda: setups, lambda got: len(got) >= 3)
    assert setups.index("Dep Base") < setups.index("Dep Second") < setups.index("Dep User"), setups
    plugins = loaded(app)
    loader = plugins["Plugin Loader"]["id"]
    for name in ["Dep Base", "Dep Second", "Dep User"]:
        assert plugins[name]["id"] == f"{loader}/{name}" and plugins[name]["state"] == "running", plugins[name]


def test_load_plugin_refused_loads_no_dependency(app: Page, deps_url: str) -> None:
    start_loading(app, f"{deps_url}dep_user.imjoy.html")
    app.locator("dialog", has_text="Plugin Loader wants to load").get_by_role("button", name="Cancel").click()
    assert "the person said no" in app.evaluate("window.loading")["error"]
    assert [name for name in loaded(app) if name.startswith("Dep ")] == []


def test_load_plugin_refuses_a_dependency_cycle(app: Page, deps_url: str) -> None:
    start_loading(app, f"{deps_url}cycle_a.imjoy.html")
    error = app.evaluate("Promise.race([window.loading, new Promise((r) => setTimeout(() => r({error: 'hung'}), 15000))])")["error"]
    assert "dependency cycle: Cycle A needs Cycle B needs Cycle A" in error, error
    assert not {"Cycle A", "Cycle B"} & set(loaded(app))


def test_load_plugin_names_a_dependency_that_cannot_be_read(app: Page, deps_url: str) -> None:
    start_loading(app, f"{deps_url}dep_missing.imjoy.html")
    error = app.evaluate("window.loading")["error"]
    assert 'Dep Missing needs the plugin "Not In This Repository", which could not be loaded:' in error, error
    assert f"no plugin named Not In This Repository in the repository {deps_url}manifest.imjoy.json" in error, error
    assert not {"Dep Missing", "Dep Base"} & set(loaded(app))


def test_load_plugin_names_a_dependency_that_cannot_start(app: Page, deps_url: str) -> None:
    start_loading(app, f"{deps_url}needs_broken.imjoy.html")
    app.locator("dialog", has_text="Plugin Loader wants to load the web-worker plugin Needs Broken").get_by_role("button", name="Load").click()
    error = app.evaluate("window.loading")["error"]
    assert "Needs Broken needs the plugin Dep Broken, which could not start:" in error and "Dep Broken cannot set itself up" in error, error
    plugins = loaded(app)
    assert "Needs Broken" not in plugins
    assert plugins.get("Dep Base", {}).get("state") != "running"  # what this load started went with it
