"""Bundles the app's ES modules and CSS with esbuild into content-hashed files."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

from pyjoy.build.errors import BuildError, run_tool
from pyjoy.build.pins import PYSCRIPT_VERSION

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
    urls["pyscript"] = bundle_pyscript(esbuild, node_modules, site)
    urls["onnx-web"] = minify_onnx_web(esbuild, app_dir.parent / "pyjoy" / "onnx" / "web.js", site)
    return urls


def minify_onnx_web(esbuild: Path, source: Path, site: Path) -> str:
    """pyjoy.onnx's JavaScript half (pyjoy/onnx/web.js, one ES module without imports) as
    assets/onnx-web-<hash>.js: a Python sandbox whose plugin imports pyjoy.onnx imports it
    over its asset port as Python starts to boot (python/boot.js), so onnxruntime-web loads
    meanwhile. The same file is in pyjoy's package, which web.py imports where nothing did."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "web.js"
        run_tool(
            [str(esbuild), str(source), "--format=esm", "--target=es2022", "--minify", "--log-level=error",
             f"--outfile={out}"],
            what="minifying pyjoy/onnx/web.js with esbuild",
            fix="fix the JavaScript error named above",
        )
        text = out.read_bytes()
    url = f"assets/onnx-web-{hashlib.sha256(text).hexdigest()[:12]}.js"
    (site / url).write_bytes(text)
    return url


# PyScript's chunks that its dist loads only for what a plugin's window never uses here
# (python-window.js turns those plugins off): left out, their import() stays unresolved.
PYSCRIPT_UNUSED_CHUNKS = ("codemirror", "codemirror_commands", "codemirror_lang-python", "codemirror_language",
                          "codemirror_state", "codemirror_view", "xterm", "xterm-readline", "xterm_addon-fit",
                          "xterm_addon-web-links", "py-editor", "py-terminal", "py-game", "donkey")


def bundle_pyscript(esbuild: Path, node_modules: Path, site: Path) -> str:
    """@pyscript/core's browser module (dist/core.js and the chunks it imports) as one ES
    module under vendor/: a Python window's sandbox fetches it over its asset port and
    imports it from a blob: URL, where relative imports cannot resolve.

    One change: PyScript resolves relative URLs (its default "./config.txt" among them)
    against `location.href`, which in a sandbox's srcdoc frame is "about:srcdoc", no base
    at all (a TypeError at boot). `document.baseURI` is the same URL in an ordinary page
    and, in a srcdoc frame, the page's, which the frame's own relative URLs resolve against."""
    package = node_modules / "@pyscript" / "core"
    installed = json.loads((package / "package.json").read_text())["version"] if package.is_dir() else None
    if installed != PYSCRIPT_VERSION:
        raise BuildError(
            f"node_modules/@pyscript/core is {installed or 'missing'}, pyjoy/build/pins.py pins {PYSCRIPT_VERSION}",
            "pin the same version in package.json and pins.py, then run npm install",
        )
    url = f"vendor/pyscript-{PYSCRIPT_VERSION}/core.js"
    run_tool(
        [str(esbuild), str(package / "dist" / "core.js"), "--bundle", "--format=esm", "--target=es2022",
         "--minify", "--log-level=error", "--define:location.href=document.baseURI",
         *(f"--external:./{chunk}-*" for chunk in PYSCRIPT_UNUSED_CHUNKS), f"--outfile={site / url}"],
        what="bundling @pyscript/core with esbuild",
        fix="check node_modules/@pyscript/core (rm -r node_modules and build again)",
    )
    return url


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
