"""Builds dist/, PyJoy's self-contained static site. See pyjoy/build/__init__.py.

Usage: python build.py [--out DIR] [--package-index URL] [--pyodide-dist PATH] [--force]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # runs from a fresh clone, before pip install

from pyjoy.build import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
