"""The docs against the repository, without a browser: every link between pages and to
headings resolves (and the README's links into them), every block marked `cpython` runs under CPython (with `app`, against the served app), and the marks are ones
the tests know (docs/writing-docs.md). The browser half is test_docs_browser.py."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from docs_pages import ROOT, anchors, blocks, links, page_paths, read

MARKS = {"plugin", "page", "cpython", "engine", "app", "workflow", "person"}


def resolve(page: str, href: str) -> tuple[str, str]:
    """(repository path, anchor) a relative link of `page` points at."""
    path, _, anchor = href.partition("#")
    if not path:
        return page, anchor
    target = (ROOT / page).parent / path
    return target.resolve().relative_to(ROOT).as_posix(), anchor


def broken_links(page: str, pages: set[str]) -> list[str]:
    """The relative links of `page` that lead nowhere: no such file, or no such heading."""
    broken = []
    for href in links(page):
        if href.startswith(("http://", "https://", "mailto:")):
            continue
        try:
            path, anchor = resolve(page, href)
        except ValueError:
            broken.append(f"{page}: {href} points outside the repository")
            continue
        if not (ROOT / path).exists():
            broken.append(f"{page}: {href} -> {path}, which does not exist")
        elif anchor and path not in pages:
            broken.append(f"{page}: {href} has an anchor into {path}, which is not a docs page")
        elif anchor and anchor not in anchors(path):
            broken.append(f"{page}: {href} -> no heading #{anchor} in {path}")
    return broken


def test_every_internal_link_and_anchor_resolves() -> None:
    pages = set(page_paths())
    broken = [problem for page in pages for problem in broken_links(page, pages)]
    assert not broken, "\n".join(sorted(broken))


def test_the_readmes_links_into_the_docs_resolve() -> None:
    # The README is short and links into docs/ for the rest: those links must lead somewhere.
    broken = broken_links("README.md", set(page_paths()))
    assert not broken, "\n".join(broken)
    assert sum(href.startswith("docs/") for href in links("README.md")) >= 5


def test_the_link_checker_sees_a_broken_link(tmp_path: Path, monkeypatch) -> None:
    # The reader itself: a heading with code and punctuation, a repeated one, a link in code.
    page = "docs/getting-started.md"
    assert resolve(page, "plugin-guide.md#requirements") == ("docs/plugin-guide.md", "requirements")
    assert resolve(page, "../pyjoy/rpc/PROTOCOL.md") == ("pyjoy/rpc/PROTOCOL.md", "")
    assert resolve(page, "#x") == (page, "x")
    from docs_pages import slug
    assert slug("`api.showDialog(config)`: a form or a window") == "apishowdialogconfig-a-form-or-a-window"
    assert slug("The engine's `--grace`") == "the-engines---grace"
    # broken_links on the README's links as a page's: a missing file, a missing heading, a good one.
    hrefs = ["docs/nowhere.md", "docs/plugin-guide.md#no-such-heading", "docs/plugin-guide.md#requirements", "https://imjoy.io"]
    monkeypatch.setattr(sys.modules[__name__], "links", lambda page: hrefs)
    assert broken_links("README.md", set(page_paths())) == [
        "README.md: docs/nowhere.md -> docs/nowhere.md, which does not exist",
        "README.md: docs/plugin-guide.md#no-such-heading -> no heading #no-such-heading in docs/plugin-guide.md",
    ]


def test_blocks_carry_only_known_marks_and_each_page_has_runnable_examples() -> None:
    unknown = [f"{block.where()}: {block.marks}" for page in page_paths() for block in blocks(page)
               if set(block.marks) - MARKS]
    assert not unknown, "marks the tests do not know (docs/writing-docs.md lists them):\n" + "\n".join(unknown)
    for page in ("docs/plugin-guide.md", "docs/api-reference.md"):
        assert any(block.marks for block in blocks(page)), f"{page} has no runnable example"


CPYTHON = [block for page in page_paths() for block in blocks(page) if "cpython" in block.marks]
# A block runs as a script that may `await` at the top level, as Pyodide's runPythonAsync
# runs a plugin's code: compiled so, and the coroutine that gives run to its end.
TOP_LEVEL_AWAIT = """import ast, asyncio, sys
code = compile(sys.argv[1], "<docs example>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
done = eval(code, {"__name__": "__main__"})
if done is not None:
    with asyncio.Runner() as runner:  # a subprocess of its own: no event loop of Playwright's here
        runner.run(done)
"""


def run_cpython(block, tmp_path: Path, app_url: str = "") -> None:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    if app_url:
        env["PYJOY_APP_URL"] = app_url
    result = subprocess.run([sys.executable, "-c", TOP_LEVEL_AWAIT, block.text], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, f"{block.where()} failed:\n{result.stdout}{result.stderr}"


ALONE = [block for block in CPYTHON if "app" not in block.marks]
WITH_APP = [block for block in CPYTHON if "app" in block.marks]


@pytest.mark.parametrize("block", ALONE, ids=[block.where() for block in ALONE])
def test_python_examples_run_under_cpython(block, tmp_path: Path) -> None:
    run_cpython(block, tmp_path)


@pytest.mark.parametrize("block", WITH_APP, ids=[block.where() for block in WITH_APP])
def test_python_examples_run_under_cpython_against_the_app(block, tmp_path: Path, base_url: str) -> None:
    # `app`: the built site is served on 127.0.0.1, and PYJOY_APP_URL is its address.
    run_cpython(block, tmp_path, base_url)


def test_the_runner_awaits_at_the_top_level_and_fails_a_failing_block(tmp_path: Path) -> None:
    from docs_pages import Block

    run_cpython(Block("x.md", 1, "python", ["cpython"], "import asyncio\nawait asyncio.sleep(0)\n"), tmp_path)
    with pytest.raises(AssertionError, match="x.md:1 failed"):
        run_cpython(Block("x.md", 1, "python", ["cpython"], "import asyncio\nawait asyncio.sleep(0)\nassert False\n"), tmp_path)


def test_the_build_puts_the_pages_in_reading_order_and_names_a_page_without_a_title(tmp_path: Path) -> None:
    from pyjoy.build.docs import CONTRACTS, place_docs
    from pyjoy.build.errors import BuildError

    root = tmp_path / "repo"
    for path in CONTRACTS.values():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(f"# {path}\n")
    (root / "docs").mkdir()
    (root / "docs" / "zebra.md").write_text("# Zebra\n")
    (root / "docs" / "plugin-guide.md").write_text("intro\n\n# The `guide`\n")
    (root / "docs" / "getting-started.md").write_text("# Start\n")
    site = tmp_path / "site"
    site.mkdir()
    pages = place_docs(site, root)
    assert [page["name"] for page in pages] == ["getting-started", "plugin-guide", "zebra", "rpc-protocol", "engine-protocol"]
    assert pages[1] == {"name": "plugin-guide", "title": "The guide", "url": "docs/plugin-guide.md", "source": "docs/plugin-guide.md"}
    assert (site / "docs" / "rpc-protocol.md").read_text() == "# pyjoy/rpc/PROTOCOL.md\n"

    (root / "docs" / "untitled.md").write_text("no heading here\n")
    with pytest.raises(BuildError) as raised:
        place_docs(site, root)
    assert "docs/untitled.md" in str(raised.value) and "# Title" in str(raised.value)


def test_the_guide_describes_every_config_field_the_loader_knows() -> None:
    # The fields from the loader's own source (app/plugins/config.js): its defaults, the
    # fields that may vary by tag, and those it reads besides.
    source = (ROOT / "app/plugins/config.js").read_text()
    defaults = source[source.index("function defaults()"):]
    fields = set(re.findall(r"^    (\w+):", defaults[:defaults.index("};")], re.MULTILINE))
    fields |= set(re.findall(r'"(\w+)"', source[source.index("CONFIGURABLE_FIELDS = ["):source.index("];", source.index("CONFIGURABLE_FIELDS = ["))]))
    fields |= {"name", "type", "passive"}
    assert {"requirements", "base_frame", "runnable", "env"} <= fields
    guide = read("docs/plugin-guide.md")
    table = guide[guide.index("## Config fields"):guide.index("## Plugin types")]
    described = {name for row in table.splitlines() if row.startswith("| `") for name in re.findall(r"`(\w+)`", row.split("|")[1])}
    assert fields - described == set(), f"config fields the guide's table does not describe: {sorted(fields - described)}"
