"""Built-in plugins: py_plugins/ copied into dist/plugins/, with an ImJoy manifest.

    dist/plugins/manifest.imjoy.json   {"name": "PyJoy built-in plugins",
                                        "plugins": [{name, type, version, description,
                                                     tags, icon, uri}], "collections": []}

`uri` is relative to the manifest, as in ImJoy's plugin repositories; the workbench lists
this manifest as the built-in repository. A field given per tag (`"type": {"web-python":
"web-python", "native-python": "native-python"}`) is listed with its first tag's value, the
variant that loads unless another tag is named. Built-in plugins are `.imjoy.html` files whose
`<config>` is JSON (`<config lang="json">`), so the build reads them with Python's json
and needs no YAML parser; a config that is not JSON is a build error naming the file.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from pyjoy.build.errors import BuildError

MANIFEST = "manifest.imjoy.json"
FIELDS = ("name", "type", "version", "description", "tags", "icon")
PER_TAG = ("type", "icon")  # manifest fields a config may give one value per tag (ImJoy's CONFIGURABLE_FIELDS)
CONFIG = re.compile(r"<config\b([^>]*)>(.*?)</config>", re.DOTALL | re.IGNORECASE)


def plugin_config(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    match = CONFIG.search(text)
    if match is None:
        raise BuildError(f"{path}: no <config> block", 'built-in plugins need a <config lang="json"> block')
    if not re.search(r"""lang\s*=\s*["']?json""", match.group(1)):
        raise BuildError(f"{path}: <config> is not lang=\"json\"", 'write the config of built-in plugins as <config lang="json">')
    try:
        config = json.loads(match.group(2))
    except json.JSONDecodeError as error:
        line = text.count("\n", 0, match.start(2)) + error.lineno
        raise BuildError(f"{path}:{line}: <config> is not valid JSON ({error.msg})", "fix the JSON") from None
    if not isinstance(config, dict) or not isinstance(config.get("name"), str):
        raise BuildError(f"{path}: <config> needs a string name and type", "add them")
    tags = config.get("tags") or []
    for field in PER_TAG:  # a value per tag: the first tag's, what loads unless another is named
        if isinstance(config.get(field), dict):
            if not tags or tags[0] not in config[field]:
                first = f'the first tag, "{tags[0]}"' if tags else 'each of its "tags" (it has none)'
                raise BuildError(f'{path}: <config> "{field}" has a value per tag but none for {first}', "add it")
            config[field] = config[field][tags[0]]
    if not isinstance(config.get("type"), str):
        raise BuildError(f"{path}: <config> needs a string name and type (one, or one per tag)", "add them")
    return config


def place_builtin_plugins(site: Path, source: Path) -> list[dict]:
    """Copies source/* to site/plugins/ and writes the manifest; returns its plugin entries."""
    target = site / "plugins"
    target.mkdir(parents=True, exist_ok=True)
    entries = []
    for path in sorted(source.glob("*")) if source.is_dir() else []:
        if not path.is_file():
            continue
        shutil.copyfile(path, target / path.name)
        if path.name.endswith(".imjoy.html"):
            config = plugin_config(path)
            entry = {field: config.get(field, [] if field == "tags" else "") for field in FIELDS}
            entries.append({**entry, "uri": path.name})
    names = [entry["name"] for entry in entries]
    if len(set(names)) != len(names):
        raise BuildError(f"{source}: two built-in plugins share a name ({', '.join(sorted(names))})", "rename one")
    manifest = {"name": "PyJoy built-in plugins", "plugins": entries, "collections": []}
    (target / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return entries
