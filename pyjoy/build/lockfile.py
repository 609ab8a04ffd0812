"""The Pyodide lock file that dist/ serves, and the wheels it vendors.

Pyodide checks every package it loads against the sha256 in the lock. The lock in the npm
package names Pyodide's own rebuilds of pure-Python wheels, whose bytes differ from PyPI's,
so the served lock records the hash of the file dist/ actually holds. Packages not vendored
point at the package index by absolute URL.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

from pyjoy.build.errors import BuildError
from pyjoy.build.fingerprint import sha256_file
from pyjoy.build.pins import PYODIDE_VERSION, PinnedWheel

# The fields that must agree for a wheel built for one runtime to load in another.
COMPATIBILITY_KEYS = ("python", "abi_version", "arch")


@dataclass
class PackageSet:
    lock: dict
    vendored: dict[str, Path] = field(default_factory=dict)  # file name in dist -> source file
    precached: set[str] = field(default_factory=set)  # of those, the ones kept offline from the start


def package_set(
    runtime_lock: dict,
    pinned: list[tuple[PinnedWheel, Path]],
    package_index: str,
    pyodide_dist: Path | None,
) -> PackageSet:
    lock = copy.deepcopy(runtime_lock)
    result = PackageSet(lock=lock)
    index = package_index if package_index.endswith("/") else package_index + "/"
    for entry in lock["packages"].values():
        entry["file_name"] = index + entry["file_name"]

    if pyodide_dist is not None:
        vendor_distribution(result, pyodide_dist)

    for wheel, path in pinned:
        entry = lock["packages"].get(wheel.name)
        if entry is None:
            raise BuildError(f"the Pyodide lock has no package {wheel.name}", "remove it from VENDORED_WHEELS in pins.py")
        if entry["file_name"] in result.vendored:
            continue  # the vendored distribution has its own build of it
        entry.update(file_name=wheel.filename, sha256=sha256_file(path), version=wheel.version)
        result.vendored[wheel.filename] = path
        result.precached.add(wheel.filename)
    return result


def vendor_distribution(result: PackageSet, dist: Path) -> None:
    """Points every package the distribution holds at its vendored copy, checking each hash."""
    lock_path = dist / "pyodide-lock.json"
    if not lock_path.is_file():
        raise BuildError(f"--pyodide-dist {dist} has no pyodide-lock.json", "point it at the folder of a Pyodide distribution")
    try:
        dist_lock = json.loads(lock_path.read_text())
        dist_info, dist_packages = dist_lock["info"], dist_lock["packages"]
    except (ValueError, KeyError) as error:
        raise BuildError(f"{lock_path} is not a Pyodide lock file ({error})", "use the lock file of the distribution")
    runtime_info = result.lock["info"]
    if any(dist_info.get(key) != runtime_info.get(key) for key in COMPATIBILITY_KEYS):
        raise BuildError(
            f"{lock_path} is for Python {dist_info.get('python')} (ABI {dist_info.get('abi_version')}, "
            f"{dist_info.get('arch')}), the runtime is Python {runtime_info['python']} "
            f"(ABI {runtime_info['abi_version']}, {runtime_info['arch']})",
            f"use a distribution of Pyodide {PYODIDE_VERSION}",
        )
    for name, entry in dist_packages.items():
        source = dist / entry["file_name"]
        if not source.is_file():
            continue  # a partial distribution: this package still comes from the package index
        expected = entry["sha256"]
        if sha256_file(source) != expected:
            raise BuildError(
                f"{source}: sha256 does not match {lock_path} ({expected})",
                "the distribution is corrupt; unpack it again",
            )
        result.lock["packages"][name] = copy.deepcopy(entry)
        result.vendored[entry["file_name"]] = source
