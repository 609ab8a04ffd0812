"""Fixtures: the real build, a real server on 127.0.0.1, Debian's Chromium via Playwright.

The fast loop, `python3 -m pytest -m "not browser"`, runs the CPython and Node tests: no
Chromium, no build, no Playwright imported. A test is marked `browser` here, automatically,
when it uses a fixture that needs Chromium or the build (BROWSER_FIXTURES, or any fixture
built on them: item.fixturenames is the whole closure), when its module imports Playwright
at its top (such a module is not even imported by the fast loop), or when its module runs
the build itself (it imports `run_build`, below: tens of seconds a call).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pyjoy.devtools import launch_options, served

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Playwright

ROOT = Path(__file__).resolve().parents[1]

# Fixtures that need Chromium (through Playwright) or the build; a test using one, directly or
# through another fixture, is a browser test.
BROWSER_FIXTURES = frozenset({"playwright", "browser", "page", "profile_context", "dist", "base_url", "modules_url"})
_IMPORTS_PLAYWRIGHT = re.compile(r"^(from|import) playwright\b", re.MULTILINE)
_RUNS_THE_BUILD = re.compile(r"^from conftest import .*\brun_build\b", re.MULTILINE)


@functools.cache
def _source(path: Path) -> str:
    return path.read_text() if path.suffix == ".py" and path.name.startswith("test_") else ""


def _imports_playwright(path: Path) -> bool:
    return bool(_IMPORTS_PLAYWRIGHT.search(_source(path)))


def _browser_deselected(config: pytest.Config) -> bool:
    return re.search(r"\bnot\s+browser\b", config.getoption("markexpr", "") or "") is not None


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # Importing such a module imports Playwright; all its tests are browser tests anyway.
    if _browser_deselected(config) and _imports_playwright(collection_path):
        return True
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = getattr(item, "path", None)
        if BROWSER_FIXTURES.intersection(getattr(item, "fixturenames", ())) or (
                module and (_imports_playwright(module) or _RUNS_THE_BUILD.search(_source(module)))):
            item.add_marker(pytest.mark.browser)


def run_build(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "build.py"), *args], capture_output=True, text=True, env=env, cwd=ROOT,
    )


@pytest.fixture(scope="session")
def dist() -> Path:
    """The project's own dist/, built as the README says (a no-op when up to date)."""
    result = run_build()
    assert result.returncode == 0, result.stderr
    return ROOT / "dist"


@pytest.fixture(scope="session")
def base_url(dist: Path) -> Iterator[str]:
    with served(dist) as url:
        yield url


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    from playwright.sync_api import sync_playwright  # here: the fast loop never imports Playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(**launch_options())
    yield browser
    browser.close()


@pytest.fixture
def page(browser: Browser):
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def profile_context(playwright: Playwright) -> Iterator[BrowserContext]:
    """A persistent context on a fresh profile: it keeps the HTTP cache and service workers
    (an incognito context never caches files over ~6 MB), like a person's browser."""
    profile = tempfile.mkdtemp(prefix="pyjoy-profile-")
    context = playwright.chromium.launch_persistent_context(profile, **launch_options())
    yield context
    context.close()
    shutil.rmtree(profile, ignore_errors=True)


def wait_for_service_worker(page, timeout_ms: int = 60_000) -> None:
    """Waits until the service worker controls the page and has precached the build."""
    page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=timeout_ms)


def wait_until(page, expression: str, arg=None, timeout_ms: int = 30_000):
    """Evaluates `expression` in the page (a promise is awaited) until its value is truthy,
    and returns that value; fails the test, with the last value, after timeout_ms.

    For conditions that are promises (`pyjoy.plugins().then(...)`): page.wait_for_function
    cannot wait on those, since its predicate must be synchronous. Given a promise, it
    waits for it to settle once and returns at once, whatever it resolved to (the promise
    itself is the truthy value; microsoft/playwright#29132)."""
    deadline = time.monotonic() + timeout_ms / 1000
    while not (value := page.evaluate(expression, arg)):
        if time.monotonic() > deadline:
            pytest.fail(f"not true within {timeout_ms} ms: {expression} (last: {value!r})")
        page.wait_for_timeout(50)
    return value


def open_offline(context, base_url: str):
    """The app in `context` (a persistent one), reloaded offline once its service worker
    holds the build, with Python up: a page that can only have what was cached."""
    page = context.new_page()
    page.goto(base_url)
    page.evaluate("pyjoy.ready")
    wait_for_service_worker(page)
    context.set_offline(True)
    page.reload()
    page.evaluate("pyjoy.ready")
    return page


@pytest.fixture(scope="session")
def modules_url(tmp_path_factory) -> Iterator[str]:
    """Serves every module under app/ for tests that drive JS modules directly in a page.

    esbuild bundles each app/**/*.js as its own entry with code splitting, so imports
    resolve (npm packages included) and a module shared by two entries is one instance.
    The page `blank.html` at the returned URL is cross-origin isolated like the app:
    `await import("./modules/rpc/session.js")` from there.
    """
    site = tmp_path_factory.mktemp("modules")
    entries = sorted(str(p) for p in (ROOT / "app").rglob("*.js"))
    result = subprocess.run(
        [str(ROOT / "node_modules/.bin/esbuild"), *entries, "--bundle", "--format=esm", "--splitting",
         "--target=es2022", f"--outdir={site / 'modules'}", f"--outbase={ROOT / 'app'}", "--log-level=error"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    (site / "index.html").write_text("<!doctype html><title>modules</title>")
    (site / "blank.html").write_text("<!doctype html><title>blank</title>")
    with served(site) as url:
        yield url


class _RepositoryHandler(http.server.SimpleHTTPRequestHandler):
    """Files as GitHub's raw server sends them: readable from any origin (CORS), and
    embeddable by a cross-origin-isolated page (CORP cross-origin)."""

    def end_headers(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Cross-Origin-Resource-Policy", "cross-origin")
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def log_message(self, *args) -> None:  # quiet
        pass


@contextlib.contextmanager
def repository_server(folder: Path) -> Iterator[str]:
    """Serves `folder` on another origin of 127.0.0.1, as a plugin repository would be."""
    handler = functools.partial(_RepositoryHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def repository_url() -> Iterator[str]:
    """tests/plugins/repo/ (plugins and a manifest.imjoy.json) served on its own origin."""
    with repository_server(ROOT / "tests" / "plugins" / "repo") as url:
        yield url


def builtin_plugin_names() -> set[str]:
    """The built-in plugins a first visit installs (dist/plugins/manifest.imjoy.json)."""
    manifest = json.loads((ROOT / "dist" / "plugins" / "manifest.imjoy.json").read_text())
    return {plugin["name"] for plugin in manifest["plugins"]}


def user_plugins(page) -> list[dict]:
    """pyjoy.plugins() without the built-ins: what the test itself installed or loaded."""
    builtins = builtin_plugin_names()
    return [plugin for plugin in page.evaluate("pyjoy.plugins()") if plugin["name"] not in builtins]
