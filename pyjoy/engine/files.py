"""The engine's files (ENGINE.md, "Files"): ImJoy's file URLs and file manager, inside the workdir.

ImJoy's engine let plugins hand the browser a URL of a file on the engine
(`api.getFileUrl({path})`), ask for a URL to upload one to (`api.requestUploadUrl`), list
and remove files (`api.getFileManager(url)`). The page asks for them over its socket
(`engine.files(op, args, plugin_id)`, server.Control); the answers are URL paths on this
engine's HTTP server, which the page makes absolute:

    GET  /file/KEY/NAME            the file, or a folder's listing (JSON)
    GET  /file/KEY/NAME/SUB/PATH   a file or folder inside a folder's URL
    POST /upload/KEY               a multipart form with one file, or the raw body (PUT too)

A KEY is the capability: 32 random bytes, kept by its SHA-256 (as the engine's tickets);
anyone holding the URL may use it, as a presigned URL, so that an `<img src>` or a fetch
from a sandboxed frame (Origin "null") works. A download key lasts while the engine runs
and answers the same path with the same URL (ImJoy did too); an upload key is good for one
upload within UPLOAD_SECONDS.

Paths stay inside the file area: WORKDIR/files (where a browser plugin's relative paths
land) and WORKDIR/plugins (native plugins' folders; a native plugin's relative paths are
relative to its own). Everything is resolved (symlinks followed) and checked when the URL
is made and again when it is used; the engine's environments and runtime copies
(WORKDIR/envs, WORKDIR/runtime) are never reachable, so an upload cannot replace code
that plugins run. Files are served with `Content-Security-Policy: sandbox` and `nosniff`:
an uploaded HTML page runs in an opaque origin, never as the engine's.
"""

from __future__ import annotations

import collections
import hashlib
import mimetypes
import os
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

UPLOAD_SECONDS = 3600.0
MAX_KEYS = 10_000  # of each kind; the oldest go first
MAX_LISTED = 10_000  # entries in one listing
CHUNK = 1 << 20

# What a browser may do with these URLs from any origin: the key is the credential.
CORS = {"Access-Control-Allow-Origin": "*", "Cross-Origin-Resource-Policy": "cross-origin"}
SERVED = {**CORS, "Content-Security-Policy": "sandbox", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


class FileError(Exception):
    """A file request the service refuses, with why (the page's error names it)."""


@dataclass
class Upload:
    path: Path | None  # the file to write; None: a folder (`folder`) and the uploaded file's name
    folder: Path
    overwrite: bool
    expires: float


class FileService:
    def __init__(self, workdir: Path) -> None:
        self.files = (workdir / "files").resolve()
        self.plugins = (workdir / "plugins").resolve()
        self.files.mkdir(parents=True, exist_ok=True)
        self.plugins.mkdir(parents=True, exist_ok=True)
        self._downloads: collections.OrderedDict[bytes, Path] = collections.OrderedDict()
        self._urls: dict[Path, str] = {}  # a path's download URL, as handed out
        self._uploads: collections.OrderedDict[bytes, Upload] = collections.OrderedDict()

    # -- asked over the page's socket (server.Control.files) --

    def resolve(self, path: Any, base: Path | None) -> Path:
        """`path` (relative to `base`, else to WORKDIR/files) as an absolute path inside the
        file area; a FileError saying why not."""
        if not isinstance(path, str) or not path or "\0" in path:
            raise FileError(f"a path should be a non-empty string, not {path!r}")
        given = Path(path)
        full = (given if given.is_absolute() else (base or self.files) / given).resolve()
        if not any(full == root or full.is_relative_to(root) for root in (self.files, self.plugins)):
            raise FileError(f"{path!r} is outside the engine's file area ({self.files} and the plugins' "
                            f"folders in {self.plugins})")
        return full

    def file_url(self, path: Any, base: Path | None) -> str:
        full = self.resolve(path, base)
        if not full.exists():
            raise FileError(f"no file or folder {path!r} on the engine ({full})")
        if full in self._urls:
            return self._urls[full]
        key = secrets.token_urlsafe(32)
        self._downloads[secret_digest(key)] = full
        _bound(self._downloads, lambda gone: self._urls.pop(gone, None))
        url = self._urls[full] = f"/file/{key}/{full.name or 'root'}"
        return url

    def upload_url(self, path: Any, folder: Any, overwrite: bool, base: Path | None) -> str:
        """ImJoy's request_upload_url: `path` names the file (relative to `folder` if given),
        else the uploaded file's own name goes into `folder` (default: the base)."""
        target_folder = self.resolve(folder, base) if folder not in (None, "") else (base or self.files)
        target = None
        if path not in (None, ""):
            target = self.resolve(path, target_folder)
            if target.exists() and not overwrite:
                raise FileError(f"{path!r} exists on the engine ({target}); ask with overwrite: true to replace it")
            if target.is_dir():
                raise FileError(f"{path!r} is a folder on the engine ({target}), not a file")
        key = secrets.token_urlsafe(32)
        self._uploads[secret_digest(key)] = Upload(target, target_folder, bool(overwrite), time.monotonic() + UPLOAD_SECONDS)
        _bound(self._uploads)
        return f"/upload/{key}"

    def path_of(self, url: Any) -> str:
        """ImJoy's get_file_path: the engine's path behind a download URL this engine made."""
        if not isinstance(url, str) or "/file/" not in url:
            raise FileError(f"{url!r} is not a file URL of this engine (…/file/KEY/NAME)")
        key = url.split("/file/", 1)[1].split("/", 1)[0]
        full = self._downloads.get(secret_digest(key))
        if full is None:
            raise FileError(f"{url!r} is not a file URL this engine handed out")
        return str(full)

    def listing(self, path: Any, kind: Any, recursive: bool, base: Path | None) -> dict[str, Any]:
        """ImJoy's list_dir: {path, name, type: "dir", children: [{name, path, type, size}]}."""
        full = self.resolve(path if path not in (None, "") else str(base or self.files), base)
        if not full.is_dir():
            raise FileError(f"{path!r} is not a folder on the engine ({full})")
        return {"path": str(full), "name": full.name, "type": "dir", "sep": os.sep,
                "children": _children(full, kind, bool(recursive), [0])}

    def remove(self, path: Any, kind: Any, recursive: bool, base: Path | None) -> bool:
        full = self.resolve(path, base)
        if full in (self.files, self.plugins):
            raise FileError(f"{path!r} is a root of the engine's file area; it cannot be removed")
        if kind == "file" and full.is_file():
            full.unlink()
        elif kind == "dir" and full.is_dir():
            shutil.rmtree(full) if recursive else full.rmdir()
        else:
            raise FileError(f"no {kind or 'file'} {path!r} on the engine ({full}); give type 'file' or 'dir' as it is")
        return True

    # -- the HTTP side --

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/file/{key}/{name:.*}", self._download), web.post("/upload/{key}", self._upload),
                web.put("/upload/{key}", self._upload), web.options("/file/{key}/{name:.*}", self._preflight),
                web.options("/upload/{key}", self._preflight)]

    async def _preflight(self, request: web.Request) -> web.Response:
        return web.Response(status=204, headers={**CORS, "Access-Control-Allow-Methods": "GET, POST, PUT",
                                                 "Access-Control-Allow-Headers": "content-type"})

    async def _download(self, request: web.Request) -> web.StreamResponse:
        full = self._downloads.get(secret_digest(request.match_info["key"]))
        if full is None:
            return _refuse(403, "this file URL is not one this engine handed out (or the engine restarted)")
        first, _, rest = request.match_info["name"].partition("/")
        if first != (full.name or "root"):
            return _refuse(403, "the file name in the URL is not the one this URL was made for")
        target = full
        if rest:  # a path inside a folder's URL: the folder's, however it is spelled
            target = (full / rest).resolve()
            if not full.is_dir() or not target.is_relative_to(full):
                return _refuse(403, "that path is outside the folder this URL was made for")
        try:
            self.resolve(str(target), None)  # still inside the file area (a link may have changed)
        except FileError as error:
            return _refuse(403, str(error))
        if target.is_dir():
            return web.json_response(_children(target, None, False, [0]), headers=CORS)
        if not target.is_file():
            return _refuse(404, f"{target.name} is no longer on the engine")
        kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        return web.FileResponse(target, headers={**SERVED, "Content-Type": kind,
                                                 "Content-Disposition": f"inline; filename*=UTF-8''{quote(target.name, safe='')}"})

    async def _upload(self, request: web.Request) -> web.Response:
        digest = secret_digest(request.match_info["key"])
        upload = self._uploads.get(digest)
        if upload is None or upload.expires < time.monotonic():
            self._uploads.pop(digest, None)
            return _refuse(403, "this upload URL is not one this engine handed out, was used, or expired")
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            part = await reader.next()
            while part is not None and not getattr(part, "filename", None):
                part = await reader.next()
            if part is None:
                return _refuse(400, "the form has no file: send one file field, as a FormData with a File")
            name, read = part.filename, part.read_chunk  # type: ignore[union-attr]
        else:
            name, read = request.query.get("name"), request.content.read
        try:
            target = upload.path or self.resolve(_safe_name(name), upload.folder)
            if target.exists() and not upload.overwrite:
                raise FileError(f"{target.name} exists on the engine ({target}); ask with overwrite: true to replace it")
        except FileError as error:
            return _refuse(409, str(error))
        target.parent.mkdir(parents=True, exist_ok=True)
        # Into a temporary file beside it, renamed once whole: a broken upload loses nothing.
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        size = 0
        try:
            with os.fdopen(handle, "wb") as out:
                while chunk := await read(CHUNK):
                    out.write(chunk)
                    size += len(chunk)
            os.replace(temporary, target)
        except BaseException:
            os.unlink(temporary)
            raise
        del self._uploads[digest]
        return web.json_response({"path": str(target), "name": target.name, "size": size}, headers=CORS)


def _children(folder: Path, kind: Any, recursive: bool, count: list[int]) -> list[dict[str, Any]]:
    entries = []
    for entry in sorted(folder.iterdir(), key=lambda each: each.name):
        if entry.name.startswith(".upload-"):
            continue
        count[0] += 1
        if count[0] > MAX_LISTED:
            raise FileError(f"{folder} holds more than {MAX_LISTED} entries; list a folder inside it")
        is_dir = entry.is_dir()
        if kind in ("file", "dir") and (kind == "dir") != is_dir and not (recursive and is_dir):
            continue
        item: dict[str, Any] = {"name": entry.name, "path": str(entry), "type": "dir" if is_dir else "file"}
        if not is_dir:
            item["size"] = entry.stat().st_size
        elif recursive:
            item["children"] = _children(entry, kind, True, count)
        entries.append(item)
    return entries


def _safe_name(name: Any) -> str:
    base = os.path.basename(str(name or "").replace("\\", "/"))
    if base in ("", ".", ".."):
        raise FileError("the upload names no file: give the URL a path, or send a file with a name")
    return base


def _refuse(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, headers=CORS)


def secret_digest(key: str) -> bytes:
    """A secret's SHA-256, to look it up by (server.py's tickets and resume keys too): a dict
    keyed by the secret itself would tell a timing attack how much of a guess matched."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def _bound(keys: collections.OrderedDict[bytes, Any], forget: Any = None) -> None:
    while len(keys) > MAX_KEYS:
        _, gone = keys.popitem(last=False)
        if forget is not None:
            forget(gone)
