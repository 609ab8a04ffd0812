"""The workbench in real Chromium: installing plugins (a URL, a manifest, a dropped file),
links that open it (?plugin=, ?w=), workspaces kept in IndexedDB across reloads, offline
and a browser restart, export and import, windows, the editor, the phone layout, and a
full disk. Plugins come from tests/plugins/repo/, served on another origin the way
GitHub serves raw files."""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from conftest import user_plugins, wait_for_service_worker
from pyjoy.devtools import launch_options

REPO = Path(__file__).resolve().parent / "plugins" / "repo"


def open_app(page: Page, url: str) -> Page:
    page.goto(url)
    page.wait_for_function("window.pyjoy && pyjoy.timings.workbenchReady", timeout=30_000)
    return page


def item(page: Page, name: str):
    return page.locator(f'.plugin-item[data-name="{name}"]')


def install_by_url(page: Page, url: str) -> None:
    page.click("#add-plugin")
    page.fill("#plugin-url", url)
    page.click("dialog button[type=submit]")
    expect(page.locator("dialog")).to_have_count(0)


@pytest.fixture
def app(page: Page, base_url: str) -> Page:
    page.set_viewport_size({"width": 1280, "height": 800})
    return open_app(page, base_url)


def test_install_by_url_survives_reload_offline_and_a_browser_restart(playwright, base_url: str, repository_url: str) -> None:
    profile = tempfile.mkdtemp(prefix="pyjoy-profile-")
    try:
        context = playwright.chromium.launch_persistent_context(profile, **launch_options())
        page = context.new_page()
        open_app(page, base_url)
        wait_for_service_worker(page)
        install_by_url(page, repository_url + "hello_worker.imjoy.html")
        expect(item(page, "Hello Worker")).to_have_attribute("data-state", "running")
        assert page.evaluate("pyjoy.getPlugin('Hello Worker').then(p => p.greet('you'))") == "Hello, you!"
        # Run it from the list: its run() counts runs in a setting, kept in the workspace.
        item(page, "Hello Worker").get_by_role("button", name="Run again").click()
        expect(page.locator(".toast").filter(has_text="Hello #1")).to_be_visible()

        page.reload()
        open_app(page, base_url)
        assert user_plugins(page) == [
            {"name": "Hello Worker", "type": "web-worker", "version": "0.2.0", "state": "installed", "error": None}]
        context.set_offline(True)
        page.reload()
        open_app(page, base_url)
        # Offline: the stored file starts; getPlugin starts an installed plugin.
        assert page.evaluate("pyjoy.getPlugin('Hello Worker').then(p => p.run({}))") == 2
        context.set_offline(False)
        context.close()

        context = playwright.chromium.launch_persistent_context(profile, **launch_options())
        page = context.new_page()
        open_app(page, base_url)
        expect(item(page, "Hello Worker")).to_have_attribute("data-state", "installed")
        assert page.evaluate("pyjoy.getPlugin('Hello Worker').then(p => p.run({}))") == 3
        context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def test_install_from_a_manifest_and_update_when_the_version_changes(app: Page, repository_url: str) -> None:
    page = app
    # An older version installed from its text; the repository has 0.2.0.
    older = (REPO / "hello_worker.imjoy.html").read_text().replace('"version": "0.2.0"', '"version": "0.1.0"')
    page.evaluate("(text) => pyjoy.installPlugin(text)", older)
    expect(item(page, "Hello Worker").locator(".plugin-meta")).to_contain_text("v0.1.0")
    page.click("#add-plugin")
    page.click("#add-repository")
    prompt = page.locator("dialog", has_text="Add a repository")
    prompt.locator("input").fill(repository_url + "manifest.imjoy.json")
    prompt.get_by_role("button", name="OK").click()
    catalog = page.locator("#catalog")
    expect(catalog.locator("li")).to_have_count(2)
    page.fill("#catalog-search", "window")
    expect(catalog.locator("li")).to_have_count(1)
    catalog.get_by_role("button", name="Install").click()
    expect(catalog.get_by_role("button", name="Installed")).to_be_disabled()
    page.fill("#catalog-search", "")
    catalog.get_by_role("button", name="Update to v0.2.0").click()
    expect(catalog.get_by_role("button", name="Installed")).to_have_count(2)
    page.click("#close-add")
    expect(item(page, "Hello Worker").locator(".plugin-meta")).to_contain_text("v0.2.0")
    assert page.evaluate("pyjoy.getPlugin('Hello Worker').then(p => p.greet('x'))") == "Hello, x!"
    # The repository is remembered for the next time.
    page.click("#add-plugin")
    expect(page.locator("#repository option")).to_have_count(2)


def test_a_shared_link_installs_after_asking_and_opens_its_workspace(page: Page, base_url: str, repository_url: str) -> None:
    page.set_viewport_size({"width": 1280, "height": 800})
    open_app(page, f"{base_url}?w=shared&plugin={repository_url}hello_window.imjoy.html")
    ask = page.locator("dialog", has_text="Install the window plugin Hello Window")
    expect(ask).to_be_visible()
    ask.get_by_role("button", name="OK").click()
    expect(page.locator(".plugin-window h2")).to_have_text("Hello Window")
    assert page.evaluate("pyjoy.workspace()") == "shared"
    expect(page.locator("#workspace-select")).to_have_value("shared")
    assert [p["name"] for p in user_plugins(page)] == ["Hello Window"]
    # The same link again: installed already, so it just runs, without asking.
    open_app(page, f"{base_url}?w=shared&plugin={repository_url}hello_window.imjoy.html")
    expect(page.locator(".plugin-window h2")).to_have_text("Hello Window")
    expect(page.locator("dialog")).to_have_count(0)
    # Another workspace does not have it.
    open_app(page, f"{base_url}?w=elsewhere")
    assert page.evaluate("pyjoy.plugins()") == []


def test_workspaces_create_rename_delete_with_undo(app: Page, repository_url: str) -> None:
    page = app
    page.evaluate(f"pyjoy.installPlugin('{repository_url}hello_worker.imjoy.html')")

    def menu(action: str) -> None:
        page.click("#workspace-menu-button")
        page.click(f'#workspace-menu [data-action="{action}"]')

    menu("new")
    page.locator("dialog input").fill("Lab")
    page.get_by_role("button", name="OK").click()
    expect(page.locator("#workspace-select")).to_have_value("Lab")
    expect(page.locator(".plugin-item")).to_have_count(0)
    assert "w=Lab" in page.url
    menu("rename")
    page.locator("dialog input").fill("Lab notes")
    page.get_by_role("button", name="OK").click()
    expect(page.locator("#workspace-select")).to_have_value("Lab notes")
    page.select_option("#workspace-select", "default")
    expect(item(page, "Hello Worker")).to_be_visible()
    menu("delete")
    page.get_by_role("button", name="OK").click()
    expect(page.locator("#workspace-select")).to_have_value("Lab notes")
    expect(page.locator("#workspace-select option")).to_have_count(1)
    assert sorted(page.evaluate("[...document.querySelectorAll('#workspace-select option')].map(o => o.value)")) == ["Lab notes"]
    page.locator(".toast").get_by_role("button", name="Undo").click()
    expect(page.locator("#workspace-select")).to_have_value("default")
    expect(item(page, "Hello Worker")).to_be_visible()
    page.reload()
    open_app(page, page.url)
    expect(page.locator("#workspace-select option")).to_have_count(2)  # the list fills in after the workbench starts
    assert sorted(page.evaluate("[...document.querySelectorAll('#workspace-select option')].map(o => o.value)")) == ["Lab notes", "default"]


def test_export_then_import_on_another_device(browser, base_url: str, repository_url: str, tmp_path: Path) -> None:
    one = browser.new_context(viewport={"width": 1280, "height": 800})
    page = open_app(one.new_page(), base_url + "?w=Export me")
    page.evaluate(f"pyjoy.installPlugin('{repository_url}hello_worker.imjoy.html').then(p => p.run({{}}))")
    page.click("#workspace-menu-button")
    with page.expect_download() as download:
        page.click('#workspace-menu [data-action="export"]')
    file = tmp_path / download.value.suggested_filename
    download.value.save_as(file)
    data = json.loads(file.read_text())
    # Settings are kept under the plugin's id, given at install (version 1 files kept them by name).
    [entry] = [plugin for plugin in data["workspace"]["plugins"] if plugin["name"] == "Hello Worker"]
    assert data["format"] == "pyjoy-workspace" and data["version"] == 2
    assert data["workspace"]["settings"][entry["id"]] == {"runs": "1"}
    one.close()

    other = browser.new_context(viewport={"width": 1280, "height": 800})  # another device: nothing stored
    page = open_app(other.new_page(), base_url)
    page.click("#workspace-menu-button")
    with page.expect_file_chooser() as chooser:
        page.click('#workspace-menu [data-action="import"]')
    chooser.value.set_files(str(file))
    expect(page.locator("#workspace-select")).to_have_value("Export me")
    # The plugin's file came along (it starts with no network to its repository) and so did its settings.
    assert page.evaluate("pyjoy.getPlugin('Hello Worker').then(p => p.run({}))") == 2
    # A file that is not a workspace is refused by name.
    bad = tmp_path / "notes.json"
    bad.write_text('{"hello": 1}')
    page.click("#workspace-menu-button")
    with page.expect_file_chooser() as chooser:
        page.click('#workspace-menu [data-action="import"]')
    chooser.value.set_files(str(bad))
    expect(page.locator(".toast-error")).to_contain_text("notes.json is not a PyJoy workspace file")
    other.close()


def test_a_dropped_plugin_file_is_installed(app: Page) -> None:
    page = app
    text = (REPO / "hello_worker.imjoy.html").read_text()
    page.evaluate(
        """(text) => {
             const transfer = new DataTransfer();
             transfer.items.add(new File([text], "hello_worker.imjoy.html", { type: "text/html" }));
             document.body.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
           }""",
        text,
    )
    expect(item(page, "Hello Worker")).to_have_attribute("data-state", "running")
    # A broken one is a clear error naming the line, and the installed one stays.
    page.evaluate(
        """() => {
             const transfer = new DataTransfer();
             transfer.items.add(new File(['<config lang="json">\\n{"name": "Broken",\\n</config>'], "broken.imjoy.html"));
             document.body.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
           }"""
    )
    expect(page.locator(".toast-error")).to_contain_text("line")
    expect(item(page, "Broken")).to_have_count(0)
    expect(item(page, "Hello Worker")).to_have_attribute("data-state", "running")


def test_windows_move_maximise_and_come_back_with_the_workspace(app: Page, base_url: str, repository_url: str) -> None:
    page = app
    page.evaluate(f"pyjoy.installPlugin('{repository_url}hello_window.imjoy.html')")
    window = page.locator(".plugin-window")
    expect(window).to_have_count(1)
    # Resize from the corner grip (inside the rounded corner), then move by the title bar.
    box = window.bounding_box()
    page.mouse.move(box["x"] + box["width"] - 8, box["y"] + box["height"] - 8)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] - 68, box["y"] + box["height"] + 32, steps=6)
    page.mouse.up()
    resized = window.bounding_box()
    assert round(box["width"] - resized["width"]) == 60 and round(resized["height"] - box["height"]) == 40
    bar = window.locator(".window-bar h2").bounding_box()
    page.mouse.move(bar["x"] + 20, bar["y"] + 10)
    page.mouse.down()
    page.mouse.move(bar["x"] + 70, bar["y"] + 90, steps=8)
    page.mouse.up()
    after = window.bounding_box()
    assert round(after["x"] - resized["x"]) == 50 and round(after["y"] - resized["y"]) == 80
    page.wait_for_timeout(600)  # the layout is saved once a move settles
    page.reload()
    open_app(page, base_url)
    expect(page.locator(".plugin-window h2")).to_have_text("Hello Window")
    again = page.locator(".plugin-window").bounding_box()
    assert [round(again[k]) for k in ("x", "y", "width", "height")] == [round(after[k]) for k in ("x", "y", "width", "height")]
    page.locator(".window-maximize").click()
    area = page.locator("#windows").bounding_box()
    big = page.locator(".plugin-window").bounding_box()
    assert big["width"] >= area["width"] - 4 and big["height"] >= area["height"] - 4
    page.locator(".window-close").click()
    expect(page.locator(".plugin-window")).to_have_count(0)
    page.wait_for_timeout(600)
    page.reload()
    open_app(page, base_url)
    page.wait_for_timeout(500)
    expect(page.locator(".plugin-window")).to_have_count(0)  # closed windows stay closed


def test_the_editor_creates_runs_and_points_at_the_failing_line(app: Page) -> None:
    page = app
    page.click("#new-plugin")
    editor = page.locator(".editor-window")
    expect(editor.locator(".cm-content")).to_contain_text('"type": "web-python"')
    source = page.evaluate("document.querySelector('.editor-window').editor.getText()")
    name = json.loads(source.split("<config lang=\"json\">")[1].split("</config>")[0])["name"]
    # Add a method that fails, on a known line, typing into the editor for real.
    lines = source.split("\n")
    export_line = next(i for i, line in enumerate(lines) if line.startswith("api.export(")) + 1
    page.evaluate(
        """(line) => {
             const view = document.querySelector('.editor-window').editor.view;
             const at = view.state.doc.line(line).from;
             view.dispatch({ selection: { anchor: at } });
             view.focus();
           }""",
        export_line,
    )
    page.keyboard.insert_text("def broken():\n    return 1 / 0\n\nbroken()\n")  # as a paste: no auto-indent
    editor.get_by_role("button", name="Run").click()
    message = editor.locator(".editor-message")
    expect(message).to_contain_text("ZeroDivisionError", timeout=60_000)
    failing = export_line + 1  # `return 1 / 0`
    expect(message).to_contain_text(f"Line {failing}")
    expect(editor.locator(".cm-line.cm-pyjoy-errorLine")).to_have_text("    return 1 / 0")
    # Fix it: remove the call, save with Ctrl+S, run; the plugin is installed and runs.
    page.evaluate(
        """() => {
             const view = document.querySelector('.editor-window').editor.view;
             const text = view.state.doc.toString().replace("\\nbroken()\\n", "\\n");
             view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
             view.focus();
           }"""
    )
    page.keyboard.press("Control+s")
    expect(item(page, name)).to_be_visible()
    editor.get_by_role("button", name="Run").click()
    expect(item(page, name)).to_have_attribute("data-state", "running", timeout=60_000)
    expect(message).to_be_empty()


def test_phone_layout_tabs_and_swipeable_windows(browser, playwright, base_url: str, repository_url: str) -> None:
    profile = {**playwright.devices["Pixel 7"]}
    profile.pop("default_browser_type", None)
    context = browser.new_context(**profile)
    page = open_app(context.new_page(), base_url)
    width = page.evaluate("innerWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.evaluate(f"pyjoy.installPlugin('{repository_url}hello_worker.imjoy.html')")
    expect(item(page, "Hello Worker")).to_be_visible()
    for button in page.locator(".plugin-item button").all():
        assert button.bounding_box()["height"] >= 34
    page.evaluate(f"pyjoy.installPlugin('{repository_url}hello_window.imjoy.html')")
    page.evaluate("pyjoy.loadPlugin(`" + (REPO / "hello_window.imjoy.html").read_text().replace("Hello Window", "Second Window").replace("`", "\\`") + "`)")
    page.tap('.tabbar [data-view="windows"]')
    windows = page.locator(".plugin-window")
    expect(windows).to_have_count(2)
    page.wait_for_timeout(600)
    first, second = windows.nth(0).bounding_box(), windows.nth(1).bounding_box()
    assert round(first["width"]) == width  # a full-screen card
    assert round(second["x"] - first["x"]) == width  # the next one a swipe away
    # The newest window is the one shown; a swipe back shows the first.
    page.wait_for_timeout(600)  # the smooth scroll to the new window settles
    assert round(windows.nth(1).bounding_box()["x"]) == 0
    page.locator("#windows").evaluate("area => area.scrollBy({left: -area.clientWidth, behavior: 'instant'})")
    page.wait_for_timeout(300)
    assert round(windows.nth(0).bounding_box()["x"]) == 0
    page.tap('.tabbar [data-view="console"]')
    page.fill("#console-input", "'thumb'")
    page.tap("#console-run")
    expect(page.locator(".console-value")).to_have_text("thumb", timeout=60_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    context.close()


def test_a_full_disk_is_a_clear_message_and_loses_nothing(profile_context, base_url: str, repository_url: str) -> None:
    # A persistent profile: Chromium applies a quota override to real storage only.
    page = profile_context.new_page()
    open_app(page, base_url)
    page.evaluate(f"pyjoy.installPlugin('{repository_url}hello_worker.imjoy.html')")
    origin = base_url.rstrip("/")
    cdp = profile_context.new_cdp_session(page)
    cdp.send("Storage.overrideQuotaForOrigin", {"origin": origin, "quotaSize": 1024})  # less than what is stored: full
    # Chromium applies the override when the database is next opened: close it (leave the
    # page; it stays open about 2 s more), then come back.
    page.goto("about:blank")
    page.wait_for_timeout(3000)
    open_app(page, base_url)
    noise = base64.b64encode(os.urandom(3_000_000)).decode()  # incompressible: IndexedDB compresses values
    big = (REPO / "hello_window.imjoy.html").read_text() + "\n<docs>\n" + noise + "\n</docs>\n"
    error = page.evaluate("(text) => pyjoy.installPlugin(text).then(() => 'installed', (e) => e.message)", big)
    assert error.startswith("Storage is full: could not save plugin \"Hello Window\"") and "Nothing already saved was lost" in error
    cdp.send("Storage.overrideQuotaForOrigin", {"origin": origin})
    page.reload()
    open_app(page, base_url)
    assert [p["name"] for p in user_plugins(page)] == ["Hello Worker"]
    assert page.evaluate("pyjoy.getPlugin('Hello Worker').then(p => p.greet('still here'))") == "Hello, still here!"


def test_an_ops_ui_lines_become_a_form_that_runs_it(app: Page, repository_url: str) -> None:
    page = app
    page.evaluate(f"pyjoy.installPlugin('{repository_url}threshold_op.imjoy.html')")
    form = page.locator(".op-form", has_text="Count above")
    expect(form).to_be_visible()
    expect(form.get_by_label("Threshold")).to_have_value("128")
    expect(form.get_by_label("Channel")).to_have_value("green")
    form.get_by_label("Threshold").fill("120")
    form.get_by_label("Channel").select_option("blue")
    form.get_by_role("button", name="Run").click()
    expect(page.locator(".toast").filter(has_text="Count above: 3 above 120 in blue")).to_be_visible()
    # Stopping the plugin takes its op away.
    item(page, "Threshold Op").get_by_role("button", name="Stop").click()
    expect(page.locator(".op-form")).to_have_count(0)


INPUTS_OP = """<config lang="json">
{"name": "Inputs Op", "type": "web-worker", "version": "0.1.0", "api_version": "0.1.8"}
</config>
<script lang="javascript">
const received = [];
class InputsOp {
  async setup() {
    await api.register({
      name: "Smooth",
      inputs: {
        type: "object",
        properties: {
          sigma: {type: "number", title: "Sigma", default: 1.5, minimum: 0},
          mode: {type: "string", title: "Mode", enum: ["fast", "exact"]},
          label: {type: "string", title: "Label", default: "cells"},
          invert: {type: "boolean", title: "Invert", default: false},
        },
      },
      run: async (my) => { received.push(my.config); return "smoothed"; },
    });
  }
  received() { return received; }
}
api.export(new InputsOp());
</script>
"""


def test_an_ops_inputs_schema_becomes_a_form_that_runs_it(app: Page) -> None:
    page = app
    page.evaluate("(text) => pyjoy.installPlugin(text)", INPUTS_OP)
    form = page.locator(".op-form", has_text="Smooth")
    expect(form).to_be_visible()
    # The schema's titles label the fields, its defaults and enum fill them.
    expect(form.get_by_label("Sigma")).to_have_value("1.5")
    expect(form.get_by_label("Mode")).to_have_value("fast")
    expect(form.get_by_label("Label")).to_have_value("cells")
    expect(form.get_by_label("Invert")).not_to_be_checked()
    form.get_by_label("Sigma").fill("2.5")
    form.get_by_label("Mode").select_option("exact")
    form.get_by_label("Label").fill("nuclei")
    form.get_by_label("Invert").check()
    form.get_by_role("button", name="Run").click()
    expect(page.locator(".toast").filter(has_text="Smooth: smoothed")).to_be_visible()
    # What the op itself received, asked of the plugin.
    received = page.evaluate("pyjoy.getPlugin('Inputs Op').then(p => p.received())")
    assert received == [{"sigma": 2.5, "mode": "exact", "label": "nuclei", "invert": True}]


def test_links_people_copy_become_the_files_they_name(page: Page, modules_url: str) -> None:
    page.goto(modules_url + "blank.html")
    result = page.evaluate(
        """async () => {
             const { rawURL, isNewer } = await import("./modules/workbench/install.js");
             return {
               blob: rawURL("https://github.com/imjoy-team/imjoy-plugins/blob/master/repository/ImageAnnotator.imjoy.html"),
               raw: rawURL("https://github.com/o/r/raw/v1.2/dir/x.py"),
               gist: rawURL("https://gist.github.com/someone/0123abcd4567ef"),
               plain: rawURL("https://example.org/p/x.imjoy.html?v=2"),
               newer: [isNewer("0.2.0", "0.1.9"), isNewer("0.10.0", "0.9.1"), isNewer("1.0.0", "1.0.0"), isNewer("1.0.0", "1.0.1"), isNewer("1.0.1", "")],
             };
           }"""
    )
    assert result == {
        "blob": "https://raw.githubusercontent.com/imjoy-team/imjoy-plugins/master/repository/ImageAnnotator.imjoy.html",
        "raw": "https://raw.githubusercontent.com/o/r/v1.2/dir/x.py",
        "gist": "https://gist.githubusercontent.com/someone/0123abcd4567ef/raw",
        "plain": "https://example.org/p/x.imjoy.html?v=2",
        "newer": [True, True, False, False, True],
    }


def test_without_storage_the_app_says_so_and_works_in_memory(page: Page, base_url: str, repository_url: str) -> None:
    # As a browser that denies this site storage does: IndexedDB refuses to open.
    page.add_init_script("""
      Object.defineProperty(IDBFactory.prototype, "open", {
        value() { throw new DOMException("The user denied permission to access the database.", "SecurityError"); },
      });
    """)
    page.set_viewport_size({"width": 1280, "height": 800})
    open_app(page, base_url)
    expect(page.locator(".toast-error")).to_contain_text("Storage is unavailable")
    expect(page.locator(".toast-error")).to_contain_text("will not be kept")
    assert page.evaluate(f"pyjoy.installPlugin('{repository_url}hello_worker.imjoy.html').then(p => p.greet('memory'))") == "Hello, memory!"
    expect(item(page, "Hello Worker")).to_have_attribute("data-state", "running")


SETTINGS_AT_ONCE = """<config lang="json">
{"name": "Settings At Once", "type": "web-worker", "version": "0.1.0", "api_version": "0.1.8"}
</config>
<script lang="javascript">
api.export({
  // Ten settings saved at once: each is its own workspace change, all in flight together.
  async setMany() {
    await Promise.all([...Array(10).keys()].map((i) => api.setConfig(`key${i}`, `value${i}`)));
  },
  async readMany() {
    return Promise.all([...Array(10).keys()].map((i) => api.getConfig(`key${i}`)));
  },
});
</script>"""


def test_changes_made_at_once_are_all_kept(app: Page, base_url: str) -> None:
    app.evaluate("(text) => pyjoy.installPlugin(text).then(() => true)", SETTINGS_AT_ONCE)
    app.evaluate("pyjoy.getPlugin('Settings At Once').then((p) => p.setMany())")
    open_app(app, base_url)  # read back from IndexedDB, not from the page's memory
    expected = [f"value{i}" for i in range(10)]
    assert app.evaluate("pyjoy.getPlugin('Settings At Once').then((p) => p.readMany())") == expected


SETUP_COUNTER = """<config lang="json">
{"name": "Setup Counter", "type": "web-worker", "version": "0.1.0"}
</config>
<script lang="javascript">
api.export({
  async setup() { await api.log("setup " + Math.random()); },
  async run() { await api.log("run " + Math.random()); },
});
</script>
"""


def test_the_editors_run_starts_a_running_plugin_once(app: Page) -> None:
    page = app
    page.click("#new-plugin")
    editor = page.locator(".editor-window")
    expect(editor.locator(".cm-content")).to_be_visible()
    page.evaluate("(text) => document.querySelector('.editor-window').editor.setText(text)", SETUP_COUNTER)
    log = page.locator("#message-log li")
    setups, runs = log.filter(has_text="Setup Counter: setup "), log.filter(has_text="Setup Counter: run ")
    editor.get_by_role("button", name="Run").click()  # installs it, starts it, runs it
    expect(runs).to_have_count(1, timeout=30_000)
    expect(setups).to_have_count(1)
    # Run again, while it runs: its new version starts once (as Save alone does), then runs.
    editor.get_by_role("button", name="Run").click()
    expect(runs).to_have_count(2, timeout=30_000)
    expect(setups).to_have_count(2)  # each setup awaits its log, and a start's setup comes before run
