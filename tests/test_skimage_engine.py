"""The built-in image-analysis plugins (py_plugins/skimage-*.imjoy.html) as native-python
plugins on a real `pyjoy engine`, loaded by tag (`native-python`) as the page loads them:
their requirements (numpy, scikit-image) are the engine's own, so nothing is fetched (uv
is told --offline: a fetch would fail the test); each plugin's API and its registered op,
called over the engine's WebSocket with the sample images, give what the same file's
script gives under CPython (test_skimage_plugins.py loads it so)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from skimage import data

from pyjoy.devtools import engine_running, run_async
from pyjoy.engine.client import EngineClient
from test_skimage_plugins import FILES, PLUGINS, load, run

TOKEN = "skimage-token-" + "x" * 30


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("skimage_engine")
    env = {"PYJOY_ENGINE_TOKEN": TOKEN, "UV_OFFLINE": "1", "UV_NO_INDEX": "1", "UV_CACHE_DIR": str(root / "uv-cache")}
    with engine_running(root / "work", env=env) as (url, process):
        yield url


class Host:
    """The page's side for a plugin: what it registers, the windows it opens, its progress."""

    def __init__(self) -> None:
        self.ops: dict[str, Any] = {}
        self.windows: list[dict] = []
        self.progress: list[dict] = []

    def root(self) -> dict:
        return {"register": self.register, "createWindow": self.create_window, "log": print, "showMessage": print}

    def register(self, op: Any) -> str:
        self.ops[op["name"]] = op
        return op["name"]

    def create_window(self, config: Any) -> dict:
        self.windows.append(config)
        return {}


async def start(client: EngineClient, name: str, host: Host):
    source = (PLUGINS / FILES[name]).read_text()
    return await client.load_plugin(source, tag="native-python", host=host.root(), progress=host.progress.append)


def same(engine_value: Any, local_value: Any) -> None:
    """The engine's answer is the CPython answer: arrays equal with their dtype, the rest equal."""
    if isinstance(local_value, np.ndarray):
        assert isinstance(engine_value, np.ndarray) and engine_value.dtype == local_value.dtype
        np.testing.assert_array_equal(engine_value, local_value)
    elif isinstance(local_value, dict):
        assert set(engine_value) == set(local_value)
        for key in local_value:
            same(engine_value[key], local_value[key])
    elif isinstance(local_value, (list, tuple)):
        assert len(engine_value) == len(local_value)
        for one, other in zip(engine_value, local_value):
            same(one, other)
    else:
        assert engine_value == local_value


# (plugin, API method, arguments): each called on the engine and under CPython.
CALLS = [
    ("Denoise", "gaussian", (data.camera(), 2.0)),
    ("Denoise", "nl_means", (data.camera()[:128, :128], 0.8, 5, 6)),
    ("Denoise", "estimate_noise", (data.coins(),)),
    ("Threshold", "threshold", (data.coins(), "otsu")),
    ("Threshold", "threshold", (data.coins(), "li")),
    ("Threshold", "threshold", (data.astronaut(), "manual", 0.5, True)),
    ("Count Objects", "count_objects", (data.coins(), None, 100, True)),
    ("Count Objects", "table_csv", None),  # the table of the count above, filled in below
    ("Edges and Filters", "apply", (data.camera(), "sobel")),
    ("Edges and Filters", "apply", (data.camera(), "canny", 2.0)),
    ("Edges and Filters", "apply", (data.coins(), "median", 1.0, None, None, False, 3)),
    ("Resize, Convert, Crop", "convert", (data.coins(), "uint16")),
    ("Resize, Convert, Crop", "convert", (data.coins().astype(np.uint16) * 16, "uint8", True)),
    ("Resize, Convert, Crop", "resize", (data.astronaut(), 100, 80)),
    ("Resize, Convert, Crop", "crop", (data.coins(), 10, 20, 100, 50)),
]

# (plugin, op, its form's values): run on the engine and under CPython, compared by what they show.
OPS = [
    ("Denoise", "Gaussian blur", {"sample": "camera", "sigma": 1.5}),
    ("Threshold", "Threshold to mask", {"sample": "coins", "method": "li", "value": 0, "dark": False}),
    ("Count Objects", "Count objects", {"sample": "coins", "min_area": 100, "fill_holes": True, "exclude_border": False,
                                        "dark": False, "save_csv": False}),
    ("Edges and Filters", "Edges and filters", {"sample": "moon", "filter": "canny", "sigma": 2, "radius": 2, "amount": 1}),
    ("Resize, Convert, Crop", "Resize, convert, crop", {"sample": "astronaut", "operation": "resize", "dtype": "uint8",
                                                        "stretch": False, "top": 0, "left": 0, "height": 64, "width": 64}),
]


def test_each_plugin_on_the_engine_answers_as_under_cpython(engine: str, tmp_path: Path) -> None:
    locals_ = {name: load(name) for name in FILES}

    async def scenario() -> None:
        client = await EngineClient.connect(engine, origin="http://127.0.0.1:8000")
        try:
            hosts = {name: Host() for name in FILES}
            plugins = {name: await start(client, name, hosts[name]) for name in FILES}
            events = [event for host in hosts.values() for event in host.progress]
            # An environment per requirement set, its packages the engine's: the only
            # "install" events say so (uv's output would be more of them).
            installs = sorted(event.get("message") for event in events if event.get("stage") == "install")
            assert installs == ["already in the engine's Python: numpy, scikit-image",
                                "already in the engine's Python: numpy, scikit-image, scipy"], events
            for name, plugin in plugins.items():
                assert (plugin.info["type"], plugin.info["tag"]) == ("native-python", "native-python")
                assert set(hosts[name].ops) == {op for plugin_name, op, _ in OPS if plugin_name == name} | (
                    {"Non-local means"} if name == "Denoise" else set())

            table = None
            for name, method, args in CALLS:
                if method == "table_csv":
                    args = (table,)
                on_engine = await getattr(plugins[name].api, method)(*args)
                under_cpython = locals_[name][0][method](*args)
                same(on_engine, under_cpython)
                if method == "count_objects":
                    table = on_engine["table"]
                    assert on_engine["count"] >= 20

            for name, op_name, values in OPS:
                host = hosts[name]
                shown_before = len(host.windows)
                result = await host.ops[op_name]["run"]({"config": values, "data": {}})
                namespace, api = locals_[name]
                run(api.exported.setup())
                expected = run(api.ops[op_name]["run"]({"config": values, "data": {}}))
                same(result, expected)
                engine_windows = host.windows[shown_before:]
                assert [w["type"] for w in engine_windows] == [w["type"] for w in api.windows[-len(engine_windows):]]
                same(engine_windows[0]["data"]["image"], api.windows[-len(engine_windows)]["data"]["image"])

            # A workflow's image (ctx.data.image) goes in as a numpy array and comes back processed.
            given = data.coins()[:64, :64]
            out = await hosts["Edges and Filters"].ops["Edges and filters"]["run"]({"config": {"filter": "sobel"},
                                                                                    "data": {"image": given}})
            same(out["image"], locals_["Edges and Filters"][0]["apply"](given, "sobel"))
        finally:
            await client.close()

    run_async(scenario())
