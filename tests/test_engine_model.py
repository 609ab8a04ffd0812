"""The engine's model service, end to end on CPython: a real `pyjoy engine` on 127.0.0.1, its
model service in a process of its own, reached through pyjoy/engine/client.py as a page
reaches it. No browser. The model is the app's own file (dist/, as models.json names it,
with its integrity); the reference is onnxruntime called directly, in this process, on the
same file and the same tensors (the build's preprocessing of scikit-image's photographs)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import skimage.data

from pyjoy.build.model import preprocess
from pyjoy.devtools import engine_running, run_async
from pyjoy.engine.client import EngineClient
from pyjoy.rpc import ClosedError, RemoteError

ROOT = Path(__file__).resolve().parents[1]
APP = "http://127.0.0.1:8000"
# Direct onnxruntime and the engine's, on the same machine and provider: the same kernels
# on the same floats. Any difference beyond rounding noise means a changed tensor.
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def model() -> dict:
    catalog = json.loads((ROOT / "dist" / "models.json").read_text())
    entry = catalog["models"]["efficientnet-lite0"]
    path = ROOT / "dist" / entry["url"]
    if not path.is_file():
        pytest.skip("dist/ has no model: run python build.py")
    labels = json.loads((ROOT / "dist" / entry["labels"]).read_text())
    return {"path": path, "bytes": path.read_bytes(), "integrity": entry["integrity"], "labels": labels}


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):
    with engine_running(tmp_path_factory.mktemp("engine-model")) as (url, process):
        yield {"url": url, "process": process}


@pytest.fixture(scope="module")
def direct(model: dict) -> onnxruntime.InferenceSession:
    """The reference: onnxruntime in this process, on the provider it has."""
    providers = [name for name in ("CUDAExecutionProvider", "CPUExecutionProvider")
                 if name in onnxruntime.get_available_providers()]
    return onnxruntime.InferenceSession(str(model["path"]), providers=providers)


def photographs() -> dict[str, np.ndarray]:
    return {"chelsea": preprocess(skimage.data.chelsea()), "coffee": preprocess(skimage.data.coffee())}


def top5(logits: np.ndarray, labels: list[str]) -> list[str]:
    return [labels[i] for i in np.argsort(-logits.reshape(-1), kind="stable")[:5]]


async def service(engine: dict) -> tuple[EngineClient, object]:
    client = await EngineClient.connect(engine["url"], origin=APP)
    return client, (await client.model_service()).api


def test_the_engine_gives_what_onnxruntime_called_directly_gives_on_the_apps_model(engine, model, direct) -> None:
    async def scenario() -> None:
        client, models = await service(engine)
        loaded = await models.load(model["bytes"], model["integrity"], name="efficientnet-lite0")
        assert loaded["inputs"] == [{"name": "input", "shape": [1, 3, 224, 224], "type": "tensor(float)",
                                     "dtype": "float32"}]
        assert [output["name"] for output in loaded["outputs"]] == [node.name for node in direct.get_outputs()]
        tensors = photographs()
        for name, tensor in tensors.items():
            got = await models.run(loaded["id"], tensor)
            want = direct.run(None, {"input": tensor})[0]
            assert got["logits"].dtype == np.float32 and got["logits"].shape == want.shape
            assert np.abs(got["logits"] - want).max() <= TOLERANCE, name
            assert top5(got["logits"], model["labels"]) == top5(want, model["labels"])
        # The photographs are what the build checked the export on: a cat, and coffee.
        assert top5(want, model["labels"])[0] == "espresso"
        # A batch: each item's outputs, in order, as single runs give them.
        batch = [tensors["coffee"], tensors["chelsea"], tensors["coffee"] * 0.5]
        answers = await models.run_batch(loaded["id"], batch)
        assert len(answers) == 3
        for tensor, answer in zip(batch, answers):
            assert np.abs(answer["logits"] - direct.run(None, {"input": tensor})[0]).max() <= TOLERANCE
        # By input name too; the same bytes loaded again are the same model.
        named = await models.run(loaded["id"], {"input": tensors["chelsea"]})
        assert np.abs(named["logits"] - direct.run(None, {"input": tensors["chelsea"]})[0]).max() <= TOLERANCE
        again = await models.load(model["bytes"], model["integrity"])
        assert again["id"] == loaded["id"] and len((await models.info())["models"]) == 1
        await client.close()

    run_async(scenario())


def test_the_provider_is_reported_as_onnxruntime_chose_it(engine, model, direct) -> None:
    async def scenario() -> None:
        client, models = await service(engine)
        info = await models.info()
        available = onnxruntime.get_available_providers()
        assert info["onnxruntime"] == onnxruntime.__version__ and info["available"] == available
        wanted = "CUDAExecutionProvider" if "CUDAExecutionProvider" in available else "CPUExecutionProvider"
        assert info["provider"] == wanted and info["reason"]
        loaded = await models.load(model["bytes"], model["integrity"])
        # What a session on this machine really gets (CUDA can be present and fail to start).
        assert loaded["provider"] == direct.get_providers()[0]
        assert [m["provider"] for m in (await models.info())["models"]] == [loaded["provider"]]
        await client.close()

    run_async(scenario())


def test_a_bad_model_is_refused_clearly_and_the_service_goes_on(engine, model, direct) -> None:
    async def scenario() -> None:
        client, models = await service(engine)
        corrupt = bytearray(model["bytes"])
        corrupt[len(corrupt) // 2] ^= 0xFF
        with pytest.raises(RemoteError) as refused:
            await models.load(bytes(corrupt), model["integrity"])
        assert refused.value.remote_type == "ModelError"
        assert "do not match its integrity" in str(refused.value) and "Nothing was loaded" in str(refused.value)
        hashed = "sha256-" + base64.b64encode(hashlib.sha256(bytes(corrupt)).digest()).decode()
        assert hashed in str(refused.value)  # it says what the bytes hash to

        garbage = b"this is not an ONNX model" * 1000
        integrity = "sha256-" + base64.b64encode(hashlib.sha256(garbage).digest()).decode()
        with pytest.raises(RemoteError, match=f"onnxruntime {onnxruntime.__version__} cannot load model 'garbage'"):
            await models.load(garbage, integrity, name="garbage")
        with pytest.raises(RemoteError, match="not a string: the service opens no paths"):
            await models.load(str(model["path"]), model["integrity"])
        for bad in (None, "sha384-abc", "sha256-not base64!", "sha256-" + base64.b64encode(b"short").decode()):
            with pytest.raises(RemoteError, match="integrity should be 'sha256-'"):
                await models.load(model["bytes"], bad)
        assert (await models.info())["models"] == []  # nothing of them stayed

        loaded = await models.load(model["bytes"], model["integrity"])  # the service goes on
        tensor = photographs()["chelsea"]
        with pytest.raises(RemoteError, match=r"input 'input' of model .* should be float32 .* not float64"):
            await models.run(loaded["id"], tensor.astype(np.float64))
        with pytest.raises(RemoteError, match=r"should have the shape \[1, 3, 224, 224\].* not \[1, 3, 224, 223\]"):
            await models.run(loaded["id"], tensor[..., :223].copy())
        with pytest.raises(RemoteError, match="takes the inputs input; missing: input; unknown: image"):
            await models.run(loaded["id"], {"image": tensor})
        with pytest.raises(RemoteError, match="no model 'nope' is loaded"):
            await models.run("nope", tensor)
        with pytest.raises(RemoteError, match="run_batch: item 1: input 'input'"):
            await models.run_batch(loaded["id"], [tensor, tensor.astype(np.float64)])
        with pytest.raises(RemoteError, match="batch should be a list of 1 to 1024 inputs"):
            await models.run_batch(loaded["id"], [])
        got = await models.run(loaded["id"], tensor)
        assert np.abs(got["logits"] - direct.run(None, {"input": tensor})[0]).max() <= TOLERANCE
        assert await models.unload(loaded["id"]) is True
        with pytest.raises(RemoteError, match="load it first"):
            await models.run(loaded["id"], tensor)
        await client.close()

    run_async(scenario())


def test_the_service_is_a_process_of_its_own_per_connection(engine, model) -> None:
    async def scenario() -> None:
        client, models = await service(engine)
        other, other_models = await service(engine)
        first = await client.engine.models()
        assert (await client.engine.models())["id"] == first["id"]  # one per connection
        assert first["name"] == "PyJoy models" and first["env"] == "engine"
        assert [p["id"] for p in await client.engine.list()] == [first["id"]]
        assert [p["id"] for p in await other.engine.list()] != [first["id"]]  # the other's is its own
        loaded = await models.load(model["bytes"], model["integrity"])
        assert (await other_models.info())["models"] == []  # and sees none of this one's models

        # Ended mid-call (as a crash in onnxruntime would end it): the call fails at once with
        # the exit status, the engine and the other connection's service go on.
        pending = asyncio.ensure_future(models.run_batch(loaded["id"], [photographs()["coffee"]] * 200))
        await asyncio.sleep(0.5)
        await client.engine.stop(first["id"])
        with pytest.raises((RemoteError, ClosedError), match="exited with status"):
            await asyncio.wait_for(pending, 10)
        assert (await other_models.info())["onnxruntime"] == onnxruntime.__version__
        # ...and a new one starts on the next call.
        fresh = await client.model_service()
        assert fresh.id != first["id"]
        assert (await fresh.api.load(model["bytes"], model["integrity"]))["id"] == loaded["id"]
        await client.close()
        await other.close()

    run_async(scenario())


def children(pid: int) -> set[int]:
    """The processes whose parent is `pid` (Linux: /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:  # "pid (name) state ppid ..."
                found.add(int(entry.name))
    return found


def test_a_killed_model_service_fails_its_callers_at_once_and_models_starts_a_working_one(engine, model, direct) -> None:
    async def scenario() -> None:
        client = await EngineClient.connect(engine["url"], origin=APP)
        before = children(engine["process"].pid)
        exits: list[dict] = []
        killed = await client.model_service(exited=exits.append)
        (pid,) = children(engine["process"].pid) - before  # the service's process, as a crash in onnxruntime ends it
        loaded = await killed.api.load(model["bytes"], model["integrity"])
        batch = [photographs()["coffee"]] * 100
        pending = [asyncio.ensure_future(killed.api.run_batch(loaded["id"], batch)) for _ in range(2)]
        await asyncio.sleep(0.2)
        assert not any(call.done() for call in pending)
        os.kill(pid, signal.SIGKILL)
        started = time.monotonic()
        for call in pending:
            with pytest.raises((RemoteError, ClosedError), match=r"'PyJoy models'.*status -9 \(killed by SIGKILL\)"):
                await asyncio.wait_for(call, 10)
        assert time.monotonic() - started < 3  # at once, not a timeout
        for _ in range(100):
            if exits:
                break
            await asyncio.sleep(0.02)
        assert [(e["id"], e["status"]) for e in exits] == [(killed.id, -9)]
        listed = await client.engine.list()
        assert [(p["id"], p["state"], p["status"]) for p in listed] == [(killed.id, "exited", -9)]  # its slot is free
        # models() starts a new service, which holds none of the killed one's models and works.
        fresh = await client.model_service()
        assert fresh.id != killed.id and (await client.engine.models())["id"] == fresh.id
        assert (await fresh.api.info())["models"] == []
        with pytest.raises(RemoteError, match="no model .* is loaded"):
            await fresh.api.run(loaded["id"], photographs()["coffee"])
        again = await fresh.api.load(model["bytes"], model["integrity"])
        assert again["id"] == loaded["id"]
        tensor = photographs()["chelsea"]
        got = await fresh.api.run(again["id"], tensor)
        assert np.abs(got["logits"] - direct.run(None, {"input": tensor})[0]).max() <= TOLERANCE
        assert sum(p["state"] == "running" for p in await client.engine.list()) == 1
        await client.close()

    run_async(scenario())
