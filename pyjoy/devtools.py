"""What the tests and benchmarks share: a real server on 127.0.0.1, a real engine, and Debian's Chromium.

Chromium is /usr/bin/chromium from Debian, driven by Playwright (the `test` extra);
`playwright install` cannot download here, so this never asks Playwright for a browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HOSTILE_PLUGINS = Path(__file__).resolve().parents[1] / "tests" / "plugins" / "hostile"

CHROMIUM = os.environ.get("PYJOY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # this machine's network is closed: no calls home
    "--disable-component-update",
    "--disable-sync",
]


def hostile_plugin(filename: str, **config) -> str:
    """A hostile test plugin's file (tests/plugins/hostile/), its JSON config's fields
    replaced by `config`: one file serves as a web-worker and as a window plugin."""
    text = (HOSTILE_PLUGINS / filename).read_text()
    opening = '<config lang="json">'
    start = text.index(opening) + len(opening)
    end = text.index("</config>", start)
    merged = {**json.loads(text[start:end]), **config}
    return f"{text[:start]}\n{json.dumps(merged)}\n{text[end:]}"


def flood_plugin(kind: str) -> tuple[str, str]:
    """The hostile plugin that floods the page as a plugin of type `kind`: (its file, its name)."""
    if kind == "web-python":
        return hostile_plugin("flood_python.imjoy.html"), "Flood Python"
    name = {"web-worker": "Flood Worker", "window": "Flood Window"}[kind]
    return hostile_plugin("flood_js.imjoy.html", type=kind, name=name), name


def run_async(coroutine: Coroutine):
    """asyncio.run(coroutine) in a thread of its own: Playwright's sync API keeps an event
    loop running in the main thread once a browser test of the same pytest session ran."""
    with ThreadPoolExecutor(max_workers=1) as thread:
        return thread.submit(asyncio.run, coroutine).result()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def served(dist: Path, port: int | None = None) -> Iterator[str]:
    """Runs `pyjoy serve` on dist in a child process; yields its base URL."""
    port = port or free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "pyjoy.cli", "serve", "--dist", str(dist), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        line = process.stdout.readline()
        if "served at" not in line:
            raise RuntimeError(f"pyjoy serve did not start: {line}{process.stdout.read()}")
        yield f"http://127.0.0.1:{port}/"
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextlib.contextmanager
def engine_running(workdir: Path, *args: str, env: dict[str, str] | None = None,
                   port: int | None = None) -> Iterator[tuple[str, subprocess.Popen]]:
    """Runs `pyjoy engine` in a child process; yields its ws:// URL (with the token) and the
    process (`process.output`: the lines it printed since). Ends it as Ctrl+C would (SIGINT)."""
    port = port or free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "pyjoy.cli", "engine", "--port", str(port), "--workdir", str(workdir), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, **(env or {})},
    )
    try:
        line = process.stdout.readline()
        before = ""  # warnings, and Ray's log lines with --ray
        while line and not line.startswith("PyJoy engine at "):
            before, line = before + line, process.stdout.readline()
        line = line or before
        if not line.startswith("PyJoy engine at "):
            raise RuntimeError(f"pyjoy engine did not start: {line}{process.stdout.read()}")
        process.stdout.readline()  # the app link
        # Its output (plugins' print() among it) is read on, or a full pipe would stall it.
        process.output = []  # type: ignore[attr-defined]
        threading.Thread(target=lambda: process.output.extend(process.stdout), daemon=True).start()
        yield line.split()[-1], process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def launch_options(**extra) -> dict:
    args = CHROMIUM_ARGS + extra.pop("args", [])
    return {"executable_path": CHROMIUM, "headless": True, "args": args, **extra}


def machine_facts(chromium: str, load_before: float) -> dict:
    """What a benchmark's JSON records about where it ran."""
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "chromium": chromium,
        "platform": platform.platform(),
        "python": platform.python_version(),
        # Other work on the machine skews every number. (Chromium's own threads push the
        # load average far above the core count while it runs, so only "before" means much.)
        "loadavg_1min_before": round(load_before, 2),
    }
