"""Reading the docs as the tests need them: the pages the build puts in the app, their fenced
blocks with their marks (docs/writing-docs.md), their headings' anchors and their links.

Written apart from the app's reader (app/docs/): a slug or a page list these tests get
wrong does not agree with the app's by construction, so the browser tests compare the two.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CONTRACTS = ("pyjoy/rpc/PROTOCOL.md", "pyjoy/engine/ENGINE.md")
FENCE = re.compile(r"^(\s{0,3})(```+|~~~+)\s*(.*)$")
LINK = re.compile(r"(?<!!)\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$")


@dataclass
class Block:
    page: str  # its page's path in the repository
    line: int  # where its text starts in the page (1-based)
    language: str
    marks: list[str]
    text: str

    def where(self) -> str:
        return f"{self.page}:{self.line}"


def page_paths() -> list[str]:
    """Every page of the docs: docs/*.md and the contracts they show."""
    return [f"docs/{path.name}" for path in sorted(DOCS.glob("*.md"))] + list(CONTRACTS)


def read(path: str) -> str:
    return (ROOT / path).read_text(encoding="utf-8")


def blocks(path: str) -> list[Block]:
    found: list[Block] = []
    lines = read(path).split("\n")
    at = 0
    while at < len(lines):
        opening = FENCE.match(lines[at])
        if not opening:
            at += 1
            continue
        fence, info = opening.group(2), opening.group(3).split()
        end = at + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        language = info[0].lower() if info else ""
        found.append(Block(path, at + 2, language, [word.lower() for word in info[1:]], "\n".join(lines[at + 1:end]) + "\n"))
        at = end + 1
    return found


def prose(path: str) -> str:
    """The page without its fenced blocks (whose "#" lines and "[x](y)" are code)."""
    kept, fence = [], None
    for line in read(path).split("\n"):
        opening = FENCE.match(line)
        if opening and (fence is None or opening.group(2).startswith(fence)):
            fence = None if fence else opening.group(2)
            continue
        if fence is None:
            kept.append(line)
    return "\n".join(kept)


def slug(text: str) -> str:
    """A heading's anchor as GitHub makes it (and docs/markdown.js): lower case, the
    rendered text (no backticks or link targets), punctuation gone, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text).replace("`", "").replace("*", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: str) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in prose(path).split("\n"):
        heading = HEADING.match(line)
        if heading:
            base = slug(heading.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            out.add(f"{base}-{count}" if count else base)
    return out


def links(path: str) -> list[str]:
    text = re.sub(r"`[^`\n]*`", "", prose(path))  # code spans hold no links
    return LINK.findall(text)
