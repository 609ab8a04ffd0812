"""pyjoy.onnx natively: onnxruntime in this process (a native-python plugin on the engine, or
any CPython). Loading and running happen on a worker thread (onnxruntime releases the GIL),
so the plugin's event loop keeps answering meanwhile.

    session = await load(name, url=..., data=..., integrity=..., provider="auto" | "cpu", threads=None)
    outputs = await session.run(feed, kind)     # feed: checked arrays by input name
"""

from __future__ import annotations

import asyncio
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pyjoy.onnx import CPU, CUDA, MAX_MODEL_BYTES, ModelError, check_integrity, choose_providers, describe, flat_bytes

INSTALL = "install onnxruntime (pip install onnxruntime; onnxruntime-gpu for CUDA)"
#: How long fetching a model's URL may take.
FETCH_SECONDS = 300


def onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ModelError(f"this Python ({sys.executable}) has no onnxruntime: {INSTALL}") from None
    return onnxruntime


def fetch(url: str, where: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=FETCH_SECONDS) as response:
            data = response.read(MAX_MODEL_BYTES + 1)
    except OSError as error:  # URLError, HTTPError, timeouts
        raise ModelError(f"{where}: could not fetch {url}: {error}") from None
    if len(data) > MAX_MODEL_BYTES:
        raise ModelError(f"{where}: {url} has more than the {MAX_MODEL_BYTES} bytes pyjoy.onnx takes")
    return data


async def fetch_bytes(url: str, integrity: str | None, where: str) -> bytes:
    """The bytes at an absolute URL, on a thread, checked against `integrity` where given."""
    data = await asyncio.to_thread(fetch, url, where)
    check_integrity(memoryview(data), integrity, f"the file at {url}", where)
    return data


class NativeSession:
    def __init__(self, name: str, session: Any, reason: str, ort: Any) -> None:
        self.name = name
        self.session = session
        self.inputs = [describe(node.name, node.type, node.shape) for node in session.get_inputs()]
        self.outputs = [describe(node.name, node.type, node.shape) for node in session.get_outputs()]
        # One thread: runs never contend for the cores, and a session is run one call at a time.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pyjoy-onnx")
        self.info = {"runtime": "onnxruntime", "version": ort.__version__, "provider": session.get_providers()[0],
                     "reason": reason, "available": ort.get_available_providers(), "device": ort.get_device()}

    async def run(self, feed: dict[str, Any], kind: str) -> dict[str, Any]:
        import numpy as np

        if self.session is None:
            raise ModelError(f"run: model {self.name!r} was closed")
        arrays = {name: np.asarray(array) for name, array in feed.items()}  # an NDArray: a view, no copy
        results = await asyncio.get_running_loop().run_in_executor(self._worker, self.session.run, None, arrays)
        outputs = {}
        for node, result in zip(self.outputs, results):
            if kind == "ndarray":
                from pyjoy.rpc.ndarray import NDArray

                result = NDArray(flat_bytes(result), result.shape, result.dtype.name)
            outputs[node["name"]] = result
        return outputs

    async def close(self) -> None:
        self.session = None
        self._worker.shutdown(wait=False)


def session_for(name: str, data: bytes | memoryview, provider: str, threads: int | None = None) -> NativeSession:
    ort = onnxruntime()
    if provider == "cpu":
        providers, reason = [CPU], "the CPU, as asked for"
    else:
        providers, reason = choose_providers(ort.get_available_providers())
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: its warnings would flood the plugin's output
    # onnxruntime's threads spin for a while after each run, waiting for more work, and so
    # hold the cores just when the answer goes out and the next input comes in (the same
    # process's event loop, and on one machine the client): they stop as a run ends. Back to
    # back, the model service's calls through the engine took 5.0 ms over the runs' own time
    # for 8 images, 3.3 ms so (bench/engine_model.py's model, 2 cores).
    options.add_session_config_entry("session.force_spinning_stop", "1")
    if threads is not None:
        options.intra_op_num_threads = threads
        reason += f"; {threads} thread{'s' if threads > 1 else ''}, as asked for"
    try:
        session = ort.InferenceSession(bytes(data), options, providers=providers)
    except Exception as error:  # onnxruntime's own types (InvalidProtobuf, Fail, ...) carry the reason
        detail = str(error).strip().splitlines()[0][:500] if str(error).strip() else type(error).__name__
        raise ModelError(f"load: onnxruntime {ort.__version__} cannot load model {name!r}: {detail}") from None
    if providers[0] == CUDA and session.get_providers()[0] != CUDA:
        reason = "this onnxruntime has the CUDA provider, but it did not start here (no GPU, or no CUDA libraries): the CPU"
    return NativeSession(name, session, reason, ort)


async def load(name: str, *, url: str | None, data: memoryview | None, integrity: str | None,
               provider: str, threads: int | None = None) -> NativeSession:
    if provider not in ("auto", "cpu"):
        raise ModelError(f"load: provider should be \"auto\" or \"cpu\" with onnxruntime, not {provider!r}")
    onnxruntime()  # a missing onnxruntime is said before anything is fetched
    if url is not None:
        data = memoryview(await fetch_bytes(url, integrity, "load"))
    return await asyncio.to_thread(session_for, name, data, provider, threads)
