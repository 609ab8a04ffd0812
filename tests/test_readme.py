"""The README against the repository (no browser, no build): the Architecture tree names every
source file, and each Benchmarks table names its committed results file.

The rule: every source file (.py, .mjs, .js, .html, .css, .md) under app/, pyjoy/,
service_worker/, bench/ (but the public plugins in bench/imjoy_corpus/), py_plugins/ and
docs/, and every .py at the top, is named in the tree, on a line under its folder (or by
its full path); every file name in the tree exists
(under its folder, or anywhere in the repository for a file a description mentions, such
as package-lock.json); and no folder or file has two entries.

How a line is read: an entry starts within the first columns (two spaces a level); a
first word ending in "/" opens a folder for the lines indented below it; a line indented
far (a continued description) belongs to the entry above. File names anywhere in an
entry's line are taken as in that entry's folder (a folder's own line: in that folder).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE_FOLDERS = ("app/", "pyjoy/", "service_worker/", "bench/", "py_plugins/", "docs/")
SOURCE_SUFFIXES = (".py", ".mjs", ".js", ".html", ".css", ".md")
CORPUS = "bench/imjoy_corpus/"  # public ImJoy plugins copied unmodified: data, not our source
CONTINUATION = 16  # a line indented this far continues the entry above
FILE_NAME = re.compile(r"(?<![\w./-])((?:[\w-]+/)*[\w.-]*\w\.(?:py|mjs|json|js|html|css|md|toml|sh))(?![\w/-])")


def repository_files() -> set[str]:
    """Tracked files, and new ones not yet added (not ignored), that are on disk."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.splitlines()
    return {name for name in listed if (ROOT / name).is_file()}


def should_be_named(path: str) -> bool:
    if "/" not in path:
        return path.endswith(".py")
    if path.startswith(CORPUS) and path.endswith(".imjoy.html"):
        return False  # others' plugins, kept as data (the tree names the folder)
    return path.startswith(SOURCE_FOLDERS) and path.endswith(SOURCE_SUFFIXES)


def architecture_tree(readme: str) -> list[str]:
    start = readme.index("```\n", readme.index("\n## Architecture\n")) + len("```\n")
    return readme[start:readme.index("```", start)].splitlines()


def read_tree(lines: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """([(folder, name)] for every file name in the tree, [path of every entry])."""
    names: list[tuple[str, str]] = []
    entries: list[str] = []
    folders: list[tuple[int, str]] = []  # (indent, "name/") of the open folders
    folder = ""
    for line in lines:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent < CONTINUATION:
            while folders and folders[-1][0] >= indent:
                folders.pop()
            first = line.split()[0].rstrip(",:")
            if first.endswith("/"):
                folders.append((indent, first))
            folder = "".join(name for _, name in folders)
            entries.append(folder if first.endswith("/") else folder + first)
        names.extend((folder, name) for name in FILE_NAME.findall(line))
    return names, entries


def test_the_architecture_tree_names_every_source_file_and_only_files_that_exist() -> None:
    files = repository_files()
    names, entries = read_tree(architecture_tree((ROOT / "README.md").read_text()))

    # A name is read in its entry's folder; a full path (pyjoy/rpc/PROTOCOL.md) stands for itself.
    named = {path for folder, name in names for path in (folder + name, name) if path in files}
    missing = sorted(path for path in files if should_be_named(path) and path not in named)
    anywhere = {suffix for path in files for suffix in [path, path.rsplit("/", 1)[-1]]}
    extra = sorted({folder + name for folder, name in names if folder + name not in named and name not in anywhere})
    twice = sorted({entry for entry in entries if entries.count(entry) > 1})

    problems = []
    if missing:
        problems.append("files the tree does not name (add a line under their folder): " + ", ".join(missing))
    if extra:
        problems.append("names in the tree that no file has (remove or correct them): " + ", ".join(extra))
    if twice:
        problems.append("entries the tree has twice: " + ", ".join(twice))
    assert not problems, "README.md, Architecture:\n" + "\n".join(problems)


def test_the_tree_reader_sees_folders_continuations_and_strays() -> None:
    # The reader itself, on a small tree: so the test above can fail.
    lines = [
        "app/                     the shell: main.js",
        "  ui/                    dialog.js, windows.js,",
        "                         files.js",
        "  status.js              the status bar",
        "  ui/                    again",
        "build.py                 the build",
    ]
    names, entries = read_tree(lines)
    assert names == [("app/", "main.js"), ("app/ui/", "dialog.js"), ("app/ui/", "windows.js"),
                     ("app/ui/", "files.js"), ("app/", "status.js"), ("", "build.py")]
    assert entries == ["app/", "app/ui/", "app/status.js", "app/ui/", "build.py"]


def test_each_benchmark_table_names_its_committed_results_file() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("\n## Benchmarks\n"):]
    section = section[:section.find("\n## ", 1)] if "\n## " in section[1:] else section
    # Every table comes after the paragraph that names its results file (and that file's load).
    paragraphs = section.split("\n\n")
    for at, paragraph in enumerate(paragraphs):
        if not paragraph.startswith("|"):
            continue
        named = re.findall(r"`(bench/results/[\w-]+\.json)`", paragraphs[at - 1])
        assert len(named) == 1, f"the Benchmarks table starting {paragraph[:60]!r} names no results file just before it"
        path = ROOT / named[0]
        assert path.is_file() and named[0] in repository_files(), f"{named[0]} is not in the repository"
        load = json.loads(path.read_text())["machine"]["loadavg_1min_before"]
        assert f"load average {load:.1f}" in " ".join(paragraphs[at - 1].split()), f"{named[0]} was measured at load average {load:.1f}; the README says otherwise"
