"""Installable, offline after one visit, updated on the person's word; damaged files and
missing packages reported, never fatal."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

from playwright.sync_api import BrowserContext, expect

from conftest import run_build, wait_for_service_worker, wait_until
from pyjoy.devtools import free_port, served
from pyodide_dist import make_distribution
from test_build import CLOSED_INDEX, ROOT, build_config


def test_installable_with_no_errors(profile_context: BrowserContext, base_url: str) -> None:
    page = profile_context.new_page()
    page.goto(base_url)
    wait_for_service_worker(page)
    errors = profile_context.new_cdp_session(page).send("Page.getInstallabilityErrors")
    assert errors["installabilityErrors"] == []
    manifest = page.evaluate("fetch('manifest.webmanifest').then(r => r.json())")
    assert manifest["display"] == "standalone"
    purposes = {(icon["sizes"], icon["purpose"]) for icon in manifest["icons"]}
    assert {("192x192", "any"), ("512x512", "any"), ("512x512", "maskable")} <= purposes


def test_offline_reload_starts_the_shell_and_python_from_the_cache(profile_context: BrowserContext, base_url: str) -> None:
    page = profile_context.new_page()
    page.goto(base_url + "?w=lab")
    page.evaluate("pyjoy.ready")
    wait_for_service_worker(page)
    build = page.evaluate("pyjoy.build")
    assert page.evaluate("caches.keys()") == [f"pyjoy-build-{build}"]

    profile_context.set_offline(True)
    page.reload()
    assert page.evaluate("pyjoy.ready")["via"] == "snapshot"
    assert page.evaluate("pyjoy.runPython('import micropip; 40 + 2')") == 42
    assert page.evaluate("crossOriginIsolated") is True
    # Another URL of the app (a query string) opens offline too.
    page.goto(base_url + "?plugin=x")
    assert page.evaluate("pyjoy.runPython('1 + 1')") == 2


# Every text the status bar's offline part shows, in order, from before the page's own
# scripts run (an init script): what a person would have seen.
OFFLINE_TEXTS = """
window.offlineTexts = [];
new MutationObserver(() => {
  const text = document.getElementById("offline-status")?.textContent;
  if (text && text !== window.offlineTexts.at(-1)) window.offlineTexts.push(text);
}).observe(document, { subtree: true, childList: true, characterData: true });
"""
SAVING = re.compile(r"^Saving (for|the update for) offline use: (\d+) of (\d+) MB$")


def saving_steps(texts: list[str], what: str) -> list[tuple[int, int]]:
    return [(int(m[2]), int(m[3])) for m in map(SAVING.match, texts) if m and m[1] == what]


def precached_megabytes(site: Path) -> int:
    """What caching the build downloads: each precached file, or its .gz copy where the
    server has one (it sends those to a client that accepts gzip, as the service worker does)."""
    files = json.loads((site / "precache-manifest.json").read_text())["files"]
    def wire(url: str) -> int:
        packed = site / f"{url}.gz"
        return (packed if packed.exists() else site / url).stat().st_size
    return round(sum(wire(entry["url"]) for entry in files if entry["precache"]) / 1e6)


def test_offline_ready_shows_the_caching_and_then_everything_loads_offline(profile_context: BrowserContext, base_url: str, dist: Path) -> None:
    page = profile_context.new_page()
    page.add_init_script(OFFLINE_TEXTS)
    page.goto(base_url)
    assert page.evaluate("navigator.serviceWorker.controller") is None  # a first visit: nothing cached
    page.evaluate("pyjoy.offlineReady")
    profile_context.set_offline(True)  # the moment it says so

    # The status bar counted the bytes as the files were stored, then said so.
    texts = page.evaluate("offlineTexts")
    steps = saving_steps(texts, "for")
    total = precached_megabytes(dist)
    assert texts[-1] == "Ready offline" and len(steps) == len(texts) - 1, texts
    assert len(steps) > 2 and steps[0][0] < total and steps[-1] == (total, total), steps
    assert all(step[1] == total for step in steps) and [d for d, _ in steps] == sorted(d for d, _ in steps)

    page.reload()
    expect(page.locator("h1")).to_have_text("PyJoy")
    assert page.evaluate("pyjoy.runPython('1 + 1')") == 2
    # Already cached: offlineReady resolves at once, and the status bar says so.
    assert page.evaluate("Promise.race([pyjoy.offlineReady.then(() => 'ready'), new Promise((r) => setTimeout(() => r('waiting'), 200))])") == "ready"
    expect(page.locator("#offline-status")).to_have_text("Ready offline")
    # A plugin (a Python sandbox: Pyodide over the asset port) and the model file.
    plugin = (Path(__file__).parent / "plugins/live/echo_python.imjoy.html").read_text()
    assert page.evaluate("(text) => pyjoy.loadPlugin(text).then((p) => p.add(1, 2))", plugin) == 3
    model = json.loads((dist / "models.json").read_text())["models"]["efficientnet-lite0"]["url"]
    digest = page.evaluate(f"""fetch({json.dumps(model)}).then((r) => r.arrayBuffer()).then((b) => crypto.subtle.digest("SHA-256", b))
      .then((d) => [...new Uint8Array(d)].map((x) => x.toString(16).padStart(2, "0")).join(""))""")
    assert digest == hashlib.sha256((dist / model).read_bytes()).hexdigest()


# When the page registers its service worker (performance.now() of each call), recorded
# before the app's own scripts run.
REGISTER_TIMES = """
window.registeredAt = [];
const register = ServiceWorkerContainer.prototype.register;
ServiceWorkerContainer.prototype.register = function (...args) {
  registeredAt.push(performance.now());
  return register.apply(this, args);
};
"""


def worker_plugin(name: str, setup: str) -> str:
    return f"""<config lang="json">{{"name": "{name}", "type": "web-worker", "version": "0.1.0"}}</config>
<script lang="javascript">
api.export({{ setup() {{ {setup} }}, ping() {{ return "pong"; }} }});
</script>
"""


def test_the_first_install_waits_until_no_plugin_has_been_loading_for_2_s(profile_context: BrowserContext, base_url: str) -> None:
    # The install downloads and hashes the whole build: a plugin opened at once after
    # Python is up would share the network and the CPU with it.
    page = profile_context.new_page()
    page.add_init_script(REGISTER_TIMES)
    page.goto(base_url)
    page.evaluate("pyjoy.ready")
    slow = worker_plugin("Slow Setup", "return new Promise((resolve) => setTimeout(resolve, 1500));")
    loaded_at = page.evaluate("(text) => pyjoy.loadPlugin(text).then((p) => p.ping()).then(() => performance.now())", slow)
    assert page.evaluate("registeredAt") == []  # not while it loaded
    wait_for_service_worker(page)
    registered = page.evaluate("registeredAt")
    assert len(registered) == 1 and registered[0] > loaded_at + 1500, (registered, loaded_at)
    expect(page.locator("#offline-status")).to_have_text("Ready offline")


def test_a_plugin_that_never_finishes_loading_delays_the_first_install_30_s_at_most(profile_context: BrowserContext, base_url: str) -> None:
    page = profile_context.new_page()
    page.add_init_script(REGISTER_TIMES)
    page.goto(base_url)
    ready_at = page.evaluate("pyjoy.ready.then(() => performance.now())")
    page.evaluate("(text) => { window.hanging = pyjoy.loadPlugin(text); }", worker_plugin("Hanging Setup", "return new Promise(() => {});"))
    page.wait_for_timeout(5000)
    states = "pyjoy.plugins().then((all) => all.filter((p) => p.name === 'Hanging Setup').map((p) => p.state))"
    assert page.evaluate(states) == ["loading"]
    assert page.evaluate("registeredAt") == []
    wait_for_service_worker(page, timeout_ms=90_000)
    registered = page.evaluate("registeredAt")
    assert len(registered) == 1 and 29_000 < registered[0] - ready_at < 40_000, (registered, ready_at)


def test_offline_ready_rejects_when_there_is_no_service_worker_to_register(page, dist: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    shutil.copytree(dist, site, copy_function=os.link)  # hard links: the same files, at once
    (site / "sw.js").unlink()
    with served(site) as url:
        page.goto(url)
        message = page.evaluate("pyjoy.offlineReady.then(() => 'ready', (e) => e.message)")
        assert message.startswith("the service worker could not be registered"), message
        expect(page.locator("#offline-status")).to_have_text("Not available offline")
        expect(page.locator(".toast-error")).to_contain_text("Offline use is unavailable")


def served_copy(dist: Path, target: Path) -> Path:
    shutil.copytree(dist, target)
    return target


def test_update_is_offered_and_then_every_asset_comes_from_the_new_build(profile_context: BrowserContext, tmp_path: Path) -> None:
    site = tmp_path / "site"
    assert run_build("--out", str(site), "--package-index", "http://127.0.0.1:9/old/").returncode == 0
    old_build = build_config(site)["build"]
    with served(site) as url:
        page = profile_context.new_page()
        page.add_init_script(OFFLINE_TEXTS)
        page.goto(url)
        page.evaluate("pyjoy.ready")
        wait_for_service_worker(page)
        expect(page.locator("#update-banner")).to_be_hidden()
        expect(page.locator("#offline-status")).to_have_text("Ready offline")

        result = run_build("--out", str(site), "--package-index", "http://127.0.0.1:9/new/")
        assert result.returncode == 0, result.stderr
        new_build = build_config(site)["build"]
        assert new_build != old_build

        # A person coming back to the tab makes the page look for an update.
        page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")
        expect(page.locator("#update-banner")).to_be_visible(timeout=60_000)
        assert page.evaluate("pyjoy.build") == old_build  # nothing changes until asked
        # The update's caching was shown as it went, then that it is saved.
        expect(page.locator("#offline-status")).to_have_text("Ready offline; the update is saved too")
        steps = saving_steps(page.evaluate("offlineTexts"), "the update for")
        assert len(steps) > 2 and steps[0][0] < steps[-1][0] == steps[-1][1] == precached_megabytes(site), steps
        with page.expect_navigation():
            page.click("#update-button")
        page.evaluate("pyjoy.ready")
        assert page.evaluate("pyjoy.build") == new_build
        wait_until(page, f"caches.keys().then(k => k.length === 1 && k[0] === 'pyjoy-build-{new_build}')")
        lock_url = build_config(site)["pyodide"]["lockFileURL"]
        lock = page.evaluate(f"fetch('{lock_url}').then(r => r.json())")
        assert lock["packages"]["numpy"]["file_name"].startswith("http://127.0.0.1:9/new/")
        # Every script and style the new page loaded is one the new build lists.
        names = {e["url"] for e in json.loads((site / "precache-manifest.json").read_text())["files"]}
        loaded = page.evaluate("[...document.querySelectorAll('script[src], link[rel=stylesheet]')].map(e => e.getAttribute('src') || e.getAttribute('href'))")
        assert loaded and set(loaded) <= names


def test_a_damaged_download_is_reported_and_python_still_starts(profile_context: BrowserContext, dist: Path, tmp_path: Path) -> None:
    site = served_copy(dist, tmp_path / "site")
    snapshot = site / build_config(site)["pyodide"]["snapshotURL"]
    damaged = bytearray(snapshot.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    snapshot.write_bytes(bytes(damaged))
    snapshot.with_name(snapshot.name + ".gz").unlink()
    with served(site) as url:
        page = profile_context.new_page()
        page.goto(url)
        # The worker refuses the damaged snapshot and starts Python without it.
        ready = page.evaluate("pyjoy.ready")
        assert ready["via"] == "cold"
        assert page.evaluate("pyjoy.runPython('3 * 14')") == 42
        expect(page.locator("#status-line")).to_contain_text("(without its snapshot)")
        # The service worker's integrity check refuses to keep the build; the page says which file.
        expect(page.locator(".toast-error")).to_contain_text(
            f"could not be saved for offline use: /{snapshot.relative_to(site).as_posix()} could not be downloaded intact"
        )
        assert page.evaluate("caches.keys()") == []
        # pyjoy.offlineReady rejects with the same words, and the status bar says it is not offline.
        assert "could not be downloaded intact" in page.evaluate("pyjoy.offlineReady.then(() => 'ready', (e) => e.message)")
        expect(page.locator("#offline-status")).to_have_text("Not available offline")


def test_a_package_that_cannot_be_fetched_is_an_error_naming_it(page, tmp_path: Path) -> None:
    site = tmp_path / "site"
    assert run_build("--out", str(site), "--package-index", f"http://127.0.0.1:{free_port()}/").returncode == 0
    with served(site) as url:
        page.goto(url)
        page.evaluate("pyjoy.ready")
        message = page.evaluate("pyjoy.loadPackage('six').then(() => 'loaded', e => e.message)")
        assert "loading six failed" in message
        message = page.evaluate("pyjoy.runPython('import six').then(() => 'imported', e => e.message)")
        assert "six" in message and "failed" in message
        assert page.evaluate("pyjoy.runPython('1 + 1')") == 2


def test_a_vendored_distribution_package_loads_and_stays_offline(profile_context: BrowserContext, tmp_path: Path) -> None:
    runtime_lock = json.loads((ROOT / "node_modules/pyodide/pyodide-lock.json").read_text())
    source = make_distribution(tmp_path / "pyodide-dist", runtime_lock, {"pyjoy_sample": "ANSWER = 42\n"})
    site = tmp_path / "site"
    result = run_build("--out", str(site), "--pyodide-dist", str(source), "--package-index", CLOSED_INDEX)
    assert result.returncode == 0, result.stderr
    with served(site) as url:
        page = profile_context.new_page()
        page.goto(url)
        page.evaluate("pyjoy.ready")
        wait_for_service_worker(page)
        assert page.evaluate("pyjoy.runPython('import pyjoy_sample; pyjoy_sample.ANSWER')") == 42
        profile_context.set_offline(True)
        page.reload()
        assert page.evaluate("pyjoy.runPython('import pyjoy_sample; pyjoy_sample.ANSWER + 1')") == 43
