"""ONNX models from Python: one API in the browser (onnxruntime-web) and natively (onnxruntime).

    from pyjoy.onnx import load_model

    model = await load_model("vendor/models/tiny.onnx")       # a URL: relative ones are PyJoy's files (the app's)
    model = await load_model(data)                            # the model file's bytes (bytes, memoryview, uint8 array)
    model = await load_model(attachment="tiny")               # the plugin's <attachment name="tiny">: the file in base64
    model = await load_model(pathlib.Path("tiny.onnx"))       # a file (on the engine; Pyodide's own file system)
    model = await load_model(source, integrity="sha256-...")  # checked before the runtime reads a byte
    model = await load_model(source, provider="wasm", threads=1)  # or the runtime's choice (both "auto")
    model.inputs    # [{"name": "x", "shape": ["N", 3], "dtype": "float32", "type": "tensor(float)"}]
    model.outputs   # likewise; a shape holds None (or the dimension's name) where any size goes
    outputs = await model.run({"x": array})                   # {"y": array}; a one-input model also takes the array
    model.info()    # {"runtime", "version", "provider", "reason", ...}: what runs it, and why
    await model.close()
    catalog = json.loads(await read_url("models.json"))       # any of the app's files (bytes), fetched the same way

The same code runs in a web-python plugin (Pyodide in its worker), in the console's Python,
wherever else PyJoy's Pyodide runs with its runtime, and in a native-python plugin on the
engine (or any CPython with onnxruntime): both calls are async everywhere. Arrays are numpy arrays, or PyJoy's `NDArray` (pyjoy/rpc/ndarray.py)
where numpy is absent; outputs are of the kind the inputs were. A wrong input name, dtype
or shape is a `ModelError` naming the input, what the model takes and what it got.

In the browser (web.py, web.js) onnxruntime-web runs the model: WebGPU where a hardware
adapter exists, else WASM with SIMD, on one thread per core where the context is
cross-origin isolated and on one thread otherwise; `info()["reason"]` says which and why.
Natively (native.py) onnxruntime runs it, with CUDA where this onnxruntime has it and a GPU
answers (`choose_providers`, shared with the engine's model service).

A relative URL is resolved against the app's address (PYJOY_APP_URL: the page's base URL in
the browser, `pyjoy engine --app` on the engine).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from pyjoy.rpc.ndarray import DTYPES as WIRE_DTYPES
from pyjoy.rpc.ndarray import NDArray

__all__ = ["load_model", "read_url", "Model", "ModelError", "choose_providers", "parse_integrity", "integrity_of"]

#: The largest model file taken (an ONNX protobuf holds at most 2 GiB).
MAX_MODEL_BYTES = 2**30
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
#: ONNX's tensor element types (`tensor(float)`; onnxruntime-web says `float32`), as
#: the RPC's dtypes (PROTOCOL.md, Values) name them. Others (float16, strings) are refused.
DTYPES = {"float": "float32", "double": "float64", "bool": "bool", "int8": "int8", "uint8": "uint8",
          "int16": "int16", "uint16": "uint16", "int32": "int32", "uint32": "uint32", "int64": "int64",
          "uint64": "uint64"}
APP_URL = "PYJOY_APP_URL"


class ModelError(Exception):
    """What pyjoy.onnx (or the engine's model service) refuses or could not do: the message says what and why."""


def in_browser() -> bool:
    return sys.platform == "emscripten"


def choose_providers(available: list[str]) -> tuple[list[str], str]:
    """onnxruntime's providers a session is asked for, best first, and why."""
    if CUDA in available:
        return [CUDA, CPU], "this onnxruntime has the CUDA provider: used where a GPU answers, else the CPU"
    return [CPU], "this onnxruntime has no CUDA provider (the onnxruntime-gpu package has it): the CPU"


def parse_integrity(integrity: Any) -> bytes:
    """The SHA-256 digest an SRI string `sha256-BASE64` names."""
    if isinstance(integrity, str) and integrity.startswith("sha256-"):
        try:
            digest = base64.b64decode(integrity[len("sha256-"):], validate=True)
        except ValueError:
            digest = b""
        if len(digest) == 32:
            return digest
    raise ModelError(f"integrity should be 'sha256-' and the base64 of the model file's SHA-256 (as SRI and the app's "
                     f"models.json write it), not {str(integrity)[:80]!r}")


def integrity_of(data: bytes | memoryview) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(data).digest()).decode()


def check_integrity(view: memoryview, integrity: str | None, what: str, where: str = "load") -> bytes | None:
    """The bytes' SHA-256 digest, which should be the one `integrity` names: raises if not
    (None: nothing to check, and no digest)."""
    if integrity is None:
        return None
    expected = parse_integrity(integrity)
    digest = hashlib.sha256(view).digest()
    if digest != expected:
        raise ModelError(f"{where}: {what}'s bytes do not match its integrity: they hash to "
                         f"sha256-{base64.b64encode(digest).decode()}, expected {integrity}; the file is corrupt "
                         "or not the one meant. Nothing was loaded.")
    return digest


def model_bytes(data: Any) -> memoryview:
    """The model file's bytes, as one flat byte view, from bytes-like values or a uint8 array."""
    if isinstance(data, str):
        raise ModelError("load: the model file's bytes should be bytes, not a string")
    if isinstance(data, NDArray):
        if data.dtype != "uint8" or data.ndim != 1:
            raise ModelError(f"load: the model file's bytes should be a 1-d uint8 array, not {data.dtype} of shape "
                             f"{list(data.shape)}")
        return data.data
    np = sys.modules.get("numpy")
    if np is not None and isinstance(data, np.ndarray):
        if data.dtype != np.uint8 or data.ndim != 1:
            raise ModelError(f"load: the model file's bytes should be a Uint8Array, not {data.dtype} of shape "
                             f"{list(data.shape)}")
        return memoryview(np.ascontiguousarray(data)).cast("B")
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = memoryview(data)
        return view if view.format == "B" and view.ndim == 1 else view.cast("B")
    raise ModelError(f"load: the model file's bytes should be bytes, a memoryview or a uint8 array, "
                     f"not {type(data).__name__}")


def onnx_dtype(onnx_type: str) -> str | None:
    """'tensor(float)' -> 'float32'; None for a type the RPC cannot carry (float16, strings)."""
    if onnx_type.startswith("tensor(") and onnx_type.endswith(")"):
        return DTYPES.get(onnx_type[len("tensor("):-1])
    return None


ONNX_TYPES = {dtype: f"tensor({element})" for element, dtype in DTYPES.items()}


def describe(name: str, onnx_type: str, shape: list[Any] | None) -> dict[str, Any]:
    """A model input or output: name, shape (a dimension's name or None where any size goes),
    type (ONNX's, as onnxruntime says it: 'tensor(float)', whichever runtime), dtype."""
    if not onnx_type.startswith("tensor(") and onnx_type != "non-tensor":  # onnxruntime-web's 'float32'
        onnx_type = ONNX_TYPES.get(onnx_type, f"tensor({onnx_type})")
    dims = [dim if isinstance(dim, int) and dim >= 0 else (dim if isinstance(dim, str) and dim else None)
            for dim in (shape or [])]
    return {"name": name, "shape": dims, "type": onnx_type, "dtype": onnx_dtype(onnx_type)}


# ---------------------------------------------------------------------------------------
# Arrays in and out: numpy's or NDArray, checked against the model.

def array_facts(array: Any) -> tuple[str, tuple[int, ...], str] | None:
    """(kind, shape, dtype) of an n-d array, kind "numpy" or "ndarray"; None if not one."""
    if isinstance(array, NDArray):
        return "ndarray", array.shape, array.dtype
    np = sys.modules.get("numpy")
    if np is not None and isinstance(array, np.ndarray):
        return "numpy", tuple(array.shape), array.dtype.name
    return None


def check_feed(model: str, inputs_described: list[dict[str, Any]], inputs: Any, where: str = "run") -> dict[str, Any]:
    """The inputs by name, each checked against what the model takes (its name, dtype and
    shape); a `ModelError` naming the input and what is wrong otherwise. `inputs`: a dict of
    arrays by input name, or one array for a one-input model."""
    names = [node["name"] for node in inputs_described]
    if array_facts(inputs) is not None:
        if len(names) != 1:
            raise ModelError(f"{where}: model {model!r} has {len(names)} inputs ({', '.join(names)}); "
                             "send an object of arrays by input name")
        inputs = {names[0]: inputs}
    if not isinstance(inputs, dict):
        raise ModelError(f"{where}: expected an n-d array or an object of arrays by input name, "
                         f"not {type(inputs).__name__}")
    missing = [name for name in names if name not in inputs]
    unknown = [str(name) for name in inputs if name not in names]
    if missing or unknown:
        raise ModelError(f"{where}: model {model!r} takes the inputs {', '.join(names)}"
                         + (f"; missing: {', '.join(missing)}" if missing else "")
                         + (f"; unknown: {', '.join(unknown)}" if unknown else ""))
    feed = {}
    for node in inputs_described:
        array = inputs[node["name"]]
        label = f"{where}: input {node['name']!r} of model {model!r}"
        facts = array_facts(array)
        if facts is None:
            raise ModelError(f"{label} should be an n-d array (a numpy array, or pyjoy's NDArray), "
                             f"not {type(array).__name__}")
        _kind, shape, dtype = facts
        if node["dtype"] is None:
            raise ModelError(f"{label} is of type {node['type']}, which pyjoy.onnx cannot send (it takes "
                             f"{', '.join(WIRE_DTYPES)})")
        if dtype != node["dtype"]:
            raise ModelError(f"{label} should be {node['dtype']} (the model's {node['type']}), not {dtype}")
        wanted = node["shape"]
        if len(shape) != len(wanted) or any(isinstance(want, int) and want != got for want, got in zip(wanted, shape)):
            raise ModelError(f"{label} should have the shape {wanted} (a string or null: any size), not {list(shape)}")
        feed[node["name"]] = array
    return feed


def flat_bytes(array: Any) -> memoryview:
    """An array's elements as bytes in C order, little-endian: a view, copied only where the
    array is not C-contiguous (or not little-endian)."""
    if isinstance(array, NDArray):
        return array.data
    np = sys.modules["numpy"]
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return memoryview(np.ascontiguousarray(array)).cast("B")


def result_kind(feed: dict[str, Any]) -> str:
    """Outputs are of the kind the inputs were: numpy arrays unless they were NDArrays."""
    kinds = {facts[0] for facts in map(array_facts, feed.values()) if facts}
    return "ndarray" if kinds == {"ndarray"} else "numpy"


# ---------------------------------------------------------------------------------------
# Where a model comes from.

def app_url() -> str | None:
    return os.environ.get(APP_URL) or None


def resolve_url(url: str, where: str = "load") -> str:
    """An absolute URL for `url`: relative ones are PyJoy's files, under the app's address."""
    if urlsplit(url).scheme in ("http", "https"):
        return url
    if urlsplit(url).scheme:
        raise ModelError(f"{where}: {url[:200]!r} is not an http(s) URL")
    base = app_url()
    if base is None:
        raise ModelError(f"{where}: the relative URL {url[:200]!r} needs the app's address, and this Python does not "
                         f"know it ({APP_URL} is not set); pass an absolute URL")
    return urljoin(base, url)


async def read_url(url: str, integrity: str | None = None) -> bytes:
    """The bytes at `url` (relative: one of the app's files, such as models.json or a
    model's class names), fetched as load_model fetches a model (offline too, in the
    browser), checked against `integrity` where given."""
    if integrity is not None:
        parse_integrity(integrity)
    absolute = resolve_url(url, "read_url")
    if in_browser():
        from pyjoy.onnx.web import fetch_bytes
    else:
        from pyjoy.onnx.native import fetch_bytes  # type: ignore[assignment]
    return await fetch_bytes(absolute, integrity, "read_url")  # the integrity checked on the way


async def attachment_bytes(name: str) -> memoryview:
    """The model in the plugin's <attachment name=...>, written there in base64 (an
    attachment is text: imjoy-core's api.getAttachment returns its content as a string)."""
    from pyjoy.plugin.api import api

    try:
        text = await api.getAttachment(name)
    except Exception as error:
        raise ModelError(f"load: the plugin's attachment {name!r} could not be read: {error}") from None
    if not isinstance(text, str):
        raise ModelError(f"load: the plugin's attachment {name!r} should be text, not {type(text).__name__}")
    try:
        return memoryview(base64.b64decode("".join(text.split()), validate=True))
    except (binascii.Error, ValueError):
        raise ModelError(f"load: the plugin's attachment {name!r} should hold the model file in base64, "
                         f"and it does not ({len(text)} characters)") from None


class Model:
    """A loaded model: `inputs`, `outputs`, `await run(inputs)`, `info()`, `await close()`."""

    def __init__(self, name: str, backend: Any) -> None:
        self.name = name
        self._backend = backend
        self.inputs: list[dict[str, Any]] = backend.inputs
        self.outputs: list[dict[str, Any]] = backend.outputs

    def __repr__(self) -> str:
        return f"<pyjoy.onnx.Model {self.name!r} on {self._backend.info.get('provider')}>"

    def info(self) -> dict[str, Any]:
        """What runs the model: runtime, version, provider, reason (why that provider), and
        the runtime's own facts (threads, SIMD, cross-origin isolation, WebGPU; or onnxruntime's providers)."""
        return {"name": self.name, "inputs": self.inputs, "outputs": self.outputs, **self._backend.info}

    async def run(self, inputs: Any) -> dict[str, Any]:
        """Runs the model once: `inputs` a dict of arrays by input name (or the array of a
        one-input model); answers a dict of arrays by output name, of the inputs' kind."""
        feed = check_feed(self.name, self.inputs, inputs)
        return await self._backend.run(feed, result_kind(feed))

    async def close(self) -> None:
        """Frees the session; the model cannot run after."""
        await self._backend.close()


async def load_model(source: Any = None, *, attachment: str | None = None, integrity: str | None = None,
                     name: str | None = None, provider: str = "auto", threads: int | None = None) -> Model:
    """Loads an ONNX model: from a URL (str; relative ones are PyJoy's files), the model
    file's bytes, a pathlib.Path, or the plugin's attachment (attachment=NAME, base64).
    `integrity` ('sha256-BASE64') is checked before the runtime reads a byte. `provider`:
    "auto"; in the browser also "wasm" or "webgpu", natively "cpu". `threads`: how many the
    CPU runs it on (None: the runtime's choice; in the browser one per core where the
    context is cross-origin isolated, else one)."""
    if (source is None) == (attachment is None):
        raise ModelError("load: give one source: a URL, the model file's bytes, a pathlib.Path, or attachment=NAME")
    if integrity is not None:
        parse_integrity(integrity)  # a malformed one fails before anything is fetched
    if name is not None and not isinstance(name, str):
        raise ModelError(f"load: name should be a string, not {type(name).__name__}")
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= 256):
        raise ModelError(f"load: threads should be a whole number from 1 to 256, or None, not {threads!r}")
    url = data = None
    if attachment is not None:
        data = await attachment_bytes(attachment)
        label = name or f"attachment {attachment}"
    elif isinstance(source, str):
        url = resolve_url(source)
        label = name or url.rsplit("/", 1)[-1] or url
    elif isinstance(source, Path):
        try:
            data = memoryview(source.read_bytes())
        except OSError as error:
            raise ModelError(f"load: could not read the model file {source}: {error.strerror or error}") from None
        label = name or source.name
    else:
        data = model_bytes(source)
        label = name or "model"
    label = label[:100]
    if data is not None:
        if len(data) > MAX_MODEL_BYTES:
            raise ModelError(f"load: the model file has {len(data)} bytes, more than the {MAX_MODEL_BYTES} "
                             "pyjoy.onnx takes")
        check_integrity(data, integrity, f"the model {label!r}")
    if in_browser():
        from pyjoy.onnx import web as backend
    else:
        from pyjoy.onnx import native as backend  # type: ignore[no-redef]
    return Model(label, await backend.load(label, url=url, data=data, integrity=integrity, provider=provider,
                                                threads=threads))


def output_array(kind: str, dtype: str, shape: list[int], data: Any) -> Any:
    """A new array of `kind` for an output from `data`, its bytes (a JavaScript Uint8Array in
    the browser: `to_bytes()` and `assign_to(buffer)` copy them once, with nothing zeroed first)."""
    if kind == "numpy":
        import numpy as np

        array = np.empty(shape, dtype=dtype)
        data.assign_to(array.reshape(-1).view(np.uint8))
        return array
    return NDArray(data.to_bytes(), shape, dtype)
