"""Installs the npm packages the site vendors, exactly as package-lock.json pins them."""

from __future__ import annotations

import json
from pathlib import Path

from pyjoy.build.errors import BuildError, require_tool, run_tool
from pyjoy.build.fingerprint import digest_files
from pyjoy.build.pins import PYODIDE_VERSION

NODE_FIX = "install Node.js 20 or newer with npm (apt-get install nodejs npm) and build again"


def ensure_node_modules(root: Path) -> Path:
    """Runs `npm ci` when the lock file changed since the last install; returns node_modules."""
    npm = require_tool("npm", NODE_FIX)
    require_tool("node", NODE_FIX)
    modules = root / "node_modules"
    stamp = modules / ".pyjoy-installed"
    wanted = digest_files([root / "package.json", root / "package-lock.json"])
    if not (stamp.is_file() and stamp.read_text() == wanted):
        run_tool(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=root,
            what="npm ci",
            fix="check that the npm registry is reachable and package-lock.json matches package.json",
        )
        stamp.write_text(wanted)
    installed = json.loads((modules / "pyodide" / "package.json").read_text())["version"]
    if installed != PYODIDE_VERSION:
        raise BuildError(
            f"node_modules/pyodide is {installed}, pyjoy/build/pins.py pins {PYODIDE_VERSION}",
            "pin the same version in package.json and pins.py, then run npm install",
        )
    return modules
