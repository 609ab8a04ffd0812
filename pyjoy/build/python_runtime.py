"""The Python that runs in the browser's workers, packed as one zip for dist/.

It holds `pyjoy` (the RPC, the plugin runtime and pyjoy.onnx, the same modules CPython tests run) and
`imjoy`, the module ImJoy plugins import their `api` from. The worker unpacks it into
site-packages; the snapshot step imports it before the snapshot is taken.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from pyjoy.build.fingerprint import digest_files

# What of the pyjoy package runs in a worker: not the build, the server or the CLI.
PACKAGES = ("pyjoy/rpc", "pyjoy/plugin", "pyjoy/onnx")
MODULES = ("pyjoy/__init__.py", "pyjoy/onnx/web.js")  # web.js: pyjoy.onnx's JavaScript half, read by web.py
IMJOY_SHIM = "pyjoy/plugin/imjoy_shim.py"  # becomes imjoy/__init__.py
FIXED_TIME = (2020, 1, 1, 0, 0, 0)  # equal inputs give equal bytes, so equal hashes


def runtime_files(root: Path) -> list[Path]:
    files = [root / name for name in MODULES]
    for package in PACKAGES:
        files += sorted((root / package).glob("*.py"))
    return files


def make_runtime_zip(root: Path, cache: Path) -> Path:
    files = runtime_files(root)
    key = digest_files(files)
    target = cache / "runtime" / f"pyjoy-runtime-{key[:16]}.zip"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            name = path.relative_to(root).as_posix()
            if name == IMJOY_SHIM:
                name = "imjoy/__init__.py"
            archive.writestr(zipfile.ZipInfo(name, FIXED_TIME), path.read_bytes(), zipfile.ZIP_DEFLATED)
    partial.replace(target)
    for stale in target.parent.glob("*.zip"):
        if stale != target:
            stale.unlink()
    return target
