"""Remakes the corpus of public ImJoy plugins (bench/imjoy_corpus/) from git mirrors on this
machine; bench/imjoy_compat.py measures how many of them run unmodified in PyJoy.

    python bench/imjoy_corpus/extract.py [--mirrors /work/.mirror]

Each mirror is a bare git directory (MIRRORS/owner+name/repo), read at its HEAD. Plugin
files are copied byte for byte; a file byte-identical to one already taken is skipped (the
example-plugins copies of the official repository's files, imjoy-core's copies of ImJoy's
templates, and imjoy-core's own versions of those templates). What is taken, in this order:

- imjoy-team/imjoy-plugins  repository/*.imjoy.html (ImJoy's official plugin repository)
- imjoy-team/example-plugins  imjoy-plugins/*.imjoy.html
- imjoy-team/ImJoy  web/src/plugins/*.imjoy.html (the editor's templates), and the runnable
  examples of its docs: each code block right after a `<!-- ImJoyPlugin: {...} -->` line
- imjoy-team/imjoy-core  tests/*.imjoy.html and src/plugins/*.imjoy.html

A docs block becomes a plugin file the way ImJoy's docs runner, docsify-imjoy, makes one
when its Run button is pressed (runCode / runPluginSource / makePluginSource in
imjoy-team/docsify-imjoy's plugin, read here in the copy True-North-Intelligent-
Algorithms/tnia-python assets/js/imjoy-app.js):
- an ```html block (code starting with "<") is a whole plugin file, taken as it is;
- a ```js / ```python block gets a config: the marker's JSON, then the runner's own
  fields (id, namespace, lang with js -> javascript and py -> python, window_id, passive:
  true when the code has no "api.export(", _parsed: false), then its defaults (api_version
  0.1.8, name "Plugin-<id>", description, tags, version 0.1.0, ui, cover, icon, inputs,
  outputs, env, permissions, requirements, dependencies; defaults {} for a window),
  written as `<config lang="json">` + JSON.stringify(cfg, null, 1) + `</config>` and
  `<script lang="LANG">` + the code + `</script>`.
  The runner's id is random; here it is "<doc>-<block index>", so the output is stable.
Writes the files under bench/imjoy_corpus/<source>/ and SOURCES.json (repository,
commit, path, docs block index, license of each file).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOCS = ("basic_tutorial", "plugin_tutorial", "gallery", "i2k_tutorial", "development", "getting_started", "api")
MARKER = re.compile(r"^<!--\s*ImJoyPlugin:\s*(\{.*?\})\s*-->\s*\n```(\w+)\n(.*?)^```", re.M | re.S)


def git(mirror: Path, *args: str) -> bytes:
    return subprocess.run(["git", "-C", str(mirror), *args], capture_output=True, check=True).stdout


def listed(mirror: Path, folder: str) -> list[str]:
    names = git(mirror, "ls-tree", "-r", "--name-only", "HEAD").decode().splitlines()
    return sorted(name for name in names if name.startswith(folder) and "/" not in name[len(folder):]
                  and name.endswith(".imjoy.html"))


def docs_plugin(doc: str, index: int, marker: dict, lang: str, code: str) -> str:
    """The plugin file docsify-imjoy's makePluginSource builds from one code block."""
    if code.strip().startswith("<"):
        return code  # runPluginSource: `isHTML` code is parsed as a whole plugin file
    lang = {"js": "javascript", "py": "python", "ijm": "javascript"}.get(lang, lang)
    block_id = f"{doc}-{index}"
    config = {**marker, "id": block_id, "namespace": block_id, "lang": lang, "window_id": "output_" + block_id}
    if "passive" not in config and "api.export(" not in code:
        config["passive"] = True
    config["_parsed"] = False
    defaults = {
        "api_version": "0.1.8", "name": "Plugin-" + block_id,
        "description": "[TODO: describe this plugin with one sentence.]", "tags": [], "version": "0.1.0",
        "ui": "", "cover": "", "icon": "extension", "inputs": None, "outputs": None, "env": "",
        "permissions": [], "requirements": [], "dependencies": [],
    }
    cfg = dict(config)
    for key, value in defaults.items():
        cfg[key] = cfg.get(key) or value  # the runner's `cfg.x = cfg.x || default`
    if config.get("type") == "window":
        cfg["defaults"] = {}
    text = json.dumps(cfg, indent=1, ensure_ascii=False)
    return f'<config lang="json">\n{text}\n</config>\n<script lang="{lang}">\n{code}</script>'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mirrors", type=Path, default=Path("/work/.mirror"))
    args = parser.parse_args()

    taken: dict[str, str] = {}  # sha256 -> corpus file
    sources: list[dict] = []
    skipped: list[str] = []

    def take(folder: str, name: str, data: bytes, source: dict) -> None:
        digest = hashlib.sha256(data).hexdigest()
        where = f"{source['repo']}:{source['path']}" + (f"#{source['block']}" if "block" in source else "")
        if digest in taken:
            skipped.append(f"{where} (the same bytes as {taken[digest]})")
            return
        path = HERE / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        file = f"{folder}/{name}"
        taken[digest] = file
        sources.append({"file": file, **source, "sha256": digest})

    def repository(repo: str, folders: list[tuple[str, str]], leave_out: set[str] = set()) -> None:
        mirror = args.mirrors / repo.replace("/", "+") / "repo"
        commit = git(mirror, "rev-parse", "HEAD").decode().strip()
        for corpus_folder, folder in folders:
            for path in listed(mirror, folder):
                if folder == "src/plugins/" and path.rsplit("/", 1)[1] in leave_out:
                    skipped.append(f"{repo}:{path} (another version of ImJoy's template of that name)")
                    continue
                data = git(mirror, "show", f"HEAD:{path}")
                take(corpus_folder, path.rsplit("/", 1)[1], data,
                     {"repo": repo, "commit": commit, "path": path, "license": "MIT"})

    repository("imjoy-team/imjoy-plugins", [("imjoy-plugins", "repository/")])
    repository("imjoy-team/example-plugins", [("example-plugins", "imjoy-plugins/")])
    repository("imjoy-team/ImJoy", [("imjoy-templates", "web/src/plugins/")])

    mirror = args.mirrors / "imjoy-team+ImJoy" / "repo"
    commit = git(mirror, "rev-parse", "HEAD").decode().strip()
    present = set(git(mirror, "ls-tree", "--name-only", "HEAD", "docs/").decode().splitlines())
    for doc in DOCS:
        path = f"docs/{doc}.md"
        if path not in present:
            skipped.append(f"imjoy-team/ImJoy:{path} (not in the mirror)")
            continue
        markdown = git(mirror, "show", f"HEAD:{path}").decode()
        for index, match in enumerate(MARKER.finditer(markdown)):
            marker, lang = json.loads(match[1]), match[2]
            code = match[3].removesuffix("\n")  # marked gives a block's text without its last newline
            text = docs_plugin(doc, index, marker, lang, code)
            take("imjoy-docs", f"{doc}-{index:02d}.imjoy.html", text.encode(),
                 {"repo": "imjoy-team/ImJoy", "commit": commit, "path": path, "block": index,
                  "block_lang": lang, "license": "MIT"})

    # imjoy-core's src/plugins holds another version of ImJoy's templates (api_version 0.1.7,
    # awaited logs): one template counts once, so those of the same name are left out.
    templates = {Path(entry["path"]).name for entry in sources if entry["file"].startswith("imjoy-templates/")}
    repository("imjoy-team/imjoy-core", [("imjoy-core", "tests/"), ("imjoy-core", "src/plugins/")], templates)

    (HERE / "SOURCES.json").write_text(json.dumps({"files": sources, "skipped": skipped}, indent=1) + "\n")
    print(f"{len(sources)} plugin files; skipped {len(skipped)}:")
    for line in skipped:
        print("  " + line)


if __name__ == "__main__":
    main()
