"""Where a plugin's Python comes from: one environment per requirement set (ENGINE.md).

    envs = Environments(workdir)
    python, key = await envs.python_for(config, progress)   # progress({"stage", "message"})

No requirements: the engine's own Python. pip requirements (plain, or `pip:`): a virtual
environment made with uv under WORKDIR/envs/venv-HASH, HASH of the sorted set and the
Python version, made once and reused by every plugin and run with the same set; it sees
the engine's packages (--system-site-packages), as ImJoy's plugins saw its base
environment, and a requirement they satisfy already is not installed again (as pip, not
uv, would have it). `conda:` requirements and `env`: conda or mamba from PATH, in
WORKDIR/envs/conda-HASH. `repo:` and `cmd:` are refused. A requirement is passed to uv
only as a requirement: options and local paths are refused, so none reaches outside the
workdir by path. An environment is marked ready only once its install succeeded; a
failed one is removed and made again next time.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shlex
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

READY = ".pyjoy-ready"
# A requirement uv may get: a PEP 508 name with extras, versions and markers, or `name @ https://...`.
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_REQUIREMENT = re.compile(rf"^{_NAME}\s*(\[[^\]]*\])?\s*(@\s*https?://\S+|[(<>=!~][^@]*)?\s*(;.*)?$")
_DROPPED_OPTIONS = {"-U", "--upgrade", "--user"}  # common in ImJoy plugins' "pip: -U x"; meaningless in a venv
ENGINE_TOKEN_VARIABLE = "PYJOY_ENGINE_TOKEN"

Progress = Callable[[dict[str, Any]], None]


class RequirementError(Exception):
    """A requirement refused (with why) or an install that failed (naming it and uv's message)."""


def child_environment() -> dict[str, str]:
    """The environment of everything the engine starts: its own, without the token."""
    env = dict(os.environ)
    env.pop(ENGINE_TOKEN_VARIABLE, None)
    return env


def classify(requirements: list[str], env: Any) -> tuple[list[str], list[str], list[str]]:
    """(pip requirements, conda packages, conda env args) of a config; RequirementError for
    what the engine refuses."""
    pip: list[str] = []
    conda: list[str] = []
    for requirement in requirements:
        prefix, colon, rest = requirement.partition(":")
        prefix = prefix.strip().lower() if colon else ""
        if prefix in ("repo", "cmd"):
            raise RequirementError(f"requirement {requirement!r} is refused: {prefix}: requirements clone repositories "
                                   "or run commands on this machine; install what the plugin needs as pip: or conda: "
                                   "requirements instead")
        if prefix == "conda":
            conda += _tokens(requirement, rest)
        elif prefix == "pip":
            pip += _tokens(requirement, rest)
        elif requirement.strip().startswith("-"):
            raise RequirementError(f"requirement {requirement!r} is refused: pip options are not accepted "
                                   "(only package names)")
        else:  # one requirement, markers and all (a `name @ https://...` or `file:` one is judged below)
            pip.append(requirement.strip())
    for name in pip:
        if not _REQUIREMENT.match(name):
            raise RequirementError(f"requirement {name!r} is refused: expected a package name with optional extras, "
                                   "versions and markers, or name @ https://...; local paths, file: URLs and pip "
                                   "options are not accepted")
    for name in conda:
        if not re.match(rf"^{_NAME}([=<>!~][^\s]*)?$", name) and not re.match(rf"^{_NAME}::{_NAME}", name):
            raise RequirementError(f"conda requirement {name!r} is refused: expected a package name with an optional "
                                   "version")
    return sorted(set(pip)), sorted(set(conda)), _conda_env(env)


def _tokens(requirement: str, text: str) -> list[str]:
    out = []
    for token in shlex.split(text):
        if token in _DROPPED_OPTIONS:
            continue
        if token.startswith("-"):
            raise RequirementError(f"requirement {requirement!r} is refused: the option {token!r} is not accepted "
                                   "(only package names)")
        out.append(token)
    return out


def _conda_env(env: Any) -> list[str]:
    """ImJoy's `env` ("conda create -n NAME python=3.9 ..."): its package arguments."""
    if not env:
        return []
    commands = env if isinstance(env, list) else [env]
    args: list[str] = []
    for command in commands:
        words = shlex.split(str(command))
        if words[:2] != ["conda", "create"]:
            raise RequirementError(f"env {command!r} is refused: the engine runs only `conda create -n NAME ...`")
        rest = words[2:]
        skip = False
        for index, word in enumerate(rest):
            if skip:
                skip = False
            elif word in ("-n", "--name"):
                skip = True
            elif word in ("-y", "--yes"):
                continue
            elif word.startswith("-") and word not in ("-c", "--channel"):
                raise RequirementError(f"env {command!r} is refused: option {word!r} is not accepted")
            elif word.startswith("-"):
                args.append(word)
            elif index and rest[index - 1] in ("-c", "--channel") or re.match(rf"^{_NAME}([=<>!~]\S*)?$", word):
                args.append(word)
            else:
                raise RequirementError(f"env {command!r} is refused: {word!r} is not a package")
    return args


def find_uv() -> str | None:
    try:
        import uv  # the `uv` package from PyPI ships the binary

        return uv.find_uv_bin()
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


class Environments:
    def __init__(self, workdir: Path) -> None:
        self.root = workdir / "envs"
        self._locks: dict[str, asyncio.Lock] = {}

    async def python_for(self, config: dict[str, Any], progress: Progress) -> tuple[str, str]:
        """The Python to run a plugin of this config with, and the environment's key."""
        pip, conda, env_args = classify(config.get("requirements") or [], config.get("env"))
        if conda or env_args:
            return await self._conda(pip, conda, env_args, progress)
        if not pip:
            return sys.executable, "engine"
        key = _key({"python": sys.version, "executable": sys.executable, "pip": pip})
        target = self.root / f"venv-{key}"
        async with self._locks.setdefault(key, asyncio.Lock()):
            if (target / READY).is_file():
                progress({"stage": "environment", "message": f"reusing the environment for {', '.join(pip)} ({key})"})
            else:
                await self._make_venv(target, pip, progress)
        return str(target / "bin" / "python"), key

    async def _make_venv(self, target: Path, pip: list[str], progress: Progress) -> None:
        uv = find_uv()
        if uv is None:
            raise RequirementError("installing requirements needs uv, which is not installed: pip install uv "
                                   "(or pip install 'pyjoy[engine]')")
        shutil.rmtree(target, ignore_errors=True)  # what a failed or interrupted install left
        target.parent.mkdir(parents=True, exist_ok=True)
        progress({"stage": "environment", "message": f"making an environment for {', '.join(pip)}"})
        await _run([uv, "venv", "--quiet", "--system-site-packages", "--python", sys.executable, str(target)],
                   pip, progress, "making the environment")
        python = str(target / "bin" / "python")
        # uv does not count what the venv sees of the engine's packages as installed (it
        # would fetch numpy again; astral-sh/uv#4466, #7358); pip, which ImJoy's engine
        # used, does. So what the venv already satisfies is left to it, as pip would.
        satisfied = await _satisfied(python, pip)
        if satisfied:
            progress({"stage": "install", "message": f"already in the engine's Python: {', '.join(satisfied)}"})
        missing = [requirement for requirement in pip if requirement not in satisfied]
        if missing:
            await _run([uv, "pip", "install", "--python", python, *missing], missing, progress, "installing")
        (target / READY).write_text(json.dumps({"pip": pip}))
        progress({"stage": "ready", "message": f"installed {', '.join(pip)}"})

    async def _conda(self, pip: list[str], conda: list[str], env_args: list[str], progress: Progress) -> tuple[str, str]:
        tool = shutil.which("mamba") or shutil.which("conda")
        if tool is None:
            raise RequirementError(f"this plugin needs conda ({', '.join(conda + env_args)}), and neither conda nor "
                                   "mamba is on the engine's PATH; install one (e.g. Miniforge) and start the engine "
                                   "again")
        key = _key({"conda": conda, "env": env_args, "pip": pip, "tool": tool})
        target = self.root / f"conda-{key}"
        async with self._locks.setdefault(key, asyncio.Lock()):
            if not (target / READY).is_file():
                shutil.rmtree(target, ignore_errors=True)
                target.parent.mkdir(parents=True, exist_ok=True)
                progress({"stage": "environment", "message": f"making a conda environment ({tool})"})
                python = [] if any(a.startswith("python") for a in env_args + conda) else ["python"]
                await _run([tool, "create", "--yes", "--prefix", str(target), *env_args, *conda, *python],
                           conda, progress, "conda create")
                if pip:
                    await _run([str(target / "bin" / "python"), "-m", "pip", "install", *pip], pip, progress,
                               "pip install")
                (target / READY).write_text(json.dumps({"conda": conda, "pip": pip}))
        return str(target / "bin" / "python"), key


# Run by the new venv's Python: the requirements it satisfies already (a plain name and
# version specifier whose distribution it sees at a matching version; extras, URLs and
# markers are left to uv). Without `packaging` there, none (uv installs them all).
_SATISFIED = """
import importlib.metadata, json, sys
try:
    from packaging.requirements import Requirement
except ImportError:
    raise SystemExit(print("[]"))
found = []
for text in json.loads(sys.argv[1]):
    try:
        requirement = Requirement(text)
        if requirement.url or requirement.extras or requirement.marker:
            continue
        if requirement.specifier.contains(importlib.metadata.version(requirement.name), prereleases=True):
            found.append(text)
    except Exception:
        continue
print(json.dumps(found))
"""


async def _satisfied(python: str, requirements: list[str]) -> list[str]:
    process = await asyncio.create_subprocess_exec(python, "-P", "-c", _SATISFIED, json.dumps(requirements),
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
                                                   env=child_environment(), start_new_session=True)
    out, _ = await process.communicate()
    try:
        found = json.loads(out) if process.returncode == 0 else []
    except ValueError:
        found = []
    return [requirement for requirement in requirements if requirement in found]


def _key(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


async def _run(command: list[str], requirements: list[str], progress: Progress, what: str) -> None:
    """Runs an installer, its output as progress; a failure names the requirement and its message."""
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT, env=child_environment(),
                                                   start_new_session=True)
    lines: list[str] = []
    assert process.stdout is not None
    async for raw in process.stdout:
        line = raw.decode(errors="replace").rstrip()
        if line:
            lines.append(line)
            progress({"stage": "install", "message": line})
    if await process.wait():
        message = "\n".join(lines[-20:])
        named = [r for r in requirements if re.split(r"[\s\[<>=!~;@(]", r, maxsplit=1)[0].lower() in message.lower()]
        raise RequirementError(f"{what} {', '.join(named or requirements)} failed (exit status {process.returncode}):"
                               f"\n{message}")
