"""Bundles the app's ES modules and CSS with esbuild into content-hashed files."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from pyjoy.build.errors import BuildError, run_tool

# Under app/: the shell, the console's Python worker, the styles (ES modules, as files).
MODULE_ENTRIES = ("main.js", "python-worker.js", "style.css")
# Classic scripts the page hands to plugin sandboxes as text, so each is one self-contained
# file: a sandbox has an opaque origin and loads nothing from ours (plugins/sandbox.js).
SCRIPT_ENTRIES = ("sandbox/frame.js", "sandbox/js-worker.js", "sandbox/python-worker.js", "windows/builtin.js")


def bundle(app_dir: Path, node_modules: Path, site: Path) -> dict[str, str]:
    """Writes site/assets/<name>-<hash>.<ext>; returns each entry's URL relative to the site."""
    esbuild = node_modules / ".bin" / "esbuild"
    if not esbuild.exists():
        raise BuildError("node_modules/.bin/esbuild is missing", "run npm ci (or rm -r node_modules and build again)")
    urls = run_esbuild(esbuild, app_dir, MODULE_ENTRIES, site, "esm")
    urls |= run_esbuild(esbuild, app_dir, SCRIPT_ENTRIES, site, "iife")
    missing = set(MODULE_ENTRIES + SCRIPT_ENTRIES) - set(urls)
    if missing:
        raise BuildError(f"esbuild wrote no output for {', '.join(sorted(missing))}", "check the entries in pyjoy/build/bundle.py")
    return urls


def run_esbuild(esbuild: Path, app_dir: Path, entries: tuple[str, ...], site: Path, format: str) -> dict[str, str]:
    # ES modules split: what the shell imports dynamically (the plugin host, with its YAML
    # parser) becomes its own chunk, off the path to the first paint.
    splitting = ["--splitting", "--chunk-names=chunks/[name]-[hash]"] if format == "esm" else []
    with tempfile.TemporaryDirectory() as scratch:
        metafile = Path(scratch) / "meta.json"
        run_tool(
            [str(esbuild), *(str(app_dir / entry) for entry in entries), *splitting,
             "--bundle", f"--format={format}", "--target=es2022", "--minify", "--sourcemap=linked",
             "--entry-names=[dir]/[name]-[hash]", "--asset-names=[name]-[hash]", "--log-level=error",
             f"--outbase={app_dir}", f"--outdir={site / 'assets'}", f"--metafile={metafile}"],
            what="bundling app/ with esbuild",
            fix="fix the JavaScript or CSS error named above",
        )
        outputs = json.loads(metafile.read_text())["outputs"]
    urls: dict[str, str] = {}
    for output, meta in outputs.items():
        entry = meta.get("entryPoint")
        if entry:
            name = Path(entry).resolve().relative_to(app_dir.resolve()).as_posix()
            urls[name] = Path(output).resolve().relative_to(site.resolve()).as_posix()
    return urls
