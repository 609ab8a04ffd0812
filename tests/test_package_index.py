"""The package index set at run time (the workspace menu's "Package index…",
app/workbench/package-index.js): a site without internet points PyJoy at its own mirror.
A build whose index is a closed port of 127.0.0.1 gets, in its lock, one package only a
mirror (a second server, on another port, with CORS) holds; the lock's sha256 is the
wheel's, as a mirror of the build's index serves the same wheels. Set in the dialog, the
mirror serves a web-python plugin's requirement and the console's packages, and, once
fetched, offline too; a wrong URL is refused saying why; a closed mirror and a wheel that
is not the build's are errors naming the mirror; reset goes back to the build's; a plugin
cannot change it."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from conftest import run_build, wait_for_service_worker
from pyjoy.devtools import free_port, served
from pyodide_dist import make_wheel

PROBE = "pyjoy_mirror_probe"
HOSTILE = Path(__file__).parent / "plugins" / "hostile"

PLUGIN = """<config lang="json">{"name": "Mirror User", "type": "web-python", "version": "0.1.0",
  "api_version": "0.1.8", "requirements": ["pyjoy-mirror-probe"]}</config>
<script lang="python">
from imjoy import api
import pyjoy_mirror_probe

class Plugin:
    def value(self):
        return pyjoy_mirror_probe.VALUE

api.export(Plugin())
</script>"""


class _MirrorHandler(http.server.SimpleHTTPRequestHandler):
    """A mirror as a static server with CORS; it notes each path asked for."""

    asked: list[str]

    def end_headers(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        super().end_headers()

    def do_GET(self) -> None:
        self.asked.append(self.path)
        super().do_GET()

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def mirror(folder: Path) -> Iterator[tuple[str, list[str]]]:
    """Serves folder on its own port; yields (its URL, the paths asked for)."""
    asked: list[str] = []
    handler = functools.partial(type("Handler", (_MirrorHandler,), {"asked": asked}), directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/full/", asked
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A build whose index nothing answers, its lock naming PROBE at that index; the
    mirror's folder holding PROBE's wheel; a second folder with another wheel of that name."""
    root = tmp_path_factory.mktemp("package_index")
    index = f"http://127.0.0.1:{free_port()}/build-index/"
    out = root / "site"
    result = run_build("--out", str(out), "--package-index", index)
    assert result.returncode == 0, result.stderr
    for folder in ("mirror", "wrong"):
        (root / folder / "full").mkdir(parents=True)
    wheel = make_wheel((root / "mirror" / "full").resolve(), PROBE, "1.0", "VALUE = 'from the mirror'\n")
    make_wheel((root / "wrong" / "full").resolve(), PROBE, "1.0", "VALUE = 'not the build wheel'\n")
    add_to_lock(out, {
        "name": "pyjoy-mirror-probe", "version": "1.0", "file_name": index + wheel.name, "install_dir": "site",
        "sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(), "package_type": "package",
        "imports": [PROBE], "depends": [], "unvendored_tests": False,
    })
    with served(out) as url:
        yield {"url": url, "index": index, "mirror": root / "mirror", "wrong": root / "wrong"}


def add_to_lock(site: Path, entry: dict) -> None:
    """Adds entry to the site's served lock, and its new hash to the service worker's list."""
    [lock_path] = (site / "assets").glob("pyodide-lock-*.json")
    lock = json.loads(lock_path.read_text())
    lock["packages"][entry["name"]] = entry
    text = json.dumps(lock)
    lock_path.write_text(text)
    lock_path.with_name(lock_path.name + ".gz").unlink()
    import base64

    integrity = "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
    sw = site / "sw.js"
    source = sw.read_text()
    at = source.index(f'"assets/{lock_path.name}"')
    old = re.search(r'"integrity": "([^"]+)"', source[at:]).group(1)
    sw.write_text(source[:at] + source[at:].replace(old, integrity, 1))
    (site / "sw.js.gz").unlink()


def set_in_dialog(page: Page, value: str) -> None:
    page.locator("#workspace-menu-button").click()
    page.get_by_role("menuitem", name="Package index…").click()
    dialog = page.locator("dialog[open]")
    expect(dialog.locator("h2")).to_have_text("Package index")
    dialog.locator("input").fill(value)
    dialog.get_by_role("button", name="OK").click()


def load(page: Page) -> str:
    return page.evaluate("""(text) => pyjoy.loadPlugin(text).then((p) => p.value(), (e) => `${e.code}: ${e.message}`)""", PLUGIN)


def open_app(page: Page, url: str) -> None:
    page.goto(url)
    page.wait_for_function("window.pyjoy && pyjoy.timings.workbenchReady", timeout=60_000)


def test_a_mirror_set_in_the_dialog_serves_plugins_and_the_console_then_offline(
        profile_context: BrowserContext, site: dict) -> None:
    page = profile_context.new_page()
    open_app(page, site["url"])
    wait_for_service_worker(page)
    with mirror(site["mirror"]) as (url, asked):
        # The dialog shows the build's index before anything is set.
        page.locator("#workspace-menu-button").click()
        page.get_by_role("menuitem", name="Package index…").click()
        dialog = page.locator("dialog[open]")
        expect(dialog).to_contain_text(f"The build's is {site['index']}")
        expect(dialog.locator("input")).to_have_value(site["index"])
        dialog.get_by_role("button", name="Cancel").click()

        set_in_dialog(page, url)
        assert page.evaluate("pyjoy.packageIndex()") == url
        assert load(page) == "from the mirror"
        assert f"/full/{PROBE}-1.0-py3-none-any.whl" in asked
        # The console's Python starts with the page: after a reload it uses the mirror too.
        page.reload()
        page.evaluate("pyjoy.ready")
        page.evaluate("pyjoy.loadPackage(['pyjoy-mirror-probe'])")
        assert page.evaluate("pyjoy.runPython('import pyjoy_mirror_probe; pyjoy_mirror_probe.VALUE')") == "from the mirror"
    # The mirror is gone and the browser offline: the wheel comes from the cache.
    profile_context.set_offline(True)
    page.reload()
    page.wait_for_function("window.pyjoy && pyjoy.timings.workbenchReady", timeout=60_000)
    assert page.evaluate("pyjoy.packageIndex()") == url
    assert load(page) == "from the mirror"


WINDOW = """<config lang="json">{"name": "Mirror Window", "type": "web-python-window", "version": "0.1.0",
  "api_version": "0.1.8", "requirements": ["pyjoy-mirror-probe"]}</config>
<window lang="html"><div id="output">waiting</div></window>
<script lang="python">
class ImJoyPlugin():
    def setup(self):
        pass

    def value(self):
        import pyjoy_mirror_probe
        return pyjoy_mirror_probe.VALUE

api.export(ImJoyPlugin())
</script>"""


def test_a_python_window_gets_its_requirement_from_the_mirror(page: Page, site: dict) -> None:
    open_app(page, site["url"])
    with mirror(site["mirror"]) as (url, asked):
        page.evaluate("(url) => pyjoy.setPackageIndex(url)", url)
        value = page.evaluate("(text) => pyjoy.loadPlugin(text).then((p) => p.value(), (e) => `${e.code}: ${e.message}`)", WINDOW)
    assert value == "from the mirror"
    assert f"/full/{PROBE}-1.0-py3-none-any.whl" in asked


def test_a_python_booted_ahead_is_not_used_once_the_index_changed(page: Page, site: dict) -> None:
    """The host boots a spare Python for the next web-python plugin (plugins/host.js): one
    booted before the index changed must not serve the next plugin from the old index."""
    open_app(page, site["url"])
    with mirror(site["mirror"]) as (url, _asked):
        page.evaluate("(url) => pyjoy.setPackageIndex(url)", url)
        workers = len(page.workers)
        assert load(page) == "from the mirror"
        # The spare starts when the page is idle: a worker more than the plugin's.
        deadline = time.monotonic() + 30
        while len(page.workers) < workers + 2:
            assert time.monotonic() < deadline, "no spare Python was booted"
            page.wait_for_timeout(200)
        closed = f"http://127.0.0.1:{free_port()}/closed-mirror/"
        page.evaluate("(url) => pyjoy.setPackageIndex(url)", closed)
        message = page.evaluate("""(text) => pyjoy.loadPlugin(text.replace('"Mirror User"', '"Mirror User 2"'))
            .then((p) => p.value(), (e) => e.message)""", PLUGIN)
    assert f"could not be fetched from {closed} (pyjoy-mirror-probe)" in message, message


def test_a_wrong_url_is_refused_a_closed_or_wrong_mirror_is_named_and_reset_goes_back(page: Page, site: dict) -> None:
    open_app(page, site["url"])
    refused = page.evaluate("pyjoy.setPackageIndex('ftp://127.0.0.1/pyodide/').then(() => 'set', (e) => e.message)")
    assert "must be an http:// or https:// URL, not ftp:" in refused, refused
    # In the dialog: it opens again with what was typed and why; nothing changes.
    set_in_dialog(page, "mirror.local/pyodide")
    dialog = page.locator("dialog[open]")
    expect(dialog).to_contain_text('"mirror.local/pyodide" is not a URL')
    expect(dialog.locator("input")).to_have_value("mirror.local/pyodide")
    dialog.get_by_role("button", name="Cancel").click()
    assert page.evaluate("pyjoy.packageIndex()") == site["index"]

    closed = f"http://127.0.0.1:{free_port()}/closed-mirror/"
    set_in_dialog(page, closed)
    message = load(page)
    assert message.startswith("plugin-load-failed:"), message
    assert f"1 package could not be fetched from {closed} (pyjoy-mirror-probe)" in message, message
    assert "A PyJoy engine (`pyjoy engine`) can run it instead" in message, message

    with mirror(site["wrong"]) as (url, _asked):
        page.evaluate("(url) => pyjoy.setPackageIndex(url)", url)
        message = page.evaluate("""(text) => pyjoy.loadPlugin(text.replace('"Mirror User"', '"Mirror User 2"'))
            .then((p) => p.value(), (e) => e.message)""", PLUGIN)
    assert f"{PROBE}-1.0-py3-none-any.whl from {url} does not match the build's lock (sha256)" in message, message

    # Reset: an empty field is the build's index again.
    set_in_dialog(page, "")
    assert page.evaluate("pyjoy.packageIndex()") == site["index"]
    message = page.evaluate("""(text) => pyjoy.loadPlugin(text.replace('"Mirror User"', '"Mirror User 3"'))
        .then((p) => p.value(), (e) => e.message)""", PLUGIN)
    assert f"could not be fetched from {site['index']} (pyjoy-mirror-probe)" in message, message


def test_a_plugin_cannot_change_the_package_index(page: Page, site: dict) -> None:
    open_app(page, site["url"])
    source = (HOSTILE / "pkgindex_sets_the_index.imjoy.html").read_text()
    report = page.evaluate("(text) => pyjoy.loadPlugin(text).then((p) => p.attack())", source)
    assert len(report) == 5 and all(": refused (" in line for line in report), report
    assert page.evaluate("pyjoy.packageIndex()") == site["index"]
    assert page.evaluate("localStorage.getItem('pyjoy:package-index')") is None


def test_the_asset_port_serves_only_wheels_under_the_chosen_index(page: Page, site: dict) -> None:
    """The page fetches wheels at the package index for sandboxes (so that they are cached):
    a plugin posting onto its asset port gets those, and nothing else of that server."""
    (site["mirror"] / "secret.json").write_text('{"secret": 1}')
    (site["mirror"] / "full" / "notes.txt").write_text("not a wheel")
    open_app(page, site["url"])
    with mirror(site["mirror"]) as (url, asked):
        page.evaluate("(url) => pyjoy.setPackageIndex(url)", url)
        source = (HOSTILE / "sandbox_asset_prober.imjoy.html").read_text()
        page.evaluate("(text) => pyjoy.loadPlugin(text).then(() => true)", source)
        wheel = f"{url}{PROBE}-1.0-py3-none-any.whl"
        refused = [url + "../secret.json", url + "notes.txt", url + "%2e%2e/secret.json", wheel + "?v=1",
                   url.replace("/full/", "/") + f"{PROBE}-1.0-py3-none-any.whl", f"http://127.0.0.1:{free_port()}/x.whl"]
        replies = page.evaluate("([allowed, urls]) => pyjoy.getPlugin('Sandbox Asset Prober').then((p) => p.probe(allowed, urls))",
                                [site["url"] + "models.json", [*refused, wheel]])
    assert replies[wheel]["status"] == 200, replies[wheel]
    for each in refused:
        assert "error" in replies[each], (each, replies[each])
    assert not [path for path in asked if not path.endswith(".whl")], asked
