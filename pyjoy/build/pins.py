"""What the build vendors, pinned. Bump a pin here and in package.json together."""

from __future__ import annotations

from dataclasses import dataclass

PYODIDE_VERSION = "314.0.7"
PYODIDE_CORE_FILES = ("pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip")

# Where the runtime fetches Pyodide packages (numpy, scikit-image, ...) that dist/ does not
# vendor. Override with --package-index, or vendor a whole distribution with --pyodide-dist.
DEFAULT_PACKAGE_INDEX = f"https://cdn.jsdelivr.net/pyodide/v{PYODIDE_VERSION}/full/"

WORKBOX_VERSION = "7.4.1"
WORKBOX_MODULES = ("workbox-core", "workbox-routing", "workbox-strategies", "workbox-precaching")


@dataclass(frozen=True)
class PinnedWheel:
    """A pure-Python wheel taken from PyPI and served from dist/ so it loads offline."""

    name: str
    version: str
    filename: str
    sha256: str  # of PyPI's file; Pyodide's lock names its own rebuild, whose hash differs


VENDORED_WHEELS = (
    PinnedWheel(
        name="micropip",
        version="0.11.1",
        filename="micropip-0.11.1-py3-none-any.whl",
        sha256="768de165adb8e66906039d8fec4127a57f522dfdf8e6fbff877a4616941ecfd3",
    ),
)

# onnxruntime-web, for the built-in Image Recognition plugin: the WASM build (SIMD and
# threads) and the WebGPU build (which also runs the WASM backend), each a bundle, its
# Emscripten module and its .wasm.
ONNXRUNTIME_WEB_VERSION = "1.30.0"
ONNXRUNTIME_WEB_FILES = (
    "ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm",
    "ort.webgpu.min.mjs", "ort-wasm-simd-threaded.asyncify.mjs", "ort-wasm-simd-threaded.asyncify.wasm",
)

# PyScript, for window plugins written in Python (app/sandbox/python-window.js): its
# prebuilt browser module, bundled into one file (a sandbox imports it from a blob: URL,
# where the package's relative chunk imports could not resolve).
PYSCRIPT_VERSION = "0.7.31"
