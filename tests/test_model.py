"""The model step's pieces that need no browser: preprocessing, the class names, and the
built-in plugins' manifest (pyjoy/build/model.py, builtin_plugins.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from pyjoy.build.builtin_plugins import place_builtin_plugins
from pyjoy.build.errors import BuildError
from pyjoy.build.model import CROP, crop_box, preprocess, resize_weights


def pil_preprocess(image: np.ndarray, resample: Image.Resampling = Image.Resampling.BILINEAR) -> np.ndarray:
    """The model's input made by PIL itself, the reference for pyjoy's preprocess (and the
    plugin's): shorter side to 256 with Image.resize's BILINEAR (antialiased; no
    reducing_gap shortcut), centre crop 224, (x - 127) / 128. Each channel is resized as a
    float image ("F"), so PIL's filter is compared without its rounding to uint8."""
    height, width = image.shape[:2]
    size = (256 * width // height, 256) if height <= width else (256, 256 * height // width)
    left, top = (size[0] - 224) // 2, (size[1] - 224) // 2
    planes = [
        np.asarray(
            Image.fromarray(image[..., channel].astype(np.float32), mode="F")
            .resize(size, resample, reducing_gap=None)
            .crop((left, top, left + 224, top + 224))
        )
        for channel in range(3)
    ]
    return ((np.stack(planes) - 127.0) / 128.0).astype(np.float32)[None]


def test_preprocess_gives_the_models_input() -> None:
    image = np.full((300, 451, 3), 127, np.uint8)
    tensor = preprocess(image)
    assert tensor.shape == (1, 3, CROP, CROP) and tensor.dtype == np.float32
    assert np.abs(tensor).max() < 1e-6  # each output pixel is a weighted mean: 127 stays 127
    gradient = np.tile((np.arange(451) % 256).astype(np.uint8)[None, :, None], (300, 1, 4))
    channels = preprocess(gradient)[0]
    assert np.array_equal(channels[0], channels[1]) and np.all(np.diff(channels[0, 0, :100]) > 0)


@pytest.mark.parametrize("image", [
    skimage.data.chelsea(),  # landscape, shrunk
    skimage.data.coffee()[:, :350],  # portrait
    np.random.default_rng(9).integers(0, 256, (120, 97, 3), dtype=np.uint8),  # enlarged
], ids=["landscape", "portrait", "enlarged-noise"])
def test_preprocess_is_pils_bilinear_resize(image: np.ndarray) -> None:
    ours = preprocess(image)
    assert np.abs(ours - pil_preprocess(image)).max() < 1e-5
    # The tolerance tells filters apart: PIL's bicubic is far from it.
    assert np.abs(ours - pil_preprocess(image, Image.Resampling.BICUBIC)).max() > 1e-3


def test_resize_weights_are_normalised() -> None:
    weights = resize_weights(451, 384, 80, CROP)
    assert np.allclose(weights.sum(axis=1), 1)
    assert crop_box(300, 451) == (256, 384, 16, 80)
    assert crop_box(451, 300) == (384, 256, 80, 16)
    # Enlarging: at most two input pixels per output pixel.
    assert max((row > 0).sum() for row in resize_weights(100, 256, 0, 256)) <= 2


@pytest.mark.parametrize("image", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 2), np.uint8), np.zeros((4, 4, 3), np.float32)])
def test_preprocess_names_what_it_expected(image: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"expected a uint8 image of shape \[h, w, 3 or 4\]"):
        preprocess(image)


def test_the_built_models_class_names_are_imagenets(dist: Path) -> None:
    catalog = json.loads((dist / "models.json").read_text())["models"]["efficientnet-lite0"]
    names = json.loads((dist / catalog["labels"]).read_text())
    assert len(names) == 1000 and names[0] == "tench" and names[285] == "Egyptian cat"


def plugin_file(folder: Path, name: str, config: str) -> None:
    (folder / name).write_text(f"<config {config}</config>\n<script lang=\"javascript\">api.export({{}});</script>\n")


def test_built_in_plugins_get_an_imjoy_manifest(tmp_path: Path) -> None:
    source = tmp_path / "py_plugins"
    source.mkdir()
    plugin_file(source, "a.imjoy.html", 'lang="json">{"name": "A", "type": "window", "version": "1.0", "tags": ["x"]}')
    site = tmp_path / "site"
    place_builtin_plugins(site, source)
    manifest = json.loads((site / "plugins/manifest.imjoy.json").read_text())
    assert manifest == {
        "name": "PyJoy built-in plugins",
        "plugins": [{"name": "A", "type": "window", "version": "1.0", "description": "", "tags": ["x"], "icon": "", "uri": "a.imjoy.html"}],
        "collections": [],
    }
    assert (site / "plugins/a.imjoy.html").read_text() == (source / "a.imjoy.html").read_text()


@pytest.mark.parametrize(("config", "said"), [
    ('lang="yaml">name: A\ntype: window', 'is not lang="json"'),
    ('lang="json">{"name": "A",\n "type": }', "a.imjoy.html:2: <config> is not valid JSON"),
    ('lang="json">{"type": "window"}', "needs a string name and type"),
    ('lang="json">{"name": "A", "tags": ["b", "c"], "type": {"c": "web-python"}}',
     '"type" has a value per tag but none for the first tag, "b"'),
])
def test_a_bad_built_in_plugin_config_is_a_build_error(tmp_path: Path, config: str, said: str) -> None:
    plugin_file(tmp_path, "a.imjoy.html", config)
    with pytest.raises(BuildError, match=said.replace("(", r"\(")):
        place_builtin_plugins(tmp_path / "site", tmp_path)
