"""The docs in the app, in real Chromium: the Docs view renders every page with the headings'
anchors the repository's reader computes (docs_pages.py, written apart), its links and
search lead to headings that exist, code is highlighted, it works offline; every runnable
example of the docs (docs/writing-docs.md) loads and answers (those that wait for a
person answered as one would, those of the image-analysis plugins on a real engine); every name of the `api` a
running plugin gets has its entry in the API reference; and a plugin's hostile <docs> runs
nothing on PyJoy's page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page

from conftest import open_offline
from docs_pages import ROOT, anchors, blocks, page_paths, read
from pyjoy.devtools import engine_running

HOSTILE = Path(__file__).parent / "plugins" / "hostile"

# Runs a `js page` block: the body of an async function with `plugin` (the API of the page's
# last `plugin` block) and `assert`.
# Each is bounded: an example that never answers fails, naming itself, instead of hanging.
BOUND_MS = 90_000
RUN_PAGE_BLOCK = """async ([code, where, bound]) => {
  const assert = (condition, message) => { if (!condition) throw new Error(message ?? "assertion failed"); };
  const run = new Function("pyjoy", "plugin", "api", "assert", `return (async () => {\\n${code}\\n})();`);
  const late = new Promise((_, reject) => setTimeout(() => reject(new Error(`no answer in ${bound} ms`)), bound));
  try { await Promise.race([run(window.pyjoy, window.__docsPlugin, window.pyjoy.api, assert), late]); return null; }
  catch (error) { return `${where}: ${error.name}: ${error.message}`; }
}"""
LOAD_PLUGIN_BLOCK = """async ([text, where, bound]) => {
  const late = new Promise((_, reject) => setTimeout(() => reject(new Error(`not loaded in ${bound} ms`)), bound));
  try { window.__docsPlugin = await Promise.race([pyjoy.loadPlugin(text), late]); return null; }
  catch (error) { window.__docsPlugin = null; return `${where}: ${error.name}: ${error.message}`; }
}"""

# A `json workflow` block, through the validator every workflow from a link goes through
# (pyjoy.workflowURL encodes only what parseWorkflow accepts).
VALIDATE_WORKFLOW = """async ([text, where]) => {
  try { await pyjoy.workflowURL(text); return null; }
  catch (error) { return `${where}: ${error.name}: ${error.message}`; }
}"""

# A `js page person` block waits for a person: it is started, and the test answers as one
# would, pressing each dialog's primary button (OK, Save, Choose…) and giving the file
# chooser a file, until the block ends.
START_PAGE_BLOCK = f"""(args) => {{
  window.__docsDone = undefined;
  ({RUN_PAGE_BLOCK})(args).then((failure) => {{ window.__docsDone = failure ?? "ok"; }});
}}"""

# A `python person` block is a Python plugin's code (`api`, top-level `await`): this plugin
# runs it as Pyodide would a cell, given the text.
PYTHON_RUNNER = """<config lang="json">
{"name": "Docs Python Runner", "type": "web-python", "version": "0.1.0"}
</config>
<script lang="python">
import ast
from imjoy import api

class Runner:
    async def run(self, text):
        code = compile(text, "<docs example>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        done = eval(code, {"api": api, "__name__": "__main__"})
        if done is not None:
            await done

api.export(Runner())
</script>"""
START_PYTHON_BLOCK = """async ([runner, code, where]) => {
  window.__docsDone = undefined;
  const plugin = await pyjoy.loadPlugin(runner);
  plugin.run(code).then(() => { window.__docsDone = "ok"; }, (error) => { window.__docsDone = `${where}: ${error.name}: ${error.message}`; });
}"""


def run_answering(app: Page, block, chosen: Path) -> str | None:
    def choose(chooser) -> None:
        chooser.set_files(str(chosen))
    app.on("filechooser", choose)
    try:
        if block.language == "python":
            app.evaluate(START_PYTHON_BLOCK, [PYTHON_RUNNER, block.text, block.where()])
        else:
            app.evaluate(START_PAGE_BLOCK, [block.text, block.where(), BOUND_MS])
        for _ in range(BOUND_MS // 100):
            done = app.evaluate("window.__docsDone")
            if done is not None:
                return None if done == "ok" else done
            primary = app.locator("dialog[open] .dialog-buttons button:not(.secondary)")
            if primary.count():
                primary.last.click()
            app.wait_for_timeout(100)
        return f"{block.where()}: not done after the person answered"
    finally:
        app.remove_listener("filechooser", choose)


@pytest.fixture(scope="module")
def app(browser, base_url: str):
    context = browser.new_context()
    page = context.new_page()
    page.goto(base_url)
    page.evaluate("pyjoy.ready")
    yield page
    context.close()


def index(page: Page) -> list[dict]:
    return page.evaluate("fetch('docs/index.json').then((r) => r.json()).then((i) => i.pages)")


def test_every_page_renders_with_its_anchors_and_its_links_resolve_in_the_app(app: Page) -> None:
    pages = index(app)
    # The build's index holds every page of the repository's docs, in reading order.
    assert sorted(p["source"] for p in pages) == sorted(page_paths())
    assert [p["name"] for p in pages][:3] == ["getting-started", "plugin-guide", "api-reference"]
    drawn = {}
    for entry in pages:
        assert app.evaluate("(name) => pyjoy.openDocs(name)", entry["name"]) is True
        drawn[entry["name"]] = app.evaluate("""() => {
          const article = document.querySelector('.docs-window .docs-page');
          return { page: article.dataset.page,
                   ids: [...article.querySelectorAll('h1, h2, h3, h4, h5, h6')].map((h) => h.id.replace(/^docs-/, '')),
                   links: [...article.querySelectorAll('a[href]')].map((a) => a.getAttribute('href')) };
        }""")
        assert drawn[entry["name"]]["page"] == entry["name"]
        # The app's anchors are those the repository's reader computes.
        assert set(drawn[entry["name"]]["ids"]) == anchors(entry["source"]), entry["source"]
    # Search results lead to headings that exist (search splits the Markdown itself).
    searched = []
    for query in ("api", "engine window", "requirements", "offline"):
        app.fill(".docs-search", query)
        app.wait_for_selector(f".docs-results[data-query='{query}']:not([hidden]) li.docs-result")
        searched += app.evaluate("() => [...document.querySelectorAll('.docs-result a')].map((a) => a.getAttribute('href'))")
    assert len(searched) > 40
    broken = []
    for name, seen in [*drawn.items(), ("search", {"links": searched})]:
        for href in seen["links"]:
            if href.startswith("#"):
                assert href.startswith("#docs-"), f"{name}: {href} lacks the view's prefix"
                target, anchor = name, href[len("#docs-"):]
            elif href.startswith("?docs="):
                target, _, anchor = href[len("?docs="):].partition("#")
            else:
                assert re.match(r"https?://", href), f"{name}: a link the view cannot follow: {href}"
                continue
            if target not in drawn or (anchor and anchor not in drawn[target]["ids"]):
                broken.append(f"{name}: {href}")
    assert not broken, broken


def test_links_search_highlighting_and_the_address(app: Page, base_url: str) -> None:
    app.goto(f"{base_url}?docs=plugin-guide#requirements")
    app.wait_for_selector(".docs-window .docs-page[data-page='plugin-guide'] h2#docs-requirements")
    # Opened at the heading: it is at the top of the view, not below the fold.
    top = app.evaluate("""() => document.querySelector('#docs-requirements').getBoundingClientRect().top
                           - document.querySelector('.docs-main').getBoundingClientRect().top""")
    assert -5 < top < 60, top
    # Code is highlighted with the editor's token classes.
    assert app.locator(".docs-page pre.code[data-lang='python'] .tok-keyword").count() > 0
    # A link to another page's heading stays in the view and moves the address with it.
    link = app.locator(".docs-page a[href^='?docs=api-reference#']").first
    target = link.get_attribute("href")
    link.click()
    app.wait_for_selector(".docs-page[data-page='api-reference']")
    anchor = target.split("#", 1)[1]
    assert app.evaluate("() => location.search + location.hash").endswith(f"docs=api-reference#{anchor}")
    assert app.evaluate("(id) => { const r = document.getElementById(`docs-${id}`).getBoundingClientRect(); return r.top >= 0 && r.top < innerHeight; }", anchor)
    # Search: the sections that hold every word, each leading to a heading that exists.
    app.fill(".docs-search", "registerCodec")
    app.wait_for_selector(".docs-results li.docs-result")
    results = app.evaluate("() => [...document.querySelectorAll('.docs-result a')].map((a) => a.getAttribute('href'))")
    assert any(href.startswith("?docs=api-reference#") for href in results)
    app.locator(".docs-result a").first.click()
    app.wait_for_selector(".docs-page:not([hidden])")
    assert "registercodec" in app.evaluate("() => location.hash.toLowerCase()")
    app.fill(".docs-search", "zzzqqq nothing")
    app.wait_for_selector(".docs-none")
    # The header's Docs button opens the first page; a page that does not exist says so.
    app.goto(base_url)
    app.click("#docs-button")
    app.wait_for_selector(".docs-page[data-page='getting-started'] h1")
    assert app.evaluate("pyjoy.openDocs('no-such-page')") is False
    assert "no docs page named" in app.inner_text(".docs-page")
    # The editor's Guide button opens the plugin author's guide.
    app.click("#new-plugin")
    app.click(".editor-guide")
    app.wait_for_selector(".docs-page[data-page='plugin-guide'] h1")


def test_every_runnable_example_loads_and_answers(app: Page, base_url: str, tmp_path: Path) -> None:
    failures = []
    chosen = tmp_path / "cells.png"  # what the person chooses when a block asks for a file
    chosen.write_bytes(bytes(range(16)))
    engine_blocks = any("engine" in block.marks for page in page_paths() for block in blocks(page))
    with engine_running(tmp_path, "--app", base_url) if engine_blocks else _nothing() as engine:
        app.goto(base_url)
        app.evaluate("pyjoy.ready")
        if engine:
            app.evaluate("(url) => pyjoy.connectEngine(url)", engine[0])
        ran = 0
        for page in page_paths():
            app.evaluate("() => { window.__docsPlugin = null; }")
            for block in blocks(page):
                if "plugin" in block.marks:
                    failure = app.evaluate(LOAD_PLUGIN_BLOCK, [block.text, block.where(), BOUND_MS])
                elif block.marks in (["page"], ["page", "engine"]) and block.language == "js":
                    failure = app.evaluate(RUN_PAGE_BLOCK, [block.text, block.where(), BOUND_MS])
                elif block.marks == ["person"] and block.language == "python" or block.marks == ["page", "person"] and block.language == "js":
                    failure = run_answering(app, block, chosen)
                elif block.marks == ["workflow"] and block.language == "json":
                    failure = app.evaluate(VALIDATE_WORKFLOW, [block.text, block.where()])
                else:
                    continue
                ran += 1
                if failure:
                    failures.append(failure)
    assert not failures, "\n".join(failures)
    assert ran >= 10
    # The validator refuses what is not a workflow, naming what is wrong.
    refused = app.evaluate(VALIDATE_WORKFLOW, ['{"name": "x", "steps": []}', "a bad one"])
    assert refused and "Not a valid workflow: steps must be a non-empty list" in refused, refused


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *_):
        return False


def test_every_api_name_a_plugin_gets_has_a_reference_entry(app: Page) -> None:
    # The names come from a running plugin's `api`: the host's object as it arrived in the
    # sandbox, and what the plugin's own side adds (export, registerCodec, ...).
    names = app.evaluate("""async (text) => (await pyjoy.loadPlugin(text)).names()""", """<config lang="json">
{"name": "Docs API Names", "type": "web-python", "version": "0.1.0"}
</config>
<script lang="python">
from imjoy import api

class Names:
    def names(self):
        host = api._host
        names = [k for k in host.keys() if not k.startswith("_")]
        names += ["utils." + k for k in host["utils"].keys()]
        names += [k for k in dir(api) if not k.startswith("_") and "_" not in k]
        return sorted(set(names))

api.export(Names())
</script>""")
    assert {"showMessage", "createWindow", "utils.openUrl", "export", "registerCodec"} <= set(names)
    # The engine's plugin process adds ImJoy's WORK_DIR and utils.kill (plugin_process.py).
    process = (ROOT / "pyjoy/engine/plugin_process.py").read_text()
    names += ["WORK_DIR", "utils.kill"] if '"WORK_DIR"' in process and '"kill": kill' in process else []
    reference = read("docs/api-reference.md")
    entries = set(re.findall(r"^#{2,4} `api\.([\w.$]+)", reference, re.MULTILINE))
    missing = sorted(set(names) - entries)
    assert not missing, f"docs/api-reference.md has no '### `api.NAME...`' entry for: {', '.join(missing)}"
    invented = sorted(entries - set(names))
    assert not invented, f"docs/api-reference.md has entries for names a plugin does not get: {', '.join(invented)}"

    # The embedding API likewise: window.pyjoy's own keys against the reference's pyjoy.* headings.
    keys = set(app.evaluate("Object.keys(window.pyjoy)"))
    documented = {name for heading in re.findall(r"^#{2,4} (`pyjoy\..*)$", reference, re.MULTILINE)
                  for name in re.findall(r"`pyjoy\.(\w+)", heading)}
    assert keys == documented, f"window.pyjoy without an entry: {sorted(keys - documented)}; entries for no key: {sorted(documented - keys)}"


def test_a_plugins_hostile_docs_run_nothing_on_the_page(browser, base_url: str) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        # Listening before anything of the plugin's can run.
        page.add_init_script("window.__docsPwned = [];")
        requests = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto(base_url)
        page.evaluate("pyjoy.ready")
        hostile = (HOSTILE / "docs_runs_script.imjoy.html").read_text()
        page.evaluate("(text) => pyjoy.installPlugin(text)", hostile)
        item = page.locator("li.plugin-item[data-name='Docs Runs Script']")
        item.get_by_role("button", name="Docs").click()
        docs = item.locator(".plugin-docs")
        docs.locator("h1").wait_for(state="attached")
        assert docs.locator("h1").inner_text() == "Harmless title"
        page.wait_for_timeout(500)  # an image's error, a frame's load, a focus, a toggle would have fired
        assert page.evaluate("window.__docsPwned") == []
        html = docs.inner_html()
        for left_out in ("<script", "<iframe", "<object", "<embed", "<form", "<base", "<meta", "<style", "<svg", "<math",
                         'id="docs-button"', 'name="pyjoy"'):
            assert left_out not in html.lower(), left_out
        # No event handler, no script or data URL, no style in any attribute that is left.
        attributes = docs.evaluate("""(box) => [...box.querySelectorAll('*')].flatMap((e) => [...e.attributes])
            .map((a) => `${a.name}=${a.value}`)""")
        assert not [a for a in attributes if re.match(r"(on\w+|style)=|\w+=\s*(javascript|data):", a, re.IGNORECASE)], attributes
        assert docs.locator("a", has_text="a javascript: link").count() == 1  # the link's text stays, inert
        # Its heading's id is prefixed, so it cannot take one of the page's; its own link follows it.
        assert docs.locator("h2").get_attribute("id") == "user-content-a-heading-of-its-own"
        assert docs.locator("a[href='#user-content-a-heading-of-its-own']").count() == 1
        # A link elsewhere opens a new tab that has no hold on this page.
        away = docs.locator("a[href='https://evil.example/phish']")
        assert away.get_attribute("target") == "_blank" and away.get_attribute("rel") == "noopener noreferrer"
        # What is left of the script links is inert: clicking it all runs nothing.
        for link in docs.locator("a:not([target])").all():
            link.click()
        page.wait_for_timeout(200)
        assert page.evaluate("window.__docsPwned") == []
        assert page.evaluate("() => typeof window.pyjoy.loadPlugin") == "function"
        assert page.evaluate("() => document.getElementById('docs-button').tagName") == "BUTTON"
        assert page.evaluate("() => getComputedStyle(document.body).display") != "none"
        assert not [url for url in requests if "evil.example" in url]
        assert page.evaluate("pyjoy.runPython('1+1')") == 2
    finally:
        context.close()


def test_the_docs_work_offline(profile_context, base_url: str) -> None:
    page = open_offline(profile_context, base_url)
    assert page.evaluate("pyjoy.openDocs('api-reference', 'apishowmessagemessage-duration')") is True
    assert page.locator(".docs-page h1").inner_text() == "API reference"
    page.fill(".docs-search", "reverse proxy")
    page.wait_for_selector(".docs-result a[href^='?docs=deploying']")
