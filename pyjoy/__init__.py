"""PyJoy: a plugin-powered computing platform that runs in the browser.

This package holds the Python that is not a plugin: the build that makes the static
site (`pyjoy.build`), the server that serves it (`pyjoy.server`) and the `pyjoy` command.
"""

__version__ = "0.1.0"
