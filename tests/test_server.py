"""The server: MIME types, compression, cache headers, isolation headers, errors."""

from __future__ import annotations

import gzip
import http.client
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest


def get(base_url: str, path: str, **headers: str) -> tuple[http.client.HTTPResponse, bytes]:
    parts = urlsplit(base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response, body


def pyodide_dir(dist: Path) -> str:
    return next(path for path in (dist / "pyodide").iterdir() if path.name != "packages").name


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/", "text/html"),
        ("/manifest.webmanifest", "application/manifest+json"),
        ("/sw.js", "text/javascript"),
        ("/pyodide/{version}/pyodide.asm.wasm", "application/wasm"),
        ("/pyodide/{version}/pyodide.mjs", "text/javascript"),
        ("/pyodide/{version}/python_stdlib.zip", "application/zip"),
        ("/icons/icon-192.png", "image/png"),
    ],
)
def test_content_types(base_url: str, dist: Path, path: str, content_type: str) -> None:
    response, _ = get(base_url, path.format(version=pyodide_dir(dist)))
    assert response.status == 200
    assert response.getheader("Content-Type").startswith(content_type)


def test_every_response_is_cross_origin_isolated(base_url: str) -> None:
    for path in ("/", "/sw.js", "/no-such-file"):
        response, _ = get(base_url, path)
        assert response.getheader("Cross-Origin-Opener-Policy") == "same-origin"
        assert response.getheader("Cross-Origin-Embedder-Policy") == "require-corp"


def test_text_assets_are_sent_compressed(base_url: str, dist: Path) -> None:
    plain = (dist / "index.html").read_bytes()
    response, body = get(base_url, "/", **{"Accept-Encoding": "gzip, br"})
    assert response.getheader("Content-Encoding") == "gzip"
    assert gzip.decompress(body) == plain
    # A client that does not accept gzip gets the file as it is.
    response, body = get(base_url, "/")
    assert response.getheader("Content-Encoding") is None
    assert body == plain


def test_cache_headers_suit_hashed_and_fixed_urls(base_url: str, dist: Path) -> None:
    version = pyodide_dir(dist)
    hashed = next(p.name for p in (dist / "assets").iterdir() if p.name.startswith("main-") and p.suffix == ".js")
    for path in (f"/assets/{hashed}", f"/pyodide/{version}/pyodide.asm.wasm"):
        response, _ = get(base_url, path)
        assert "immutable" in response.getheader("Cache-Control")
    for path in ("/", "/index.html", "/sw.js", "/manifest.webmanifest"):
        response, _ = get(base_url, path)
        assert response.getheader("Cache-Control") == "no-cache"
        assert response.getheader("ETag")


def test_paths_outside_dist_are_not_served(base_url: str) -> None:
    for path in ("/../pyproject.toml", "/%2e%2e/pyproject.toml", "/assets/../../build.py"):
        response, _ = get(base_url, path)
        assert response.status == 404


def test_a_taken_port_is_a_clear_error(dist: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "pyjoy.cli", "serve", "--dist", str(dist), "--port", str(port)],
            capture_output=True, text=True, timeout=30,
        )
    assert result.returncode != 0
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_serving_an_unbuilt_folder_says_how_to_build(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pyjoy.cli", "serve", "--dist", str(tmp_path)], capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 1
    assert "python build.py" in result.stderr
