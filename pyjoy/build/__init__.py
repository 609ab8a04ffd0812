"""Builds dist/, the self-contained static site: `python build.py` or `pyjoy build`.

The pipeline, each step cached so that a build with nothing changed is a no-op:

    node_modules   npm ci when package-lock.json changed (Pyodide, Workbox, esbuild)
    wheels         micropip from PyPI, checked against its pinned sha256
    packages       the served lock: vendored wheels by hash, the rest at the package index
    runtime        pyjoy's in-browser Python (RPC, plugin runtime, `imjoy`) as a zip
    snapshot       Python's memory snapshot with that runtime imported, made on Node
    model          EfficientNet-Lite0 exported to ONNX and checked (the `model` extra)
    bundle         app/ through esbuild into hashed files
    site           pages, precache manifest, service worker, .gz copies
    plugins        py_plugins/ into plugins/, with their ImJoy manifest
    docs           docs/*.md and the contracts into docs/, with an index, for the Docs view

The site is assembled in a staging folder and swapped in whole, so a failed build leaves
the previous dist/ as it was.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pyjoy.build import site as site_files
from pyjoy.build.builtin_plugins import place_builtin_plugins
from pyjoy.build.bundle import bundle
from pyjoy.build.docs import place_docs
from pyjoy.build.errors import BuildError
from pyjoy.build.fingerprint import digest_files, files_under
from pyjoy.build.lockfile import package_set
from pyjoy.build.model import make_model, model_inputs
from pyjoy.build.npm import ensure_node_modules
from pyjoy.build.pins import DEFAULT_PACKAGE_INDEX, VENDORED_WHEELS
from pyjoy.build.python_runtime import make_runtime_zip
from pyjoy.build.snapshot import make_snapshot
from pyjoy.build.wheels import fetch_wheel

ROOT = Path(__file__).resolve().parents[2]
STAMP = ".build-stamp"


@dataclass
class Options:
    root: Path = ROOT
    out: Path = ROOT / "dist"
    package_index: str = DEFAULT_PACKAGE_INDEX
    pyodide_dist: Path | None = None
    force: bool = False
    cache: Path = ROOT / ".cache"  # downloads, snapshots and compressed files kept between builds


@dataclass
class Result:
    out: Path
    build: str
    rebuilt: bool
    seconds: float


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="where to write the site (default: dist/)")
    parser.add_argument(
        "--package-index", default=DEFAULT_PACKAGE_INDEX,
        help="URL of the Pyodide package index for packages dist/ does not vendor (default: the official CDN)",
    )
    parser.add_argument(
        "--pyodide-dist", type=Path,
        help="folder of a Pyodide distribution (pyodide-lock.json and wheels) to vendor, for a fully self-hosted site",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even if nothing changed")
    parser.add_argument("--cache-dir", type=Path, default=ROOT / ".cache", help="build cache (default: .cache/)")


def run(args: argparse.Namespace) -> int:
    options = Options(
        out=args.out, package_index=args.package_index, pyodide_dist=args.pyodide_dist,
        force=args.force, cache=args.cache_dir,
    )
    try:
        result = build(options)
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    state = "built" if result.rebuilt else "up to date:"
    print(f"{state} {result.out} (build {result.build}) in {result.seconds:.1f} s")
    return 0


def input_fingerprint(options: Options) -> str:
    root = options.root
    sources = files_under(root / "app", root / "service_worker", root / "static", root / "pyjoy", root / "py_plugins", root / "docs")
    sources += [root / "package.json", root / "package-lock.json"]
    extra = [options.package_index, model_inputs()]
    if options.pyodide_dist is not None:
        dist = options.pyodide_dist.resolve()
        listing = sorted(f"{p.relative_to(dist)} {p.stat().st_size} {p.stat().st_mtime_ns}" for p in files_under(dist))
        extra += [str(dist), *listing]
    return digest_files(sources, *extra)


def build(options: Options) -> Result:
    started = time.perf_counter()
    root, out = options.root, options.out
    fingerprint = input_fingerprint(options)
    stamp = out / STAMP
    if not options.force and stamp.is_file():
        recorded = json.loads(stamp.read_text())
        if recorded["inputs"] == fingerprint:
            return Result(out, recorded["build"], False, time.perf_counter() - started)

    cache = options.cache
    modules = ensure_node_modules(root)
    pinned = [(wheel, fetch_wheel(wheel, cache)) for wheel in VENDORED_WHEELS]
    runtime_lock = json.loads((modules / "pyodide" / "pyodide-lock.json").read_text())
    packages = package_set(runtime_lock, pinned, options.package_index, options.pyodide_dist)
    runtime_zip = make_runtime_zip(root, cache)
    snapshot = make_snapshot(modules / "pyodide", runtime_zip, cache)
    model = make_model(cache)
    sources = site_files.Sources(
        app=root / "app", service_worker=root / "service_worker", static=root / "static",
        node_modules=modules, snapshot=snapshot, runtime_zip=runtime_zip, cache=cache,
    )

    stage = out.with_name(f"{out.name}.partial-{os.getpid()}")
    shutil.rmtree(stage, ignore_errors=True)
    try:
        stage.mkdir(parents=True)
        runtime = site_files.place_runtime(stage, sources, packages)
        site_files.place_models(stage, modules, model)
        place_builtin_plugins(stage, root / "py_plugins")
        place_docs(stage, root)
        bundles = bundle(sources.app, modules, stage)
        templates = (sources.app / "index.html", sources.service_worker / "sw.js")
        build_id = site_files.build_id(site_files.file_entries(stage, packages), *templates)
        site_files.write_pages(stage, sources, build_id, bundles, runtime, options.package_index)
        site_files.compress(stage, cache)  # first, so that the service worker knows what goes over the wire
        site_files.write_service_worker(stage, sources, build_id, site_files.file_entries(stage, packages))
        entries = site_files.file_entries(stage, packages)
        (stage / "precache-manifest.json").write_text(json.dumps({"build": build_id, "files": entries}, indent=1))
        site_files.compress(stage, cache)  # again, for the service worker itself
        (stage / STAMP).write_text(json.dumps({"inputs": fingerprint, "build": build_id}))
        swap_in(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return Result(out, build_id, True, time.perf_counter() - started)


def swap_in(stage: Path, out: Path) -> None:
    """Replaces out with stage in two renames, so out is never half-written."""
    old = out.with_name(f"{out.name}.old-{os.getpid()}")
    if out.exists():
        out.rename(old)
    stage.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="build.py", description="Build dist/, PyJoy's static site.")
    add_arguments(parser)
    return run(parser.parse_args(argv))
