"""ImJoy plugins import their API from here: `from imjoy import api`.

The build packs this file as `imjoy/__init__.py` in the browser's Python runtime.
"""

from pyjoy.plugin.api import api

__all__ = ["api"]
