"""The built-in image-analysis plugins (py_plugins/skimage-*.imjoy.html) under CPython:
each plugin's own <script> (read with the engine's parser, pyjoy/engine/plugin_file.py, and
run with a stand-in `imjoy.api` that records what it is asked) on scikit-image's bundled
sample images (coins, camera, astronaut: in its wheel, no download; human_mitosis and
cells3d need pooch and the network, so they are not used), checked against results this
file computes another way: scipy.ndimage, numpy histograms and bincounts, formulas.
test_skimage_engine.py runs the same files as native-python plugins on a real engine."""

from __future__ import annotations

import ast
import contextlib
import csv
import io
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import ndimage
from skimage import data

from pyjoy.build.builtin_plugins import place_builtin_plugins
from pyjoy.engine.plugin_file import parse_plugin

PLUGINS = Path(__file__).resolve().parents[1] / "py_plugins"
FILES = {
    "Denoise": "skimage-denoise.imjoy.html",
    "Threshold": "skimage-threshold.imjoy.html",
    "Count Objects": "skimage-measure.imjoy.html",
    "Edges and Filters": "skimage-filters.imjoy.html",
    "Resize, Convert, Crop": "skimage-convert.imjoy.html",
}


class RecordingAPI:
    """What a plugin's `api` does here: keeps what it registers, the windows it opens and
    the files it exports, and the object it exports."""

    def __init__(self) -> None:
        self.ops: dict[str, dict] = {}
        self.windows: list[dict] = []
        self.files: list[tuple[Any, str]] = []
        self.exported: Any = None

    def export(self, obj: Any) -> None:
        self.exported = obj

    async def register(self, op: dict) -> str:
        self.ops[op["name"]] = op
        return op["name"]

    async def createWindow(self, config: dict) -> dict:  # noqa: N802  ImJoy's name
        self.windows.append(config)
        return {}

    async def exportFile(self, content: Any, filename: str) -> None:  # noqa: N802  ImJoy's name
        self.files.append((content, filename))


@contextlib.contextmanager
def imjoy_module(api: RecordingAPI):
    """`from imjoy import api` gives `api` while a plugin's script runs."""
    saved = sys.modules.get("imjoy")
    sys.modules["imjoy"] = types.SimpleNamespace(api=api)  # type: ignore[assignment]
    try:
        yield
    finally:
        if saved is None:
            sys.modules.pop("imjoy", None)
        else:
            sys.modules["imjoy"] = saved


def load(name: str, tag: str = "native-python") -> tuple[dict, RecordingAPI]:
    """The plugin's namespace after its scripts ran (their functions, its class) and its api."""
    path = PLUGINS / FILES[name]
    plugin = parse_plugin(path.read_text(), tag)
    api = RecordingAPI()
    namespace: dict[str, Any] = {"__name__": "__plugin__"}
    with imjoy_module(api):
        for script in plugin["scripts"]:
            exec(compile("\n" * (script["line"] - 1) + script["code"], str(path), "exec"), namespace)
    return namespace, api


@pytest.fixture(scope="module")
def plugins() -> dict[str, dict]:
    return {name: load(name)[0] for name in FILES}


def run(coroutine):
    """Runs a plugin's coroutine (setup, an op) to its end: they await only the recording api."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("the coroutine waited on something other than the recording api")


# -- independent references ---------------------------------------------------------------

def otsu_reference(image: np.ndarray) -> int:
    """Otsu's threshold of an integer image, by trying every grey level: the t for which
    (image <= t, image > t) has the largest between-class variance."""
    counts = np.bincount(image.ravel()).astype(np.float64)
    levels = np.arange(counts.size)
    best, best_t = -1.0, 0
    for t in range(counts.size - 1):
        w0, w1 = counts[:t + 1].sum(), counts[t + 1:].sum()
        if w0 == 0 or w1 == 0:
            continue
        m0 = (counts[:t + 1] * levels[:t + 1]).sum() / w0
        m1 = (counts[t + 1:] * levels[t + 1:]).sum() / w1
        variance = w0 * w1 * (m0 - m1) ** 2
        if variance > best:
            best, best_t = variance, t
    return best_t


def li_reference(image: np.ndarray, tolerance: float = 0.01) -> float:
    """Li's minimum cross-entropy threshold by its fixed-point iteration (Li & Tam 1998):
    t = (mean_below - mean_above) / (ln mean_below - ln mean_above), from the mean."""
    values = image.astype(np.float64).ravel()
    low = values.min()
    values = values - low  # the iteration needs positive means; shift back at the end
    t, previous = values.mean(), np.inf
    while abs(t - previous) > tolerance:
        previous = t
        above, below = values[values > t].mean(), values[values <= t].mean()
        t = (below - above) / (np.log(below) - np.log(above))
    return float(t + low)


def psnr(reference: np.ndarray, image: np.ndarray, peak: float = 255.0) -> float:
    error = np.mean((reference.astype(np.float64) - image.astype(np.float64)) ** 2)
    return float(10 * np.log10(peak ** 2 / error))


def luminance(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 709 luma of 8-bit RGB, 0..1 (what rgb2gray documents)."""
    rgb = rgb[..., :3].astype(np.float64) / 255
    return 0.2125 * rgb[..., 0] + 0.7154 * rgb[..., 1] + 0.0721 * rgb[..., 2]


# -- the plugin files ---------------------------------------------------------------------

@pytest.mark.parametrize("name", FILES)
def test_each_plugin_runs_as_web_python_or_native_python_and_registers_ops_with_forms(name: str) -> None:
    text = (PLUGINS / FILES[name]).read_text()
    for tag in ("web-python", "native-python"):
        config = parse_plugin(text, tag)["config"]
        assert (config["name"], config["type"], config["tag"]) == (name, tag, tag)
        assert {"numpy", "scikit-image"} <= set(config["requirements"])
    assert parse_plugin(text)["config"]["type"] == "web-python"  # the first tag loads by default

    namespace, api = load(name)
    exported = api.exported
    assert exported is not None and callable(getattr(exported, "setup", None))
    run(exported.setup())
    assert api.ops, f"{name} registers no op"
    for op in api.ops.values():
        assert callable(op["run"]) and op["ui"] and op["inputs"]["type"] == "object"
        sample = [line for line in op["ui"] if "id: 'sample'" in line]
        assert sample and "coins" in sample[0]
        # The op runs on its form's defaults and shows its result in an image viewer.
        result = run(op["run"]({"config": {"sample": "coins"}, "data": {}}))
        assert isinstance(result, dict)
    assert any(window["type"] == "imjoy/image" for window in api.windows)
    for window in api.windows:
        shown = window["data"].get("image")
        if shown is not None:  # what the viewer can show (app/windows/image.js DTYPES)
            assert shown.dtype.name in ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64")


def test_the_plugins_are_in_the_built_in_repository_as_their_first_tag(tmp_path: Path) -> None:
    entries = {entry["name"]: entry for entry in place_builtin_plugins(tmp_path, PLUGINS)}
    for name, filename in FILES.items():
        assert entries[name]["uri"] == filename and (tmp_path / "plugins" / filename).read_text() == (PLUGINS / filename).read_text()
        assert (entries[name]["type"], entries[name]["tags"]) == ("web-python", ["web-python", "native-python"])


def test_the_helpers_each_plugin_carries_are_the_same_in_all(plugins: dict) -> None:
    """Each plugin is one file that runs on its own (installed from its URL alone), so the
    few lines that pick an op's image and make a colour image grey are in each of them:
    kept identical here, so that a fix to one is a fix to all."""
    shared = ("input_image", "grey", "SAMPLES", "SAMPLE_FIELD", "IMAGE_SCHEMA")
    copies: dict[str, set[str]] = {name: set() for name in shared}
    for filename in FILES.values():
        code = parse_plugin((PLUGINS / filename).read_text(), "native-python")["scripts"][0]["code"]
        for node in ast.parse(code).body:
            names = [node.name] if isinstance(node, ast.FunctionDef) else [
                target.id for target in getattr(node, "targets", []) if isinstance(target, ast.Name)]
            for name in set(names) & set(shared):
                copies[name].add(ast.get_source_segment(code, node))
    assert all(len(found) == 1 for found in copies.values()), {k: len(v) for k, v in copies.items()}
    assert copies["input_image"] and copies["grey"] and copies["SAMPLES"]


def test_an_op_takes_the_image_a_workflow_gives_and_refuses_an_unknown_sample(plugins: dict) -> None:
    namespace, api = load("Edges and Filters")
    run(api.exported.setup())
    op = api.ops["Edges and filters"]
    given = np.zeros((20, 30), np.uint8)
    given[5:15, 10:20] = 200
    result = run(op["run"]({"config": {"filter": "sobel"}, "data": {"image": given}}))
    assert result["image"].shape == (20, 30) and result["image"][10, 10] > 0 and result["image"][0, 0] == 0
    with pytest.raises(ValueError, match="unknown sample image 'human_mitosis'; expected one of coins"):
        run(op["run"]({"config": {"sample": "human_mitosis"}, "data": {}}))


# -- Denoise --------------------------------------------------------------------------------

def test_gaussian_blur_is_scipys_gaussian_filter_in_the_images_dtype(plugins: dict) -> None:
    denoise = plugins["Denoise"]
    camera = data.camera()
    blurred = denoise["gaussian"](camera, 2.0)
    reference = ndimage.gaussian_filter(camera.astype(np.float64), 2.0, mode="nearest")
    assert blurred.dtype == np.uint8 and blurred.shape == camera.shape
    np.testing.assert_array_equal(blurred, np.clip(np.rint(reference), 0, 255).astype(np.uint8))
    floats = camera.astype(np.float32) / 255
    np.testing.assert_allclose(denoise["gaussian"](floats, 1.5), ndimage.gaussian_filter(floats.astype(np.float64), 1.5, mode="nearest"),
                               atol=1e-6)
    with pytest.raises(ValueError, match="sigma must be 0 or more"):
        denoise["gaussian"](camera, -1)


def test_non_local_means_removes_known_noise_and_keeps_the_dtype(plugins: dict) -> None:
    denoise = plugins["Denoise"]
    clean = data.camera()[100:260, 100:260]
    noise = np.random.default_rng(7).normal(0, 20, clean.shape)
    noisy = np.clip(np.rint(clean + noise), 0, 255).astype(np.uint8)
    assert abs(denoise["estimate_noise"](noisy) - 20) < 4  # the wavelet estimate of a known sigma
    result = denoise["nl_means"](noisy, h=0.8, patch_size=5, patch_distance=6)
    assert result.dtype == np.uint8 and result.shape == noisy.shape
    before, after = psnr(clean, noisy), psnr(clean, result)
    assert after > before + 5, (before, after)  # about 22 dB -> 29 dB
    # It keeps edges better than a Gaussian that removes as much noise.
    assert after > psnr(clean, denoise["gaussian"](noisy, 1.0))


# -- Threshold ------------------------------------------------------------------------------

@pytest.mark.parametrize("sample", ["coins", "camera", "moon"])
def test_otsu_is_the_level_of_largest_between_class_variance(plugins: dict, sample: str) -> None:
    image = getattr(data, sample)()
    result = plugins["Threshold"]["threshold"](image, "otsu")
    expected = otsu_reference(image)
    np.testing.assert_array_equal(result["mask"], image > expected)
    assert expected <= result["threshold"] < expected + 1


def test_li_threshold_matches_its_iteration_and_manual_and_dark_masks(plugins: dict) -> None:
    threshold = plugins["Threshold"]["threshold"]
    coins = data.coins()
    li = threshold(coins, "li")
    reference = li_reference(coins)  # both stop within half a grey level of the fixed point
    assert abs(li["threshold"] - reference) < 1
    np.testing.assert_array_equal(li["mask"], coins > reference)
    manual = threshold(coins, "manual", 100)
    assert manual["threshold"] == 100.0 and manual["mask"].dtype == bool
    np.testing.assert_array_equal(manual["mask"], coins > 100)
    np.testing.assert_array_equal(threshold(coins, "manual", 100, dark=True)["mask"], coins <= 100)
    with pytest.raises(ValueError, match='method "manual" needs a value'):
        threshold(coins, "manual")
    with pytest.raises(ValueError, match="unknown threshold method 'triangle'; expected one of otsu, li, manual"):
        threshold(coins, "triangle")


def test_a_colour_image_is_thresholded_on_its_luminance(plugins: dict) -> None:
    astronaut = data.astronaut()
    result = plugins["Threshold"]["threshold"](astronaut, "manual", 0.5)
    np.testing.assert_array_equal(result["mask"], luminance(astronaut) > 0.5)
    otsu = plugins["Threshold"]["threshold"](astronaut, "otsu")
    assert otsu["mask"].shape == astronaut.shape[:2] and 0 < otsu["threshold"] < 1


# -- Count Objects --------------------------------------------------------------------------

def fill_holes_reference(mask: np.ndarray) -> np.ndarray:
    """Holes: background regions (4-connected) that do not reach the image's border."""
    background, _ = ndimage.label(~mask)
    border = np.unique(np.concatenate([background[0], background[-1], background[:, 0], background[:, -1]]))
    return mask | ~np.isin(background, border)


def objects_reference(image: np.ndarray, mask: np.ndarray, min_area: int) -> list[dict]:
    """Each 8-connected region of mask with at least min_area pixels, in scan order,
    measured with bincounts and find_objects."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    sums = np.bincount(labels.ravel(), weights=image.ravel().astype(np.float64), minlength=n + 1)
    rows, columns = np.indices(image.shape)
    ys = np.bincount(labels.ravel(), weights=rows.ravel(), minlength=n + 1)
    xs = np.bincount(labels.ravel(), weights=columns.ravel(), minlength=n + 1)
    found = []
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        if areas[index] < min_area:
            continue
        found.append({"area": int(areas[index]), "mean_intensity": sums[index] / areas[index],
                      "centroid_y": ys[index] / areas[index], "centroid_x": xs[index] / areas[index],
                      "bbox_min_y": box[0].start, "bbox_min_x": box[1].start,
                      "bbox_max_y": box[0].stop, "bbox_max_x": box[1].stop})
    return found


def assert_same_objects(table: list[dict], expected: list[dict]) -> None:
    assert len(table) == len(expected)
    for number, (row, reference) in enumerate(zip(table, expected), start=1):
        assert row["label"] == number
        for key, value in reference.items():
            assert row[key] == pytest.approx(value), (number, key)


@pytest.mark.parametrize("fill_holes", [False, True])
def test_counting_coins_matches_a_separate_labelling(plugins: dict, fill_holes: bool) -> None:
    coins = data.coins()
    result = plugins["Count Objects"]["count_objects"](coins, min_area=100, fill_holes=fill_holes)
    level = otsu_reference(coins)
    assert level <= result["threshold"] < level + 1
    mask = coins > level
    if fill_holes:
        mask = fill_holes_reference(mask)
    expected = objects_reference(coins, mask, 100)
    assert result["count"] == len(expected) >= 20
    assert_same_objects(result["table"], expected)
    labels = result["labels"]
    assert labels.dtype == np.int32 and labels.max() == result["count"]
    np.testing.assert_array_equal(np.bincount(labels.ravel())[1:], [row["area"] for row in expected])


def test_a_given_mask_objects_on_the_border_and_a_stack(plugins: dict) -> None:
    count = plugins["Count Objects"]["count_objects"]
    image = np.arange(40 * 50, dtype=np.uint16).reshape(40, 50)
    mask = np.zeros((40, 50), bool)
    mask[0:5, 0:5] = True        # touches the border
    mask[10:14, 20:30] = True    # 40 pixels
    mask[30:32, 40:42] = True    # 4 pixels
    result = count(image, mask, min_area=0, exclude_border=True)
    assert result["count"] == 2 and result["threshold"] is None
    first = result["table"][0]
    assert (first["area"], first["centroid_y"], first["centroid_x"]) == (40, 11.5, 24.5)
    assert (first["bbox_min_y"], first["bbox_min_x"], first["bbox_max_y"], first["bbox_max_x"]) == (10, 20, 14, 30)
    assert first["mean_intensity"] == pytest.approx(image[10:14, 20:30].mean())
    assert count(image, mask, min_area=5)["count"] == 2  # the 4-pixel one dropped, the border one kept
    with pytest.raises(ValueError, match=r"the mask's shape \[3, 3\] differs from the image's \[40, 50\]"):
        count(image, np.ones((3, 3), bool))

    stack = np.zeros((6, 8, 8), np.uint8)
    stack[1:3, 1:3, 1:3] = 50    # a 2x2x2 cube
    stack[3:6, 4:7, 4:7] = 100   # a 3x3x3 cube
    table = count(stack, stack > 0)["table"]
    assert [(r["area"], r["centroid_z"], r["centroid_y"], r["centroid_x"], r["mean_intensity"]) for r in table] == [
        (8, 1.5, 1.5, 1.5, 50.0), (27, 4.0, 5.0, 5.0, 100.0)]
    assert (table[1]["bbox_min_z"], table[1]["bbox_max_z"]) == (3, 6)


def test_the_table_exports_as_csv_and_the_op_saves_it_when_asked(plugins: dict) -> None:
    namespace, api = load("Count Objects")
    result = namespace["count_objects"](data.coins(), min_area=100, fill_holes=True)
    rows = list(csv.DictReader(io.StringIO(namespace["table_csv"](result["table"]))))
    assert len(rows) == result["count"]
    assert list(rows[0]) == ["label", "area", "mean_intensity", "centroid_y", "centroid_x",
                             "bbox_min_y", "bbox_min_x", "bbox_max_y", "bbox_max_x"]
    for row, measured in zip(rows, result["table"]):
        assert {key: float(value) for key, value in row.items()} == pytest.approx(measured)

    run(api.exported.setup())
    out = run(api.ops["Count objects"]["run"]({"config": {"sample": "coins", "min_area": 100, "fill_holes": True,
                                                          "save_csv": True}, "data": {}}))
    assert out["count"] == result["count"]
    (content, filename), = api.files
    assert filename == "objects.csv" and content == namespace["table_csv"](result["table"])
    viewer, table = api.windows
    assert viewer["type"] == "imjoy/image" and viewer["data"]["labels"].max() == result["count"]
    assert table["type"] == "imjoy/markdown" and table["data"]["source"].count("\n| ") == result["count"]


# -- Edges and Filters ----------------------------------------------------------------------

def test_gradient_filters_are_the_normalised_kernels_magnitude(plugins: dict) -> None:
    apply = plugins["Edges and Filters"]["apply"]
    camera = data.camera()
    values = camera.astype(np.float64)
    kernels = {"sobel": np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]]) / 4,
               "prewitt": np.array([[1, 1, 1], [0, 0, 0], [-1, -1, -1]]) / 3,
               "scharr": np.array([[3, 10, 3], [0, 0, 0], [-3, -10, -3]]) / 16}
    for name, kernel in kernels.items():
        along_rows = ndimage.correlate(values, kernel, mode="reflect")
        along_columns = ndimage.correlate(values, kernel.T, mode="reflect")
        np.testing.assert_allclose(apply(camera, name), np.sqrt((along_rows ** 2 + along_columns ** 2) / 2),
                                   atol=1e-9, err_msg=name)
    laplacian = ndimage.correlate(values, np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]]), mode="reflect")
    np.testing.assert_allclose(apply(camera, "laplace"), laplacian, atol=1e-9)


def test_canny_finds_a_squares_outline_and_nothing_else(plugins: dict) -> None:
    image = np.zeros((64, 64))
    image[20:44, 16:48] = 1.0
    image += np.random.default_rng(3).normal(0, 0.05, image.shape)
    edges = plugins["Edges and Filters"]["apply"](image, "canny", sigma=2)
    assert edges.dtype == bool
    outline = np.zeros((64, 64), bool)
    outline[20:44, 16:48] = True
    outline ^= ndimage.binary_erosion(outline)
    near = ndimage.binary_dilation(outline, iterations=2)
    ys, xs = np.nonzero(edges)
    assert edges.sum() > 0.8 * outline.sum() and near[ys, xs].all()


def test_median_and_unsharp_mask(plugins: dict) -> None:
    apply = plugins["Edges and Filters"]["apply"]
    camera = data.camera()
    y, x = np.mgrid[-3:4, -3:4]
    disk = x * x + y * y <= 9
    median = apply(camera, "median", radius=3)
    assert median.dtype == np.uint8
    np.testing.assert_array_equal(median, ndimage.median_filter(camera, footprint=disk, mode="nearest"))
    values = camera.astype(np.float64)
    sharpened = apply(camera, "unsharp", radius=2, amount=1.5)
    np.testing.assert_allclose(sharpened, values + 1.5 * (values - ndimage.gaussian_filter(values, 2, mode="reflect")),
                               atol=1e-9)
    with pytest.raises(ValueError, match="unknown filter 'blur'"):
        apply(camera, "blur")


# -- Resize, Convert, Crop -----------------------------------------------------------------

def test_dtype_conversion_scales_between_the_types_ranges(plugins: dict) -> None:
    convert = plugins["Resize, Convert, Crop"]["convert"]
    coins = data.coins()
    as16 = convert(coins, "uint16")
    assert as16.dtype == np.uint16
    np.testing.assert_array_equal(as16, coins.astype(np.uint16) * 257)  # 255 -> 65535
    np.testing.assert_array_equal(convert(as16, "uint8"), coins)          # and back: the high byte
    ramp = np.arange(0, 65536, 37, dtype=np.uint16)
    np.testing.assert_array_equal(convert(ramp, "uint8"), (ramp >> 8).astype(np.uint8))
    floats = convert(coins, "float32")
    assert floats.dtype == np.float32
    np.testing.assert_allclose(floats, coins / 255, atol=1e-7)
    np.testing.assert_array_equal(convert(floats.astype(np.float64), "uint8"), coins)
    halves = np.array([0.0, 0.25, 0.5, 1.0])
    np.testing.assert_array_equal(convert(halves, "uint8"), np.rint(halves * 255))
    with pytest.raises(ValueError, match="cannot convert to 'complex64'"):
        convert(coins, "complex64")


def test_stretch_maps_twelve_bit_data_onto_the_full_range(plugins: dict) -> None:
    convert = plugins["Resize, Convert, Crop"]["convert"]
    twelve_bit = (data.coins().astype(np.uint16) * 16 + 7)
    low, high = int(twelve_bit.min()), int(twelve_bit.max())
    for dtype, top in (("uint16", 65535), ("uint8", 255)):
        stretched = convert(twelve_bit, dtype, stretch=True)
        assert stretched.dtype == np.dtype(dtype)
        expected = np.rint((twelve_bit.astype(np.float64) - low) / (high - low) * top)
        np.testing.assert_array_equal(stretched, expected)
    np.testing.assert_allclose(convert(twelve_bit, "float32", stretch=True), (twelve_bit - low) / (high - low), atol=1e-6)


def test_resize_crop_and_grey(plugins: dict) -> None:
    tool = plugins["Resize, Convert, Crop"]
    coins = data.coins()  # 303 x 384
    small = tool["resize"](coins, 101, 128)
    assert small.shape == (101, 128) and small.dtype == np.uint8
    assert abs(float(small.mean()) - float(coins.mean())) < 1
    ramp = np.tile(np.arange(0, 256, dtype=np.float64), (4, 1))  # a linear ramp stays linear
    np.testing.assert_allclose(tool["resize"](ramp, 4, 512, anti_aliasing=False)[:, 1:-1],
                               np.tile((np.arange(1, 511) + 0.5) / 2 - 0.5, (4, 1)), atol=1e-9)
    colour = tool["resize"](data.astronaut(), 64, 32)
    assert colour.shape == (64, 32, 3) and colour.dtype == np.uint8
    stack = tool["resize"](np.zeros((5, 40, 40), np.uint16), 10, 20)
    assert stack.shape == (5, 10, 20)

    np.testing.assert_array_equal(tool["crop"](coins, 10, 20, 100, 50), coins[10:110, 20:70])
    np.testing.assert_array_equal(tool["crop"](np.arange(60).reshape(3, 4, 5), 1, 2, 2, 3), np.arange(60).reshape(3, 4, 5)[:, 1:3, 2:5])
    with pytest.raises(ValueError, match="do not fit in the image's 303 rows and 384 columns"):
        tool["crop"](coins, 250, 0, 100, 10)

    astronaut = data.astronaut()
    np.testing.assert_allclose(tool["grey"](astronaut), luminance(astronaut), atol=1e-12)
    assert tool["grey"](coins) is not None and tool["grey"](coins).shape == coins.shape
