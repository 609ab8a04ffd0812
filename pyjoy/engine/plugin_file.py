"""A plugin's source text, read on the engine: its config and its Python scripts.

    plugin = parse_plugin(text, tag=None)   # {"config": {...}, "scripts": [{"code", "line"}]}

The same reading as the page's (app/plugins/format.js and config.js, which follow
imjoy-core's parsePluginCode, and own the format: ENGINE.md, "Who reads a plugin file";
tests/test_engine_parsers_node.py checks that the two agree), cut to what the engine needs: the `<config>` block (JSON,
or YAML where PyYAML is installed), the tag (the first of `tags` by default), fields that
hold a value per tag resolved, and the `<script>` blocks kept for that tag, each with the
file line its code starts on (so tracebacks name the file's lines). A `.py` file with a
`# ---` front matter works too. A malformed file raises PluginFileError naming the block
and the line. Other blocks (`<window>`, `<docs>`, ...) are skipped.
"""

from __future__ import annotations

import json
import re
from typing import Any

TEXT_BLOCKS = {"config", "script", "style", "docs", "attachment", "textarea"}
VOID_BLOCKS = {"link", "meta", "br", "hr", "img", "input", "base"}
# Fields that may hold one value per tag (imjoy-core src/api.js CONFIGURABLE_FIELDS).
CONFIGURABLE_FIELDS = ("env", "requirements", "dependencies", "icon", "ui", "type", "flags", "labels", "cover",
                       "base_frame")
OPEN_TAG = re.compile(r"""<([a-zA-Z][\w.:-]*)((?:\s+[^\s"'<>/=]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?)*)\s*(/?)>""")
ATTRIBUTE = re.compile(r"""([^\s"'<>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?""")


class PluginFileError(ValueError):
    """A malformed plugin file: `block` and `line` (in the file) say where."""

    def __init__(self, block: str, line: int, detail: str) -> None:
        super().__init__(f"{block} (line {line}): {detail}")
        self.block, self.line = block, line


def parse_plugin(text: str, tag: str | None = None) -> dict[str, Any]:
    text = str(text).lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise PluginFileError("file", 1, "the plugin file is empty; expected an ImJoy plugin (<config> and <script>)")
    if re.search(r"<config[\s>]", text, re.IGNORECASE):
        return _imjoy(text, tag)
    if text.strip().splitlines()[0].strip() == "# ---":
        return _front_matter(text, tag)
    raise PluginFileError("file", 1, "cannot tell the plugin format: expected an ImJoy plugin with a <config> block, "
                                     'or a .py file starting with a "# ---" front matter')


def _line_at(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def _blocks(text: str) -> list[dict[str, Any]]:
    """The top-level blocks in file order: {type, attrs, tag_line, line, body}."""
    blocks = []
    i = text.find("<")
    while i >= 0:
        if text.startswith("<!--", i):
            end = text.find("-->", i + 4)
            if end < 0:
                raise PluginFileError("file", _line_at(text, i), "a comment <!-- is opened but never closed")
            i = text.find("<", end + 3)
            continue
        opened = OPEN_TAG.match(text, i)
        if not opened:
            i = text.find("<", i + 1)
            continue
        kind = opened.group(1).lower()
        attrs = {m.group(1).lower(): next((g for g in m.group(2, 3, 4) if g is not None), "")
                 for m in ATTRIBUTE.finditer(opened.group(2))}
        tag_line = _line_at(text, i)
        start = opened.end()
        if opened.group(3) or kind in VOID_BLOCKS:
            blocks.append({"type": kind, "attrs": attrs, "tag_line": tag_line, "line": tag_line, "body": ""})
            i = text.find("<", start)
            continue
        end, after = _close(text, kind, start, tag_line)
        body, line = text[start:end], _line_at(text, start)
        first_break = body.find("\n")
        if first_break >= 0 and not body[:first_break].strip():  # the break after the tag is not content
            body, line = body[first_break + 1:], line + 1
        blocks.append({"type": kind, "attrs": attrs, "tag_line": tag_line, "line": line, "body": _dedent(body)})
        i = text.find("<", after)
    return blocks


def _close(text: str, kind: str, start: int, tag_line: int) -> tuple[int, int]:
    """Where block `kind` opened before `start` ends: (end of its body, after its close tag)."""
    if kind in TEXT_BLOCKS:  # closed by the first </kind>, as HTML closes <script>
        found = re.compile(rf"</{re.escape(kind)}\s*>", re.IGNORECASE).search(text, start)
        if found:
            return found.start(), found.end()
    else:  # HTML (<window>): count nested <kind>s; skip comments and raw elements' bodies
        depth, tags = 1, re.compile(r"<!--|<(/?)([a-zA-Z][\w.:-]*)[^>]*>")
        position = start
        while (found := tags.search(text, position)) is not None:
            position = found.end()
            if found.group(0) == "<!--":
                end = text.find("-->", position)
                if end < 0:
                    break
                position = end + 3
                continue
            name = found.group(2).lower()
            if not found.group(1) and name in ("script", "style", "textarea") and not found.group(0).endswith("/>"):
                inner = re.compile(rf"</{name}\s*>", re.IGNORECASE).search(text, position)
                if not inner:
                    break
                position = inner.end()
            elif name == kind and found.group(1):
                depth -= 1
                if depth == 0:
                    return found.start(), found.end()
            elif name == kind and not found.group(0).endswith("/>"):
                depth += 1
    raise PluginFileError(kind, tag_line, f"<{kind}> is opened but never closed; expected </{kind}>")


def _dedent(body: str) -> str:
    """Common indentation removed as ImJoy's deIndent does; lines stay where they were."""
    if not body.strip():
        return ""
    lines = body.split("\n")
    first = next(line for line in lines if line.strip())
    if first[0] not in " \t":
        return body.rstrip(" \t")
    char = first[0]
    width = [len(line) - len(line.lstrip(char)) for line in lines if line.strip()]
    common = min(width)
    return "\n".join(line[min(common, len(line) - len(line.lstrip(char))):] for line in lines).rstrip(" \t")


def _imjoy(text: str, tag: str | None) -> dict[str, Any]:
    blocks = _blocks(text)
    config_block = next((b for b in blocks if b["type"] == "config"), None)
    if config_block is None:
        raise PluginFileError("config", 1, "no <config> block")
    config = _normalize(_read_config(config_block), tag, config_block["tag_line"])
    kept = [b for b in blocks if b is not config_block and b["type"] == "script"
            and b["attrs"].get("tag") in (None, config["tag"])]
    if not kept:
        raise PluginFileError("script", 1, f"no <script> block (for tag {config['tag']!r}); a native-python plugin "
                                           'needs a <script lang="python">')
    scripts = []
    python = config.get("type") in ("native-python", "web-python")
    for block in kept:
        lang = block["attrs"].get("lang", "python" if python else "javascript").lower()
        if python and lang not in ("python", "py"):
            raise PluginFileError("script", block["tag_line"], f'a {config["type"]} plugin runs Python, but this '
                                                               f'<script> is lang="{lang}"; expected lang="python"')
        scripts.append({"code": block["body"], "line": block["line"]})
    return {"config": config, "scripts": scripts}


def _read_config(block: dict[str, Any]) -> Any:
    body, lang = block["body"], block["attrs"].get("lang", "").lower()
    if not body.strip():
        raise PluginFileError("config", block["tag_line"], "the <config> block is empty")
    if lang == "json" or (not lang and body.lstrip().startswith("{")):
        try:
            return json.loads(body)
        except ValueError as error:
            line = block["line"] + getattr(error, "lineno", 1) - 1
            raise PluginFileError("config", line, f"invalid JSON: {getattr(error, 'msg', error)}") from None
    if lang not in ("", "yaml", "yml"):
        raise PluginFileError("config", block["tag_line"], f'unknown config language lang="{lang}"; '
                                                           'expected lang="json" or lang="yaml"')
    return _yaml(body, block["line"])


def _yaml(body: str, line: int) -> Any:
    try:
        import yaml
    except ImportError:
        raise PluginFileError("config", line, "this config is YAML, and the engine reads YAML with PyYAML, which "
                                              "is not installed: pip install pyyaml (or write the config as JSON)"
                              ) from None
    try:
        return yaml.safe_load(body)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise PluginFileError("config", line + (mark.line if mark else 0),
                              f"invalid YAML: {getattr(error, 'problem', None) or error}") from None


def _normalize(raw: Any, tag: str | None, line: int) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise PluginFileError("config", line, f"expected a mapping of fields (name, type, ...), got {type(raw).__name__}")
    config = dict(raw)
    if _version_at_most(config.get("api_version"), "0.1.1"):  # older names (imjoy-core upgradePluginAPI)
        config["type"] = config.get("type") or config.pop("mode", None)
        config["type"] = {"pyworker": "native-python", "webworker": "web-worker",
                          "webpython": "web-python"}.get(config["type"], config["type"])
    tags = config.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise PluginFileError("config", line, '"tags" must be a list of strings')
    if tag is not None and tag not in tags:
        raise PluginFileError("config", line, f'tag "{tag}" is not one of this plugin\'s tags ({", ".join(tags) or "none"})')
    chosen = tag if tag is not None else (tags[0] if tags else None)
    for key in CONFIGURABLE_FIELDS:
        if isinstance(config.get(key), dict):
            if chosen is None:
                raise PluginFileError("config", line, f'"{key}" has a value per tag but the config has no "tags"')
            if chosen in config[key]:
                config[key] = config[key][chosen]
            else:  # a tag the mapping does not list leaves the field unset, as in ImJoy (and config.js)
                del config[key]
    name = config.get("name")
    if not isinstance(name, str) or not name.strip():
        raise PluginFileError("config", line, 'missing "name"; every plugin needs one (a non-empty string)')
    requirements = config.get("requirements")
    requirements = [] if requirements is None else [requirements] if isinstance(requirements, str) else requirements
    if not isinstance(requirements, list) or not all(isinstance(r, str) and r.strip() for r in requirements):
        raise PluginFileError("config", line, '"requirements" must be a list of non-empty strings')
    config["requirements"] = requirements
    config["tag"] = chosen
    config.setdefault("version", "0.1.0")
    config["version"] = str(config["version"])
    return config


def _version_at_most(version: Any, most: str) -> bool:
    if version is None:
        return False
    parts = [int(p) if p.isdigit() else 0 for p in str(version).split(".")]
    limit = [int(p) for p in most.split(".")]
    return parts <= limit


def _front_matter(text: str, tag: str | None) -> dict[str, Any]:
    lines = text.split("\n")
    start = next(i for i, line in enumerate(lines) if line.strip())
    end = start + 1
    while end < len(lines) and lines[end].rstrip() != "# ---":
        if not lines[end].startswith("#"):
            raise PluginFileError("config", start + 1, 'the front matter opened here is never closed by a "# ---" line')
        end += 1
    if end == len(lines):
        raise PluginFileError("config", start + 1, 'the front matter opened here is never closed by a "# ---" line')
    yaml_text = "\n".join(re.sub(r"^# ?", "", line) for line in lines[start + 1:end])
    config = _normalize(_yaml(yaml_text, start + 2) if yaml_text.strip() else {}, tag, start + 1)
    config.setdefault("type", "web-python")  # as for the page (format.js): a .py file is web-python by default
    return {"config": config, "scripts": [{"code": "\n".join(lines[end + 1:]), "line": end + 2}]}
