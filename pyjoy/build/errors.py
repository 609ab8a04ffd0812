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
        raise BuildError(f"{what} failed ({last_words(result.stderr + result.stdout, result.returncode)})", fix)
    return result.stdout


def last_words(output: str, returncode: int) -> str:
    """The line of a tool's output that says what went wrong: its last error line, else its
    last line; minified source lines (Node prints them with a stack trace) are skipped."""
    lines = [line.strip() for line in output.splitlines() if line.strip() and len(line) < 500]
    lines = [line for line in lines if not line.startswith("at ")]
    errors = [line for line in lines if "Error" in line or "error" in line]
    said = (errors or lines or [f"exit status {returncode}"])[-1]
    return said[:300]
