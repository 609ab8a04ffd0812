"""Fetches the pinned pure-Python wheels from PyPI, checked against their pinned sha256."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from pyjoy.build.errors import BuildError, run_tool
from pyjoy.build.fingerprint import sha256_file
from pyjoy.build.pins import PinnedWheel


def fetch_wheel(wheel: PinnedWheel, cache: Path) -> Path:
    """Returns the wheel's path in the cache, downloading it once."""
    cached = cache / "wheels" / wheel.filename
    if cached.is_file() and sha256_file(cached) == wheel.sha256:
        return cached
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        run_tool(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             "--python-version", "3.14", "--dest", scratch, f"{wheel.name}=={wheel.version}"],
            what=f"downloading {wheel.filename} from PyPI",
            fix="check that PyPI is reachable, then build again",
        )
        downloaded = Path(scratch) / wheel.filename
        if not downloaded.is_file():
            raise BuildError(f"pip did not produce {wheel.filename}", "check the pin in pyjoy/build/pins.py")
        check_sha256(downloaded, wheel.sha256, wheel.filename)
        shutil.move(downloaded, cached)
    return cached


def check_sha256(path: Path, expected: str, name: str) -> None:
    actual = sha256_file(path)
    if actual != expected:
        raise BuildError(
            f"{name}: sha256 is {actual}, expected {expected}",
            "the download is corrupt or the pin in pyjoy/build/pins.py is stale; delete .cache/ and build again",
        )
