"""The two readers of ImJoy's plugin format agree (pyjoy/engine/ENGINE.md, "Who reads a
plugin file"): the page's (app/plugins/format.js, run here under Node) and the engine's
(pyjoy/engine/plugin_file.py), on every native-python plugin of the public corpus
(bench/imjoy_corpus/), for each of its tags: the same config fields, type and
requirements, and the same Python scripts starting on the same file lines."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pyjoy.engine.plugin_file import parse_plugin

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "bench" / "imjoy_corpus"

# Reads [[path, tag], ...] on stdin; answers {"path@tag": {config, scripts} or {error}} ("path@": no tag).
SCRIPT = r"""
import { readFileSync } from "node:fs";
import { parsePlugin } from "./app/plugins/format.js";
const out = {};
for (const [path, tag] of JSON.parse(readFileSync(0, "utf8"))) {
  try {
    const plugin = parsePlugin(readFileSync(path, "utf8"), { filename: path, tag: tag ?? undefined });
    out[`${path}@${tag ?? ""}`] = { config: plugin.config, scripts: plugin.scripts.map(({ lang, code, line }) => ({ lang, code, line })) };
  } catch (error) {
    out[`${path}@${tag ?? ""}`] = { error: `${error.name}: ${error.message}` };
  }
}
process.stdout.write(JSON.stringify(out));
"""
# Fields format.js fills in when a file leaves them out (config.js defaults(), and the
# script language): the page's business; the engine leaves them out.
FILLED_BY_THE_PAGE = {"version", "api_version", "description", "tags", "ui", "inputs", "outputs", "flags", "icon",
                      "cover", "labels", "env", "permissions", "requirements", "dependencies", "defaults", "base_frame",
                      "runnable", "lang"}


def read_with_node(pairs: list[tuple[str, str | None]]) -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    run = subprocess.run([node, "--input-type=module", "-e", SCRIPT], cwd=ROOT, input=json.dumps(pairs),
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_the_page_and_the_engine_read_every_native_plugin_of_the_corpus_alike() -> None:
    files = sorted(str(path.relative_to(ROOT)) for path in CORPUS.rglob("*") if path.suffix in (".html", ".py"))
    first = read_with_node([(path, None) for path in files])
    # The native-python plugins, as the page reads them; the engine must call the same ones so.
    native = [path for path in files if first[f"{path}@"].get("config", {}).get("type") == "native-python"]
    engine_native = []
    for path in files:
        try:
            if parse_plugin((ROOT / path).read_text())["config"].get("type") == "native-python":
                engine_native.append(path)
        except ValueError:
            pass
    assert native == engine_native
    assert len(native) >= 30  # the corpus has 30: a reader that found none would agree on nothing

    pairs = [(path, tag) for path in native for tag in [None, *first[f"{path}@"]["config"]["tags"]]]
    page = read_with_node(pairs)
    compared = 0
    for path, tag in pairs:
        theirs = page[f"{path}@{tag or ''}"]
        assert "error" not in theirs, (path, tag, theirs)
        ours = parse_plugin((ROOT / path).read_text(), tag)
        where = f"{path} (tag {tag})"
        config, their_config = ours["config"], theirs["config"]
        assert config["type"] == their_config["type"] == "native-python", where
        assert config["requirements"] == their_config["requirements"], where
        assert config["tag"] == their_config["tag"], where
        for key, value in config.items():
            assert their_config.get(key) == value, (where, key, value, their_config.get(key))
        assert set(their_config) - set(config) <= FILLED_BY_THE_PAGE, where
        assert [s["lang"] for s in theirs["scripts"]] == ["python"] * len(theirs["scripts"]), where
        assert [(s["code"], s["line"]) for s in ours["scripts"]] == [(s["code"], s["line"]) for s in theirs["scripts"]], where
        compared += 1
    assert compared > len(native)  # some have tags: each tag's reading was compared too
