"""The engine's model service: ONNX models run with onnxruntime (ENGINE.md, "The model service").

    started = await engine.models()          # the engine channel: this connection's service, like start()
    # ...its channel loaded as any plugin's (client.py: `service = await client.model_service()`)
    model = await service.load(onnx_bytes, "sha256-BASE64...", name="efficientnet-lite0")
    outputs = await service.run(model["id"], {"input": tensor})     # {"logits": ndarray}
    batch = await service.run_batch(model["id"], [t1, t2, t3])      # [{"logits": ...}, ...]
    await service.info()                     # onnxruntime's version, the provider chosen and why
    await service.unload(model["id"])

It runs as a built-in native-python plugin (`SOURCE`) in a process of its own, one per
connection: a model file is bytes from the network, and onnxruntime parsing a hostile one
may crash or exhaust memory; in its own process that ends the service (its callers get
the exit status at once) and never the engine or other plugins. Its channel streams
arrays as any plugin's does, so a model (18 MB for the app's) or a batch is not bound by
the engine channel's 16 MiB.

The model comes as bytes, never as a path or URL: the page has them (it fetched them, with
their integrity, for onnxruntime-web), an engine that cannot reach the app's server still
works, and a page cannot make the engine open its files or fetch other hosts. Its
`integrity` (`sha256-BASE64`, as SRI and the app's models.json write it) is required and
checked before onnxruntime sees a byte.

The provider: CUDA where this onnxruntime has it (the `onnxruntime-gpu` package) and a GPU
answers, the CPU otherwise; each model reports the provider its session really got.
Inference runs on one worker thread (onnxruntime releases the GIL), so the next batch is
received while one runs, and runs never contend for the cores.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

# What this service shares with pyjoy.onnx (a plugin's own models): the provider choice,
# integrity, the model's description and the checks of what is fed to it.
from pyjoy.onnx import (MAX_MODEL_BYTES, ModelError, check_feed, check_integrity, choose_providers, integrity_of,
                        parse_integrity)
from pyjoy.onnx import model_bytes as plain_model_bytes
from pyjoy.onnx.native import NativeSession, session_for

__all__ = ["ModelService", "ModelError", "choose_providers", "parse_integrity", "integrity_of", "SOURCE", "INSTALL"]

#: Models loaded at once in one service.
MAX_MODELS = 8
#: Inputs in one run_batch call.
MAX_BATCH = 1024
#: Calls waiting for the worker thread: past this a call fails at once rather than holding
#: its arrays in memory behind the others.
MAX_WAITING = 64
INSTALL = "install the engine extra (pip install 'pyjoy[engine]'); for CUDA, onnxruntime-gpu instead of onnxruntime"

#: The built-in plugin the engine starts for `models()`: the engine's own Python, no requirements.
SOURCE = """<config lang="json">
{"name": "PyJoy models", "type": "native-python", "version": "0.1.0", "api_version": "0.1.8",
 "description": "The engine's model service: ONNX models run with onnxruntime."}
</config>
<script lang="python">
from pyjoy.engine.model_service import ModelService
api.export(ModelService())
</script>
"""


def model_bytes(data: Any) -> memoryview:
    """The model file's bytes from what the page sent (ArrayBuffer, Uint8Array, bytes)."""
    if isinstance(data, str):
        raise ModelError("load: send the model file's bytes (an ArrayBuffer or Uint8Array), not a string: the "
                         "service opens no paths and fetches no URLs")
    return plain_model_bytes(data)


class Model:
    def __init__(self, model_id: str, integrity: str, size: int, native: NativeSession) -> None:
        self.id = model_id
        self.name = native.name
        self.integrity = integrity
        self.size = size
        self.native = native
        self.inputs = native.inputs
        self.outputs = native.outputs
        self.provider = native.info["provider"]
        self.reason = native.info["reason"]

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "integrity": self.integrity, "bytes": self.size,
                "inputs": self.inputs, "outputs": self.outputs, "provider": self.provider, "reason": self.reason}

    def feed(self, inputs: Any, where: str) -> dict[str, Any]:
        """The session's feed from what the page sent, each array checked against the model."""
        return check_feed(self.name, self.inputs, inputs, where)

    def run(self, feed: dict[str, Any]) -> dict[str, Any]:
        return dict(zip((node["name"] for node in self.outputs), self.native.session.run(None, feed)))


class ModelService:
    """The service's API, exported to the page (the plugin SOURCE runs in its process)."""

    def __init__(self) -> None:
        self._models: dict[str, Model] = {}
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pyjoy-model")
        self._waiting = 0

    def setup(self) -> None:
        self._onnxruntime()

    @staticmethod
    def _onnxruntime() -> Any:
        try:
            import onnxruntime
        except ImportError:
            raise ModelError(f"the engine's Python has no onnxruntime: {INSTALL}") from None
        return onnxruntime

    async def _on_worker(self, work: Any, *args: Any) -> Any:
        if self._waiting >= MAX_WAITING:
            raise ModelError(f"the model service has {self._waiting} calls waiting; wait for their answers "
                             "before sending more")
        self._waiting += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._worker, work, *args)
        finally:
            self._waiting -= 1

    def info(self) -> dict[str, Any]:
        ort = self._onnxruntime()
        available = ort.get_available_providers()
        providers, reason = choose_providers(available)
        return {"onnxruntime": ort.__version__, "provider": providers[0], "reason": reason, "available": available,
                "device": ort.get_device(), "models": [model.summary() for model in self._models.values()],
                "limits": {"model_bytes": MAX_MODEL_BYTES, "models": MAX_MODELS, "batch": MAX_BATCH}}

    async def load(self, data: Any, integrity: str, name: str | None = None) -> dict[str, Any]:
        """Loads an ONNX model from its file's bytes, checked against `integrity` first.
        The same bytes loaded again answer the model already loaded."""
        if name is not None and not isinstance(name, str):
            raise ModelError(f"load: name should be a string, not {type(name).__name__}")
        parse_integrity(integrity)  # a malformed one is refused before the bytes are looked at
        view = model_bytes(data)
        if len(view) > MAX_MODEL_BYTES:
            raise ModelError(f"load: the model file has {len(view)} bytes, more than the {MAX_MODEL_BYTES} "
                             "this service takes")
        digest = check_integrity(view, integrity, "the model file")
        model_id = "m" + digest.hex()[:16]
        if model_id in self._models:
            return self._models[model_id].summary()
        if len(self._models) >= MAX_MODELS:
            raise ModelError(f"load: {MAX_MODELS} models are loaded already; unload one first")
        label = (name or model_id)[:100]
        model = await self._on_worker(self._session, bytes(view), model_id, label, integrity)
        self._models[model_id] = model
        return model.summary()

    @staticmethod
    def _session(data: bytes, model_id: str, name: str, integrity: str) -> Model:
        return Model(model_id, integrity, len(data), session_for(name, data, "auto"))

    def _model(self, model_id: Any, where: str) -> Model:
        model = self._models.get(model_id) if isinstance(model_id, str) else None
        if model is None:
            raise ModelError(f"{where}: no model {str(model_id)[:80]!r} is loaded (loaded: "
                             f"{', '.join(self._models) or 'none'}); load it first")
        return model

    async def run(self, model_id: str, inputs: Any) -> dict[str, Any]:
        """Runs the model once: `inputs` an n-d array (a one-input model) or an object of
        arrays by input name; answers an object of arrays by output name."""
        model = self._model(model_id, "run")
        return await self._on_worker(model.run, model.feed(inputs, "run"))

    async def run_batch(self, model_id: str, batch: Any) -> list[dict[str, Any]]:
        """Runs the model on each item of `batch` (as run's `inputs`), in one call and in
        order, one after the other on the worker thread; answers their outputs in a list."""
        model = self._model(model_id, "run_batch")
        if not isinstance(batch, list) or not 0 < len(batch) <= MAX_BATCH:
            raise ModelError(f"run_batch: batch should be a list of 1 to {MAX_BATCH} inputs, not "
                             + (f"{len(batch)} of them" if isinstance(batch, list) else type(batch).__name__))
        feeds = [model.feed(item, f"run_batch: item {index}") for index, item in enumerate(batch)]
        return await self._on_worker(lambda: [model.run(feed) for feed in feeds])

    def unload(self, model_id: str) -> bool:
        self._models.pop(self._model(model_id, "unload").id)
        return True
