"""Hostile plugins against the plugin host, in real Chromium: a plugin cannot take another
plugin's name, answer as it or change the page's prototypes; it gets no permission through
another plugin and installs, replaces or removes nothing without the person's yes; what
needs a click in a normal page needs the person's click; errors are one family with stable
codes; windows a plugin made go with it. After each attack the page is checked: `({}).x`
unchanged, `pyjoy.plugins()` as before (or as the person chose), the victim still answers."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from conftest import repository_server, user_plugins, wait_until

HOSTILE = Path(__file__).parent / "plugins" / "hostile"
VICTIM = (HOSTILE / "host_victim.imjoy.html").read_text()
IMPOSTOR = (HOSTILE / "host_impostor.imjoy.html").read_text()

# What a prototype attack would change, read in the page.
PROTOTYPES = """[({}).polluted, Object.polluted, Object.prototype.hasOwnProperty.polluted,
  Object.prototype.toString.polluted, Function.prototype.polluted, Array.prototype.polluted]"""


@pytest.fixture
def app(page: Page, base_url: str) -> Page:
    """A first visit (the built-ins installed), Victim installed and running, Hostile Host loaded."""
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(base_url)
    page.wait_for_function("window.pyjoy && pyjoy.timings.workbenchReady", timeout=30_000)
    page.evaluate("pyjoy.ready")
    page.evaluate("(text) => pyjoy.installPlugin(text).then(() => true)", VICTIM)
    page.evaluate("(text) => pyjoy.loadPlugin(text).then(() => true)", IMPOSTOR)
    return page


def hostile(page: Page, method: str, *args):
    return page.evaluate("([method, args]) => pyjoy.getPlugin('Hostile Host').then((p) => p[method](...args))", [method, list(args)])


def start_hostile(page: Page, method: str, *args) -> None:
    """Starts a hostile call that waits for the person; its outcome is window.pending."""
    page.evaluate("([method, args]) => { window.pending = pyjoy.getPlugin('Hostile Host').then((p) => p[method](...args)); }", [method, list(args)])


def names(page: Page) -> list[str]:
    return [plugin["name"] for plugin in page.evaluate("pyjoy.plugins()")]


def assert_unharmed(page: Page, plugins_before: list[dict]) -> None:
    assert page.evaluate(PROTOTYPES) == [None] * 6
    assert page.evaluate("pyjoy.plugins()") == plugins_before
    assert page.evaluate("pyjoy.getPlugin('Victim').then((p) => p.whoami())") == "victim"
    answer = page.evaluate("Promise.race([pyjoy.runPython('1+1'), new Promise((r) => setTimeout(() => r('no answer in 1 s'), 1000))])")
    assert answer == 2


def test_a_plugin_cannot_take_another_plugins_name(app: Page) -> None:
    before = app.evaluate("pyjoy.plugins()")
    assert "Image Recognition" in names(app)  # a built-in, installed, not started
    assert app.evaluate("pyjoy.terminatePlugin('Victim')") is True  # installed, not running: its name is free?
    for name in ("Victim", "Image Recognition"):
        result = hostile(app, "loadAs", name)
        assert result.get("type") == "PluginError", result
        assert f'cannot load a plugin named "{name}"' in result["error"] and "installed" in result["error"]
    # The hostile plugin itself reaches the real one by its name (started for it), as the page does.
    assert hostile(app, "callVictim", "Victim") == {"ok": True, "value": "victim"}
    assert app.evaluate("pyjoy.getPlugin('Victim').then((p) => p.secret())") == "s3cret"
    assert_unharmed(app, before)


def test_names_that_are_prototype_keys_are_harmless(app: Page) -> None:
    before = app.evaluate("pyjoy.plugins()")
    for name in ("__proto__", "constructor", "hasOwnProperty", "toString"):
        # A plugin of that name keeps settings, keys "__proto__" and "constructor" included.
        assert hostile(app, "pokeAs", name) == {"ok": True, "value": ["yes", "p", "c", None]}, name
        assert app.evaluate(PROTOTYPES) == [None] * 6, name
    loaded = {plugin["name"] for plugin in app.evaluate("pyjoy.plugins()")}
    assert {"__proto__", "constructor", "hasOwnProperty", "toString"} <= loaded
    for name in ("__proto__", "constructor", "hasOwnProperty", "toString"):
        assert app.evaluate("(name) => pyjoy.terminatePlugin(name)", name) is True
    # The page's own API refuses what is not one of its functions.
    assert "no function" in app.evaluate("pyjoy.api.hasOwnProperty('x').catch((e) => e.message)")
    assert_unharmed(app, before)


def test_a_window_named_like_a_plugin_gets_neither_its_settings_nor_its_services(app: Page) -> None:
    result = hostile(app, "windowAs", "Victim")
    assert result == {"ok": True, "value": None}  # its own plugin's settings, not Victim's secret
    expect(app.locator(".plugin-window h2", has_text="Victim")).to_have_count(1)
    # The window's service did not replace Victim's; each names the plugin whose code it is.
    services = app.evaluate(
        "pyjoy.api.getServices({name: 'classifier'}).then((all) => Promise.all(all.map(async (s) => [s.provider, await s.predict()])))")
    assert sorted(services) == [["Hostile Window", "impostor"], ["Victim", "victim"]]
    assert app.evaluate("pyjoy.getPlugin('Victim').then((p) => p.secret())") == "s3cret"


def test_loading_a_plugin_with_a_permission_asks_the_person(app: Page) -> None:
    before = app.evaluate("pyjoy.plugins()")
    start_hostile(app, "loadCamera")
    ask = app.locator("dialog", has_text="Hidden Camera")
    expect(ask).to_contain_text("Hostile Host wants to load the iframe plugin Hidden Camera given as text by plugin Hostile Host")
    expect(ask).to_contain_text("permissions: camera")
    ask.get_by_role("button", name="Cancel").click()
    result = app.evaluate("window.pending")
    assert result["type"] == "PluginError" and "said no" in result["error"]
    assert_unharmed(app, before)
    # Allowed, it loads.
    start_hostile(app, "loadCamera")
    app.locator("dialog", has_text="Hidden Camera").get_by_role("button", name="Load").click()
    assert app.evaluate("window.pending") == {"ok": True, "value": True}
    assert "Hidden Camera" in names(app)


def test_installing_replacing_and_removing_through_the_api_ask_the_person(app: Page, repository_url: str) -> None:
    before = app.evaluate("pyjoy.plugins()")
    # Replacing an installed plugin: the question names both sources.
    start_hostile(app, "installAs", "Victim")
    ask = app.locator("dialog", has_text="Replace plugin")
    expect(ask).to_contain_text("Hostile Host wants to replace the plugin Victim (installed from text)")
    expect(ask).to_contain_text("given as text by plugin Hostile Host")
    expect(ask).to_contain_text("no permissions")
    ask.get_by_role("button", name="Cancel").click()
    assert "said no" in app.evaluate("window.pending")["error"]
    # Removing one.
    start_hostile(app, "uninstall", "Victim")
    ask = app.locator("dialog", has_text="Remove plugin")
    expect(ask).to_contain_text("Hostile Host wants to remove the plugin Victim (installed from text)")
    ask.get_by_role("button", name="Cancel").click()
    assert "said no" in app.evaluate("window.pending")["error"]
    assert_unharmed(app, before)
    # Installing a new one, from a URL: said yes to, it is installed.
    url = repository_url + "hello_worker.imjoy.html"
    start_hostile(app, "install", url)
    ask = app.locator("dialog", has_text="Install plugin")
    expect(ask).to_contain_text(f"Hostile Host wants to install the web-worker plugin Hello Worker from {url}")
    ask.get_by_role("button", name="Install").click()
    assert app.evaluate("window.pending") == {"ok": True, "value": "object"}
    assert "Hello Worker" in names(app)


def test_a_shared_link_names_the_permissions_it_asks_for(page: Page, base_url: str) -> None:
    with repository_server(HOSTILE) as url:
        page.goto(f"{base_url}?w=linked&plugin={url}host_camera_link.imjoy.html")
        ask = page.locator("dialog", has_text="Install the web-worker plugin Camera Link")
        expect(ask).to_contain_text("permissions: camera, microphone")
        ask.get_by_role("button", name="Cancel").click()
        assert user_plugins(page) == []


def test_saving_choosing_and_opening_need_the_persons_click(app: Page, base_url: str, tmp_path: Path) -> None:
    downloads = []
    app.on("download", lambda download: downloads.append(download))
    start_hostile(app, "save")
    ask = app.locator("dialog", has_text="Save file")
    expect(ask).to_contain_text('Hostile Host wants to save the file "evil.csv"')
    app.wait_for_timeout(500)
    assert downloads == []  # nothing saved before the person clicks
    with app.expect_download() as download:
        ask.get_by_role("button", name="Save").click()
    saved = tmp_path / "evil.csv"
    download.value.save_as(saved)
    assert saved.read_text() == "stolen,data\n"
    assert app.evaluate("window.pending") == {"ok": True, "value": None}

    picked = tmp_path / "cells.txt"
    picked.write_text("42 cells")
    start_hostile(app, "choose")
    ask = app.locator("dialog", has_text="Choose files")
    expect(ask).to_contain_text("Hostile Host asks you to choose a file")
    with app.expect_file_chooser() as chooser:
        ask.get_by_role("button", name="Choose…").click()
    chooser.value.set_files(str(picked))
    assert app.evaluate("window.pending") == {"ok": True, "value": "cells.txt: 42 cells"}

    popups = []
    app.context.on("page", lambda opened: popups.append(opened))
    assert "only http and https" in hostile(app, "open", "javascript:alert(document.domain)")["error"]
    target = base_url + "plugins/manifest.imjoy.json"
    start_hostile(app, "open", target)
    ask = app.locator("dialog", has_text="Open link")
    expect(ask).to_contain_text(f"Hostile Host wants to open {target}")
    ask.get_by_role("button", name="Cancel").click()
    assert "said no" in app.evaluate("window.pending")["error"]
    start_hostile(app, "open", target)
    with app.context.expect_page() as opened:
        app.locator("dialog", has_text="Open link").get_by_role("button", name="Open").click()
    opened.value.wait_for_load_state()
    assert opened.value.url == target
    assert len(popups) == 1


ERRORS = """async ([bad, native, forger]) => {
  const seen = async (work) => {
    try { await work(); return null; }
    catch (e) { return {name: e.name, code: e.code ?? null, line: e.line ?? null}; }
  };
  return {
    loadParse: await seen(() => pyjoy.loadPlugin(bad)),
    installParse: await seen(() => pyjoy.installPlugin(bad)),
    installFetch: await seen(() => pyjoy.installPlugin('http://127.0.0.1:9/nothing.imjoy.html')),
    getMissing: await seen(() => pyjoy.getPlugin('Nobody')),
    uninstallMissing: await seen(() => pyjoy.uninstallPlugin('Nobody')),
    reloadMissing: await seen(() => pyjoy.reloadPlugin('Nobody')),
    engine: await seen(() => pyjoy.loadPlugin(native)),
    forged: await seen(() => pyjoy.loadPlugin(forger)),
    crashed: await seen(() => pyjoy.getPlugin('Forger')),
    python: await seen(() => pyjoy.runPython('1/0')),
  };
}"""


def test_errors_are_one_family_with_stable_codes(app: Page) -> None:
    before = app.evaluate("pyjoy.plugins()")
    bad = '<config lang="json">{"name": "Broken", "type": "web-worker",}</config>\n<script lang="javascript">api.export({});</script>'
    forger = (HOSTILE / "host_forger.imjoy.html").read_text()
    native = '<config lang="json">{"name": "Engine Only", "type": "native-python"}</config>\n<script lang="python">pass</script>'
    errors = app.evaluate(ERRORS, [bad, native, forger])
    parse = {"name": "PluginError", "code": "plugin-parse-error", "line": 1}
    assert errors["loadParse"] == parse and errors["installParse"] == parse
    assert errors["installFetch"] == {"name": "PluginError", "code": "plugin-load-failed", "line": None}
    for path in ("getMissing", "uninstallMissing", "reloadMissing"):
        assert errors[path] == {"name": "PluginError", "code": "plugin-not-found", "line": None}, path
    # A plugin's setup that throws an error dressed as the host's does not choose the code.
    assert errors["forged"] == {"name": "PluginError", "code": "plugin-load-failed", "line": None}
    assert errors["crashed"] == {"name": "PluginError", "code": "plugin-crashed", "line": None}
    assert errors["python"] == {"name": "PythonError", "code": "python-error", "line": None}
    assert errors["engine"] == {"name": "PluginError", "code": "plugin-load-failed", "line": None}
    assert names(app) == [plugin["name"] for plugin in before] + ["Forger"]
    assert app.evaluate("pyjoy.terminatePlugin('Forger')") is True
    assert_unharmed(app, before)


def test_windows_a_plugin_made_go_with_it(app: Page) -> None:
    windows = app.locator(".plugin-window")
    assert hostile(app, "openWindows", 2) == {"ok": True, "value": 2}
    expect(windows).to_have_count(2)
    assert app.evaluate("pyjoy.terminatePlugin('Hostile Host')") is True
    expect(windows).to_have_count(0)
    # Reloaded.
    app.evaluate("(text) => pyjoy.loadPlugin(text).then(() => true)", IMPOSTOR)
    assert hostile(app, "openWindows", 2) == {"ok": True, "value": 2}
    expect(windows).to_have_count(2)
    app.evaluate("pyjoy.reloadPlugin('Hostile Host').then(() => true)")
    expect(windows).to_have_count(0)
    # Crashed: its frame navigates itself away, which the host takes as a crash.
    app.evaluate("(text) => pyjoy.loadPlugin(text).then(() => true)", (HOSTILE / "host_window_maker.imjoy.html").read_text())
    assert app.evaluate("pyjoy.getPlugin('Window Maker').then((p) => p.openWindows(1))") == 1
    expect(windows).to_have_count(1)
    assert app.evaluate("pyjoy.getPlugin('Window Maker').then((p) => p.leave())") is True
    expect(windows).to_have_count(0)
    wait_until(app, "pyjoy.plugins().then((all) => all.some((p) => p.name === 'Window Maker' && p.state === 'crashed'))")
    # A workspace switch closes every window, the page's own too.
    app.evaluate("(text) => pyjoy.loadPlugin(text).then(() => true)", IMPOSTOR)
    assert hostile(app, "openWindows", 1) == {"ok": True, "value": 1}
    app.evaluate("pyjoy.api.createWindow({type: 'Hostile Window', name: 'page window'}).then(() => true)")
    expect(windows).to_have_count(2)
    app.click("#workspace-menu-button")
    app.click('#workspace-menu [data-action="new"]')
    app.locator("dialog input").fill("Elsewhere")
    app.get_by_role("button", name="OK").click()
    expect(app.locator("#workspace-select")).to_have_value("Elsewhere")
    expect(windows).to_have_count(0)


def test_a_workspace_file_from_before_ids_keeps_its_settings_and_cannot_pollute(app: Page, tmp_path: Path) -> None:
    """Version 1 files keep settings by plugin name; a hostile one names its plugin "__proto__"."""
    import json

    reader = '<config lang="json">{"name": "__proto__", "type": "web-worker"}</config>\n<script lang="javascript">api.export({ read: () => api.getConfig("polluted") });</script>'
    record = {"name": "Old", "created": 0, "updated": 0, "windows": [],
              "plugins": [{"name": "__proto__", "type": "web-worker", "version": "", "text": reader, "url": None}],
              "settings": {"__proto__": {"polluted": "yes"}}}
    file = tmp_path / "old.pyjoy-workspace.json"
    file.write_text(json.dumps({"format": "pyjoy-workspace", "version": 1, "workspace": record}))
    app.click("#workspace-menu-button")
    with app.expect_file_chooser() as chooser:
        app.click('#workspace-menu [data-action="import"]')
    chooser.value.set_files(str(file))
    expect(app.locator("#workspace-select")).to_have_value("Old")
    expect(app.locator(".toast", has_text='Workspace "Old" imported')).to_be_visible()
    assert app.evaluate("pyjoy.getPlugin('__proto__').then((p) => p.read())") == "yes"
    assert app.evaluate(PROTOTYPES) == [None] * 6
