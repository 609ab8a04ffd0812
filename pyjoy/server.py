"""Serves a built dist/ the way the app needs it.

- Cross-origin isolation (COOP/COEP/CORP) on every response: WASM threads and
  SharedArrayBuffer need `crossOriginIsolated`, and the service worker's cached copies keep
  these headers, so the page stays isolated offline.
- Content types the browser insists on (`.mjs`, `.wasm`, `.webmanifest`).
- Precompressed `.gz` siblings written by the build are sent to clients that accept gzip
  (aiohttp's FileResponse negotiates it), so no CPU is spent compressing per request.
- Cache headers by kind of URL: files whose URL changes with their content are immutable;
  everything else is revalidated on each use (`no-cache` with an ETag).
"""

from __future__ import annotations

import errno
import socket
import sys
from pathlib import Path

from aiohttp import web

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".wasm": "application/wasm",
    ".zip": "application/zip",
    ".whl": "application/zip",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".bin": "application/octet-stream",
    ".map": "application/json",
    ".txt": "text/plain; charset=utf-8",
}

# URLs under these folders carry a content hash or a pinned version in their path.
IMMUTABLE_PREFIXES = ("assets/", "pyodide/", "vendor/")

ISOLATION_HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


def cache_control(relative_path: str) -> str:
    if relative_path.startswith(IMMUTABLE_PREFIXES):
        return "public, max-age=31536000, immutable"
    return "no-cache"


def make_app(dist: Path) -> web.Application:
    root = dist.resolve()

    async def serve_file(request: web.Request) -> web.StreamResponse:
        relative = request.match_info["path"]
        path = (root / relative).resolve()
        if not path.is_relative_to(root):
            raise web.HTTPNotFound()
        if path.is_dir():
            path = path / "index.html"
            relative = path.relative_to(root).as_posix()
        if not path.is_file() or path.suffix == ".gz":
            raise web.HTTPNotFound()
        headers = {"Cache-Control": cache_control(relative)}
        content_type = CONTENT_TYPES.get(path.suffix)
        if content_type:
            headers["Content-Type"] = content_type
        return web.FileResponse(path, headers=headers)

    @web.middleware
    async def isolate(request: web.Request, handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as error:
            response = error
        response.headers.update(ISOLATION_HEADERS)
        if isinstance(response, web.HTTPException) and response.status >= 400:
            return web.Response(status=response.status, text=response.reason, headers=response.headers)
        return response

    app = web.Application(middlewares=[isolate])
    app.router.add_get("/{path:.*}", serve_file)
    return app


def bind(host: str, port: int) -> socket.socket:
    """Binds before serving so that a taken port is reported in one line, not a traceback."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # Lets a restarted server take its port while old connections sit in TIME_WAIT; on
    # Linux it still refuses a port that another server is listening on.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise SystemExit(f"error: port {port} on {host} is already in use; stop what holds it or pass --port N")
        raise SystemExit(f"error: cannot listen on {host}:{port}: {error.strerror}")
    sock.listen(128)
    return sock


def run(dist: Path, host: str, port: int) -> int:
    if not (dist / "index.html").is_file():
        print(f"error: {dist}/index.html not found; build the site first: python build.py", file=sys.stderr)
        return 1
    sock = bind(host, port)
    shown_host = f"[{host}]" if ":" in host else host
    print(f"PyJoy is served at http://{shown_host}:{sock.getsockname()[1]}/  (from {dist}; Ctrl+C stops)", flush=True)
    web.run_app(make_app(dist), sock=sock, print=None, access_log=None)
    return 0
