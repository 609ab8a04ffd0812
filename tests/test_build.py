"""The build: what dist/ holds, its hashes, incremental rebuilds, and each bad input."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT, run_build
from pyodide_dist import make_distribution

CLOSED_INDEX = "http://127.0.0.1:9/pyodide/"  # nothing listens on port 9: no test reaches out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def served_lock(dist: Path) -> dict:
    (lock,) = (dist / "assets").glob("pyodide-lock-*.json")
    return json.loads(lock.read_text())


def build_config(dist: Path) -> dict:
    page = (dist / "index.html").read_text()
    start = page.index('id="pyjoy-build">') + len('id="pyjoy-build">')
    return json.loads(page[start:page.index("</script>", start)])


def leftovers(out: Path) -> list[str]:
    return [p.name for p in out.parent.iterdir() if p.name.startswith(f"{out.name}.")]


def test_dist_holds_the_runtime_and_a_manifest_of_every_file(dist: Path) -> None:
    config = build_config(dist)
    pyodide = dist / config["pyodide"]["indexURL"]
    for name in ("pyodide.mjs", "pyodide.asm.mjs", "pyodide.asm.wasm", "python_stdlib.zip"):
        assert (pyodide / name).stat().st_size > 0
    assert (dist / config["pyodide"]["lockFileURL"]).is_file()
    assert (dist / config["pyodide"]["snapshotURL"]).stat().st_size == config["pyodide"]["snapshotBytes"]

    manifest = json.loads((dist / "precache-manifest.json").read_text())
    listed = {entry["url"]: entry for entry in manifest["files"]}
    on_disk = {
        p.relative_to(dist).as_posix() for p in dist.rglob("*")
        if p.is_file() and p.suffix != ".gz" and p.name not in (".build-stamp", "precache-manifest.json")
    }
    assert set(listed) == on_disk
    for url, entry in listed.items():
        assert entry["sha256"] == sha256(dist / url), url
        assert entry["size"] == (dist / url).stat().st_size
    assert manifest["build"] == config["build"]
    # The service worker's cache is named after the build; its list carries every hash.
    worker = (dist / "sw.js").read_text()
    assert f'"id": "{config["build"]}"' in worker
    assert worker.count('"integrity": "sha256-') == sum(entry["precache"] for entry in manifest["files"])


def test_page_references_content_hashed_bundles(dist: Path) -> None:
    config = build_config(dist)
    page = (dist / "index.html").read_text()
    bundles = [url for url in (dist / "assets").iterdir() if url.suffix in (".js", ".css")]
    assert {p.name.split("-")[0] for p in bundles} == {"main", "python", "style", "onnx"}
    for bundle in bundles:
        if not bundle.name.startswith("python-worker"):
            assert f"assets/{bundle.name}" in page
        # esbuild names each bundle after its content
        assert bundle.stem.rsplit("-", 1)[1].isalnum()
    assert config["worker"].startswith("assets/python-worker-")
    # pyjoy.onnx's JavaScript half, as sandboxes import it: the package's file, minified.
    assert config["onnxWeb"].startswith("assets/onnx-web-")
    served = (dist / config["onnxWeb"]).read_text()
    source = (ROOT / "pyjoy" / "onnx" / "web.js").read_text()
    assert len(served) < len(source) and "export" in served
    for name in ("load", "run", "close", "fetchBytes", "preload"):
        assert f"export async function {name}(" in source and name in served


def test_pyscript_is_bundled_without_the_chunks_of_the_plugins_windows_turn_off(dist: Path) -> None:
    """Its editor's CodeMirror, its terminal's xterm, py-game and donkey stay out of the bundle:
    each is left as the import() PyScript's dist makes of it, which never runs here."""
    from pyjoy.build.bundle import PYSCRIPT_UNUSED_CHUNKS

    bundle = next((dist / "vendor").glob("pyscript-*/core.js")).read_text()
    package = ROOT / "node_modules" / "@pyscript" / "core" / "dist"
    imported = re.findall(r'import\("\./([^"]+)"\)', next(package.glob("core-*.js")).read_text())
    left_out = [chunk for chunk in imported if chunk.startswith(tuple(f"{name}-" for name in PYSCRIPT_UNUSED_CHUNKS))]
    assert len(left_out) >= 10, left_out  # the names still match this PyScript's chunks
    for chunk in left_out:
        assert f'import("./{chunk}")' in bundle, chunk
    assert len(bundle) < 400_000  # with them inlined: 1.15 MB


def test_served_lock_records_the_hash_of_the_vendored_micropip(dist: Path) -> None:
    lock = served_lock(dist)
    npm_lock = json.loads((ROOT / "node_modules/pyodide/pyodide-lock.json").read_text())
    micropip = lock["packages"]["micropip"]
    wheel = dist / "pyodide/packages" / micropip["file_name"]
    assert micropip["sha256"] == sha256(wheel)
    # PyPI's wheel is not Pyodide's rebuild: the npm lock's hash would fail the check.
    assert micropip["sha256"] != npm_lock["packages"]["micropip"]["sha256"]
    assert lock["info"] == npm_lock["info"]
    # Packages not vendored are fetched from the package index, by absolute URL.
    assert lock["packages"]["numpy"]["file_name"].startswith(build_config(dist)["packageIndex"])


def test_a_second_build_with_nothing_changed_is_a_noop(tmp_path: Path) -> None:
    out = tmp_path / "site"
    first = run_build("--out", str(out), "--package-index", CLOSED_INDEX)
    assert first.returncode == 0, first.stderr
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    second = run_build("--out", str(out), "--package-index", CLOSED_INDEX)
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("up to date")
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def test_a_changed_input_rebuilds(tmp_path: Path) -> None:
    out = tmp_path / "site"
    assert run_build("--out", str(out), "--package-index", "http://127.0.0.1:9/a/").returncode == 0
    first = build_config(out)["build"]
    result = run_build("--out", str(out), "--package-index", "http://127.0.0.1:9/b/")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("built")
    assert build_config(out)["build"] != first
    assert served_lock(out)["packages"]["numpy"]["file_name"].startswith("http://127.0.0.1:9/b/")
    assert leftovers(out) == []


def test_pyodide_dist_is_vendored_with_its_own_lock(tmp_path: Path) -> None:
    runtime_lock = json.loads((ROOT / "node_modules/pyodide/pyodide-lock.json").read_text())
    source = make_distribution(tmp_path / "pyodide-dist", runtime_lock, {"pyjoy_sample": "ANSWER = 42\n"})
    out = tmp_path / "site"
    result = run_build("--out", str(out), "--pyodide-dist", str(source), "--package-index", CLOSED_INDEX)
    assert result.returncode == 0, result.stderr
    entry = served_lock(out)["packages"]["pyjoy-sample"]
    assert entry["file_name"] == "pyjoy_sample-1.0-py3-none-any.whl"  # relative: served from dist/
    assert sha256(out / "pyodide/packages" / entry["file_name"]) == entry["sha256"]
    manifest = {e["url"]: e for e in json.loads((out / "precache-manifest.json").read_text())["files"]}
    # A vendored distribution is cached when used, not all at once on the first visit.
    assert manifest["pyodide/packages/pyjoy_sample-1.0-py3-none-any.whl"]["precache"] is False
    assert manifest["pyodide/packages/micropip-0.11.1-py3-none-any.whl"]["precache"] is True


# --- Bad input: one clear line, exit 1, and no half-written dist/ -----------------------


def assert_clear_failure(result, *fragments: str) -> None:
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_missing_node_is_named_with_the_fix(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    env = {**os.environ, "PATH": str(bin_dir)}
    out = tmp_path / "site"
    result = run_build("--out", str(out), "--package-index", CLOSED_INDEX, env=env)
    assert_clear_failure(result, "npm not found", "install Node.js")
    assert not out.exists() and leftovers(out) == []


def offline_pip_env(find_links: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    return {
        **env, "PIP_CONFIG_FILE": os.devnull, "PIP_NO_CACHE_DIR": "1", "PIP_FIND_LINKS": str(find_links),
        "PIP_RETRIES": "0", "PIP_DEFAULT_TIMEOUT": "3", **extra,
    }


def test_a_failed_download_names_the_file(tmp_path: Path) -> None:
    empty = tmp_path / "links"
    empty.mkdir()
    env = offline_pip_env(empty, PIP_INDEX_URL="http://127.0.0.1:9/simple/")
    out = tmp_path / "site"
    result = run_build("--out", str(out), "--cache-dir", str(tmp_path / "cache"), env=env)
    assert_clear_failure(result, "micropip-0.11.1-py3-none-any.whl from PyPI failed")
    assert not out.exists() and leftovers(out) == []


def test_a_corrupt_download_fails_its_hash_check(tmp_path: Path) -> None:
    links = tmp_path / "links"
    links.mkdir()
    genuine = ROOT / ".cache/wheels/micropip-0.11.1-py3-none-any.whl"
    tampered = links / genuine.name
    shutil.copyfile(genuine, tampered)
    with zipfile.ZipFile(tampered, "a") as archive:
        archive.writestr("micropip/_injected.py", "print('not from PyPI')\n")
    env = offline_pip_env(links, PIP_NO_INDEX="1")
    out = tmp_path / "site"
    result = run_build("--out", str(out), "--cache-dir", str(tmp_path / "cache"), env=env)
    assert_clear_failure(result, "micropip-0.11.1-py3-none-any.whl: sha256 is", "expected 768de165")
    assert not out.exists() and leftovers(out) == []


@pytest.fixture
def good_site(tmp_path: Path) -> Path:
    out = tmp_path / "site"
    assert run_build("--out", str(out), "--package-index", CLOSED_INDEX).returncode == 0
    return out


def test_a_corrupt_distribution_wheel_keeps_the_previous_dist(tmp_path: Path, good_site: Path) -> None:
    runtime_lock = json.loads((ROOT / "node_modules/pyodide/pyodide-lock.json").read_text())
    source = make_distribution(tmp_path / "pyodide-dist", runtime_lock, {"pyjoy_sample": "ANSWER = 42\n"})
    with (source / "pyjoy_sample-1.0-py3-none-any.whl").open("ab") as wheel:
        wheel.write(b"garbage")
    before = build_config(good_site)["build"]
    result = run_build("--out", str(good_site), "--pyodide-dist", str(source), "--package-index", CLOSED_INDEX)
    assert_clear_failure(result, "pyjoy_sample-1.0-py3-none-any.whl: sha256 does not match", "unpack it again")
    assert build_config(good_site)["build"] == before
    assert leftovers(good_site) == []


def test_a_distribution_for_another_python_is_refused(tmp_path: Path) -> None:
    runtime_lock = json.loads((ROOT / "node_modules/pyodide/pyodide-lock.json").read_text())
    other = {**runtime_lock["info"], "python": "3.13.2", "abi_version": "2025_0"}
    source = make_distribution(tmp_path / "pyodide-dist", runtime_lock, {"pyjoy_sample": "X = 1\n"}, info=other)
    result = run_build("--out", str(tmp_path / "site"), "--pyodide-dist", str(source))
    assert_clear_failure(result, "is for Python 3.13.2 (ABI 2025_0", "the runtime is Python 3.14.2", "Pyodide 314.0.7")


def test_a_folder_without_a_lock_is_refused(tmp_path: Path) -> None:
    result = run_build("--out", str(tmp_path / "site"), "--pyodide-dist", str(tmp_path))
    assert_clear_failure(result, "has no pyodide-lock.json")
