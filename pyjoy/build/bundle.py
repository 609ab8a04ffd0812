"""Bundles the app's ES modules and CSS with esbuild into content-hashed files."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from pyjoy.build.errors import BuildError, run_tool

# The entry points under app/: the shell, the Python worker's bootstrap, the styles.
ENTRIES = ("main.js", "python-worker.js", "style.css")


def bundle(app_dir: Path, node_modules: Path, site: Path) -> dict[str, str]:
    """Writes site/assets/<name>-<hash>.<ext>; returns each entry's URL relative to the site."""
    esbuild = node_modules / ".bin" / "esbuild"
    if not esbuild.exists():
        raise BuildError("node_modules/.bin/esbuild is missing", "run npm ci (or rm -r node_modules and build again)")
    with tempfile.TemporaryDirectory() as scratch:
        metafile = Path(scratch) / "meta.json"
        run_tool(
            [str(esbuild), *(str(app_dir / entry) for entry in ENTRIES),
             "--bundle", "--format=esm", "--target=es2022", "--minify", "--sourcemap=linked",
             "--entry-names=[name]-[hash]", "--asset-names=[name]-[hash]", "--log-level=error",
             f"--outdir={site / 'assets'}", f"--metafile={metafile}"],
            what="bundling app/ with esbuild",
            fix="fix the JavaScript or CSS error named above",
        )
        outputs = json.loads(metafile.read_text())["outputs"]
    urls: dict[str, str] = {}
    for output, meta in outputs.items():
        entry = meta.get("entryPoint")
        if entry:
            urls[Path(entry).name] = Path(output).resolve().relative_to(site.resolve()).as_posix()
    missing = set(ENTRIES) - set(urls)
    if missing:
        raise BuildError(f"esbuild wrote no output for {', '.join(sorted(missing))}", "check the entries in pyjoy/build/bundle.py")
    return urls
