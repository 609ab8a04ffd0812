"""The Python worker's side of its connection to the page (and `start_plugin`, shared with the engine).

A Python worker boots Pyodide, then `serve(scope)` opens an RPC session over the worker's
message channel and offers a `Kernel` as its root. The page uses the same kind of worker
for its Python console (`run_python`) and for each web-python plugin (`load_plugin`), and
keeps one booted worker spare so that a plugin starts without waiting for Python. A Python
window plugin's frame serves the same kernel from PyScript (app/sandbox/python-window.js),
with loaders that also put the plugin's HTML and styles into its page.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from pyjoy.plugin.api import api

PLAIN_TYPES = (type(None), bool, int, float, str, bytes, list, tuple, dict)


class PluginError(Exception):
    """A plugin that cannot be loaded: the message says what is wrong and how to fix it."""


class PackagesNotLoaded(ImportError):
    """Pyodide's loader could not load packages: `detail` says which, from where and why."""

    def __init__(self, what: str, detail: str) -> None:
        super().__init__(f"{what}: {detail}")
        self.detail = detail


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
        raise PackagesNotLoaded(f"loading {what} failed", describe_failures(failures, _lock_wheel_url))
    return list(names)


# Pyodide's loader reports each package it could not load as a line naming it, then the error.
_FAILED_PACKAGE = re.compile(r"error occurred while loading (\S+?):?\s*$")
_WHEEL_URL_PREFIX = re.compile(r"^\S+\.whl: ")


def describe_failures(messages: list[str], wheel_url: Callable[[str], str]) -> str:
    """Pyodide's failure lines as one sentence per place the packages came from (wheel_url:
    a package's file in the lock: the package index's URL, or a name in this site for a
    vendored wheel): "3 packages could not be fetched from https://index/ (numpy, scipy and
    1 more they need): Failed to fetch"."""
    failed: dict[str, list[str]] = {}
    package = None
    for message in messages:
        named = _FAILED_PACKAGE.search(message)
        if named:
            package = named.group(1)
            failed.setdefault(package, [])
        elif package is not None and message.strip():
            # A wheel fetched through the sandbox's asset port fails as "URL: reason"; the
            # sentence names the place, so the reason alone (else one per wheel).
            failed[package].append(_WHEEL_URL_PREFIX.sub("", message.strip()))
    if not failed:
        return "; ".join(messages)
    places: dict[str, list[str]] = {}
    for name in failed:
        url = wheel_url(name)
        place = url.rsplit("/", 1)[0] + "/" if "://" in url else "this PyJoy site (pyodide/packages/)"
        places.setdefault(place, []).append(name)
    sentences = []
    for place, names in places.items():
        reasons = sorted({reason for name in names for reason in failed[name]}) or ["no reason given"]
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more they need" if len(names) > 4 else "")
        count = f"{len(names)} packages" if len(names) > 1 else "1 package"
        sentences.append(f"{count} could not be fetched from {place} ({shown}): {'; '.join(reasons)}")
    return ". ".join(sentences)


def _lock_wheel_url(name: str) -> str:
    """The file the served lock names for package `name` ("" if it has none)."""
    import pyodide_js

    for key in (name, project_name(name)):
        entry = getattr(pyodide_js.lockfile.packages, key, None)
        if entry is not None:
            return str(getattr(entry, "file_name", "") or "")
    return ""


def engine_hint(config: dict) -> str:
    """Where a web-python plugin whose packages cannot be had can run instead: a PyJoy
    engine, with its own Python's packages (its tag "native-python" where it has one)."""
    name, tags = config.get("name", "this plugin"), config.get("tags") or []
    if "native-python" in tags:
        return (f'A PyJoy engine can run it instead, with the packages of its own Python: start one (`pyjoy engine`), '
                f'connect it (Engines…) and load "{name}@native-python".')
    return ("A PyJoy engine (`pyjoy engine`) can run it instead as a native-python plugin, with the packages of "
            "its own Python.")


def project_name(requirement: str) -> str:
    """The normalised project name of a requirement ("scikit-image>=0.22" -> "scikit-image")."""
    name = re.split(r"[<>=!~;\[ @]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


# Requirements that are not Python packages, by prefix, as ImJoy's web-python runtime read
# them (imjoy-core's jailed/_pluginWebPython.js, `execute` of "requirements"): `js:` is loaded
# with importScripts into the JavaScript global that runs Python, so Python reaches what it
# defines through `js`; `cache:` is only cached; `css:` styled that runtime's page, and a
# worker has none. `mjs:` is imjoy-rpc's module form of `js:`. None goes to micropip.
WEB_PREFIXES = ("js:", "mjs:", "css:", "cache:")


async def load_web_requirements(requirements: list[str], javascript: Any) -> list[str]:
    """Loads the requirements that are not Python packages into this sandbox's JavaScript
    (sandbox/python-worker.js, or a Python window's frame, sandbox/python-window.js, hands
    the loader in), in order; returns the Python ones. A window's frame has a page, where
    `css:` styles the window as in a JavaScript window plugin."""
    packages = []
    for requirement in requirements:
        prefix = requirement.strip().lower()
        if not prefix.startswith(WEB_PREFIXES):
            packages.append(requirement)
        elif prefix.startswith("css:") and not has_page(javascript):
            print(f"requirement {requirement!r} skipped: a web-python plugin runs in a worker, "
                  "which has no page for a stylesheet to style")
        elif javascript is None:
            raise PluginError(f"requirement {requirement!r} cannot be loaded: this Python has no plugin sandbox")
        else:
            try:
                await javascript.loadRequirement(requirement)
            except Exception as error:  # a JsException: its message names the requirement
                raise PluginError(js_message(error)) from None
    return packages


def has_page(javascript: Any) -> bool:
    """Whether the sandbox is a window's frame (a page to put HTML and styles in), not a worker."""
    return bool(getattr(javascript, "page", False))


def js_message(error: BaseException) -> str:
    """A JavaScript error's own text ("requirement js:... could not be loaded: ...")."""
    return str(getattr(error, "message", None) or error)


async def install_requirements(requirements: list[str], config: dict | None = None) -> None:
    """Loads Python requirements the lock knows with Pyodide's loader, which reports
    failures we can name; the rest (PyPI projects, wheel URLs) go to micropip. A failure
    names the packages, where they were fetched from, and the engine as the way round."""
    import js
    import pyodide_js

    if not requirements:
        return
    in_lock = set(js.Object.keys(pyodide_js.lockfile.packages))
    from_lock = [project_name(r) for r in requirements if project_name(r) in in_lock]
    others = [r for r in requirements if project_name(r) not in in_lock]
    if from_lock:
        try:
            await load_packages(from_lock)
        except PackagesNotLoaded as error:
            raise PluginError(f"requirements {', '.join(from_lock)} could not be installed: {error.detail}. "
                              f"{engine_hint(config or {})}") from error
    if others:
        await load_packages(["micropip"])
        import micropip

        try:
            await micropip.install(others)
        except Exception as error:  # micropip's own message names the requirement and the index
            raise PluginError(f"requirements {', '.join(others)} could not be installed with micropip: {error}. "
                              f"{engine_hint(config or {})}") from error


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

    def __init__(self, session: Any, javascript: Any = None) -> None:
        self._session = session
        # A plugin sandbox's JavaScript loaders (sandbox/python-worker.js, or a Python
        # window's sandbox/python-window.js, with `page` and loadWindow); None in the
        # console's worker, which loads no plugins.
        self._javascript = javascript
        self._console: dict[str, Any] = {"__name__": "__main__"}
        self._preloading: asyncio.Future[None] | None = None

    def preload_onnx(self) -> None:
        """Starts loading onnxruntime-web for the plugin about to load, which imports
        pyjoy.onnx: the page asks it of a spare worker, booted before its plugin was known (a
        worker it boots for the plugin starts it as Python boots: app/plugins/host.js)."""
        from pyjoy.onnx import web

        # Held: asyncio keeps only a weak reference to a task, which could end unfinished.
        self._preloading = asyncio.ensure_future(web.preload())

    async def run_python(self, code: str) -> Any:
        await load_packages([], code=code)
        return plain(await run_code(code, self._console, "<exec>"))

    async def load_packages(self, names: list[str]) -> list[str]:
        return await load_packages(names)

    async def load_plugin(self, plugin: dict) -> Any:
        """Loads the plugin's requirements (js:/mjs:/cache: in its sandbox, packages with
        micropip), runs its scripts, returns what it exported."""
        packages = await load_web_requirements(plugin["config"].get("requirements") or [], self._javascript)
        await install_requirements(packages, plugin["config"])
        if has_page(self._javascript):
            # A Python window: its <style> and <window> blocks go into the frame first, as a
            # JavaScript window plugin's do (sandbox/frame.js), so its Python finds its DOM.
            from pyodide.ffi import to_js

            windows = [part["html"] for part in plugin.get("windows") or []]
            styles = [part["css"] for part in plugin.get("styles") or []]
            await self._javascript.loadWindow(to_js(windows), to_js(styles))
        return await start_plugin(plugin, self._session, run_code, self._run_javascript)

    async def _run_javascript(self, script: dict, name: str) -> None:
        """A <script lang="javascript"> block, run as ImJoy's web-python runtime ran one
        (imjoy-core's jailed/_pluginWebPython.js evaluates it in the JavaScript global that
        runs Python, in file order with the Python blocks): Python reaches what it defines
        through `js`. The block has no JavaScript `api`: the plugin's api is Python's."""
        line = script.get("line", 1)
        if self._javascript is None:
            raise PluginError(f"the <script lang=\"javascript\"> block at line {line} cannot run: this Python has no plugin sandbox")
        try:
            await self._javascript.runScript(script["code"], line, name, (script.get("attrs") or {}).get("type"))
        except Exception as error:  # a JsException
            raise PluginError(f"the <script lang=\"javascript\"> block at line {line} failed: {js_message(error)}") from None


async def start_plugin(
    plugin: dict,
    session: Any,
    run: Callable[[str, dict, str, int], Awaitable[Any]],
    run_javascript: Callable[[dict, str], Awaitable[None]] | None = None,
) -> Any:
    """Connects `api` to the host's root, runs the plugin's scripts with `run`, returns what
    the plugin exported: a web-python plugin's in Pyodide (run_code), a native-python
    plugin's on the engine (pyjoy/engine/plugin_process.py, its own runner).

    Every <script> block (app/plugins/format.js keeps those of the plugin's language and
    tag, and a web-python plugin's JavaScript blocks) runs in file order in one namespace,
    as imjoy-core's _executePlugin sends each to the engine; JavaScript blocks go to
    run_javascript, where there is one. `api` is a global there: "All the plugins have
    access to a special object called `api`" (ImJoy's docs/api.md), and ImJoy's Python
    plugins use it without importing it (they may also `from imjoy import api`); builtins
    has it too, for code the plugin runs in other modules."""
    import builtins

    config = plugin["config"]
    name = config["name"]
    api._connect(await session.remote_root(), session)
    builtins.api = api  # type: ignore[attr-defined]
    filename = plugin.get("filename") or f"<plugin {name}>"
    namespace = {"__name__": "__plugin__", "__file__": plugin.get("filename") or name, "api": api}
    for script in plugin.get("scripts") or [plugin["script"]]:
        if script.get("lang") == "javascript":
            if run_javascript is None:
                raise PluginError(f"plugin {name!r}: a <script lang=\"javascript\"> block (line {script.get('line', 1)}) runs only in a web-python plugin")
            await run_javascript(script, name)
        else:
            await run(script["code"], namespace, filename, script.get("line", 1))
    if api._exported is None:
        if config.get("passive"):
            # A passive plugin need not export: imjoy-core (jailedPlugin.js) gives it an
            # API with a setup that does nothing (app/sandbox/plugin-api.js exportOf).
            return {"passive": True, "setup": _passive_setup}
        raise PluginError(f"plugin {name!r} did not call api.export(...); export an object with setup() and run()")
    return api._exported


async def _passive_setup() -> None:
    return None


def serve(scope: Any, javascript: Any = None) -> Any:
    """Connects this worker to the page over scope (the worker's global scope, or a port);
    javascript: a plugin sandbox's loaders, {loadRequirement, runScript}, and in a Python
    window's frame also {page: true, loadWindow(html, styles)}."""
    from pyjoy.rpc import Session
    from pyjoy.rpc.pyodide_transport import PyodideTransport

    session = Session(PyodideTransport(scope))
    session.set_root(Kernel(session, javascript))
    return session
