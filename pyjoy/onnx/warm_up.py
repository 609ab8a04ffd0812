"""The small image network web.js runs as a WASM runtime of onnxruntime-web starts, to warm it
up (WARM_UP there, in base64): WebAssembly compiles a function with its optimizing tier only
once it has run a while, so the kernels an image model uses are run first on this one.

    python -m pyjoy.onnx.warm_up        # prints the model in base64, for web.js's WARM_UP

uint8 [64, 64, 3] frame -> Cast -> antialiased Resize to 48x48 -> NCHW -> Conv 3x3 stride 2
-> Clip (ReLU6) -> depthwise Conv 3x3 and 5x5 -> Clip -> Conv 1x1 -> Add -> GlobalAveragePool
-> Gemm: the ops of the frame model (pyjoy/build/model_frame.py), 16 channels, seeded weights.
Needs numpy and onnx (the test extra).
"""

from __future__ import annotations

import base64


def warm_up_model() -> bytes:
    import numpy as np
    from onnx import TensorProto, checker, helper, numpy_helper

    rng = np.random.default_rng(0)
    channels = 16
    weights = {
        "sizes": np.array([48, 48, 3], np.int64), "ax0": np.array([0], np.int64),
        "w1": rng.standard_normal((channels, 3, 3, 3)), "b1": np.zeros(channels),
        "w2": rng.standard_normal((channels, 1, 3, 3)), "b2": np.zeros(channels),
        "w5": rng.standard_normal((channels, 1, 5, 5)), "b5": np.zeros(channels),
        "w3": rng.standard_normal((channels, channels, 1, 1)), "b3": np.zeros(channels),
        "lo": np.array(0.0), "hi": np.array(6.0),
        "wg": rng.standard_normal((10, channels)), "bg": np.zeros(10),
    }
    initializers = [
        numpy_helper.from_array(value if value.dtype == np.int64 else (value * (0.1 if name.startswith("w") else 1)).astype(np.float32), name)
        for name, value in weights.items()
    ]
    node = helper.make_node
    nodes = [
        node("Cast", ["x"], ["f"], to=TensorProto.FLOAT),
        node("Resize", ["f", "", "", "sizes"], ["r"], mode="linear", antialias=1, coordinate_transformation_mode="half_pixel"),
        node("Transpose", ["r"], ["t"], perm=[2, 0, 1]),
        node("Unsqueeze", ["t", "ax0"], ["u"]),
        node("Conv", ["u", "w1", "b1"], ["c1"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        node("Clip", ["c1", "lo", "hi"], ["a1"]),
        node("Conv", ["a1", "w2", "b2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=channels),
        node("Conv", ["c2", "w5", "b5"], ["c5"], kernel_shape=[5, 5], pads=[2, 2, 2, 2], group=channels),
        node("Clip", ["c5", "lo", "hi"], ["a2"]),
        node("Conv", ["a2", "w3", "b3"], ["c3"], kernel_shape=[1, 1]),
        node("Add", ["c3", "a1"], ["s"]),
        node("GlobalAveragePool", ["s"], ["g"]),
        node("Flatten", ["g"], ["fl"]),
        node("Gemm", ["fl", "wg", "bg"], ["y"], transB=1),
    ]
    graph = helper.make_graph(nodes, "warm", [helper.make_tensor_value_info("x", TensorProto.UINT8, [64, 64, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], initializer=initializers)
    opsets = [helper.make_opsetid("", 18)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets), producer_name="pyjoy.onnx warm-up")
    checker.check_model(model, full_check=True)
    return model.SerializeToString()


if __name__ == "__main__":
    print(base64.b64encode(warm_up_model()).decode())
