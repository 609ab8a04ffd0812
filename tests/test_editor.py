"""The workbench's code editor (app/workbench/editor.js) in real Chromium: real keyboard
input, save and run keys, syntax highlighting of plugin files (Python inside
<script lang="python">), errors marked on their line, and errorLine() on real errors: the
parser's, a Python traceback made by the plugin kernel, a JavaScript stack from a script
run the way sandboxes run plugin code, and a traceback from a plugin run in the app."""

from __future__ import annotations

import ast
import inspect
import sys
import types

import pytest
from playwright.sync_api import Browser, Page

from pyjoy.devtools import run_async

# Puts an editor in a fresh page: window.editor, window.calls (what the callbacks got),
# and the module's exports as globals.
SETUP = """async ({ text, filename, height }) => {
  const module = await import("./modules/workbench/editor.js");
  Object.assign(window, module);
  window.format = await import("./modules/plugins/format.js");
  document.body.innerHTML = `<button id="before">before</button>
    <div id="host" style="height: ${height}px"></div><button id="after">after</button>`;
  window.calls = { save: [], run: [], change: [] };
  window.editor = module.createEditor(document.getElementById("host"), {
    text, filename,
    onSave: (t) => calls.save.push(t), onRun: (t) => calls.run.push(t), onChange: (t) => calls.change.push(t),
  });
}"""


@pytest.fixture
def blank(page: Page, modules_url: str) -> Page:
    page.goto(modules_url + "blank.html")
    return page


def open_editor(page: Page, text: str = "", filename: str = "x.py", height: int = 420) -> Page:
    page.evaluate(SETUP, {"text": text, "filename": filename, "height": height})
    return page


def templates(page: Page) -> dict[str, str]:
    return page.evaluate("import('./modules/workbench/editor.js').then((m) => ({...m.TEMPLATES}))")


def test_typing_saving_running_and_the_keyboard(blank: Page) -> None:
    page = open_editor(blank)
    page.click(".cm-content")
    page.keyboard.type("def f(x):")
    page.keyboard.press("Enter")  # indents the body
    page.keyboard.type("return [x]")
    assert page.evaluate("editor.getText()") == "def f(x):\n    return [x]"
    page.wait_for_function("calls.change.length > 0")  # onChange once typing pauses
    assert page.evaluate("calls.change.at(-1)") == "def f(x):\n    return [x]"

    page.keyboard.press("Control+s")
    page.keyboard.press("Control+Enter")
    page.keyboard.press("Shift+Enter")
    assert page.evaluate("calls") == {
        "save": ["def f(x):\n    return [x]"], "run": ["def f(x):\n    return [x]"] * 2, "change": ["def f(x):\n    return [x]"],
    }
    assert page.evaluate("editor.getText()") == "def f(x):\n    return [x]"  # the run keys typed nothing

    page.keyboard.press("Control+z")  # undo
    assert page.evaluate("editor.getText()") != "def f(x):\n    return [x]"
    page.keyboard.press("Control+y")  # redo
    assert page.evaluate("editor.getText()") == "def f(x):\n    return [x]"

    # Tab indents; Escape then Tab leaves the editor (no keyboard trap).
    page.keyboard.press("Control+End")
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate("editor.getText()").endswith("\n        ")
    assert page.evaluate("document.activeElement.classList.contains('cm-content')")
    page.keyboard.press("Escape")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "after"

    # Search (Ctrl+F) opens CodeMirror's panel with the query field focused.
    page.click(".cm-content")
    page.keyboard.press("Control+f")
    assert page.evaluate("document.activeElement.matches('.cm-search input[name=search]')")

    # setText replaces the text without reporting it as an edit; save() and run() too.
    page.evaluate("calls.change.length = 0; editor.setText('print(1)'); editor.save(); editor.run()")
    assert page.evaluate("[calls.save.at(-1), calls.run.at(-1)]") == ["print(1)", "print(1)"]
    page.wait_for_timeout(400)
    assert page.evaluate("calls.change") == []


def test_enter_and_tab_indent_as_the_file_does(blank: Page) -> None:
    plugins = templates(blank)
    for kind, line, indent, later in (("web-python", "    async def run(self, ctx):", 8, "for"), ("web-worker", "  async run(ctx) {", 4, "break")):
        page = open_editor(blank, plugins[kind], "T.imjoy.html", height=1200)
        # Indentation follows the syntax tree: wait until the script is parsed past the line.
        page.wait_for_function("(w) => [...document.querySelectorAll('.tok-keyword')].some((s) => s.textContent === w)", arg=later)
        page.evaluate("""(line) => {
          const doc = editor.view.state.doc, text = doc.toString();
          const at = text.indexOf(line) + line.length;
          editor.view.dispatch({ selection: { anchor: at } });
          editor.focus();
        }""", line)
        page.keyboard.press("Enter")
        page.keyboard.type("x")
        after = page.evaluate("editor.getText()").split(line + "\n")[1].split("\n")[0]
        assert after == " " * indent + "x", (kind, after)


# The highlighted tokens in the editor's DOM: [text, classes] of each innermost span.
TOKENS = """() => [...document.querySelectorAll(".cm-line span")].filter((s) => !s.querySelector("span"))
  .map((s) => [s.textContent, s.className, s.closest(".cm-line").textContent])"""


def tokens(page: Page, text: str) -> set[str]:
    return {cls for token, cls, _ in page.evaluate(TOKENS) if token == text}


# True once some innermost span with this text has one of these classes.
HAS_TOKEN = """([text, classes]) => [...document.querySelectorAll(".cm-line span")]
  .some((s) => !s.querySelector("span") && s.textContent === text && classes.some((c) => s.classList.contains(c)))"""


def wait_for_token(page: Page, text: str, *classes: str) -> set[str]:
    """Waits until `text` is drawn with one of `classes`; returns all the classes it has.

    CodeMirror parses in slices between frames, so a token further down may not be
    highlighted yet when an earlier one is: wait for each one, never read them all once."""
    try:
        page.wait_for_function(HAS_TOKEN, arg=[text, list(classes)], timeout=15_000)
    except Exception as error:
        raise AssertionError(f"{text!r} never drawn as one of {classes}; drawn as {tokens(page, text)}") from error
    return tokens(page, text)


def test_plugin_files_highlight_each_block_in_its_language(blank: Page) -> None:
    plugins = templates(blank)
    blank.set_viewport_size({"width": 1000, "height": 2000})  # CodeMirror draws the lines in view
    page = open_editor(blank, plugins["web-python"], "My Plugin.imjoy.html", height=1900)
    page.wait_for_function("document.querySelectorAll('.cm-line').length === editor.view.state.doc.lines")
    # Python inside <script lang="python">: keywords, a class name, a string.
    for keyword in ("def", "class", "import", "from", "async", "await"):
        wait_for_token(page, keyword, "tok-keyword")
    wait_for_token(page, "Plugin", "tok-className", "tok-variableName")
    # The HTML tags are tags, in another class.
    assert wait_for_token(page, "script", "tok-typeName") == {"tok-typeName"}
    assert wait_for_token(page, "config", "tok-typeName") == {"tok-typeName"}
    # <config lang="json"> is JSON: its keys are property names, its values strings.
    wait_for_token(page, '"name"', "tok-propertyName")
    wait_for_token(page, '"web-python"', "tok-string")
    # <docs> is plain text: nothing in it is highlighted (read once the blocks around it are).
    docs = [cls for token, cls, line in page.evaluate(TOKENS) if line.startswith(("# Untitled", "Runs Python", "config (for"))]
    assert docs == []

    # <script lang="javascript"> is JavaScript; the <window> is HTML, the <style> CSS.
    page.evaluate("editor.setText(TEMPLATES.window, { filename: 'W.imjoy.html' })")
    for keyword in ("function", "class", "const", "async", "await", "for"):
        wait_for_token(page, keyword, "tok-keyword")
    wait_for_token(page, "canvas", "tok-typeName")
    wait_for_token(page, "margin", "tok-propertyName")

    # YAML configs, and plain .py and .js files.
    page.evaluate("""editor.setText('<config lang="yaml">\\nname: Y\\ntype: web-worker\\n</config>\\n'
      + '<script lang="javascript">\\nlet y = 1;\\n</script>\\n', { filename: 'Y.imjoy.html' })""")
    wait_for_token(page, "let", "tok-keyword")
    wait_for_token(page, "type", "tok-atom", "tok-propertyName", "tok-meta")
    page.evaluate("editor.setText('import os\\nx = \"s\"', { filename: 'x.py' })")
    wait_for_token(page, "import", "tok-keyword")
    page.evaluate("editor.setText('const x = 1;', { filename: 'x.js' })")
    wait_for_token(page, "const", "tok-keyword")


ERROR_STATE = """() => ({
  lines: [...document.querySelectorAll(".cm-line.cm-pyjoy-errorLine")].map((l) => [l.textContent, l.dataset.error]),
  gutter: [...document.querySelectorAll(".cm-lineNumbers .cm-gutterElement.cm-pyjoy-errorGutter")].map((g) => g.textContent),
  message: [...document.querySelectorAll(".cm-pyjoy-errorMessage")].map((m) => [m.textContent, m.getAttribute("role")]),
  scrollTop: document.querySelector(".cm-scroller").scrollTop,
})"""


def test_show_error_marks_its_line_until_the_text_changes(blank: Page) -> None:
    text = "\n".join(f"x{i} = {i}" for i in range(1, 201))  # line n says "xn = n"
    page = open_editor(blank, text)
    assert page.evaluate("editor.showError({ line: 150, message: \"NameError: name 'y' is not defined\" })") == 150
    state = page.evaluate(ERROR_STATE)
    assert state["lines"] == [["x150 = 150", "NameError: name 'y' is not defined"]]
    assert state["gutter"] == ["150"]
    assert state["message"] == [["NameError: name 'y' is not defined", "alert"]]
    # Scrolled to it: CodeMirror scrolls when it next measures, a frame later.
    page.wait_for_function("document.querySelector('.cm-scroller').scrollTop > 1000", timeout=5000)

    # Kept while nothing changes; gone once the text changes.
    page.click(".cm-line.cm-pyjoy-errorLine")
    page.keyboard.press("ArrowLeft")
    assert page.evaluate(ERROR_STATE)["gutter"] == ["150"]
    page.keyboard.type("y")
    assert page.evaluate(ERROR_STATE)["lines"] == [] and page.evaluate(ERROR_STATE)["gutter"] == []

    # clearErrors(); a second error replaces the first; an error object finds its own line.
    page.evaluate("editor.showError({ line: 3, message: 'first' }); editor.showError({ line: 4, message: 'second' })")
    assert page.evaluate(ERROR_STATE)["gutter"] == ["4"]
    page.evaluate("editor.clearErrors()")
    assert page.evaluate(ERROR_STATE)["message"] == []
    line = page.evaluate("editor.showError({ message: 'boom', traceback: 'Traceback:\\n  File \"<plugin P>\", line 7, in run\\nValueError: boom' })")
    assert line == 7 and page.evaluate(ERROR_STATE)["gutter"] == ["7"]
    assert page.evaluate("editor.showError({ line: 9999, message: 'past the end' })") == 200


def test_each_template_is_a_working_plugin_file(blank: Page) -> None:
    plugins = templates(blank)
    assert sorted(plugins) == ["python-window", "web-python", "web-worker", "window"]
    for kind, text in plugins.items():
        parsed = blank.evaluate(
            """async (text) => {
                 const { parsePlugin } = await import("./modules/plugins/format.js");
                 const p = parsePlugin(text, { filename: "t.imjoy.html" });
                 return { config: p.config, lang: p.script.lang, window: p.window?.html ?? null, docs: p.docs?.markdown ?? null };
               }""",
            text,
        )
        config = parsed["config"]
        assert config["type"] == ("window" if kind == "python-window" else kind)
        for field in ("name", "version", "api_version", "description", "tags"):
            assert field in config, (kind, field)
        assert parsed["lang"] == ("python" if kind in ("web-python", "python-window") else "javascript")
        assert parsed["docs"]
        assert "def setup" in text or "setup()" in text
        assert "run(" in text and ("showMessage" in text) and ("api.log" in text)
        if kind == "window":
            assert "<canvas" in parsed["window"] and "<style>" in text
        if kind == "python-window":  # PyScript builds its page
            assert "<button" in parsed["window"] and "from pyscript import web, when" in text


# --- errorLine ---------------------------------------------------------------------------


def test_error_line_of_a_parse_error(blank: Page) -> None:
    page = open_editor(blank)
    result = page.evaluate(
        """() => {
             // A broken config: the comma after "version" is gone.
             const text = TEMPLATES["web-worker"].replace('"version": "0.1.0",', '"version": "0.1.0"');
             try { format.parsePlugin(text, { filename: "t.imjoy.html" }); return "parsed"; }
             catch (e) {
               const broken = text.split("\\n").findIndex((l) => l.includes('"api_version"')) + 1;
               return { name: e.name, block: e.block, line: e.line, errorLine: errorLine(e, text), broken,
                        shown: (editor.setText(text), editor.showError(e)) };
             }
           }"""
    )
    assert result["name"] == "PluginFormatError" and result["block"] == "config"
    assert result["errorLine"] == result["line"] == result["broken"] == result["shown"]


def python_traceback(script: str, first_line: int, name: str, call: str | None) -> str:
    """A traceback as a web-python plugin's worker sends it: the script run by the plugin
    kernel (pyjoy/plugin/kernel.py run_code) under the name the kernel gives it, then
    `call` on what it exported, the error in the wire form of pyjoy.rpc.codec. Pyodide's
    eval_code_async is replaced by its CPython equivalent (compile with top-level await)."""
    from pyjoy.plugin import kernel
    from pyjoy.plugin.api import api
    from pyjoy.rpc.codec import encode_error

    async def eval_code_async(source: str, globals: dict, filename: str = "<exec>"):
        code = compile(source, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(code, globals)  # noqa: S307  the test's own plugin code
        return await result if inspect.iscoroutine(result) else result

    shims = {"pyodide": types.ModuleType("pyodide"), "pyodide.code": types.ModuleType("pyodide.code"),
             "imjoy": types.ModuleType("imjoy")}
    shims["pyodide.code"].eval_code_async = eval_code_async
    shims["imjoy"].api = api
    saved = {key: sys.modules.get(key) for key in shims}
    sys.modules.update(shims)
    try:
        async def load_and_call() -> None:
            await kernel.run_code(script, {"__name__": "__plugin__"}, f"<plugin {name}>", first_line)
            if call:
                await getattr(api._exported, call)({})

        run_async(load_and_call())
    except Exception as error:  # noqa: BLE001  the error is what the test wants
        return encode_error(error)["traceback"]
    finally:
        for key, module in saved.items():
            if module is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = module
    raise AssertionError("the plugin raised nothing")


def parse(page: Page, text: str) -> dict:
    return page.evaluate("(text) => { const p = format.parsePlugin(text, { filename: 't.imjoy.html' }); "
                         "return { name: p.config.name, code: p.script.code, line: p.script.line }; }", text)


def test_error_line_of_a_python_traceback_from_the_kernel(blank: Page) -> None:
    page = open_editor(blank)
    template = templates(page)["web-python"]
    # run() calls a helper that divides by zero: the innermost plugin frame is the helper's line.
    text = template.replace(
        "        total = sum(n * n for n in numbers)\n",
        "        total = self.mean(numbers)\n",
    ).replace(
        "    async def run(self, ctx):\n",
        "    def mean(self, numbers):\n        return sum(numbers) / (len(numbers) - 10)\n\n    async def run(self, ctx):\n",
    )
    lines = text.split("\n")
    expected = next(i for i, line in enumerate(lines, 1) if "/ (len(numbers) - 10)" in line)
    caller = next(i for i, line in enumerate(lines, 1) if "self.mean(numbers)" in line)
    script = parse(page, text)
    traceback = python_traceback(script["code"], script["line"], script["name"], "run")
    assert f'File "<plugin {script["name"]}>", line {caller}, in run' in traceback
    assert f'File "<plugin {script["name"]}>", line {expected}, in mean' in traceback
    assert "ZeroDivisionError" in traceback
    got = page.evaluate(
        "([traceback, text]) => [errorLine({ name: 'RemoteError', message: 'division by zero', traceback }, text),"
        " errorLine(traceback, text), errorLine(new Error('no line here'), text)]",
        [traceback, text],
    )
    assert got == [expected, expected, None]

    # A syntax error while loading: Python names the line without a function.
    broken = template.replace("        numbers = list(range(1, 11))\n", "        numbers = list(range(1, 11)\n")
    script = parse(page, broken)
    traceback = python_traceback(script["code"], script["line"], script["name"], None)
    assert "SyntaxError" in traceback
    line = page.evaluate("([traceback, text]) => errorLine({ message: 'x', traceback }, text)", [traceback, broken])
    assert "numbers = list(range(1, 11)" in broken.split("\n")[line - 1], (line, traceback)  # "'(' was never closed"

    # Frames of another plugin in the same traceback are not this file's.
    other = traceback.replace(f"<plugin {script['name']}>", "<plugin Other>") + f'  File "<plugin {script["name"]}>", line 3, in x\n'
    assert page.evaluate("([t, text]) => errorLine({ traceback: t }, text)", [other, broken]) == 3


def test_error_line_of_a_javascript_stack(blank: Page) -> None:
    page = open_editor(blank)
    result = page.evaluate(
        """async () => {
             // The worker template, with run() calling a helper that throws; run the way the
             // sandboxes run plugin code (js-worker.js, frame.js): blank lines first, so the
             // code keeps the file's line numbers, and the plugin's name as its sourceURL.
             const text = TEMPLATES["web-worker"]
               .replace("  async run(ctx) {\\n", "  check(n) {\\n    if (n > 1) throw new RangeError('too big: ' + n);\\n  }\\n\\n  async run(ctx) {\\n    this.check(2);\\n");
             const plugin = format.parsePlugin(text, { filename: "t.imjoy.html" });
             let exported;
             self.api = { export: (obj) => { exported = obj; }, log: async () => {}, showMessage: async () => {} };
             const script = document.createElement("script");
             script.textContent = "\\n".repeat(plugin.script.line - 1) + plugin.script.code + "\\n//# sourceURL=" + encodeURI(plugin.config.name);
             document.body.append(script);
             const lines = text.split("\\n");
             const throwing = lines.findIndex((l) => l.includes("throw new RangeError")) + 1;
             try { await exported.run({}); return "no error"; }
             catch (e) {
               // As a RemoteError from the plugin carries it: the stack as its traceback.
               const remote = { name: "RemoteError", message: e.message, traceback: e.stack };
               return { stack: e.stack, throwing, direct: errorLine(e, text), remote: errorLine(remote, text), name: plugin.config.name,
                        firefox: errorLine({ stack: `check@${plugin.config.name}:${throwing}:11\\nrun@${plugin.config.name}:40:5\\n` }, text) };
             }
           }"""
    )
    assert f"({result['name'].replace(' ', '%20')}:{result['throwing']}:" in result["stack"], result["stack"]
    assert result["direct"] == result["remote"] == result["firefox"] == result["throwing"]


# Each template, broken in run(): the text to replace, what replaces it, and the words in
# the line the error must point at.
BREAKS = {
    "web-python": ("        total = sum(n * n for n in numbers)\n", "        total = sum(numbers) / undefined_name\n", "undefined_name"),
    "web-worker": ("    const ms = ", "    undefinedFunction(primes);\n    const ms = ", "undefinedFunction"),
    "window": ("    draw();\n", "    draw(undefinedCanvas.width);\n", "undefinedCanvas"),
    "python-window": ("        total = sum(k * k for k in range(1, 6))\n", "        total = sum(range(1, 6)) / undefined_name\n", "undefined_name"),
}


@pytest.mark.parametrize("kind", sorted(BREAKS))
def test_templates_run_in_the_app_and_their_errors_point_at_the_line(kind: str, blank: Page, browser: Browser, base_url: str) -> None:
    """The whole way: each template loads and runs in the app (it shows a message); broken,
    the RemoteError its run() throws, through the real sandbox, points at the broken line."""
    template = templates(blank)[kind]
    old, new, words = BREAKS[kind]
    assert old in template
    text = template.replace(old, new)
    expected = next(i for i, line in enumerate(text.split("\n"), 1) if words in line)
    context = browser.new_context()
    try:
        app = context.new_page()
        app.goto(base_url)
        app.evaluate("pyjoy.ready")
        app.evaluate("(text) => pyjoy.loadPlugin(text).then((p) => p.run({}))", template)
        app.locator(".toast", has_text="Hello from").first.wait_for()
        app.evaluate("(name) => pyjoy.terminatePlugin(name)", template.split('"name": "')[1].split('"')[0])
        error = app.evaluate(
            """async (text) => {
                 const plugin = await pyjoy.loadPlugin(text);
                 try { await plugin.run({}); return null; }
                 catch (e) { return { name: e.name, message: e.message, traceback: e.traceback }; }
               }""",
            text,
        )
    finally:
        context.close()
    assert error and error["name"] == "RemoteError" and words in error["message"], error
    page = open_editor(blank, text, "Untitled.imjoy.html")
    assert page.evaluate("([e, text]) => errorLine(e, text)", [error, text]) == expected, error["traceback"]
    assert page.evaluate("(e) => editor.showError(e)", error) == expected
    assert page.evaluate(ERROR_STATE)["gutter"] == [str(expected)]


def test_on_a_phone_the_editor_fits_the_screen(browser: Browser, modules_url: str) -> None:
    context = browser.new_context(viewport={"width": 412, "height": 839}, device_scale_factor=2.625, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        page.goto(modules_url + "blank.html")
        page.evaluate("document.head.insertAdjacentHTML('beforeend', '<meta name=viewport content=\"width=device-width, initial-scale=1\">')")
        plugins = templates(page)
        open_editor(page, plugins["window"], "W.imjoy.html", height=600)
        page.evaluate("editor.showError({ line: 3, message: 'a long message '.repeat(20) })")
        size = page.evaluate("""() => ({ inner: innerWidth, scroll: document.documentElement.scrollWidth,
          editor: document.querySelector('.cm-editor').getBoundingClientRect().width,
          font: getComputedStyle(document.querySelector('.cm-content')).fontSize,
          wraps: document.querySelector('.cm-content').classList.contains('cm-lineWrapping') })""")
        assert size["inner"] == 412 and size["scroll"] <= 412 and size["editor"] <= 412
        assert size["font"] == "14px" and size["wraps"]
    finally:
        context.close()
