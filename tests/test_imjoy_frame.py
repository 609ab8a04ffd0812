"""ImJoy plugins' frame-side behaviour in real Chromium, with plugins written in ImJoy's
format as ImJoy's docs show them: config `dependencies` (installed after one question,
started first, a failing one named, a cycle refused), each kind of requirement, native
alert/confirm/prompt in a window plugin, and the camera and the microphone asked per plugin,
remembered per workspace and revoked from the plugin's menu, which ends a stream already
open; the microphone's sound reaches the plugin, within its bound."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import Page, expect

from conftest import repository_server, user_plugins

PLUGINS = Path(__file__).resolve().parent / "plugins"


def open_app(page: Page, url: str) -> Page:
    page.goto(url)
    page.wait_for_function("window.pyjoy && pyjoy.timings.workbenchReady", timeout=30_000)
    return page


def wait_until(page: Page, condition, timeout_s: float = 10) -> None:
    """Polls condition() (on what page events collected) while the page runs."""
    for _ in range(int(timeout_s * 10)):
        if condition():
            return
        page.wait_for_timeout(100)
    raise AssertionError("timed out")


@pytest.fixture(scope="module")
def deps_url(tmp_path_factory) -> Iterator[str]:
    """tests/plugins/imjoy_deps/ on its own origin, {{REPO}} in its files replaced by that origin's URL."""
    folder = tmp_path_factory.mktemp("imjoy_deps")
    with repository_server(folder) as url:
        for source in (PLUGINS / "imjoy_deps").iterdir():
            (folder / source.name).write_text(source.read_text().replace("{{REPO}}", url))
        yield url


# --- dependencies ---------------------------------------------------------------------


def test_a_shared_link_asks_once_naming_the_dependencies_installs_them_and_starts_them_first(page: Page, base_url: str, deps_url: str) -> None:
    setups: list[str] = []
    page.on("console", lambda message: message.text.startswith("setup: ") and setups.append(message.text[7:]))
    open_app(page, f"{base_url}?w=deps&plugin={deps_url}dep_user.imjoy.html")
    ask = page.locator("dialog", has_text="Install the window plugin Dep User")
    expect(ask).to_be_visible()
    # One question names the plugin and each dependency with its source.
    text = ask.inner_text()
    assert "Dep Base" in text and f"{deps_url}dep_base.imjoy.html" in text, text
    assert "Dep Second" in text and f"{deps_url}dep_second.imjoy.html" in text, text
    assert "2 other plugins" in text, text
    ask.get_by_role("button", name="OK").click()
    expect(page.locator(".plugin-window h2", has_text="Dep User")).to_be_visible()
    expect(page.locator("dialog")).to_have_count(0)
    assert sorted(p["name"] for p in user_plugins(page)) == ["Dep Base", "Dep Second", "Dep User"]
    wait_until(page, lambda: len(setups) >= 3)
    # Each after what it needs: Base before Second (which needs it), both before User.
    assert setups.index("Dep Base") < setups.index("Dep Second") < setups.index("Dep User"), setups

    # After a reload the plugin is stopped; starting it starts its dependencies first again.
    setups.clear()
    open_app(page, f"{base_url}?w=deps")
    page.evaluate("pyjoy.getPlugin('Dep User')")
    wait_until(page, lambda: len(setups) >= 3)
    assert setups[-1] == "Dep User" and {"Dep Base", "Dep Second"} <= set(setups[:-1]), setups


def test_two_plugins_started_at_once_share_the_start_of_their_common_dependency(page: Page, base_url: str, deps_url: str) -> None:
    # Dep User needs Dep Base and Dep Second; Dep Second needs Dep Base. Started at once (a
    # window restored at load while a plugin asks for another does this), each must wait for
    # the one start of Dep Base in progress, not start it a second time: the second start
    # replaced the first, whose window closed under a frame still loading, and that start
    # then waited forever (the stall once seen here).
    setups: list[str] = []
    page.on("console", lambda message: message.text.startswith("setup: ") and setups.append(message.text[7:]))
    open_app(page, f"{base_url}?w=shared-start")
    assert page.evaluate("url => pyjoy.installPlugin(url).then(() => 'installed', e => e.message)",
                         f"{deps_url}dep_user.imjoy.html") == "installed"
    wait_until(page, lambda: len(setups) >= 3)
    for name in ("Dep User", "Dep Second", "Dep Base"):
        assert page.evaluate("name => pyjoy.terminatePlugin(name)", name) is True
    setups.clear()
    outcome = page.evaluate("""() => Promise.race([
      Promise.all([pyjoy.getPlugin('Dep User'), pyjoy.getPlugin('Dep Second')]).then(() => 'started', (e) => e.message),
      new Promise((resolve) => setTimeout(() => resolve('still starting after 20 s'), 20_000)),
    ])""")
    assert outcome == "started"
    wait_until(page, lambda: len(setups) >= 3)
    page.wait_for_timeout(500)  # a second start of Dep Base would say so by now
    assert sorted(setups) == ["Dep Base", "Dep Second", "Dep User"], setups
    states = {p["name"]: p["state"] for p in user_plugins(page)}
    assert states == {"Dep Base": "running", "Dep Second": "running", "Dep User": "running"}, states


def test_refusing_the_question_installs_nothing(page: Page, base_url: str, deps_url: str) -> None:
    open_app(page, f"{base_url}?w=refused&plugin={deps_url}dep_user.imjoy.html")
    ask = page.locator("dialog", has_text="Install the window plugin Dep User")
    ask.get_by_role("button", name="Cancel").click()
    expect(page.locator("dialog")).to_have_count(0)
    assert user_plugins(page) == []


def test_a_plugin_installing_another_is_asked_about_its_dependencies(page: Page, base_url: str, deps_url: str) -> None:
    open_app(page, f"{base_url}?w=via-api")
    installer = f"""<config lang="json">{{"name": "Installer", "type": "web-worker", "version": "0.1.0", "api_version": "0.1.8"}}</config>
<script lang="javascript">
api.export({{ async setup() {{}}, async install() {{ const p = await api.installPlugin({{src: "{deps_url}dep_second.imjoy.html"}}); return await p.whoami(); }} }});
</script>"""
    page.evaluate("source => pyjoy.loadPlugin(source).then(p => { window.installer = p; })", installer)
    page.evaluate("() => { window.result = installer.install(); }")
    ask = page.locator("dialog", has_text="Installer wants to install the window plugin Dep Second")
    expect(ask).to_contain_text(f"Dep Base (window plugin from {deps_url}dep_base.imjoy.html")
    ask.get_by_role("button", name="Install").click()
    assert page.evaluate("window.result") == "Dep Second"
    assert sorted(p["name"] for p in user_plugins(page) if p["name"] != "Installer") == ["Dep Base", "Dep Second"]


def install_error(page: Page, url: str) -> str:
    return page.evaluate("url => pyjoy.installPlugin(url).then(() => 'installed', e => e.message)", url)


def test_a_dependency_that_fails_names_itself_and_the_plugin_that_needed_it(page: Page, base_url: str, deps_url: str) -> None:
    open_app(page, f"{base_url}?w=missing")
    message = install_error(page, f"{deps_url}dep_missing.imjoy.html")
    assert "Dep Missing needs the plugin \"Not In This Repository\"" in message, message
    assert f"no plugin named Not In This Repository in the repository {deps_url}manifest.imjoy.json" in message, message
    assert user_plugins(page) == []  # nothing installed, its other dependency neither


def test_a_dependency_that_cannot_be_fetched_is_named(page: Page, base_url: str, deps_url: str) -> None:
    open_app(page, f"{base_url}?w=unfetchable")
    source = f"""<config lang="json">{{"name": "Needs Gone", "type": "web-worker", "version": "0.1.0", "dependencies": ["{deps_url}gone.imjoy.html"]}}</config>
<script lang="javascript">api.export({{ setup() {{}} }});</script>"""
    message = page.evaluate("source => pyjoy.installPlugin(source).then(() => 'installed', e => e.message)", source)
    assert f'Needs Gone needs the plugin "{deps_url}gone.imjoy.html", which could not be installed: could not fetch {deps_url}gone.imjoy.html: 404' in message, message
    assert user_plugins(page) == []


def test_a_dependency_cycle_is_refused_not_followed(page: Page, base_url: str, deps_url: str) -> None:
    open_app(page, f"{base_url}?w=cycle")
    message = page.evaluate(
        "url => Promise.race([pyjoy.installPlugin(url).then(() => 'installed', e => e.message),"
        " new Promise(r => setTimeout(() => r('hung'), 15000))])",
        f"{deps_url}cycle_a.imjoy.html",
    )
    assert "dependency cycle: Cycle A needs Cycle B needs Cycle A" in message, message
    assert user_plugins(page) == []


# --- native alert, confirm and prompt -------------------------------------------------


def load_window_plugin(page: Page, name: str) -> None:
    page.evaluate("source => pyjoy.loadPlugin(source).then(p => { window.plugin = p; })", (PLUGINS / name).read_text())


def test_native_alert_confirm_prompt_in_a_window_plugin(page: Page, base_url: str) -> None:
    open_app(page, f"{base_url}?w=dialogs")
    load_window_plugin(page, "hostile/frameside_dialogs.imjoy.html")
    seen: list[tuple[str, str, str]] = []

    def answer(dialog) -> None:
        seen.append((dialog.type, dialog.message, dialog.default_value))
        dialog.accept("Ada") if dialog.type == "prompt" else dialog.accept()

    page.on("dialog", answer)
    assert page.evaluate("plugin.ask()") == {"ok": True, "name": "Ada"}
    assert seen == [("alert", "Hello from a window plugin", ""), ("confirm", "Proceed?", ""), ("prompt", "Your name?", "nobody")]
    # The page itself is unchanged and answers.
    assert page.evaluate("pyjoy.runPython('1+1')") == 2


def test_native_dialogs_in_a_loop_are_refused_after_three(page: Page, base_url: str) -> None:
    open_app(page, f"{base_url}?w=dialog-flood")
    load_window_plugin(page, "hostile/frameside_dialogs.imjoy.html")
    seen: list[str] = []
    page.on("dialog", lambda dialog: (seen.append(dialog.message), dialog.accept()))
    # Each accepted at once: without the bound all 50 would be shown, one after another.
    answers = page.evaluate("Promise.race([plugin.flood(50), new Promise(r => setTimeout(() => r('hung'), 20000))])")
    assert answers == [True, True, True] + [False] * 47, answers
    assert seen == ["flood 0", "flood 1", "flood 2"]


# --- requirements ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def requirements_url() -> Iterator[tuple[str, list[str]]]:
    """tests/plugins/imjoy_requirements/ on its own origin, and the paths it was asked for."""
    import functools
    import http.server
    import threading

    from conftest import _RepositoryHandler

    asked: list[str] = []

    class Recording(_RepositoryHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            super().do_GET()

    handler = functools.partial(Recording, directory=str(PLUGINS / "imjoy_requirements"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", asked
    finally:
        server.shutdown()
        server.server_close()


def requirements_plugin(kind: str, requirements: list[str]) -> str:
    window = '<window><p id="probe">styled?</p></window>' if kind == "window" else ""
    return f"""<config lang="json">
{{"name": "Requirements {kind}", "type": "{kind}", "version": "0.1.0", "api_version": "0.1.8",
 "requirements": {json.dumps(requirements)}}}
</config>
{window}
<script lang="javascript">
api.export({{
  async setup() {{}},
  state() {{
    const probe = self.document && document.getElementById("probe");
    return {{ classic: self.classicLoaded ?? 0, module: self.moduleLoaded ?? null, cachedRan: self.cachedRan ?? false,
             color: probe ? getComputedStyle(probe).color : null }};
  }},
}});
</script>"""


@pytest.mark.parametrize("kind", ["window", "web-worker"])
def test_each_requirement_kind_does_what_imjoy_documented(page: Page, base_url: str, requirements_url, kind: str) -> None:
    url, asked = requirements_url
    asked.clear()
    requirements = [f"js:{url}classic.js", f"{url}classic.js?again", f"mjs:{url}module.mjs", f"cache:{url}cached.js"]
    if kind == "window":
        requirements.append(f"css:{url}style.css")
    open_app(page, f"{base_url}?w=requirements-{kind}")
    state = page.evaluate("source => pyjoy.loadPlugin(source).then(p => p.state())", requirements_plugin(kind, requirements))
    # js: and an unprefixed .js ran as classic scripts, mjs: as a module (import.meta exists
    # only there), css: styles the window; cache: was fetched but never run.
    assert state == {"classic": 2, "module": "string", "cachedRan": False,
                     "color": "rgb(1, 2, 3)" if kind == "window" else None}, state
    assert "/cached.js" in asked, asked


def test_a_requirement_that_cannot_load_names_itself(page: Page, base_url: str, requirements_url) -> None:
    url, _ = requirements_url
    open_app(page, f"{base_url}?w=requirements-missing")
    message = page.evaluate("source => pyjoy.loadPlugin(source).then(() => 'loaded', e => e.message)",
                            requirements_plugin("web-worker", [f"mjs:{url}missing.mjs"]))
    assert f"requirement mjs:{url}missing.mjs could not be loaded" in message, message


# --- the camera, asked per plugin and remembered per workspace ------------------------

CAMERA_PLUGIN = """<config lang="json">
{"name": "Camera Peeker", "type": "window", "version": "0.1.0", "api_version": "0.1.8", "permissions": ["camera"]}
</config>
<window><video id="video" muted playsinline></video></window>
<script lang="javascript">
class CameraPeeker {
  async setup() {}
  async peek() {
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ video: true });
      stream.getTracks().forEach((track) => track.stop());
      return "opened";
    } catch (error) {
      return error.name;
    }
  }
}
api.export(new CameraPeeker());
</script>"""

QUESTION = "Plugin Camera Peeker wants to use your camera"


@pytest.fixture
def camera_page(playwright) -> Iterator[Page]:
    from pyjoy.devtools import launch_options

    browser = playwright.chromium.launch(**launch_options(args=["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]))
    yield browser.new_context().new_page()
    browser.close()


def start_peek(page: Page) -> None:
    page.evaluate("() => { window.peeked = pyjoy.getPlugin('Camera Peeker').then(p => p.peek()); }")


def peek_without_question(page: Page) -> str:
    result = page.evaluate("Promise.race([pyjoy.getPlugin('Camera Peeker').then(p => p.peek()),"
                           " new Promise(r => setTimeout(() => r('no answer: a question?'), 10000))])")
    expect(page.locator("dialog")).to_have_count(0)
    return result


def test_the_camera_is_asked_once_remembered_after_reload_and_revoked_from_the_menu(camera_page: Page, base_url: str) -> None:
    page = camera_page
    open_app(page, f"{base_url}?w=camera")
    page.evaluate("source => pyjoy.installPlugin(source)", CAMERA_PLUGIN)
    start_peek(page)
    page.locator("dialog", has_text=QUESTION).get_by_role("button", name="Allow").click()
    assert page.evaluate("window.peeked") == "opened"
    assert peek_without_question(page) == "opened"  # remembered

    open_app(page, f"{base_url}?w=camera")  # a new visit: still remembered
    assert peek_without_question(page) == "opened"

    # Revoked in the plugin's menu: the next use asks again; "Cancel" is a NotAllowedError,
    # remembered in turn.
    page.set_viewport_size({"width": 1280, "height": 800})
    revoke = page.locator('.plugin-item[data-name="Camera Peeker"]').get_by_role("button", name="Revoke camera")
    revoke.click()
    expect(revoke).to_have_count(0)  # the answer is forgotten: nothing left to revoke
    start_peek(page)
    page.locator("dialog", has_text=QUESTION).get_by_role("button", name="Cancel").click()
    assert page.evaluate("window.peeked") == "NotAllowedError"
    assert peek_without_question(page) == "NotAllowedError"
    expect(page.locator('.plugin-item[data-name="Camera Peeker"]').get_by_role("button", name="Ask about camera again")).to_be_visible()

    # Another workspace keeps its own answers: asked there afresh.
    open_app(page, f"{base_url}?w=camera-elsewhere")
    page.evaluate("source => pyjoy.installPlugin(source)", CAMERA_PLUGIN)
    start_peek(page)
    expect(page.locator("dialog", has_text=QUESTION)).to_be_visible()


# --- the microphone, and revoking what is open ------------------------------------------

MEDIA_PLUGIN = (PLUGINS / "live" / "imjoy_media.imjoy.html").read_text()
DEVICES = {"audio": "microphone", "video": "camera"}

# The page's own getUserMedia, watched: the streams it opened for the relay, so a test sees
# the devices themselves stop, not only what the plugin is told.
WATCH_DEVICES = """
window.deviceStreams = [];
const open = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
navigator.mediaDevices.getUserMedia = async (constraints) => {
  const stream = await open(constraints);
  deviceStreams.push(stream);
  return stream;
};
"""


def media_call(page: Page, call: str, timeout_ms: int = 15_000):
    return page.evaluate(f"Promise.race([pyjoy.getPlugin('Media Keeper').then(p => p.{call}),"
                         f" new Promise(r => setTimeout(() => r('no answer'), {timeout_ms}))])")


def open_media(page: Page, base_url: str, workspace: str, kind: str, answer: str) -> str:
    page.add_init_script(WATCH_DEVICES)
    open_app(page, f"{base_url}?w={workspace}")
    page.evaluate("source => pyjoy.installPlugin(source)", MEDIA_PLUGIN)
    page.evaluate(f"() => {{ window.opened = pyjoy.getPlugin('Media Keeper').then(p => p.open('{kind}')); }}")
    page.locator("dialog", has_text=f"Plugin Media Keeper wants to use your {DEVICES[kind]}").get_by_role("button", name=answer).click()
    return page.evaluate("window.opened")


def test_the_microphone_is_asked_for_and_the_plugin_hears_it(camera_page: Page, base_url: str) -> None:
    page = camera_page
    assert open_media(page, base_url, "microphone", "audio", "Allow") == "audio"
    heard = media_call(page, "listen(5)")
    # Chromium's fake microphone beeps: silence would be a peak of 0.
    assert heard["peak"] > 0.01 and heard["samples"] > 0, heard
    assert heard["sampleRate"] == page.evaluate("deviceStreams[0].getAudioTracks()[0].getSettings().sampleRate"), heard
    # Only the microphone was opened on the page, nothing else.
    assert page.evaluate("deviceStreams.map(s => s.getTracks().map(t => t.kind))") == [["audio"]]


def test_a_refused_microphone_is_a_not_allowed_error_and_remembered(camera_page: Page, base_url: str) -> None:
    page = camera_page
    assert open_media(page, base_url, "microphone-refused", "audio", "Cancel") == "NotAllowedError"
    assert media_call(page, "open('audio')", 10_000) == "NotAllowedError"  # remembered: no question
    expect(page.locator("dialog")).to_have_count(0)
    assert page.evaluate("deviceStreams.length") == 0
    page.set_viewport_size({"width": 1280, "height": 800})
    expect(page.locator('.plugin-item[data-name="Media Keeper"]').get_by_role("button", name="Ask about microphone again")).to_be_visible()


def test_a_plugin_without_the_permission_gets_no_microphone_and_no_question(camera_page: Page, base_url: str) -> None:
    page = camera_page
    page.add_init_script(WATCH_DEVICES)
    open_app(page, f"{base_url}?w=microphone-unasked")
    page.evaluate("source => pyjoy.installPlugin(source)", MEDIA_PLUGIN.replace('"permissions": ["camera", "microphone"]', '"permissions": ["camera"]'))
    assert media_call(page, "open('audio')", 10_000) == "NotAllowedError"
    expect(page.locator("dialog")).to_have_count(0)
    assert page.evaluate("deviceStreams.length") == 0


@pytest.mark.parametrize("kind", ["audio", "video"])
def test_revoking_ends_a_stream_already_open(camera_page: Page, base_url: str, kind: str) -> None:
    page = camera_page
    assert open_media(page, base_url, f"revoke-{kind}", kind, "Allow") == kind
    assert media_call(page, f"state('{kind}')") == {"ended": False, "readyState": "live"}
    page.set_viewport_size({"width": 1280, "height": 800})
    page.locator('.plugin-item[data-name="Media Keeper"]').get_by_role("button", name=f"Revoke {DEVICES[kind]}").click()
    # The plugin's track ended as a device's does ("ended" fired), and the page's device stopped.
    states = [media_call(page, f"state('{kind}')")]
    while not states[-1]["ended"] and len(states) < 50:
        page.wait_for_timeout(100)
        states.append(media_call(page, f"state('{kind}')"))
    assert states[-1] == {"ended": True, "readyState": "ended"}, states
    assert page.evaluate("deviceStreams.flatMap(s => s.getTracks().map(t => t.readyState))") == ["ended"]
    # Asked again on the next use.
    page.evaluate(f"() => {{ window.opened = pyjoy.getPlugin('Media Keeper').then(p => p.open('{kind}')); }}")
    expect(page.locator("dialog", has_text=f"Plugin Media Keeper wants to use your {DEVICES[kind]}")).to_be_visible()


def test_a_plugin_that_never_takes_its_sound_gets_no_more_than_the_bound(camera_page: Page, base_url: str) -> None:
    page = camera_page
    open_app(page, f"{base_url}?w=microphone-never-heard")
    page.evaluate("source => pyjoy.installPlugin(source)", (PLUGINS / "hostile" / "media_never_heard.imjoy.html").read_text())
    page.evaluate("() => { window.opened = pyjoy.getPlugin('Media Never Heard').then(p => p.open()); }")
    page.locator("dialog", has_text="Plugin Media Never Heard wants to use your microphone").get_by_role("button", name="Allow").click()
    assert page.evaluate("window.opened") == "opened"
    page.wait_for_timeout(2000)  # about 200 chunks of 10 ms are captured meanwhile
    # AUDIO_IN_FLIGHT (app/plugins/media.js) chunks reached it, and not one more.
    assert page.evaluate("pyjoy.getPlugin('Media Never Heard').then(p => p.chunks())") == 16
    assert page.evaluate("Promise.race([pyjoy.runPython('1+1'), new Promise(r => setTimeout(() => r('hung'), 5000))])") == 2


def test_one_stream_with_both_asks_for_each_and_revoking_one_ends_only_its_track(camera_page: Page, base_url: str) -> None:
    page = camera_page
    page.add_init_script(WATCH_DEVICES)
    open_app(page, f"{base_url}?w=media-both")
    page.evaluate("source => pyjoy.installPlugin(source)", MEDIA_PLUGIN)
    page.evaluate("() => { window.opened = pyjoy.getPlugin('Media Keeper').then(p => p.open('both')); }")
    for device in ("camera", "microphone"):
        page.locator("dialog", has_text=f"Plugin Media Keeper wants to use your {device}").get_by_role("button", name="Allow").click()
    assert page.evaluate("window.opened") == "audio+video"
    page.set_viewport_size({"width": 1280, "height": 800})
    page.locator('.plugin-item[data-name="Media Keeper"]').get_by_role("button", name="Revoke microphone").click()
    states = [media_call(page, "state('audio')")]
    while not states[-1]["ended"] and len(states) < 50:
        page.wait_for_timeout(100)
        states.append(media_call(page, "state('audio')"))
    assert states[-1] == {"ended": True, "readyState": "ended"}, states
    assert media_call(page, "state('video')") == {"ended": False, "readyState": "live"}
    device = page.evaluate("Object.fromEntries(deviceStreams[0].getTracks().map(t => [t.kind, t.readyState]))")
    assert device == {"audio": "ended", "video": "live"}, device
