"""The fast loop, `python3 -m pytest -m "not browser"`: it must work where Playwright is not
importable at all, and select the CPython and Node tests, none of the browser ones."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What needs Chromium or the build (written out here, not imported from conftest: the reference).
BROWSER_FIXTURES = {"playwright", "browser", "page", "profile_context", "dist", "base_url", "modules_url"}

# Collects as the fast loop does, with every `import playwright...` failing.
NO_PLAYWRIGHT = """
import sys

class NoPlaywright:
    def find_spec(self, name, path=None, target=None):
        if name == "playwright" or name.startswith("playwright."):
            raise ImportError(f"{name} is blocked: the fast loop must not import Playwright")

sys.meta_path.insert(0, NoPlaywright())
"""


def collected(*args: str, prelude: str = "") -> str:
    code = prelude + f"import sys, pytest; sys.exit(pytest.main({['-q', '-p', 'no:cacheprovider', *args, 'tests']!r}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_the_fast_loop_imports_no_playwright_and_selects_exactly_the_tests_without_a_browser() -> None:
    fast = {line for line in collected("-m", "not browser", "--collect-only", prelude=NO_PLAYWRIGHT).splitlines()
            if "::" in line}
    assert {"tests/test_rpc_python.py", "tests/test_rpc_conformance.py", "tests/test_rpc_transport_node.py",
            "tests/test_fast_loop.py"} <= {test.split("::")[0] for test in fast}
    # The reference: the fixtures each test sets up (pytest --setup-plan, every test), and
    # whether its module runs the build itself (it calls conftest's run_build).
    needs_browser = {}
    for line in collected("--setup-plan").splitlines():
        test, _, used = line.strip().partition(" (fixtures used: ")
        if "::" in test and not test.startswith("SETUP"):
            fixtures = set(used.rstrip(")").split(", "))
            module = (ROOT / test.split("::")[0]).read_text()
            needs_browser[test] = bool(fixtures & BROWSER_FIXTURES) or re.search(r"\brun_build\(", module) is not None
    assert fast == {test for test, browser in needs_browser.items() if not browser}


def test_no_test_runs_asyncio_run_in_the_main_thread() -> None:
    """Once a browser test ran in a pytest session, Playwright's sync API keeps an event loop
    running in the main thread, and asyncio.run() there fails: a CPython test that passes on
    its own (the fast loop) then fails in the full suite. pyjoy.devtools.run_async runs it in
    a thread of its own."""
    offenders = [f"{path.name}:{number}" for path in sorted((ROOT / "tests").glob("*.py")) if path.name != Path(__file__).name
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if re.search(r"\basyncio\.run\(", line) and not line.lstrip().startswith("#")]
    assert offenders == [], f"use pyjoy.devtools.run_async instead of asyncio.run in: {', '.join(offenders)}"
