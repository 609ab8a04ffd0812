"""app/plugins/format.js in real Chromium: ImJoy plugin files and plain .py/.js plugins.

The sample plugins are in tests/plugins/: the good ones by name, the malformed ones as
bad_*. Every line number asserted here is a line of the FILE, as an editor shows it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

PLUGINS = Path(__file__).parent / "plugins"

# Parses in the page and returns {plugin} or {error}; structuredClone proves the result
# can be posted to a worker as it is.
PARSE = """async ([text, options]) => {
  const { parsePlugin, PluginFormatError } = await import('./modules/plugins/format.js');
  try {
    return { plugin: structuredClone(parsePlugin(text, options)) };
  } catch (e) {
    if (!(e instanceof PluginFormatError)) throw e;
    return { error: { name: e.name, block: e.block, line: e.line, message: e.message, isError: e instanceof Error } };
  }
}"""


@pytest.fixture(scope="module")
def format_page(browser: Browser, modules_url: str) -> Iterator[Page]:
    context = browser.new_context()
    page = context.new_page()
    page.goto(modules_url + "blank.html")
    yield page
    context.close()


@pytest.fixture
def parse(format_page: Page):
    def parse(text: str, **options) -> dict:
        return format_page.evaluate(PARSE, [text, options])
    return parse


@pytest.fixture
def parse_file(parse):
    """Parses tests/plugins/<name> (with its name as the filename); returns the plugin."""
    def parse_file(name: str, **options) -> dict:
        result = parse((PLUGINS / name).read_text(), filename=name, **options)
        assert "plugin" in result, result.get("error")
        return result["plugin"]
    return parse_file


def file_line(name: str, line: int) -> str:
    return (PLUGINS / name).read_text().split("\n")[line - 1]


def test_web_python_plugin(parse_file) -> None:
    plugin = parse_file("cell_counter.imjoy.html")
    assert plugin["format"] == "imjoy"
    config = plugin["config"]
    assert config["name"] == "Cell Counter"
    assert config["type"] == "web-python"
    assert config["lang"] == "python"
    assert config["requirements"] == [
        "numpy", "scikit-image>=0.22", "imageio[tifffile] ==2.34.0",
        "https://example.org/wheels/cellpose_lite-0.1.0-py3-none-any.whl",
    ]
    assert config["flags"] == ["functional"]
    assert config["lab"] == {"group": "imaging", "maintainer": "jo"}  # unknown fields are kept
    assert config["inputs"]["properties"]["type"] == {"type": "string"}
    assert config["runnable"] is True and config["tag"] is None
    script = plugin["script"]
    assert script["lang"] == "python"
    assert script["line"] == 31
    assert script["code"].startswith("import numpy as np\nfrom imjoy import api\n")
    assert script["code"].endswith("api.export(ImJoyPlugin())\n")
    assert file_line("cell_counter.imjoy.html", script["line"]) == "import numpy as np"
    # Line n of the code is file line script.line + n - 1.
    code_lines = script["code"].split("\n")
    assert file_line("cell_counter.imjoy.html", script["line"] + 12) == code_lines[12] == "        return len(regions)"
    assert plugin["scripts"] == [script]
    assert plugin["docs"] == {
        "markdown": "# Cell Counter\n\nCounts nuclei in a fluorescence image with scikit-image: Otsu threshold, then\n"
                    "connected components. Drop a `.tif` on the workspace or call `count(image)`.\n",
        "line": 2,
    }
    assert plugin["attachments"] == {"sample": {"text": "[[0, 0, 9, 9], [0, 0, 9, 9], [7, 0, 0, 0]]\n", "line": 54}}
    assert plugin["window"] is None and plugin["style"] is None
    assert plugin["windows"] == [] and plugin["styles"] == [] and plugin["links"] == []


def test_window_plugin_keeps_its_inner_script_and_style(parse_file) -> None:
    plugin = parse_file("image_viewer.imjoy.html")
    config = plugin["config"]
    assert config["type"] == "window"
    assert config["defaults"] == {"w": 20, "h": 12}
    assert config["permissions"] == ["full-screen"]
    assert config["requirements"][2] == "css:https://fonts.googleapis.com/icon?family=Material+Icons"
    assert plugin["script"]["line"] == 31
    assert plugin["script"]["code"].startswith("class ImageViewer {")
    window = plugin["window"]
    assert window["line"] == 45
    assert window["attrs"] == {"lang": "html"}
    # The <script> inside the window mentions </window>; only the top-level close ends the block.
    assert window["html"] == (
        '<div id="viewer">\n'
        '  <img id="picture" alt="">\n'
        '  <div id="contrast"></div>\n'
        "  <script>\n"
        "    // Page-side helpers; the markup ends at the top-level </window> only.\n"
        "    function show(src) {\n"
        '      document.getElementById("picture").src = src;\n'
        "    }\n"
        '    noUiSlider.create(document.getElementById("contrast"), {start: [0, 255], range: {min: 0, max: 255}});\n'
        "  </script>\n"
        "  <style>\n"
        "    #picture { max-width: 100%; }\n"
        "  </style>\n"
        "</div>\n"
    )
    assert file_line("image_viewer.imjoy.html", window["line"]) == '  <div id="viewer">'  # dedented in html
    assert plugin["style"] == {"css": "#viewer {\n  display: flex;\n  flex-direction: column;\n}\n", "line": 62, "attrs": {"lang": "css"}}
    assert plugin["windows"] == [window] and plugin["styles"] == [plugin["style"]]
    assert plugin["docs"]["markdown"] == "A window that shows an image with a contrast slider.\n"


def test_web_worker_plugin(parse_file) -> None:
    plugin = parse_file("stats_worker.imjoy.html")
    assert plugin["config"]["type"] == "web-worker"
    assert plugin["config"]["lang"] == "javascript"
    assert plugin["config"]["runnable"] is False
    assert plugin["script"]["line"] == 20
    assert plugin["script"]["code"].split("\n")[0] == "class StatsWorker {"
    assert plugin["docs"] is None and plugin["attachments"] == {}


def test_yaml_config(parse_file) -> None:
    plugin = parse_file("tiles_yaml.imjoy.html")
    config = plugin["config"]
    assert config["name"] == "Tile Maker"
    assert config["version"] == "0.3.0" and config["api_version"] == "0.1.8"
    assert config["inputs"] is None and config["outputs"] is None  # empty YAML values
    assert config["defaults"] == {"w": 7, "h": 7}
    assert config["requirements"] == [
        "cache:https://cdn.jsdelivr.net/npm/@material/mwc-button@0.21.0/mwc-button.js/+esm",
        "js:https://cdn.jsdelivr.net/npm/tiff.js@1.0.0/tiff.min.js",
    ]
    assert plugin["script"]["line"] == 27


def test_tagged_plugin_loads_its_first_tag_by_default(parse_file) -> None:
    plugin = parse_file("segmenter_tagged.imjoy.html")
    config = plugin["config"]
    assert config["tag"] == "stable"
    assert config["tags"] == ["stable", "dev"]
    assert config["requirements"] == ["scikit-image==0.22.0"]
    assert config["icon"] == "crop"
    assert config["flags"] == []
    assert [s["line"] for s in plugin["scripts"]] == [21]
    assert 'api.log("segmenter (stable)")' in plugin["script"]["code"]
    assert plugin["script"]["attrs"] == {"lang": "python", "tag": "stable"}
    assert plugin["docs"] == {"markdown": "Segments an image by thresholding.\n", "line": 45}


def test_tagged_plugin_with_a_chosen_tag(parse_file) -> None:
    plugin = parse_file("segmenter_tagged.imjoy.html", tag="dev")
    config = plugin["config"]
    assert config["tag"] == "dev"
    assert config["requirements"] == ["scikit-image>=0.23", "scipy"]
    assert config["icon"] == "science"
    assert config["flags"] == ["single-instance"]
    assert [s["line"] for s in plugin["scripts"]] == [31]
    assert 'api.log("segmenter (dev)")' in plugin["script"]["code"]
    assert plugin["docs"] == {"markdown": "Development notes.\n", "line": 41}  # the first kept <docs>


def test_a_tag_the_plugin_does_not_have(parse) -> None:
    error = parse((PLUGINS / "segmenter_tagged.imjoy.html").read_text(), tag="nightly")["error"]
    assert error == {
        "name": "PluginFormatError", "block": "config", "line": 8, "isError": True,
        "message": 'config (line 8): tag "nightly" is not one of this plugin\'s tags; expected one of stable, dev',
    }


def test_legacy_config_without_lang_and_with_mode(parse_file) -> None:
    plugin = parse_file("legacy_mode.imjoy.html")
    config = plugin["config"]
    assert config["type"] == "web-worker"  # api_version 0.1.0: "mode": "webworker"
    assert "mode" not in config
    assert plugin["script"]["lang"] == "javascript"  # no lang on <script>: the type's language
    assert plugin["script"]["line"] == 17
    # "<config>" inside <docs> is text, not a block.
    assert plugin["docs"]["markdown"].startswith("An ImJoy plugin from 2018: no lang on <config>")


def test_plain_python_plugin(parse_file) -> None:
    plugin = parse_file("histogram.py")
    assert plugin["format"] == "py"
    config = plugin["config"]
    assert config["name"] == "Histogram"
    assert config["type"] == "web-python"  # the default for .py
    assert config["requirements"] == ["numpy", "matplotlib>=3.8"]
    assert config["inputs"] == {"type": "object"}
    assert config["version"] == "0.1.0" and config["icon"] == "extension"
    assert plugin["script"]["line"] == 11
    assert plugin["script"]["code"].startswith("import numpy as np\n")
    assert file_line("histogram.py", 11) == "import numpy as np"
    assert plugin["window"] is None and plugin["docs"] is None and plugin["attachments"] == {}


def test_plain_javascript_plugin(parse_file) -> None:
    plugin = parse_file("normalize.js")
    assert plugin["format"] == "js"
    assert plugin["config"]["type"] == "web-worker"  # the default for .js
    assert plugin["config"]["requirements"] == ["https://cdn.jsdelivr.net/npm/ndarray@1.0.19/ndarray.min.js"]
    assert plugin["script"] == {
        "lang": "javascript", "line": 6, "attrs": {},
        "code": (PLUGINS / "normalize.js").read_text().split("// ---\n", 2)[2],
    }


def test_plain_file_with_an_explicit_type(parse) -> None:
    plugin = parse("# ---\n# name: Native\n# type: native-python\n# requirements: ['conda:opencv', 'pip: tifffile six']\n# ---\nprint(1)\n",
                   filename="native.py")["plugin"]
    assert plugin["config"]["type"] == "native-python"
    assert plugin["config"]["requirements"] == ["conda:opencv", "pip: tifffile six"]  # the engine's to read
    error = parse("// ---\n// name: W\n// type: web-python\n// ---\n", filename="w.js")["error"]
    assert error["block"] == "config" and error["line"] == 3
    assert error["message"] == ('config (line 3): a .js file holds javascript, but a web-python plugin runs python; '
                                "expected a type that runs javascript")


def test_format_from_url_and_from_the_text(parse) -> None:
    imjoy = (PLUGINS / "stats_worker.imjoy.html").read_text()
    assert parse(imjoy, url="https://example.org/p/Stats.imjoy.html?raw=true#top")["plugin"]["format"] == "imjoy"
    assert parse(imjoy, url="https://gist.githubusercontent.com/u/123/raw/")["plugin"]["format"] == "imjoy"
    assert parse(imjoy)["plugin"]["format"] == "imjoy"
    assert parse((PLUGINS / "histogram.py").read_text())["plugin"]["format"] == "py"
    assert parse((PLUGINS / "normalize.js").read_text(), url="https://x.org/normalize.js?v=2")["plugin"]["format"] == "js"
    error = parse("print('hello')\n")["error"]
    assert error["block"] == "file" and error["line"] == 1
    assert error["message"].startswith("file (line 1): cannot tell the plugin format of this text;")


def test_windows_line_endings_keep_line_numbers(parse) -> None:
    text = (PLUGINS / "image_viewer.imjoy.html").read_text()
    unix = parse(text, filename="v.imjoy.html")["plugin"]
    windows = parse(text.replace("\n", "\r\n"), filename="v.imjoy.html")["plugin"]
    assert windows == unix


def test_small_inline_blocks_and_comments(parse) -> None:
    text = (
        '<config lang="json">{"name": "Inline", "type": "iframe"}</config>\n'
        "<!-- <script lang=\"javascript\">old()</script> -->\n"
        '<script lang="javascript">api.export({})</script>\n'
        '<link rel="stylesheet" href="https://example.org/a.css">\n'
        '<attachment name="toString">x</attachment>\n'
    )
    plugin = parse(text)["plugin"]
    assert plugin["script"] == {"lang": "javascript", "code": "api.export({})", "line": 3, "attrs": {"lang": "javascript"}}
    assert plugin["links"] == [{"attrs": {"rel": "stylesheet", "href": "https://example.org/a.css"}, "line": 4}]
    # Any name is a plain key, even one every object inherits.
    assert plugin["attachments"] == {"toString": {"text": "x", "line": 5}}


def test_a_web_python_plugin_keeps_its_javascript_blocks_in_file_order(parse) -> None:
    # ImJoy's web-python runtime ran a lang="javascript" block too (pyjoy/plugin/kernel.py).
    text = (
        '<config lang="json">{"name": "Mixed", "type": "web-python", "requirements": ["css:https://example.org/a.css"]}</config>\n'
        '<script lang="javascript">self.x = 1</script>\n'
        '<script lang="python">api.export({})</script>\n'
    )
    plugin = parse(text)["plugin"]
    assert [(s["lang"], s["line"]) for s in plugin["scripts"]] == [("javascript", 2), ("python", 3)]
    assert plugin["config"]["lang"] == "python"
    # The other way round stays an error: a JavaScript plugin's worker or frame has no Python.
    error = parse(text.replace("web-python", "web-worker").replace("css:https://example.org/a.css", "js:https://example.org/a.js"))["error"]
    assert error["message"].startswith('script (line 3): a web-worker plugin runs javascript, but this <script> is lang="python"'), error


def test_a_window_plugin_written_in_python_is_a_python_window(parse) -> None:
    # A window or iframe whose <script> is lang="python" runs Python in its frame (PyScript,
    # sandbox/python-window.js), with JavaScript blocks beside it as a web-python plugin may.
    text = (
        '<config lang="json">{"name": "PyWin", "type": "window"}</config>\n'
        '<window><p>hi</p></window>\n'
        '<script lang="javascript">self.x = 1</script>\n'
        '<script lang="python">api.export({})</script>\n'
    )
    plugin = parse(text)["plugin"]
    assert plugin["config"]["lang"] == "python"
    assert [(s["lang"], s["line"]) for s in plugin["scripts"]] == [("javascript", 3), ("python", 4)]
    # A window without a Python block stays a JavaScript window.
    assert parse(text.replace('<script lang="python">api.export({})</script>\n', ""))["plugin"]["config"]["lang"] == "javascript"
    # ImJoy's web-python-window: Python by default, its script needs no lang.
    imjoy = parse('<config lang="json">{"name": "W", "type": "web-python-window"}</config>\n<script>api.export({})</script>\n')["plugin"]
    assert (imjoy["config"]["type"], imjoy["config"]["lang"], imjoy["script"]["lang"]) == ("web-python-window", "python", "python")
    # A plain .py file may be a window too.
    py = parse("# ---\n# name: P\n# type: window\n# ---\napi.export({})\n", filename="p.py")["plugin"]
    assert (py["config"]["type"], py["config"]["lang"]) == ("window", "python")
    # Its requirements are a Python plugin's: packages too; a JavaScript window's are not.
    with_numpy = text.replace('"type": "window"}', '"type": "window", "requirements": ["numpy", "css:https://example.org/a.css"]}')
    assert parse(with_numpy)["plugin"]["config"]["requirements"] == ["numpy", "css:https://example.org/a.css"]
    error = parse(with_numpy.replace('<script lang="python">api.export({})</script>\n', ""))["error"]
    assert error["message"].startswith('config (line 1): requirement "numpy" is not valid for a window plugin'), error
    # A native-python plugin still runs no JavaScript block.
    error = parse('<config lang="json">{"name": "N", "type": "native-python"}</config>\n<script lang="javascript">1</script>\n')["error"]
    assert "a native-python plugin runs python" in error["message"], error


@pytest.mark.parametrize(("code", "imports"), [
    ("import pyjoy.onnx\n", True),
    ("from pyjoy.onnx import load_model\n", True),
    ("from pyjoy import onnx\n", True),
    ("from pyjoy import rpc, onnx as o\n", True),
    ("from pyjoy import (onnx)\n", True),
    ("class P:\n    async def go(self):\n        import pyjoy.onnx\n", True),  # inside a function
    ("import pyjoy.onnxish\n", False),
    ("from pyjoy import onnxish\n", False),
    ("# import pyjoy.onnx\n", False),
    ("x = 'import pyjoy.onnx'\n", False),
    ("import importlib\nimportlib.import_module('pyjoy.onnx')\n", False),
])
def test_whether_a_plugin_imports_pyjoy_onnx(format_page: Page, code: str, imports: bool) -> None:
    """importsPyjoyOnnx: its sandbox loads onnxruntime-web as its Python boots (plugins/host.js)."""
    text = f'<config lang="json">{{"name": "P", "type": "web-python"}}</config>\n<script lang="python">\n{code}</script>\n'
    javascript = text.replace('"web-python"', '"web-worker"').replace('lang="python"', 'lang="javascript"')
    seen = format_page.evaluate("""async (texts) => {
      const { importsPyjoyOnnx, parsePlugin } = await import('./modules/plugins/format.js');
      return texts.map((text) => importsPyjoyOnnx(parsePlugin(text)));
    }""", [text, javascript])
    assert seen == [imports, False]  # a JavaScript plugin's text never counts


def test_an_attachment_named_proto_is_a_key_not_a_prototype(format_page: Page) -> None:
    names = format_page.evaluate("""async () => {
      const { parsePlugin } = await import('./modules/plugins/format.js');
      const { attachments } = parsePlugin('<config lang="yaml">name: x\\ntype: window</config>'
        + '<script>api.export({})</script><attachment name="__proto__">x</attachment>');
      return [Object.keys(attachments), attachments["__proto__"].text, Object.getPrototypeOf(attachments)];
    }""")
    assert names == [["__proto__"], "x", None]


def test_indented_blocks_are_dedented_without_moving_lines(parse) -> None:
    text = '<config lang="yaml">\n    name: Indented\n    type: web-python\n</config>\n<script lang="python">\n    import math\n    if math.pi:\n        print(1)\n</script>\n'
    plugin = parse(text)["plugin"]
    assert plugin["config"]["name"] == "Indented"
    assert plugin["script"] == {"lang": "python", "code": "import math\nif math.pi:\n    print(1)\n", "line": 6, "attrs": {"lang": "python"}}


MALFORMED = [
    ("bad_json.imjoy.html", "config", 7, "config (line 7): invalid JSON: Unexpected token ']'"),
    ("bad_yaml.imjoy.html", "config", 9,
     "config (line 9): invalid YAML: Flow sequence in block collection must be sufficiently indented and end with a ]"),
    ("bad_type.imjoy.html", "config", 4,
     'config (line 4): unknown plugin type "web-pyhton"; expected one of web-python, web-worker, window, iframe, native-python, web-python-window'),
    ("bad_no_name.imjoy.html", "config", 5, 'config (line 5): missing "name"; every plugin needs one'),
    ("bad_no_script.imjoy.html", "script", 1,
     'script (line 1): no <script> block; an ImJoy plugin needs a <script lang="javascript">'),
    ("bad_requirement.imjoy.html", "config", 9,
     'config (line 9): requirement "scikit image>=0.22" is not valid for a web-python plugin; expected a package name '
     'with an optional version (e.g. "numpy", "scikit-image>=0.22"), a URL to a .whl file, or "js:", "mjs:", "css:", "cache:" followed by a URL'),
    ("bad_worker_css.imjoy.html", "config", 8,
     'config (line 8): requirement "css:https://fonts.googleapis.com/icon?family=Material+Icons" is not valid for a '
     'web-worker plugin: it runs in a worker, and workers cannot load CSS; expected a script URL (https://...), '
     'or "js:", "mjs:", "cache:" followed by a URL'),
    ("bad_unclosed.imjoy.html", "script", 10, "script (line 10): <script> is opened but never closed; expected </script>"),
    ("bad_unclosed_window.imjoy.html", "window", 14, "window (line 14): <window> is opened but never closed; expected </window>"),
    ("bad_empty.imjoy.html", "file", 1,
     "file (line 1): the plugin file is empty; expected an ImJoy plugin (<config> and <script> blocks) "
     "or a .py/.js file with a front matter"),
    ("bad_script_lang.imjoy.html", "script", 10,
     'script (line 10): a web-worker plugin runs javascript, but this <script> is lang="python"; expected lang="javascript"'),
    ("bad_untagged_field.imjoy.html", "config", 7,
     'config (line 7): "requirements" has a value per tag (CPU, GPU) but the config has no "tags"; expected "tags": ["CPU","GPU"]'),
    ("bad_unclosed_header.py", "config", 1,
     'config (line 1): the front matter opened here is never closed; expected a "# ---" line before line 4, '
     'which is not a "#" comment'),
    ("bad_header_yaml.js", "config", 5,
     "config (line 5): invalid YAML: A block sequence may not be used as an implicit map key"),
]


@pytest.mark.parametrize(("name", "block", "line", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_file(parse, name: str, block: str, line: int, message: str) -> None:
    error = parse((PLUGINS / name).read_text(), filename=name)["error"]
    assert error == {"name": "PluginFormatError", "block": block, "line": line, "message": message, "isError": True}


@pytest.mark.parametrize(("text", "line", "message"), [
    # V8 gives no position for this one; the line is found by walking the JSON.
    ('<config lang="json">\n{\n  "name": "x",\n  "tags": ["a", "b",]\n}\n</config>', 4, "invalid JSON: Unexpected token ']'"),
    ('<config lang="json">\n{\n  "name": "x",\n  "type": "window"\n', 1, "<config> is opened but never closed; expected </config>"),
    ('<config lang="json">\n{\n  "name": "x",\n  "type": "window"\n</config>', 4,
     "invalid JSON: Expected ',' or '}' after property value"),
    ('<config lang="toml">\nname = "x"\n</config>', 1, 'unknown config language lang="toml"; expected lang="json" or lang="yaml"'),
    ('<config lang="json">\n</config>', 1, "the <config> block is empty; expected JSON or YAML fields (name, type, ...)"),
    ('<config lang="json">\n["name", "x"]\n</config>', 1, "expected a mapping of fields (name, type, ...), got a list"),
    ('<config lang="yaml">\nname: a/b\ntype: window\n</config>', 2, 'plugin name "a/b" contains "/"; expected a name without "/"'),
    ('<config lang="yaml">\nname: x\n</config>', 1,
     'missing "type"; expected one of web-python, web-worker, window, iframe, native-python, web-python-window'),
    ('<config lang="yaml">\nname: x\ntype: web-worker\nrequirements:\n  - numpy\n</config>', 5,
     'requirement "numpy" is not valid for a web-worker plugin; expected a script URL (https://...), '
     'or "js:", "mjs:", "cache:" followed by a URL'),
    ('<config lang="yaml">\nname: x\ntype: window\nrequirements:\n  - https://x.org/lib.js\n  - pip:scipy\n</config>', 6,
     'requirement "pip:scipy" is not valid for a window plugin; expected a script or stylesheet URL '
     '(https://...), or "js:", "mjs:", "css:", "cache:" followed by a URL'),
    ('<config lang="yaml">\nname: x\ntype: web-python\nrequirements: numpy>>1\n</config>', 4,
     'requirement "numpy>>1" is not valid for a web-python plugin; expected a package name with an optional version '
     '(e.g. "numpy", "scikit-image>=0.22"), a URL to a .whl file, or "js:", "mjs:", "css:", "cache:" followed by a URL'),
])
def test_malformed_config(parse, text: str, line: int, message: str) -> None:
    error = parse(text + '\n<script lang="javascript">\napi.export({})\n</script>\n')["error"]
    assert (error["block"], error["line"], error["message"]) == ("config", line, f"config (line {line}): {message}")


def test_script_tags_that_leave_no_script(parse) -> None:
    text = ('<config lang="json">\n{"name": "x", "type": "web-worker", "tags": ["a", "b"]}\n</config>\n'
            '<script lang="javascript" tag="b">\nb()\n</script>\n')
    assert parse(text, tag="b")["plugin"]["script"]["code"] == "b()\n"
    error = parse(text)["error"]
    assert error["message"] == 'script (line 4): no <script> block for tag "a"; the <script> blocks here are tagged b'


def test_an_unclosed_script_inside_a_window(parse) -> None:
    text = ('<config lang="json">\n{"name": "x", "type": "window"}\n</config>\n<script lang="javascript">api.export({})</script>\n'
            "<window>\n<div>\n<script>\nlet x = 1;\n</div>\n</window>\n")
    error = parse(text)["error"]
    assert error["message"] == "window (line 7): <script> inside <window> is opened but never closed; expected </script>"
