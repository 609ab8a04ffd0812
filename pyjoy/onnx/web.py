"""pyjoy.onnx in the browser: onnxruntime-web, driven from Pyodide through web.js (beside
this file, imported once per Python as a blob: module: a sandbox imports nothing by URL;
or the build's copy, imported as Python booted for a plugin that imports pyjoy.onnx, which
started loading onnxruntime-web meanwhile: app/python/boot.js).

    session = await load(name, url=..., data=..., integrity=..., provider="auto" | "wasm" | "webgpu", threads=None)
    outputs = await session.run(feed, kind)     # feed: checked arrays by input name

Inputs go to JavaScript as PyProxies of their bytes, which web.js views without a copy
(getBuffer); outputs come back as the bytes of onnxruntime-web's typed arrays and are copied
once into new arrays here (`to_bytes`, `assign_to`): no element is converted on its own.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from pyjoy.onnx import ModelError, app_url, describe, flat_bytes, output_array

_module: asyncio.Future[Any] | None = None


async def _import_web_js() -> Any:
    import js
    from pyodide.code import run_js

    loading = getattr(js, "pyjoyOnnxWeb", None)  # imported as Python booted (app/python/boot.js)
    if loading is not None:
        try:
            return await loading
        except Exception:  # that import failed: this package's copy instead
            pass
    source = (Path(__file__).parent / "web.js").read_text()
    importer = run_js("(text) => import(URL.createObjectURL(new Blob([text], { type: 'text/javascript' })))")
    return await importer(source)


def web_js() -> asyncio.Future[Any]:
    """web.js as a JavaScript module: imported once, also when models load at the same time
    (its sessions are its own: a second copy would not know the first's)."""
    global _module
    if _module is None or (_module.done() and _module.exception() is not None):
        _module = asyncio.ensure_future(_import_web_js())
    return _module


async def preload() -> None:
    """Starts loading the onnxruntime-web that `load` would take (web.js's preload): for a
    plugin that imports pyjoy.onnx, given a Python booted before it was known (a spare)."""
    base = app_url()
    if base is not None:
        await (await web_js()).preload(base)


def js_error(error: Exception) -> str:
    """A JavaScript error's message, without Pyodide's prefix."""
    message = str(error)
    return message.split("Error: ", 1)[-1] if message.startswith(("Error: ", "TypeError: ")) else message


async def fetch_bytes(url: str, integrity: str | None, where: str) -> bytes:
    """The bytes at an absolute URL, with the sandbox's fetch (PyJoy's own files come from
    the page, offline too), checked against `integrity` on the way (by the page, or SRI)."""
    module = await web_js()
    try:
        data = await module.fetchBytes(url, integrity, "the file")
    except Exception as error:
        raise ModelError(f"{where}: {js_error(error)}") from None
    return data.to_bytes()


class WebSession:
    def __init__(self, name: str, module: Any, handle: Any) -> None:
        self.name = name
        self._module = module
        self._handle = handle
        self.inputs = [describe(value.name, value.type, list(value.shape)) for value in handle.inputs]
        self.outputs = [describe(value.name, value.type, list(value.shape)) for value in handle.outputs]
        self.info = handle.info.to_py()
        self._dtypes = {node["name"]: node["dtype"] for node in self.inputs}
        # onnxruntime-web runs one call of a session at a time.
        self._lock = asyncio.Lock()

    async def run(self, feed: dict[str, Any], kind: str) -> dict[str, Any]:
        from pyodide.ffi import create_proxy

        if self._handle is None:
            raise ModelError(f"run: model {self.name!r} was closed")
        described = [{"name": name, "type": self._dtypes[name], "dims": list(array.shape)} for name, array in feed.items()]
        proxies = [create_proxy(flat_bytes(array)) for array in feed.values()]
        try:
            async with self._lock:
                answer = await self._module.run(self._handle, json.dumps(described), *proxies)
        except Exception as error:  # onnxruntime-web's errors are JavaScript's
            raise ModelError(f"run: onnxruntime-web could not run model {self.name!r}: {js_error(error)}") from None
        finally:
            for proxy in proxies:
                proxy.destroy()
        outputs = {}
        for result, data in zip(json.loads(answer[0]), answer[1:]):
            dtype = describe(result["name"], result["type"], None)["dtype"]
            if dtype is None:
                raise ModelError(f"run: output {result['name']!r} of model {self.name!r} is of type {result['type']}, "
                                 "which pyjoy.onnx cannot return")
            outputs[result["name"]] = output_array(kind, dtype, result["dims"], data)
        return outputs

    async def close(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            await self._module.close(handle)


async def load(name: str, *, url: str | None, data: memoryview | None, integrity: str | None,
               provider: str, threads: int | None = None) -> WebSession:
    from pyodide.ffi import create_proxy, to_js
    import js

    if provider not in ("auto", "wasm", "webgpu"):
        raise ModelError(f"load: provider should be \"auto\", \"wasm\" or \"webgpu\" with onnxruntime-web, "
                         f"not {provider!r}")
    base = app_url()
    if base is None:
        raise ModelError("load: this Python does not know the app's address (PYJOY_APP_URL), where onnxruntime-web is")
    module = await web_js()
    buffer = create_proxy(data) if data is not None else None
    model = to_js({"url": url, "integrity": integrity} if url else {}, dict_converter=js.Object.fromEntries)
    if buffer is not None:
        model.buffer = buffer
    options = to_js({"appURL": base, "provider": provider, "threads": threads, "name": name},
                    dict_converter=js.Object.fromEntries)
    options.model = model
    try:
        handle = await module.load(options)
    except Exception as error:
        raise ModelError(f"load: onnxruntime-web cannot load model {name!r}: {js_error(error)}") from None
    finally:
        if buffer is not None:
            buffer.destroy()
    return WebSession(name, module, handle)
