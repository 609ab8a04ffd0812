"""Content hashes: of one file, of a set of files, of a whole build's inputs."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from pathlib import Path


def sha256_file(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def sri(sha256_hex: str) -> str:
    """The Subresource Integrity form (`sha256-<base64>`) that fetch() checks."""
    return "sha256-" + base64.b64encode(bytes.fromhex(sha256_hex)).decode()


def digest_files(paths: Iterable[Path], *extra: str) -> str:
    """One hash over the files' names and contents, and any extra strings (options)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.as_posix().encode() + b"\0")
        digest.update(bytes.fromhex(sha256_file(path)) if path.is_file() else b"missing")
    for value in extra:
        digest.update(value.encode() + b"\0")
    return digest.hexdigest()


def files_under(*folders: Path) -> list[Path]:
    return sorted(
        path
        for folder in folders
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    )
