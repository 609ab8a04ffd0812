"""The Python worker's side of its connection to the page (and `start_plugin`, shared with the engine).

A Python worker boots Pyodide, then `serve(scope)` opens an RPC session over the worker's
message channel and offers a `Kernel` as its root. The page uses the same kind of worker
for its Python console (`run_python`) and for each web-python plugin (`load_plugin`), and
keeps one booted worker spare so that a plugin starts without waiting for Python.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from pyjoy.plugin.api import api

PLAIN_TYPES = (type(None), bool, int, float, str, bytes, list, tuple, dict)


class PluginError(Exception):
    """A plugin that cannot be loaded: the message says what is wrong and how to fix it."""


def user_frames(tb: TracebackType | None, filename: str) -> TracebackType | None:
    """The part of a traceback from the first frame of the user's code on."""
    while tb is not None and tb.tb_frame.f_code.co_filename != filename:
        tb = tb.tb_next
    return tb


async def load_packages(names: list[str], code: str | None = None) -> list[str]:
    """Loads Pyodide packages by name, or those of the lock that code imports; raises
    naming each that failed (Pyodide's loadPackage only logs them)."""
    from pyodide.ffi import create_proxy, to_js
    import js
    import pyodide_js

    failures: list[str] = []
    on_error = create_proxy(failures.append)
    on_message = create_proxy(lambda _message: None)
    try:
        options = to_js({"errorCallback": on_error, "messageCallback": on_message}, dict_converter=js.Object.fromEntries)
        if code is None:
            await pyodide_js.loadPackage(to_js(list(names)), options)
        else:
            await pyodide_js.loadPackagesFromImports(code, options)
    finally:
        on_error.destroy()
        on_message.destroy()
    if failures:
        what = ", ".join(names) if code is None else "the packages this code imports"
        raise ImportError(f"loading {what} failed: {'; '.join(failures)}")
    return list(names)


def project_name(requirement: str) -> str:
    """The normalised project name of a requirement ("scikit-image>=0.22" -> "scikit-image")."""
    name = re.split(r"[<>=!~;\[ @]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


# Requirements of other kinds than Python packages, by prefix. ImJoy's web-python worker
# (imjoy-core-plugins, WebPythonWorker.imjoy.html, installRequirements) loads `js:` with
# importScripts, links `css:` into a page and ignores `cache:`; a Python worker here has no
# page, and importScripts would load code from outside the sandbox's asset port, so each is
# skipped with a line naming it. `mjs:` is ImJoy's module form of `js:`.
NOT_PYTHON = ("js:", "css:", "mjs:", "cache:")


def python_requirements(requirements: list[str]) -> list[str]:
    """The requirements that are Python packages; says which others are skipped, and why."""
    packages = []
    for requirement in requirements:
        if requirement.strip().lower().startswith(NOT_PYTHON):
            print(f"requirement {requirement!r} skipped: a web-python plugin loads Python packages only "
                  "(js:, css:, mjs: and cache: requirements are for JavaScript plugins)")
        else:
            packages.append(requirement)
    return packages


async def install_requirements(requirements: list[str]) -> None:
    """Loads requirements the lock knows with Pyodide's loader, which reports failures we
    can name; the rest (PyPI projects, wheel URLs) go to micropip."""
    import js
    import pyodide_js

    requirements = python_requirements(requirements)
    if not requirements:
        return
    in_lock = set(js.Object.keys(pyodide_js.lockfile.packages))
    from_lock = [project_name(r) for r in requirements if project_name(r) in in_lock]
    others = [r for r in requirements if project_name(r) not in in_lock]
    if from_lock:
        try:
            await load_packages(from_lock)
        except ImportError as error:
            raise PluginError(f"requirements {from_lock} could not be installed: {error}") from error
    if others:
        await load_packages(["micropip"])
        import micropip

        try:
            await micropip.install(others)
        except Exception as error:  # micropip's own message names the requirement
            raise PluginError(f"requirements {others} could not be installed: {error}") from error


async def run_code(code: str, namespace: dict, filename: str, first_line: int = 1) -> Any:
    """Runs code with top-level await; tracebacks show `filename` and the file's lines."""
    from pyodide.code import eval_code_async

    padded = "\n" * (first_line - 1) + code  # so line numbers in tracebacks are the file's
    try:
        return await eval_code_async(padded, namespace, filename=filename)
    except BaseException as error:
        error.__traceback__ = user_frames(error.__traceback__, filename) or error.__traceback__
        raise


def plain(value: Any) -> Any:
    """Values the page can receive as data; anything else is shown as its repr."""
    if isinstance(value, PLAIN_TYPES) or type(value).__module__ == "numpy":
        return value
    return repr(value)


class Kernel:
    """The root a Python worker offers the page."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self._console: dict[str, Any] = {"__name__": "__main__"}

    async def run_python(self, code: str) -> Any:
        await load_packages([], code=code)
        return plain(await run_code(code, self._console, "<exec>"))

    async def load_packages(self, names: list[str]) -> list[str]:
        return await load_packages(names)

    async def load_plugin(self, plugin: dict) -> Any:
        """Installs the plugin's requirements, runs its scripts, returns what it exported."""
        await install_requirements(plugin["config"].get("requirements") or [])
        return await start_plugin(plugin, self._session, run_code)


async def start_plugin(plugin: dict, session: Any, run: Callable[[str, dict, str, int], Awaitable[Any]]) -> Any:
    """Connects `api` to the host's root, runs the plugin's scripts with `run`, returns what
    the plugin exported: a web-python plugin's in Pyodide (run_code), a native-python
    plugin's on the engine (pyjoy/engine/plugin_process.py, its own runner).

    Every <script> block (app/plugins/format.js keeps those of the plugin's language and
    tag) runs in file order in one namespace, as imjoy-core's _executePlugin sends each
    to the engine. `api` is a global there: "All the plugins have access to a special
    object called `api`" (ImJoy's docs/api.md), and ImJoy's Python plugins use it without
    importing it (they may also `from imjoy import api`); builtins has it too, for code
    the plugin runs in other modules."""
    import builtins

    name = plugin["config"]["name"]
    api._connect(await session.remote_root(), session)
    builtins.api = api  # type: ignore[attr-defined]
    filename = plugin.get("filename") or f"<plugin {name}>"
    namespace = {"__name__": "__plugin__", "__file__": plugin.get("filename") or name, "api": api}
    for script in plugin.get("scripts") or [plugin["script"]]:
        await run(script["code"], namespace, filename, script.get("line", 1))
    if api._exported is None:
        raise PluginError(f"plugin {name!r} did not call api.export(...); export an object with setup() and run()")
    return api._exported


def serve(scope: Any) -> Any:
    """Connects this worker to the page over scope (the worker's global scope)."""
    from pyjoy.rpc import Session
    from pyjoy.rpc.pyodide_transport import PyodideTransport

    session = Session(PyodideTransport(scope))
    session.set_root(Kernel(session))
    return session
