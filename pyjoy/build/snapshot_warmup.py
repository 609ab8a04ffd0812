"""Runs inside Pyodide (on Node) at build time, just before the memory snapshot is taken.

Every module imported here is already initialised when the worker restores the snapshot,
so list what the worker uses at start. Touch no JavaScript object here: the snapshot can
only carry Python state.
"""

import asyncio  # noqa: F401  top-level await in runPython
import html  # noqa: F401  PyScript's pyscript.display imports it as a Python window starts
import json  # noqa: F401
import sys
import traceback  # noqa: F401

import pyodide.code  # noqa: F401  eval_code_async runs console and plugin code
import pyodide.ffi  # noqa: F401

import imjoy  # noqa: F401  what ImJoy plugins import their api from
import pyjoy.onnx.web  # noqa: F401  a plugin's models (pyjoy.onnx): 230-310 ms to import in a browser worker
import pyjoy.plugin.kernel  # noqa: F401  the worker's side of its connection to the page
import pyjoy.rpc.pyodide_transport  # noqa: F401

# Restoring a snapshot puts "" at the front of sys.path again: take this one out so the
# restored sys.path equals a cold start's (tests/test_shell.py compares the two).
sys.path.remove("")
