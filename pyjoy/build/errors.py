"""The one error type of the build: what went wrong, with which file, and the fix."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


class BuildError(Exception):
    """Printed as one line: `error: <what>; <fix>`."""

    def __init__(self, what: str, fix: str) -> None:
        super().__init__(f"{what}; {fix}")


def require_tool(name: str, fix: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BuildError(f"{name} not found on PATH", fix)
    return path


def run_tool(command: list[str], *, what: str, fix: str, cwd: Path | None = None) -> str:
    """Runs a tool quietly; on failure, names the step and the tool's own last words."""
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [line for line in (result.stderr + result.stdout).splitlines() if line.strip()]
        said = lines[-1].strip() if lines else f"exit status {result.returncode}"
        raise BuildError(f"{what} failed ({said})", fix)
    return result.stdout
