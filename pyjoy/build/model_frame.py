"""The image-recognition model on raw frames: `preprocess` as ONNX ops in front of the network.

    write_frame_model(network_onnx, target)   # -> target: uint8 [H, W, C] frame in, logits out
    write_preprocessing_model(target)         # the preprocessing alone: frame in, the network's input out
    check = check_frame_model(frame_onnx, preprocessing_onnx, network_onnx, torch_network, labels, photos)
    tensor = torch_preprocess(frame)          # the same preprocessing in PyTorch (the check's reference)

Input `image`: uint8 [height, width, channels], any height and width, channels 4 (RGBA, a
canvas's ImageData; alpha ignored, as `preprocess` ignores it) or 3 (RGB): the graph keeps
channels 0..2, so both work with one input. A frame of 1 or 2 channels fails, naming the
node `preprocess/rgb_needs_3_or_4_channels`; one whose longer side is more than 64 times
its shorter fails, naming `preprocess/aspect_ratio_at_most_64_to_1`, and so does one of 0
pixels (or with an integer division by zero, whichever node runs first); of more than 4
channels, the first three are taken as RGB. Output `logits`:
float32 [1, 1000], the network's.

The ops, in order: Slice (channels 0..2), Reshape (3 channels or fail), Cast to float32,
Resize of [H, W, 3] to the shorter side 256 (linear, antialias=1, half_pixel: onnxruntime's
antialiased linear filter is PIL's, the one `preprocess` writes out), Slice (centre 224),
Transpose + Unsqueeze to NCHW, (x - 127) / 128. The resized size is computed in int64 in
the graph: 256 * side // shorter, which equals `crop_box`'s int(256 * side / shorter) (a
float quotient of two integers that is not whole is never within rounding of one). Resizing
before the transpose (HWC, the channel axis left alone) was 4x faster on a 1080p frame than
on NCHW. The whole frame is resized before the crop, so memory grows with the aspect ratio
(hence the bound: at 64:1, a 50 MB float tensor). The Resize runs in float32, `preprocess` in
float64: the tensors differ by a few 1e-5, which the check below bounds.

onnxruntime-web's WebGPU backend (1.30) fails an antialiased Resize at run time: there the
preprocessing model runs on the WASM backend and the exported network on WebGPU.

Antialias needs opset 18, so the network (exported at opset 17) is converted to 18 first;
the converted network gives the same logits as the exported one on the same tensor, which
the check also asserts.
"""

from __future__ import annotations

from pathlib import Path

from pyjoy.build.errors import BuildError
from pyjoy.build.model import CATS, COFFEE, CROP, MAX_LOGIT_DIFFERENCE, MEAN, RESIZE, STD, crop_box, preprocess

FRAME_OPSET = 18
INPUT = "image"
OUTPUT = "logits"
NETWORK_INPUT = "input"  # the exported network's input, fed by the preprocessing
PREFIX = "preprocess/"  # the preprocessing's tensor names: no clash with the network's

# Frames the check runs on besides the photographs' own sizes: [height, width], RGBA like a
# canvas's. Landscape and portrait, a camera's VGA, a 1080p frame, one smaller than the crop.
FRAME_SIZES = [(300, 451), (451, 300), (480, 640), (1080, 1920), (120, 97)]

# The longest side of a frame, at most this many times its shortest: the resized frame is
# then at most 256 x 16384 x 3 float32 (50 MB). A camera's frame is at most about 2.4:1.
MAX_ASPECT_RATIO = 64

# The frame model's logits against `preprocess` + the exported network (and against PyTorch):
# measured, at most 2.2e-5 on the check's frames (float32 rounding of the resize). The bound is
# the export check's: 50x that, and 10x below what a slip in the preprocessing does (on the
# photographs, the tensor off by half a grey level moves logits by 0.014, the crop one pixel
# off by 0.13).
MAX_FRAME_LOGIT_DIFFERENCE = MAX_LOGIT_DIFFERENCE
# The preprocessing model's tensor against `preprocess`'s (measured: at most 4.3e-5, float32
# rounding; half a grey level is 3.9e-3).
MAX_TENSOR_DIFFERENCE = 1e-4
# The network converted to opset 18 against the exported one, on the same tensor.
MAX_CONVERSION_DIFFERENCE = 1e-5


def preprocessing_graph(output: str):
    """The ops that turn a uint8 [H, W, C] frame into the network's float32 [1, 3, 224, 224],
    named `output`."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    def name(short: str) -> str:
        return PREFIX + short

    def const(short: str, value) -> onnx.NodeProto:
        return helper.make_node("Constant", [], [name(short)], value=onnx.numpy_helper.from_array(np.asarray(value), name(short)))

    def op(kind: str, inputs: list[str], output: str, **attributes) -> onnx.NodeProto:
        return helper.make_node(kind, [name(i) if i not in ("", INPUT) else i for i in inputs], [name(output)], name=name(output), **attributes)

    nodes = [
        const("0", np.array([0], np.int64)),
        const("2", np.array([2], np.int64)),
        const("3", np.array([3], np.int64)),
        const("resize", np.array([RESIZE], np.int64)),
        const("crop", np.array([CROP], np.int64)),
        const("rows_and_columns", np.array([0, 1], np.int64)),
        const("mean", np.array(MEAN, np.float32)),
        const("std", np.array(STD, np.float32)),
        # Channels 0..2: RGB of RGBA, all of RGB. The Reshape to [H, W, 3] fails a frame of 1 or
        # 2 channels, naming itself: without it onnxruntime's Conv runs on 1 or 2 channels.
        op("Slice", [INPUT, "0", "3", "2"], "first_channels"),
        const("hw3", np.array([0, 0, 3], np.int64)),
        op("Reshape", ["first_channels", "hw3"], "rgb_needs_3_or_4_channels"),
        op("Cast", ["rgb_needs_3_or_4_channels"], "float", to=TensorProto.FLOAT),
        # Shorter side to RESIZE: [H, W] * RESIZE // min(H, W), in int64 (positive: Div floors).
        op("Shape", [INPUT], "shape"),
        op("Slice", ["shape", "0", "2"], "height_width"),
        op("ReduceMin", ["height_width"], "shorter", keepdims=1),
        op("Mul", ["height_width", "resize"], "scaled"),
        op("Div", ["scaled", "shorter"], "resized_unchecked"),
        # The whole frame is resized, so a long strip would take memory without bound: a frame
        # longer than MAX_ASPECT_RATIO x its width fails, naming the node. A Reshape of one
        # element to the shape [1 - too_long] (allowzero: 0 is an empty dimension) fails when
        # too long; its output, [0], is added to the size so that the check is not pruned.
        const("1", np.array([1], np.int64)),
        const("max_aspect", np.array([MAX_ASPECT_RATIO], np.int64)),
        op("ReduceMax", ["height_width"], "longer", keepdims=1),
        op("Mul", ["shorter", "max_aspect"], "longest_allowed"),
        op("Greater", ["longer", "longest_allowed"], "too_long"),
        op("Cast", ["too_long"], "too_long_count", to=TensorProto.INT64),
        op("Sub", ["1", "too_long_count"], "one_if_not_too_long"),
        op("Reshape", ["0", "one_if_not_too_long"], f"aspect_ratio_at_most_{MAX_ASPECT_RATIO}_to_1", allowzero=1),
        op("Add", ["resized_unchecked", f"aspect_ratio_at_most_{MAX_ASPECT_RATIO}_to_1"], "resized_size"),
        op("Concat", ["resized_size", "3"], "sizes", axis=0),
        op("Resize", ["float", "", "", "sizes"], "resized", mode="linear", antialias=1, coordinate_transformation_mode="half_pixel"),
        # Centre CROP: from (resized - CROP) // 2.
        op("Sub", ["resized_size", "crop"], "margin"),
        op("Div", ["margin", "2"], "start"),
        op("Add", ["start", "crop"], "end"),
        op("Slice", ["resized", "start", "end", "rows_and_columns"], "cropped"),
        op("Transpose", ["cropped"], "planar", perm=[2, 0, 1]),
        op("Unsqueeze", ["planar", "0"], "batch"),
        op("Sub", ["batch", "mean"], "centred"),
        helper.make_node("Div", [name("centred"), name("std")], [output], name=name("normalised")),
    ]
    return helper.make_graph(
        nodes, "preprocess",
        [helper.make_tensor_value_info(INPUT, TensorProto.UINT8, ["height", "width", "channels"])],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, [1, 3, CROP, CROP])],
    )


def converted_network(network_onnx: Path):
    """The exported network, converted to FRAME_OPSET."""
    import onnx
    from onnx import version_converter

    return version_converter.convert_version(onnx.load(str(network_onnx)), FRAME_OPSET)


def write_frame_model(network_onnx: Path, target: Path) -> None:
    """The network at opset 18 with the preprocessing in front, written to target."""
    import onnx
    from onnx import compose, helper

    network = converted_network(network_onnx)
    front = helper.make_model(preprocessing_graph(PREFIX + "normalised"), opset_imports=[helper.make_opsetid("", FRAME_OPSET)], ir_version=network.ir_version)
    model = compose.merge_models(front, network, io_map=[(PREFIX + "normalised", NETWORK_INPUT)], producer_name="pyjoy.build.model_frame")
    model.doc_string = "EfficientNet-Lite0 on a raw uint8 [height, width, 3 or 4] frame: shorter side to 256 (antialiased bilinear), centre crop 224, (x - 127) / 128 inside the graph"
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(target))


def write_preprocessing_model(target: Path) -> None:
    """The preprocessing alone, output named as the network's input: for onnxruntime-web's
    WebGPU backend, whose Resize has no antialias (1.30: "The antialias attribute of Resize
    operator is NOT implemented", at run time), this runs on WASM and the network on WebGPU."""
    import onnx
    from onnx import helper

    # The oldest IR version that has opset 18: onnx's default (its newest) is more than
    # onnxruntime-web 1.30 reads ("Unsupported model IR version: 14, max supported IR version: 13").
    opsets = [helper.make_opsetid("", FRAME_OPSET)]
    model = helper.make_model(preprocessing_graph(NETWORK_INPUT), opset_imports=opsets, ir_version=helper.find_min_ir_version_for(opsets), producer_name="pyjoy.build.model_frame")
    model.doc_string = "The preprocessing of efficientnet-lite0 alone: a uint8 [height, width, 3 or 4] frame to its float32 [1, 3, 224, 224] input"
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(target))


def torch_preprocess(frame) -> "torch.Tensor":  # noqa: F821 (torch is imported late: it is in the model extra)
    """`preprocess` written with PyTorch's own antialiased bilinear interpolate: the check's
    reference for the resize, independent of onnxruntime's and of numpy's."""
    import torch
    import torch.nn.functional as functional

    height, width = frame.shape[:2]
    resized_h, resized_w, top, left = crop_box(height, width)
    planar = torch.from_numpy(frame[..., :3].copy()).permute(2, 0, 1)[None].to(torch.float64)
    resized = functional.interpolate(planar, size=(resized_h, resized_w), mode="bilinear", align_corners=False, antialias=True)
    return ((resized[:, :, top:top + CROP, left:left + CROP] - MEAN) / STD).to(torch.float32)


def frames(photos: dict) -> dict:
    """The check's frames: each photograph at its own size (RGB) and stretched to each of
    FRAME_SIZES (RGBA, alpha 255; nearest neighbour, so each is a real photograph's pixels)."""
    import numpy as np

    out = {}
    for name, photo in photos.items():
        out[f"{name} {photo.shape[0]}x{photo.shape[1]} RGB"] = photo
        for height, width in FRAME_SIZES:
            rows = np.linspace(0, photo.shape[0] - 1, height).round().astype(int)
            columns = np.linspace(0, photo.shape[1] - 1, width).round().astype(int)
            rgb = photo[rows][:, columns]
            out[f"{name} {height}x{width} RGBA"] = np.dstack([rgb, np.full((height, width), 255, np.uint8)])
    return out


def check_frame_model(frame_onnx: Path, preprocessing_onnx: Path, network_onnx: Path, torch_network, labels: list[str], photos: dict) -> dict:
    """The frame model against `preprocess` + the exported network (onnxruntime) and against
    PyTorch (torch_preprocess + the network): logits within MAX_FRAME_LOGIT_DIFFERENCE, the
    same top 5; the preprocessing model's tensor against `preprocess`'s within
    MAX_TENSOR_DIFFERENCE. Returns what it measured; a BuildError says what differed."""
    import numpy as np
    import onnxruntime
    import torch

    providers = ["CPUExecutionProvider"]
    framed = onnxruntime.InferenceSession(str(frame_onnx), providers=providers)
    preprocessing = onnxruntime.InferenceSession(str(preprocessing_onnx), providers=providers)
    exported = onnxruntime.InferenceSession(str(network_onnx), providers=providers)
    converted = onnxruntime.InferenceSession(converted_network(network_onnx).SerializeToString(), providers=providers)

    def top5(logits) -> list[str]:
        return [labels[i] for i in np.argsort(-logits.ravel())[:5]]

    check: dict = {"opset": FRAME_OPSET, "max_logit_difference_allowed": MAX_FRAME_LOGIT_DIFFERENCE, "frames": {}}
    for name, frame in frames(photos).items():
        tensor = preprocess(frame)
        (expected,) = exported.run(None, {NETWORK_INPUT: tensor})
        (after_conversion,) = converted.run(None, {NETWORK_INPUT: tensor})
        (logits,) = framed.run(None, {INPUT: frame})
        (tensor_from_graph,) = preprocessing.run(None, {INPUT: frame})
        with torch.no_grad():
            from_torch = torch_network(torch_preprocess(frame)).numpy()
        measured = {
            "vs_preprocess": float(np.abs(logits - expected).max()),
            "vs_pytorch": float(np.abs(logits - from_torch).max()),
            "conversion": float(np.abs(after_conversion - expected).max()),
            "preprocessing_model_tensor": float(np.abs(tensor_from_graph - tensor).max()),
            "top5": top5(logits),
        }
        check["frames"][name] = measured
        if measured["conversion"] >= MAX_CONVERSION_DIFFERENCE:
            raise BuildError(f"the network converted to opset {FRAME_OPSET} differs from the exported one by {measured['conversion']:.2e} on {name}", "check the onnx version in the model extra")
        if measured["preprocessing_model_tensor"] >= MAX_TENSOR_DIFFERENCE:
            raise BuildError(f"the preprocessing model's tensor for {name} differs from preprocess's by {measured['preprocessing_model_tensor']:.2e} (at most {MAX_TENSOR_DIFFERENCE} allowed)", "check the preprocessing graph in pyjoy/build/model_frame.py")
        for against, reference in (("preprocess + the exported model", expected), ("PyTorch", from_torch)):
            difference = float(np.abs(logits - reference).max())
            if difference >= MAX_FRAME_LOGIT_DIFFERENCE:
                raise BuildError(f"the frame model's logits for {name} differ from {against}'s by {difference:.2e} (at most {MAX_FRAME_LOGIT_DIFFERENCE} allowed)", "check the preprocessing graph in pyjoy/build/model_frame.py")
            if top5(reference) != measured["top5"]:
                raise BuildError(f"the frame model's top 5 for {name} are {measured['top5']}, {against} gives {top5(reference)}", "check the preprocessing graph in pyjoy/build/model_frame.py")
        if name.startswith("chelsea") and measured["top5"][0] not in CATS or name.startswith("coffee") and not COFFEE & set(measured["top5"]):
            raise BuildError(f"the frame model's top 5 for {name} are {measured['top5']}", "check the preprocessing graph in pyjoy/build/model_frame.py")
    return check
