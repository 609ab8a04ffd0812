"""The Python memory snapshot, made once per runtime and warm-up code, then cached."""

from __future__ import annotations

import shutil
from pathlib import Path

from pyjoy.build.errors import BuildError, require_tool, run_tool
from pyjoy.build.fingerprint import digest_files
from pyjoy.build.npm import NODE_FIX
from pyjoy.build.pins import PYODIDE_CORE_FILES

HERE = Path(__file__).parent
SCRIPT = HERE / "snapshot.mjs"
WARMUP = HERE / "snapshot_warmup.py"


def make_snapshot(pyodide_dir: Path, runtime_zip: Path, cache: Path) -> Path:
    """The snapshot of Python with pyjoy's runtime (runtime_zip) imported."""
    key = digest_files([pyodide_dir / name for name in PYODIDE_CORE_FILES] + [runtime_zip, SCRIPT, WARMUP])
    cached = cache / "snapshots" / f"{key[:20]}.bin"
    if not cached.is_file():
        run_snapshot_script(pyodide_dir, runtime_zip, cached)
    for stale in cached.parent.glob("*.bin"):
        if stale != cached:
            stale.unlink()  # 31 MB each: keep only the snapshot of the runtime in use
    return cached


def run_snapshot_script(pyodide_dir: Path, runtime_zip: Path, cached: Path) -> None:
    node = require_tool("node", NODE_FIX)
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(".partial")
    run_tool(
        [node, str(SCRIPT), str(pyodide_dir.resolve()), str(runtime_zip), str(WARMUP), str(partial)],
        what="making the Python memory snapshot",
        fix="check that node_modules/pyodide is intact (rm -r node_modules and build again)",
    )
    if not partial.is_file() or partial.stat().st_size == 0:
        raise BuildError("the Python memory snapshot came out empty", "build again; report it if it repeats")
    shutil.move(partial, cached)
