"""PyJoy: a plugin-powered computing platform that runs in the browser.

This package holds the Python that is not a plugin: the build that makes the static
site (`pyjoy.build`), the server that serves it (`pyjoy.server`) and the `pyjoy` command.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # `from pyjoy import api` in a plugin, without importing the plugin runtime elsewhere.
    if name == "api":
        from pyjoy.plugin.api import api

        return api
    raise AttributeError(f"module 'pyjoy' has no attribute {name!r}")
