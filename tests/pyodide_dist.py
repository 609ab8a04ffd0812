"""Makes a small Pyodide distribution for tests: a lock file and pure-Python wheels.

Real Pyodide builds of numpy and friends are on no registry reachable here, so tests
exercise --pyodide-dist with wheels they build themselves, never with a fake numpy.
"""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from pathlib import Path


def make_wheel(folder: Path, name: str, version: str, source: str) -> Path:
    """A valid pure-Python wheel holding one module, `name/__init__.py`."""
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    dist_info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": source,
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist_info}/WHEEL": "Wheel-Version: 1.0\nGenerator: pyjoy-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            data = text.encode()
            archive.writestr(path, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{path},sha256={digest},{len(data)}")
        record.append(f"{dist_info}/RECORD,,")
        archive.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    return wheel


def make_distribution(folder: Path, runtime_lock: dict, packages: dict[str, str], info: dict | None = None) -> Path:
    """Writes wheels for {module name: source} and a pyodide-lock.json naming them."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = {}
    for name, source in packages.items():
        wheel = make_wheel(folder, name, "1.0", source)
        key = name.replace("_", "-")  # Pyodide keys its lock by normalised project name
        entries[key] = {
            "name": key,
            "version": "1.0",
            "file_name": wheel.name,
            "install_dir": "site",
            "sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
            "package_type": "package",
            "imports": [name],
            "depends": [],
            "unvendored_tests": False,
        }
    lock = {"info": info or runtime_lock["info"], "packages": entries}
    (folder / "pyodide-lock.json").write_text(json.dumps(lock))
    return folder
