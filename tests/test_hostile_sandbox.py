"""Hostile plugins against the sandboxes (tests/plugins/hostile/sandbox_*), in real Chromium:
a worker plugin that exhausts memory, window plugins whose frames die, forged crash reports,
and requests that try to climb out of the asset port's folders.

After a sandbox frame's process dies Playwright fires page.on("crash") and treats the whole
page as crashed (page.evaluate fails), although only the frame died; these tests then talk
to the page over their own CDP session (Runtime.evaluate), once Inspector.targetCrashed has
told the page's own crash apart (TESTING.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import Browser, Page, Playwright
from playwright.sync_api import Error as PlaywrightError

from pyjoy.devtools import hostile_plugin, launch_options

HOSTILE = Path(__file__).parent / "plugins" / "hostile"


def source(name: str) -> str:
    return (HOSTILE / name).read_text()


class Watched:
    """A page with the app, and what happened to it, seen over CDP (alive after a frame's crash)."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.frame_crashes = 0  # page.on("crash"): the page or one of its out-of-process frames
        self.page_crashes = 0  # Inspector.targetCrashed: the page's own renderer
        page.on("crash", lambda *_: setattr(self, "frame_crashes", self.frame_crashes + 1))
        self.cdp = page.context.new_cdp_session(page)
        self.cdp.on("Inspector.targetCrashed", lambda *_: setattr(self, "page_crashes", self.page_crashes + 1))
        self.cdp.send("Inspector.enable")
        page.goto(base_url)
        self.eval("pyjoy.ready", timeout_ms=60_000)

    def eval(self, expression: str, timeout_ms: int = 5_000):
        """Evaluates an expression (awaited) in the page, or fails after timeout_ms."""
        race = (f"Promise.race([Promise.resolve().then(() => ({expression})), new Promise((_, reject) => "
                f"setTimeout(() => reject(new Error('no answer within {timeout_ms} ms')), {timeout_ms}))])")
        if not self.frame_crashes:
            try:
                return self.page.evaluate(race)
            except PlaywrightError:
                if not self.frame_crashes:
                    raise
        # Playwright holds the page crashed once any of its frames has. A crashed page never
        # answers over CDP either, so first ask the browser (which answers, and delivers
        # Inspector.targetCrashed meanwhile) whether it was the page itself.
        self.cdp.send("Target.getTargets")
        if self.page_crashes:
            raise AssertionError(f"the page itself crashed (while evaluating {expression[:80]})")
        reply = self.cdp.send("Runtime.evaluate", {"expression": race, "awaitPromise": True, "returnByValue": True})
        if "exceptionDetails" in reply:
            raise AssertionError(f"{expression}: {reply['exceptionDetails'].get('exception', {}).get('description')}")
        return reply["result"].get("value")

    def load(self, name: str) -> None:
        self.eval(f"pyjoy.loadPlugin({json.dumps(source(name))}).then(() => true)", timeout_ms=60_000)

    def state(self, name: str) -> dict:
        return self.eval(f"pyjoy.plugins().then(list => list.find(p => p.name === {json.dumps(name)}) ?? null)")

    def wait_for_state(self, name: str, state: str, timeout_s: float = 20) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            described = self.state(name)
            if described and described["state"] == state:
                return described
            time.sleep(0.1)
        raise AssertionError(f"{name} is {self.state(name)}, not {state}, after {timeout_s} s")

    def ping(self, name: str) -> str:
        return self.eval(f"pyjoy.getPlugin({json.dumps(name)}).then(p => p.ping())")

    def sandbox_frames(self) -> int:
        return self.eval("document.querySelectorAll('iframe.plugin-frame, iframe.plugin-worker-frame').length")

    def responsive(self) -> None:
        assert self.eval("pyjoy.runPython('1+1')", timeout_ms=10_000) == 2
        assert self.eval("({}).x === undefined")


@pytest.fixture
def watched(browser: Browser, base_url: str):
    context = browser.new_context()
    yield Watched(context.new_page(), base_url)
    context.close()


def crash_sandbox_process(browser: Browser) -> None:
    """Crashes the renderer of the plugin frames (Page.crash on a frame's own target)."""
    cdp = browser.new_browser_cdp_session()
    frames = [t for t in cdp.send("Target.getTargets")["targetInfos"] if t["type"] == "iframe" and t["url"] == "about:srcdoc"]
    assert frames, "no out-of-process plugin frame to crash"
    session = cdp.send("Target.attachToTarget", {"targetId": frames[0]["targetId"], "flatten": False})["sessionId"]
    cdp.send("Target.sendMessageToTarget", {"sessionId": session, "message": json.dumps({"id": 1, "method": "Page.crash"})})


def test_a_worker_plugin_that_exhausts_memory_takes_only_itself_down(playwright: Playwright, base_url: str) -> None:
    # A V8 heap capped at 256 MB makes the same death quick and cheap (V8 ends the whole
    # process when a heap is full, whatever its size); without isolation it was the page's.
    browser = playwright.chromium.launch(**launch_options(args=["--js-flags=--max-old-space-size=256"]))
    try:
        app = Watched(browser.new_page(), base_url)
        app.load("sandbox_victim_python.imjoy.html")
        app.load("sandbox_oom_worker.imjoy.html")
        assert app.ping("Sandbox OOM Worker") == "pong"
        frames_before = app.sandbox_frames()
        app.eval("""pyjoy.getPlugin('Sandbox OOM Worker').then(p => {
                      window.explosion = p.explode().then(() => 'answered', (e) => ({message: e.message, at: performance.now()}));
                    })""")
        crashed = app.wait_for_state("Sandbox OOM Worker", "crashed", timeout_s=60)
        assert app.frame_crashes >= 1, "the plugin's process never died: the test did not test anything"
        assert app.page_crashes == 0, "the page itself crashed"
        assert "crashed" in crashed["error"] or "died" in crashed["error"], crashed
        # The call in flight failed with the crash, at once.
        outcome = app.eval("window.explosion")
        assert isinstance(outcome, dict) and "crashed" in outcome["message"], outcome
        # Really ended: its hidden frame is gone.
        assert app.sandbox_frames() == frames_before - 1
        # The page and the other plugin go on.
        app.responsive()
        assert app.ping("Sandbox Victim Python") == "pong"
        assert app.state("Sandbox Victim Python")["state"] == "running"
        # The crashed plugin can be loaded again.
        app.load("sandbox_oom_worker.imjoy.html")
        assert app.ping("Sandbox OOM Worker") == "pong"
    finally:
        browser.close()


def test_a_window_plugin_whose_process_crashes_is_shown_crashed_and_its_calls_fail(watched: Watched, browser: Browser) -> None:
    app = watched
    app.load("sandbox_victim_python.imjoy.html")
    app.load("sandbox_dying_window.imjoy.html")
    app.eval("pyjoy.getPlugin('Sandbox Dying Window').then(p => { window.waiting = p.wait().then(() => 'answered', e => e.message); })")
    assert app.eval("Promise.race([window.waiting, new Promise(r => setTimeout(() => r('pending'), 300))])") == "pending"
    crash_sandbox_process(browser)
    crashed = app.wait_for_state("Sandbox Dying Window", "crashed", timeout_s=5)
    assert "died" in crashed["error"], crashed
    assert "crashed" in app.eval("window.waiting", timeout_ms=2_000)
    assert app.page_crashes == 0 and app.frame_crashes >= 1
    assert app.sandbox_frames() == 0  # ended: its frame is removed
    assert "crashed" in app.eval("document.querySelector('.plugin-window .plugin-crashed')?.textContent ?? ''")
    app.responsive()
    assert app.ping("Sandbox Victim Python") == "pong"


def test_a_window_plugin_that_navigates_its_frame_away_is_crashed_at_once(watched: Watched) -> None:
    app = watched
    app.load("sandbox_victim_window.imjoy.html")
    app.load("sandbox_dying_window.imjoy.html")
    assert app.sandbox_frames() == 2
    app.eval("pyjoy.getPlugin('Sandbox Dying Window').then(p => { window.waiting = p.wait().then(() => 'answered', e => e.message); })")
    assert app.eval("pyjoy.getPlugin('Sandbox Dying Window').then(p => p.leave())") == "leaving"
    crashed = app.wait_for_state("Sandbox Dying Window", "crashed", timeout_s=5)
    assert "navigated away" in crashed["error"], crashed
    assert "navigated away" in app.eval("window.waiting", timeout_ms=2_000)
    assert app.sandbox_frames() == 1
    assert app.ping("Sandbox Victim Window") == "pong"
    assert app.frame_crashes == 0 and app.page_crashes == 0


def test_forged_crash_reports_change_no_other_plugin(watched: Watched) -> None:
    app = watched
    for name in ("sandbox_victim_window", "sandbox_victim_python", "sandbox_forger_window", "sandbox_forger_python"):
        app.load(f"{name}.imjoy.html")
    victims = ("Sandbox Victim Window", "Sandbox Victim Python")
    ports = app.eval("pyjoy.getPlugin('Sandbox Forger Window').then(p => p.forge())")
    assert ports >= 2, "the forger found none of its own ports to forge on"
    # The Python forger's report travels on its own status port: it ends the forger itself.
    app.eval("pyjoy.getPlugin('Sandbox Forger Python').then(p => p.forge()).catch(e => e.message)")
    forger = app.wait_for_state("Sandbox Forger Python", "crashed", timeout_s=10)
    assert "forged" in forger["error"], forger
    time.sleep(1)  # the liveness watch has looked several times
    for victim in victims:
        described = app.state(victim)
        assert (described["state"], described["error"]) == ("running", None), described
        assert app.ping(victim) == "pong"
    assert app.state("Sandbox Forger Window")["state"] == "running"
    app.responsive()


def test_a_plugin_reported_crashed_is_really_ended(watched: Watched) -> None:
    app = watched
    app.load("sandbox_forger_python.imjoy.html")
    # The host boots a spare Python worker once a web-python plugin has loaded: let it come.
    settled, deadline = worker_ids(app), time.monotonic() + 8
    while time.monotonic() < deadline:
        time.sleep(1)
        now = worker_ids(app)
        if now == settled and len(now) >= 3:  # the console's, the forger's and the spare
            break
        settled = now
    app.eval("pyjoy.getPlugin('Sandbox Forger Python').then(p => p.forge()).catch(e => e.message)")
    app.wait_for_state("Sandbox Forger Python", "crashed", timeout_s=10)
    deadline = time.monotonic() + 5
    while len(worker_ids(app)) >= len(settled) and time.monotonic() < deadline:
        time.sleep(0.1)
    after = worker_ids(app)
    assert after < settled and len(settled - after) == 1, f"the crashed plugin's worker still runs: {settled} -> {after}"


def worker_ids(app: Watched) -> set[str]:
    """The dedicated workers alive in the page (CDP targets): the console's, plugins', spares."""
    targets = app.cdp.send("Target.getTargets")["targetInfos"]
    return {target["targetId"] for target in targets if target["type"] == "worker"}


# -- the asset port ----------------------------------------------------------------------

WAYS_OUT = [
    "pyodide/%2e%2e/index.html",
    "pyodide/%2E%2E/%2E%2E/index.html",
    "assets/..%2Fsw.js",
    "assets/..%2fsw.js",
    "assets%2F..%2Fsw.js",
    "assets/%2e%2e%2fprecache-manifest.json",
    "assets/.%2e/sw.js",
    "plugins\\..\\precache-manifest.json",
    "plugins/..%5Cprecache-manifest.json",
    "plugins/%2e%2e%5c%2e%2e%5cindex.html",
    "assets/%252e%252e/sw.js",
    "assets/..%252Fsw.js",
    "assets/%25252e%25252e/sw.js",
    "vendor/..%00/index.html",
    "models.json/../index.html",
    "models.json%2F..%2Findex.html",
    "assets/%2F..%2Fsw.js",
    "index.html",
    "sw.js",
    "precache-manifest.json",
    "",
]


@pytest.mark.parametrize("kind", ["window", "web-worker"])
def test_the_asset_port_refuses_every_encoding_of_a_way_out(watched: Watched, base_url: str, dist: Path, kind: str) -> None:
    app = watched
    name = f"Sandbox Asset Prober ({kind})"
    app.eval(f"pyjoy.loadPlugin({json.dumps(hostile_plugin('sandbox_asset_prober.imjoy.html', type=kind, name=name))}).then(() => true)",
             timeout_ms=60_000)
    allowed = ["models.json", "plugins/manifest.imjoy.json"]
    urls = [base_url + path for path in WAYS_OUT + allowed]
    replies = app.eval(f"pyjoy.getPlugin({json.dumps(name)}).then(p => p.probe({json.dumps(base_url + 'models.json')}, "
                       f"{json.dumps(urls)}))", timeout_ms=20_000)
    # The reference: the files outside the allowed folders, by content.
    outside = {hashlib.sha256(path.read_bytes()).hexdigest(): path.name
               for path in dist.iterdir() if path.is_file() and path.name != "models.json"}
    leaked = {url: outside[hashlib.sha256(reply["text"].encode()).hexdigest()]
              for url, reply in replies.items() if "text" in reply and hashlib.sha256(reply["text"].encode()).hexdigest() in outside}
    assert not leaked, f"files outside the allowed folders came back: {leaked}"
    for path in WAYS_OUT:
        reply = replies[base_url + path]
        assert "error" in reply, f"{path!r} was not refused: {reply.get('status')}"
        assert "not" in reply["error"] or "segment" in reply["error"] or "encod" in reply["error"] or "backslash" in reply["error"], reply
    for path in allowed:
        reply = replies[base_url + path]
        assert reply.get("status") == 200 and reply["text"] == (dist / path).read_text(), (path, reply.get("error"))


def sri(data: bytes) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_the_asset_port_checks_the_integrity_a_request_names(watched: Watched, base_url: str, dist: Path) -> None:
    """The page hashes what it answers against the integrity a request names (fetch()'s own
    option, used before, let a malformed hash through and said only "Failed to fetch" of a
    wrong one); the snapshot it keeps from the console's Python (python/kept-snapshot.js)
    goes out only against the build's hash, and is the build's file."""
    app = watched
    app.eval("pyjoy.ready.then(() => true)", timeout_ms=60_000)  # the console has handed its snapshot over
    name = "Sandbox Asset Prober (integrity)"
    app.eval(f"pyjoy.loadPlugin({json.dumps(hostile_plugin('sandbox_asset_prober.imjoy.html', name=name))}).then(() => true)",
             timeout_ms=60_000)
    build = json.loads(re.search(r'<script type="application/json"[^>]*>(.*?)</script>', (dist / "index.html").read_text(), re.S).group(1))
    models, snapshot = (dist / "models.json").read_bytes(), (dist / build["pyodide"]["snapshotURL"]).read_bytes()
    models_url, snapshot_url = base_url + "models.json", base_url + build["pyodide"]["snapshotURL"]
    wrong = sri(b"not the build's file")
    assert build["pyodide"]["snapshotIntegrity"] == sri(snapshot)  # the reference: the file itself
    cases = [(models_url, sri(models)), (models_url, wrong), (models_url, "md5-AAAA"), (models_url, "sha256-short"),
             (snapshot_url, sri(snapshot)), (snapshot_url, wrong)]
    urls, integrities = [url for url, _ in cases], [integrity for _, integrity in cases]
    replies = app.eval(f"pyjoy.getPlugin({json.dumps(name)}).then(p => p.probe({json.dumps(models_url)}, "
                       f"{json.dumps(urls)}, {json.dumps(integrities)}))", timeout_ms=60_000)
    assert replies[models_url + sri(models)] == {"status": 200, "text": models.decode()}
    assert "models.json is damaged" in replies[models_url + wrong].get("error", ""), replies[models_url + wrong]
    for malformed in ("md5-AAAA", "sha256-short"):
        assert "integrity should be one" in replies[models_url + malformed].get("error", ""), replies[models_url + malformed]
    data = np.frombuffer(snapshot, dtype=np.uint8).astype(np.uint64)
    checksum = int((data * (np.arange(len(data), dtype=np.uint64) % 251 + 1)).sum() % 2**32)
    assert replies[snapshot_url + sri(snapshot)] == {"status": 200, "bytes": len(snapshot), "checksum": checksum}
    assert "is damaged" in replies[snapshot_url + wrong].get("error", ""), replies[snapshot_url + wrong]
