"""pyjoy.onnx under CPython (no browser, no engine): a tiny model made here with onnx.helper
(a MatMul and an Add, and an int64 Add), loaded from bytes, a file and a URL, run on numpy
arrays and on PyJoy's NDArray, compared with numpy computing x @ W + b, and the clear
errors for bad inputs. test_onnx_browser.py runs the same model in Chromium and on an engine."""

from __future__ import annotations

import base64
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pyjoy.devtools import run_async
from pyjoy.onnx import ModelError, choose_providers, load_model, output_array, read_url, result_kind
from pyjoy.rpc.ndarray import NDArray

W = np.array([[1.0, -2.0], [0.5, 4.0], [-3.0, 0.25]], dtype=np.float32)


def tiny_model() -> bytes:
    """y = x @ W + b (x: float32 [N, 3], b: float32 [2]); n2 = n + n (n: int64 [2])."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]),
         helper.make_node("Add", ["xw", "b"], ["y"]),
         helper.make_node("Add", ["n", "n"], ["n2"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [2]),
         helper.make_tensor_value_info("n", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2]),
         helper.make_tensor_value_info("n2", TensorProto.INT64, [2])],
        [numpy_helper.from_array(W, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def tiny_inputs() -> dict[str, np.ndarray]:
    return {"x": np.arange(12, dtype=np.float32).reshape(4, 3) / 4 - 1,
            "b": np.array([0.5, -1.5], dtype=np.float32),
            "n": np.array([2**40 + 3, -7], dtype=np.int64)}


def reference(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What the model should answer, computed by numpy."""
    return {"y": inputs["x"] @ W + inputs["b"], "n2": inputs["n"] + inputs["n"]}


def sri(data: bytes) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(data).digest()).decode()


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    return tiny_model()


def test_numpy_in_numpy_out_against_numpy(model_bytes: bytes) -> None:
    async def scenario() -> None:
        model = await load_model(model_bytes, integrity=sri(model_bytes), name="tiny")
        assert model.inputs == [{"name": "x", "shape": ["N", 3], "type": "tensor(float)", "dtype": "float32"},
                                {"name": "b", "shape": [2], "type": "tensor(float)", "dtype": "float32"},
                                {"name": "n", "shape": [2], "type": "tensor(int64)", "dtype": "int64"}]
        assert [(o["name"], o["dtype"]) for o in model.outputs] == [("y", "float32"), ("n2", "int64")]
        info = model.info()
        assert info["runtime"] == "onnxruntime" and info["provider"] == "CPUExecutionProvider"
        assert "CUDA" in info["reason"]  # why not CUDA: this onnxruntime lacks it
        inputs = tiny_inputs()
        outputs = await model.run(inputs)
        want = reference(inputs)
        assert isinstance(outputs["y"], np.ndarray) and outputs["y"].dtype == np.float32
        np.testing.assert_allclose(outputs["y"], want["y"], rtol=1e-6)
        assert outputs["n2"].dtype == np.int64 and outputs["n2"].tolist() == want["n2"].tolist()
        # Another batch size: N is free.
        one = {**inputs, "x": inputs["x"][:1]}
        np.testing.assert_allclose((await model.run(one))["y"], reference(one)["y"], rtol=1e-6)
        await model.close()
        with pytest.raises(ModelError, match="was closed"):
            await model.run(inputs)

    run_async(scenario())


def test_ndarray_in_ndarray_out(model_bytes: bytes) -> None:
    async def scenario() -> None:
        model = await load_model(memoryview(model_bytes))
        inputs = tiny_inputs()
        plain = {name: NDArray(array.tobytes(), array.shape, array.dtype.name) for name, array in inputs.items()}
        outputs = await model.run(plain)
        assert all(isinstance(value, NDArray) for value in outputs.values())
        assert outputs["y"].shape == (4, 2) and outputs["y"].dtype == "float32"
        want = reference(inputs)
        np.testing.assert_allclose(np.asarray(outputs["y"]), want["y"], rtol=1e-6)
        assert outputs["n2"].tolist() == want["n2"].tolist()

    run_async(scenario())


def test_a_file_and_a_url(model_bytes: bytes, tmp_path: Path) -> None:
    (tmp_path / "tiny.onnx").write_bytes(model_bytes)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"

    async def scenario(monkeypatch: pytest.MonkeyPatch) -> None:
        inputs = tiny_inputs()
        for source in (tmp_path / "tiny.onnx", base + "tiny.onnx"):
            model = await load_model(source, integrity=sri(model_bytes))
            np.testing.assert_allclose((await model.run(inputs))["y"], reference(inputs)["y"], rtol=1e-6)
        assert model.name == "tiny.onnx"
        # A relative URL is one of the app's files: under PYJOY_APP_URL.
        monkeypatch.setenv("PYJOY_APP_URL", base)
        assert (await load_model("tiny.onnx")).inputs[0]["name"] == "x"
        assert await read_url("tiny.onnx") == model_bytes
        monkeypatch.delenv("PYJOY_APP_URL")
        with pytest.raises(ModelError, match="relative URL 'tiny.onnx' needs the app's address"):
            await load_model("tiny.onnx")
        with pytest.raises(ModelError, match=r"load: could not fetch http://.*/missing.onnx: HTTP Error 404"):
            await load_model(base + "missing.onnx")
        # Other files of the app, fetched the same way (the model catalog, class names).
        assert await read_url(base + "tiny.onnx", integrity=sri(model_bytes)) == model_bytes
        with pytest.raises(ModelError, match="read_url: the file at .*tiny.onnx's bytes do not match its integrity"):
            await read_url(base + "tiny.onnx", integrity=sri(b"another file"))
        with pytest.raises(ModelError, match="do not match its integrity"):
            await load_model(base + "tiny.onnx", integrity=sri(b"another file"))

    try:
        with pytest.MonkeyPatch.context() as monkeypatch:
            run_async(scenario(monkeypatch))
    finally:
        server.shutdown()


def test_bad_inputs_and_sources_say_what_is_wrong(model_bytes: bytes) -> None:
    async def scenario() -> None:
        model = await load_model(model_bytes, name="tiny")
        good = tiny_inputs()
        cases = [
            ({**good, "x": good["x"].astype(np.float64)},
             "run: input 'x' of model 'tiny' should be float32 (the model's tensor(float)), not float64"),
            ({**good, "x": good["x"][:, :2]},
             "run: input 'x' of model 'tiny' should have the shape ['N', 3] (a string or null: any size), not [4, 2]"),
            ({**good, "b": good["b"].reshape(1, 2)},
             "run: input 'b' of model 'tiny' should have the shape [2] (a string or null: any size), not [1, 2]"),
            ({"x": good["x"], "b": good["b"], "m": good["n"]},
             "run: model 'tiny' takes the inputs x, b, n; missing: n; unknown: m"),
            ({**good, "n": [1, 2]},
             "run: input 'n' of model 'tiny' should be an n-d array (a numpy array, or pyjoy's NDArray), not list"),
            (good["x"], "run: model 'tiny' has 3 inputs (x, b, n); send an object of arrays by input name"),
            ("x", "run: expected an n-d array or an object of arrays by input name, not str"),
        ]
        for inputs, message in cases:
            with pytest.raises(ModelError) as raised:
                await model.run(inputs)
            assert str(raised.value) == message
        # The model goes on after each.
        np.testing.assert_allclose((await model.run(good))["y"], reference(good)["y"], rtol=1e-6)

        with pytest.raises(ModelError, match="cannot load model 'garbage'"):
            await load_model(b"not a model" * 10, name="garbage")
        with pytest.raises(ModelError, match="integrity should be 'sha256-'"):
            await load_model(model_bytes, integrity="md5-abc")
        with pytest.raises(ModelError, match="give one source"):
            await load_model()
        with pytest.raises(ModelError, match="should be bytes, a memoryview or a uint8 array, not int"):
            await load_model(42)
        with pytest.raises(ModelError, match="should be a 1-d uint8 array, not float32"):
            await load_model(NDArray(b"\0" * 8, (2,), "float32"))
        with pytest.raises(ModelError, match='provider should be "auto" or "cpu" with onnxruntime, not \'webgpu\''):
            await load_model(model_bytes, provider="webgpu")
        with pytest.raises(ModelError, match="load: 'ftp://x/m.onnx' is not an http"):
            await load_model("ftp://x/m.onnx")
        with pytest.raises(ModelError, match="threads should be a whole number from 1 to 256, or None, not 0"):
            await load_model(model_bytes, threads=0)
        one = await load_model(model_bytes, provider="cpu", threads=1)
        assert one.info()["reason"] == "the CPU, as asked for; 1 thread, as asked for"
        np.testing.assert_allclose((await one.run(good))["y"], reference(good)["y"], rtol=1e-6)

    run_async(scenario())


def test_outputs_are_written_once_into_arrays_of_the_inputs_kind() -> None:
    # What the browser's path does with onnxruntime-web's output bytes (a JavaScript
    # Uint8Array there, copied by to_bytes or assign_to), here with a stand-in of the same bytes.
    class Bytes:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def to_bytes(self) -> bytes:
            return self.data

        def assign_to(self, target) -> None:
            memoryview(target).cast("B")[:] = self.data

    want = np.array([[1.5, -2.0], [2**-20, 3e38]], dtype=np.float32)
    as_numpy = output_array("numpy", "float32", [2, 2], Bytes(want.tobytes()))
    assert isinstance(as_numpy, np.ndarray) and as_numpy.dtype == np.float32 and np.array_equal(as_numpy, want)
    as_ndarray = output_array("ndarray", "float32", [2, 2], Bytes(want.tobytes()))
    assert isinstance(as_ndarray, NDArray) and as_ndarray.shape == (2, 2) and as_ndarray.tolist() == want.tolist()
    flags = np.array([True, False, True])
    assert output_array("numpy", "bool", [3], Bytes(flags.tobytes())).tolist() == [True, False, True]
    # The kind follows the inputs: NDArrays only if all were.
    assert result_kind({"a": NDArray(b"\0" * 4, (1,), "float32")}) == "ndarray"
    assert result_kind({"a": NDArray(b"\0" * 4, (1,), "float32"), "b": np.zeros(1)}) == "numpy"


def test_the_engines_model_service_shares_the_checks() -> None:
    from pyjoy.engine import model_service

    assert model_service.ModelError is ModelError and model_service.choose_providers is choose_providers


def test_the_warm_up_network_in_web_js_is_the_one_warm_up_py_makes() -> None:
    """web.js's WARM_UP (run as a WASM runtime starts) is pyjoy/onnx/warm_up.py's model, which runs."""
    import re

    import onnxruntime

    from pyjoy.onnx.warm_up import warm_up_model

    web_js = (Path(__file__).resolve().parents[1] / "pyjoy" / "onnx" / "web.js").read_text()
    embedded = base64.b64decode(re.search(r'const WARM_UP = Uint8Array\.from\(atob\("([^"]+)"\)', web_js).group(1))
    assert embedded == warm_up_model()
    session = onnxruntime.InferenceSession(embedded, providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"x": np.zeros((64, 64, 3), np.uint8)})
    assert out.shape == (1, 10)
