"""The documentation into dist/docs/, for the app's Docs view (app/docs/viewer.js):

    dist/docs/<name>.md      each page, as written (docs/*.md, and the contracts they link to)
    dist/docs/index.json     {"pages": [{name, title, url, source}]}, in reading order

`source` is the page's path in the repository: pages link to each other by those paths (so
they read on GitHub too), and the viewer maps a link to its page by it. Like everything in
dist/, the pages are precached, so the docs work offline. A page without a "# Title" line
is a build error naming it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from pyjoy.build.errors import BuildError

# Reading order; other docs/*.md pages follow these, by name.
ORDER = ("getting-started", "plugin-guide", "api-reference", "workbench", "image-analysis", "image-recognition", "engine", "deploying", "deploying-cluster", "testing")
# The contracts, kept beside their code, and shown in the app as pages of their own.
CONTRACTS = {"rpc-protocol": "pyjoy/rpc/PROTOCOL.md", "engine-protocol": "pyjoy/engine/ENGINE.md"}
TITLE = re.compile(r"^# (.+)$", re.MULTILINE)


def doc_sources(root: Path) -> dict[str, str]:
    """{page name: its path in the repository}, in reading order."""
    written = {path.stem: f"docs/{path.name}" for path in sorted((root / "docs").glob("*.md"))}
    ordered = {name: written.pop(name) for name in ORDER if name in written}
    return {**ordered, **written, **CONTRACTS}


def place_docs(site: Path, root: Path) -> list[dict]:
    pages = []
    for name, source in doc_sources(root).items():
        text = (root / source).read_text(encoding="utf-8")
        title = TITLE.search(text)
        if title is None:
            raise BuildError(f"{source}: no title", 'start the page with a "# Title" line')
        url = f"docs/{name}.md"
        (site / "docs").mkdir(exist_ok=True)
        (site / url).write_text(text, encoding="utf-8")
        pages.append({"name": name, "title": title.group(1).replace("`", "").strip(), "url": url, "source": source})
    (site / "docs" / "index.json").write_text(json.dumps({"pages": pages}, indent=1))
    return pages
