"""pyjoy.onnx and the engine's model service on onnxruntime's CUDA build (`onnxruntime-gpu`),
for real, in a virtual environment of its own made here with uv: the CUDA provider is in
that build whether or not a GPU answers. Where none does (this machine: no GPU, no CUDA
libraries), a session asks for CUDA, onnxruntime starts it on the CPU, and both say so
and give numpy's answers; where one does, both run on CUDA and say that. Which of the two
happened is asked of onnxruntime itself, beside our code (a plain session's providers).

The model is test_onnx.py's tiny one (x @ W + b, n + n), compared with numpy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from test_onnx import reference, sri, tiny_inputs, tiny_model

ROOT = Path(__file__).resolve().parents[1]
# onnxruntime's CUDA build, the newest on PyPI (the CPU build the project pins may be newer).
CUDA_BUILD = "onnxruntime-gpu==1.31.1"

# Run in that environment: pyjoy.onnx.load_model and ModelService on the same model file,
# then a plain onnxruntime session asked for CUDA (what onnxruntime itself did).
SCRIPT = """
import asyncio, json, sys
from pathlib import Path
import numpy as np
import onnxruntime
from pyjoy.onnx import load_model
from pyjoy.engine.model_service import ModelService

path, integrity = Path(sys.argv[1]), sys.argv[2]
inputs = {name: np.array(value, dtype=dtype) for name, (value, dtype) in json.loads(sys.argv[3]).items()}
plain = lambda outputs: {name: value.tolist() for name, value in outputs.items()}

async def main():
    model = await load_model(path, integrity=integrity)
    service = ModelService()
    service.setup()
    loaded = await service.load(path.read_bytes(), integrity, name="tiny")
    direct = onnxruntime.InferenceSession(str(path), providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    return {
        "available": onnxruntime.get_available_providers(),
        "onnxruntime_started": direct.get_providers()[0],
        "load_model": {"info": model.info(), "outputs": plain(await model.run(inputs))},
        "service": {"loaded": loaded, "info": service.info(), "outputs": plain((await service.run_batch(loaded["id"], [inputs]))[0])},
    }

print("RESULT " + json.dumps(asyncio.new_event_loop().run_until_complete(main())))  # its own process
"""


@pytest.fixture(scope="module")
def cuda_build_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("onnxruntime-gpu") / "venv"
    subprocess.run(["uv", "venv", "-q", "-p", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(["uv", "pip", "install", "-q", "--python", str(python), CUDA_BUILD, "numpy"], check=True)
    return python


def test_the_cuda_build_runs_the_model_and_says_where(cuda_build_python: Path, tmp_path: Path) -> None:
    data = tiny_model()
    path = tmp_path / "tiny.onnx"
    path.write_bytes(data)
    inputs = tiny_inputs()
    sent = {name: (value.tolist(), str(value.dtype)) for name, value in inputs.items()}
    run = subprocess.run([str(cuda_build_python), "-c", SCRIPT, str(path), sri(data), json.dumps(sent)],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert run.returncode == 0, run.stderr
    result = json.loads(next(line for line in run.stdout.splitlines() if line.startswith("RESULT "))[len("RESULT "):])

    assert "CUDAExecutionProvider" in result["available"]  # the CUDA build, GPU or not
    started = result["onnxruntime_started"]
    if started == "CUDAExecutionProvider":
        expected_reason = "this onnxruntime has the CUDA provider: used where a GPU answers, else the CPU"
    else:
        assert started == "CPUExecutionProvider"
        expected_reason = "this onnxruntime has the CUDA provider, but it did not start here (no GPU, or no CUDA libraries): the CPU"
    info = result["load_model"]["info"]
    assert (info["runtime"], info["provider"], info["reason"]) == ("onnxruntime", started, expected_reason), info
    loaded = result["service"]["loaded"]
    assert (loaded["provider"], loaded["reason"]) == (started, expected_reason), loaded
    assert result["service"]["info"]["provider"] == "CUDAExecutionProvider"  # what the service would ask for

    want = reference(inputs)
    for outputs in (result["load_model"]["outputs"], result["service"]["outputs"]):
        np.testing.assert_allclose(np.array(outputs["y"], dtype=np.float32), want["y"], rtol=1e-6)
        assert np.array(outputs["n2"], dtype=np.int64).tolist() == want["n2"].tolist()
