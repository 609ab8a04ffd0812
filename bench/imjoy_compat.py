"""ImJoy compatibility: how many public ImJoy plugins run unmodified in PyJoy, offline, in
real Chromium. The plugins are bench/imjoy_corpus/ (copied byte for byte from imjoy-team's
repositories by bench/imjoy_corpus/extract.py; SOURCES.json says where each came from).

    python bench/imjoy_compat.py [--json PATH] [--only TEXT[,TEXT...]] [--dist dist] [--commit HASH]

How each plugin is classified, first from its file, in this order:
1. "unsupported": its type is jupyter-notebook: ImJoy ran it in a Jupyter server's kernel
   (its jupyter engine), a protocol `pyjoy engine` does not speak.
2. A native-python plugin (or, in the oldest files, mode pyworker) runs on `pyjoy engine`.
   It is "engine" (offline-runnable there) unless it needs the network ("network"):
   - a `conda:` requirement or a non-empty `env` (conda/mamba fetch packages; none is on
     this machine either), a `repo:` one (a git clone), a `cmd:` one (the engine refuses
     it; it installs from the network in every corpus plugin), a URL (`git+https://...`);
   - a pip requirement (`pip:` ones split as the engine splits them, `-U` dropped) that the
     engine's Python does not satisfy already: its distribution is looked up by its pip
     name with importlib.metadata (distribution names are pip names, so no name-to-module
     table is needed) and its version checked against the specifier; the engine makes its
     venv with --system-site-packages and installs nothing the venv satisfies already
     (pyjoy/engine/envs.py), so such a requirement needs no network (the bench's engine
     runs with UV_OFFLINE=1 and no index, so a wrong guess here fails at run). The bench
     runs the engine with its own Python, so its packages are the engine's;
   - any config dependency, as below;
   - an http(s) URL in its code (its <script> blocks) outside 127.0.0.1/localhost.
   Requirements of every tag are checked (a plugin with tags is counted by all of them).
3. "network": a browser plugin that cannot start without the network:
   - a requirement that is a URL (http(s)://, //, with or without js:/css:/mjs:/cache:);
   - a web-python requirement that is not in the Pyodide lock's vendored part of dist/
     (numpy, scipy, ... come from the Pyodide package index in production);
   - any config dependency (PyJoy fetches each from its URL or GitHub; none is served
     offline; the reason says when the dependency is itself in the corpus);
   - a script or style it loads from the network: a <script src> or <link href> with an
     http(s) URL, `import ... from "http..."`, `importScripts("http...")`;
   - a page, plugin or file it opens from the network: an http(s) URL written in its code
     as an <iframe src>, assigned to a `.src`, or given to createWindow, showDialog,
     getPlugin or loadPlugin (at setup or in any of its functions).
4. "offline": everything else (a browser plugin). And at run: a plugin of this class that fails, having asked
   for any URL outside 127.0.0.1 while it loaded or ran, or in the second after
   (Chromium's requests from the page, its frames and workers), is counted as "network"
   after all, naming that URL, with its error kept. One that passes stays "offline" even
   if it asked for something it could do without (an image).

How an "offline" plugin is run: the app is opened, its service worker left to cache the
build, and reloaded with the browser offline (as tests/conftest.py open_offline); no
request leaves 127.0.0.1. Each plugin, one after another in that one page:
- its unmodified text goes to `pyjoy.installPlugin(text)`, the workbench's install path
  (what dropping the file on the page does): it is kept in the workspace and started;
- if its API has `run`, `run({config: {}, data: {}})` is called, what the workbench's Run
  button (and ImJoy's docs runner) does;
- dialogs it opens are answered as a person would: the OK (primary) button of the app's
  dialogs (api.alert/prompt/confirm/showDialog forms, with their default values) is
  clicked, and the browser's own alert/confirm/prompt are accepted with their default;
- it passes if install resolves within LOAD_TIMEOUT_S, run (if any) resolves within
  RUN_TIMEOUT_S, and nothing it did put an error in Messages; a rejection, a timeout or an
  error message is a fail, recorded with its text. Then it is uninstalled.
How an "engine" plugin is run: a real `pyjoy engine` (pyjoy.devtools.engine_running: the
bench's Python, a fresh --workdir under a temp folder, --app the served origin, uv offline
with no index) is started; after the browser plugins, the same page (the app it loaded
offline) connects to it with pyjoy.connectEngine(url) (connect_engine: Chromium's offline
emulation refuses a WebSocket to 127.0.0.1 too, so from here the browser is online with
every http(s) request outside 127.0.0.1 aborted, and still recorded), and each such plugin
goes through run_one as above: unmodified, installPlugin(text), run with ImJoy's default
context, dialogs answered OK. What a plugin's own process fetches is not watched: uv runs
offline, and the machine of the recorded run had no route out.
A fail that no change to PyJoy would fix (it fails in ImJoy too, or needs another plugin
that needs the network) still counts as a fail; NOTES adds why to its reason.

Prints a summary table and writes every plugin's class, result and reason, with the
machine, to bench/results/imjoy_compat.json. About 1 minute on 2 quiet CPUs.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from playwright.sync_api import sync_playwright

from pyjoy.devtools import engine_running, launch_options, machine_facts, served

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "bench" / "imjoy_corpus"
LOAD_TIMEOUT_S = 60
RUN_TIMEOUT_S = 20
CODE_URL = re.compile(r"https?://[^\s\"'`)<>]+", re.I)
SCRIPT = re.compile(r"<script[^>]*>(.*?)</script>", re.S | re.I)
URL = re.compile(r"^(?:(?:js|css|mjs|cache|pip):\s*)?(?:https?:)?//", re.I)
NETWORK_IN_CODE = re.compile(
    r"""<script[^>]*\ssrc\s*=\s*["']((?:https?:)?//[^"']+)"""
    r"""|<link[^>]*\shref\s*=\s*["']((?:https?:)?//[^"']+)"""
    r"""|import\s[^;'"]*from\s*["'](https?://[^"']+)"""
    r"""|importScripts\(\s*["'](https?://[^"']+)"""
    r"""|<iframe[^>]*\ssrc\s*=\s*["'](https?://[^"']+)"""
    r"""|\.src\s*=\s*["'](https?://[^"']+)"""
    r"""|(?:createWindow|showDialog|getPlugin|loadPlugin)\(\s*\{?[^)]*?["'](https?://[^"']+)""",
    re.I,
)
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
# Why some plugins fail that no change to PyJoy's API would make pass; added to their reason
# (they still count as fails). Each was checked against ImJoy's source or the plugin's.
NOTES = {
    "imjoy-docs/i2k_tutorial-02.imjoy.html":
        "(top-level await in a classic script: imjoy-rpc's web worker eval()s it, a SyntaxError in ImJoy too)",
    "imjoy-docs/basic_tutorial-01.imjoy.html":
        "(it calls the plugin the docs block before it defines, basic_tutorial-00, which needs numpy from the network)",
    "imjoy-docs/i2k_tutorial-24.imjoy.html":
        "(its window type Image Viewer is the window plugin the docs block before it defines, i2k_tutorial-23, which passes)",
    "imjoy-plugins/histogram2D.imjoy.html":
        "(its run reads ctx.data.table, a localization table (its config inputs) that ImJoy passes from a window; none here)",
}


def plugin_config(text: str) -> dict:
    """The <config> block, JSON or YAML (as ImJoy reads it); {} when there is none or it is unreadable."""
    match = re.search(r"<config([^>]*)>(.*?)</config>", text, re.S)
    if not match:
        return {}
    for load in (json.loads, yaml.safe_load):
        try:
            value = load(match[2])
            return value if isinstance(value, dict) else {}
        except Exception:  # noqa: BLE001  (either reader may fail; the other may not)
            continue
    return {}


def requirement_list(requirements) -> list[str]:
    if isinstance(requirements, str):
        return [requirements]
    if isinstance(requirements, dict):  # {"CPU": [...], "GPU": [...]} (engine plugins)
        return [item for value in requirements.values() for item in requirement_list(value)]
    if isinstance(requirements, list):
        return [item for item in requirements if isinstance(item, str)]
    return []


def vendored_packages(dist: Path) -> set[str]:
    """Packages whose wheels dist/ holds itself (the served lock's relative file names)."""
    lock = json.loads(next((dist / "assets").glob("pyodide-lock-*.json")).read_text())
    return {name for name, package in lock["packages"].items() if "://" not in package["file_name"]}


def classify(text: str, corpus_names: dict[str, str], vendored: set[str]) -> tuple[str, str]:
    """(class, reason) by the rules in this file's top comment."""
    config = plugin_config(text)
    kind = config.get("type", "")
    if kind == "jupyter-notebook":
        return "unsupported", ("type jupyter-notebook: ImJoy ran it in a Jupyter server's kernel (its jupyter "
                               "engine); pyjoy engine speaks its own protocol, not Jupyter's")
    if kind == "native-python" or (not kind and config.get("mode") == "pyworker"):  # the oldest files say "mode"
        reasons = native_needs(config, text) + dependency_reasons(config, corpus_names)
        if reasons:
            return "network", "; ".join(dict.fromkeys(reasons))
        return "engine", f"type {kind or 'native-python (mode pyworker)'}, nothing to install"
    reasons = []
    for requirement in requirement_list(config.get("requirements")):
        if URL.match(requirement.strip()):
            reasons.append(f"requirement {requirement.strip()}")
        elif kind == "web-python":
            name = re.split(r"[<>=!~\[ ]", requirement.strip().removeprefix("pip:").strip())[0].lower()
            if name and name not in vendored:
                reasons.append(f"Python package {name} (from the package index)")
    reasons += dependency_reasons(config, corpus_names)
    for match in NETWORK_IN_CODE.finditer(text):
        reasons.append(f"loads {next(group for group in match.groups() if group)}")
    if reasons:
        return "network", "; ".join(dict.fromkeys(reasons))
    return "offline", f"type {kind or '(none)'}"


def dependency_reasons(config: dict, corpus_names: dict[str, str]) -> list[str]:
    """Each config dependency (PyJoy fetches each from its URL or GitHub; none is served offline)."""
    reasons = []
    dependencies = config.get("dependencies") or []
    for dependency in dependencies if isinstance(dependencies, list) else [dependencies]:
        short = str(dependency).split(":")[-1].split("/")[-1].split("@")[0].removesuffix(".imjoy.html")
        inside = corpus_names.get(short.lower())
        reasons.append(f"dependency {dependency}" + (f" (in the corpus: {inside})" if inside else ""))
    return reasons


def pip_need(spec: str) -> str | None:
    """Why one pip requirement needs the network, or None when the engine's Python (this one:
    the bench runs the engine with sys.executable) satisfies it already."""
    if URL.match(spec) or "://" in spec:
        return f"requirement {spec} (a URL)"
    try:
        requirement = Requirement(spec)
    except InvalidRequirement as error:
        return f"requirement {spec} (not a pip requirement: {error})"
    try:
        installed = importlib.metadata.version(requirement.name)
    except importlib.metadata.PackageNotFoundError:
        return f"Python package {spec} (not in the engine's Python: from PyPI)"
    if requirement.specifier and not requirement.specifier.contains(installed, prereleases=True):
        return f"Python package {spec} (the engine's Python has {installed}: from PyPI)"
    return None


def native_needs(config: dict, text: str) -> list[str]:
    """Why a native-python plugin needs the network (empty: it runs on the engine offline)."""
    reasons = []
    env = config.get("env")
    for item in env.values() if isinstance(env, dict) else [env]:
        for step in item if isinstance(item, list) else [item]:
            if isinstance(step, dict):
                reasons.append(f"env {step.get('type', '?')} {step.get('spec', '')} (a {step.get('type')} server)".strip())
            elif isinstance(step, str) and step.strip():
                reasons.append(f"env {step.strip()!r} (conda/mamba, from the network; none is installed here)")
    for requirement in requirement_list(config.get("requirements")):
        requirement = requirement.strip()
        prefix = requirement.split(":", 1)[0].strip().lower() if ":" in requirement.split("://")[0] else ""
        if prefix == "conda":
            reasons.append(f"requirement {requirement} (conda, from the network; none is installed here)")
        elif prefix == "repo":
            reasons.append(f"requirement {requirement} (a git clone; the engine refuses repo:)")
        elif prefix == "cmd":
            reasons.append(f"requirement {requirement} (a command; the engine refuses cmd:)")
        elif URL.match(requirement):
            reasons.append(f"requirement {requirement} (a URL)")
        else:  # plain or pip: ("pip: a b" is two, as the engine splits them; -U/--upgrade dropped)
            specs = requirement.removeprefix("pip:").split() if prefix == "pip" else [requirement]
            for spec in specs:
                if spec in ("-U", "--upgrade"):
                    continue
                need = pip_need(spec)
                if need:
                    reasons.append(need)
    for code in SCRIPT.findall(text):
        for url in CODE_URL.findall(code):
            if urlparse(url).hostname not in LOCAL_HOSTS:
                reasons.append(f"opens {url}")
    return reasons


# Runs in the page: one plugin, installed and run; settles window.__compat.
START = """([text, runTimeout]) => {
  window.__compat = { done: false };
  (async () => {
    const api = await pyjoy.installPlugin(text);
    window.__compat.installed = true;
    if (api && typeof api.run === "function") {
      window.__compat.ran = true;
      await api.run({ config: {}, data: {} });
    }
  })().then(
    () => Object.assign(window.__compat, { done: true, ok: true }),
    (error) => Object.assign(window.__compat, { done: true, ok: false, error: String(error?.message ?? error) }),
  );
}"""
ERRORS = "() => [...document.querySelectorAll('#message-log li[data-kind=error]')].map((li) => li.lastChild?.textContent ?? li.textContent)"


def answer_dialogs(page) -> int:
    """Clicks OK (the primary, last button) of every open app dialog; how many it answered."""
    answered = 0
    for dialog in page.locator("dialog[open]").all():
        try:
            dialog.locator(".dialog-buttons button").last.click(timeout=1000)
            answered += 1
        except Exception:  # noqa: BLE001  (it may close on its own meanwhile)
            pass
    return answered


def connect_engine(context, page, url: str) -> dict:
    """Connects the page to the engine at `url` (pyjoy.connectEngine). Chromium's offline
    emulation refuses WebSockets to 127.0.0.1 too, so the context goes back online with
    every http(s) request that would leave 127.0.0.1 refused (a listener still records it)."""
    context.route(lambda u: u.startswith("http") and urlparse(u).hostname not in LOCAL_HOSTS,
                  lambda route: route.abort("internetdisconnected"))
    context.set_offline(False)
    return page.evaluate("(url) => pyjoy.connectEngine(url)", url)


def run_one(page, text: str, name: str, requests: list[tuple[str, str]], settle_s: float = 1.0) -> dict:
    """Installs and runs one plugin; its result, the errors it logged and the URLs it asked for."""
    requests.clear()
    errors_before = len(page.evaluate(ERRORS))
    started = time.perf_counter()
    page.evaluate(START, [text, RUN_TIMEOUT_S])
    answered = 0
    state: dict = {}
    while True:
        state = page.evaluate("window.__compat")
        if state["done"]:
            break
        elapsed = time.perf_counter() - started
        limit = LOAD_TIMEOUT_S + (RUN_TIMEOUT_S if state.get("installed") else 0)
        if elapsed > limit:
            state = {**state, "ok": False, "error": f"{'run' if state.get('ran') else 'install'} did not settle within {limit} s"}
            break
        answered += answer_dialogs(page)
        time.sleep(0.1)
    time.sleep(settle_s)  # Messages are drawn every 100 ms; a window it opened, not awaited, starts loading
    answered += answer_dialogs(page)
    errors = page.evaluate(ERRORS)[errors_before:]
    seconds = round(time.perf_counter() - started, 2)
    try:  # out of the workspace, its windows with it
        page.evaluate("(name) => pyjoy.uninstallPlugin(name).catch(() => pyjoy.terminatePlugin(name)).catch(() => {})", name)
    except Exception:  # noqa: BLE001
        pass
    answer_dialogs(page)
    return {
        "installed": bool(state.get("installed")), "ran": bool(state.get("ran")), "ok": bool(state.get("ok")),
        "error": state.get("error"), "messages": errors, "dialogs_answered": answered, "seconds": seconds,
        "network": sorted({url for url, _ in requests}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "imjoy_compat.json")
    parser.add_argument("--only", default="", help="run only corpus files whose path contains this (or one of these, comma-separated)")
    parser.add_argument("--dist", type=Path, default=ROOT / "dist")
    parser.add_argument("--commit", default="", help="the commit dist/ was built from, recorded in the JSON")
    args = parser.parse_args()

    sources = json.loads((CORPUS / "SOURCES.json").read_text())["files"]
    texts = {entry["file"]: (CORPUS / entry["file"]).read_text() for entry in sources}
    corpus_names = {}
    for file, text in texts.items():
        name = str(plugin_config(text).get("name", ""))
        corpus_names[name.lower()] = file
        corpus_names[Path(file).name.removesuffix(".imjoy.html").lower()] = file
    vendored = vendored_packages(args.dist)
    rows = []
    for entry in sources:
        kind, reason = classify(texts[entry["file"]], corpus_names, vendored)
        config = plugin_config(texts[entry["file"]])
        rows.append({"file": entry["file"], "name": str(config.get("name", "")), "type": config.get("type", ""),
                     "native": config.get("type") == "native-python" or (not config.get("type") and config.get("mode") == "pyworker"),
                     "class": kind, "reason": reason})

    picked = lambda row: any(part in row["file"] for part in args.only.split(","))  # noqa: E731
    load_before = os.getloadavg()[0]
    with served(args.dist) as base_url, sync_playwright() as p, tempfile.TemporaryDirectory() as profile, \
            tempfile.TemporaryDirectory() as workdir, contextlib.ExitStack() as engine_stack:
        context = p.chromium.launch_persistent_context(profile, **launch_options())
        requests: list[tuple[str, str]] = []  # (url, resource type) outside 127.0.0.1

        def outside(request) -> None:
            url = urlparse(request.url)
            if url.scheme in ("http", "https", "ws", "wss") and url.hostname not in LOCAL_HOSTS:
                requests.append((request.url, request.resource_type))

        context.on("request", outside)
        context.on("page", lambda page: page.on("dialog", lambda dialog: dialog.accept(dialog.default_value)))
        page = context.pages[0] if context.pages else context.new_page()
        page.on("dialog", lambda dialog: dialog.accept(dialog.default_value))
        page.set_default_timeout(LOAD_TIMEOUT_S * 1000)
        page.goto(base_url)
        page.evaluate("pyjoy.ready")
        page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=120_000)
        page.evaluate("pyjoy.offlineReady")
        context.set_offline(True)
        page.reload()
        page.evaluate("pyjoy.ready")
        chosen = [row for row in rows if row["class"] == "offline" and picked(row)]
        on_engine = [row for row in rows if row["class"] == "engine" and picked(row)]
        if on_engine:  # uv offline, no index: a requirement the classification got wrong fails at run
            env = {"UV_OFFLINE": "1", "UV_NO_INDEX": "1", "UV_CACHE_DIR": str(Path(workdir) / "uv-cache")}
            url, _ = engine_stack.enter_context(engine_running(Path(workdir) / "engine", "--app", base_url, env=env))
        for row in chosen + on_engine:
            if row is (on_engine or [None])[0]:
                connect_engine(context, page, url)
            outcome = run_one(page, texts[row["file"]], row["name"], requests)
            row["run"] = outcome
            row["result"] = "pass" if outcome["ok"] and not outcome["messages"] else "fail"
            asked = outcome["network"] if row["result"] == "fail" else []
            if asked:
                row["class"] = "network"
                row["reason"] = f"asked for {asked[0]} at run" + (f" ({len(asked)} URLs)" if len(asked) > 1 else "")
            failure = outcome["error"] or "; ".join(outcome["messages"])
            if row["result"] == "fail":
                row["reason"] = f"{row['reason']}: {failure}" if row["class"] == "network" else failure
                if row["file"] in NOTES:
                    row["reason"] += " " + NOTES[row["file"]]
            print(f"{row['result']:4} {row['class']:8} {row['file']} ({outcome['dialogs_answered']} dialogs answered): "
                  f"{row['reason'][:160]}", file=sys.stderr, flush=True)
        # A persistent context has no Browser object to ask (context.browser is None).
        version = context.new_cdp_session(page).send("Browser.getVersion")["product"].split("/")[-1]
        context.close()

    counted = [row for row in rows if picked(row)]
    offline = [row for row in counted if row["class"] == "offline"]
    passed = [row for row in offline if row.get("result") == "pass"]
    on_engine = [row for row in counted if row["class"] == "engine"]
    engine_passed = [row for row in on_engine if row.get("result") == "pass"]
    native = sum(row["native"] for row in counted)
    network = sum(row["class"] == "network" for row in counted)
    unsupported = sum(row["class"] == "unsupported" for row in counted)
    print("\n| plugin | type | class | result | reason |")
    print("|---|---|---|---|---|")
    for row in counted:
        print(f"| {row['file']} | {row['type']} | {row['class']} | {row.get('result', '-')} | {row['reason'][:200]} |")
    print("\n| source | plugins | need the network | not supported | in the browser: offline-runnable | run unmodified "
          "| native-python | on the engine: offline-runnable | run unmodified |")
    print("|---|---|---|---|---|---|---|---|---|")
    for source in dict.fromkeys(row["file"].split("/")[0] for row in counted):
        mine = [row for row in counted if row["file"].startswith(source + "/")]
        count = lambda kind: sum(row["class"] == kind for row in mine)  # noqa: E731
        ran = lambda kind: sum(row["class"] == kind and row.get("result") == "pass" for row in mine)  # noqa: E731
        print(f"| {source} | {len(mine)} | {count('network')} | {count('unsupported')} | {count('offline')} "
              f"| {ran('offline')} | {sum(row['native'] for row in mine)} | {count('engine')} | {ran('engine')} |")
    summary = (f"{len(passed)} of {len(offline)} offline-runnable browser plugins and {len(engine_passed)} of "
               f"{len(on_engine)} offline-runnable native-python plugins (on the engine) run unmodified "
               f"({native} are native-python, {network} need the network, {unsupported} not supported; "
               f"{len(counted)} in all)")
    print("\n" + summary)
    if args.only:
        return  # a partial run is for looking, not for the results file
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "build": json.loads((args.dist / ".build-stamp").read_text())["build"],
        "commit": args.commit,
        "machine": machine_facts(version, load_before),
        "load_timeout_s": LOAD_TIMEOUT_S, "run_timeout_s": RUN_TIMEOUT_S,
        "summary": {"plugins": len(counted), "offline": len(offline), "passed": len(passed),
                    "native": native, "engine": len(on_engine), "engine_passed": len(engine_passed),
                    "network": network, "unsupported": unsupported, "text": summary},
        "plugins": rows,
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
