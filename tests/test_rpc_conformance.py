"""RPC conformance: the cases in tests/rpc_conformance/cases.json (their conventions are at the
top of that file), run by the Python half here, under CPython (with numpy, and without it:
NDArray), and by the JS half under Node (tests/rpc_conformance/run.mjs). No browser, no build."""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyjoy.devtools import run_async
from pyjoy.rpc import Blob, NDArray, RemoteError, Session
from pyjoy.rpc import codec as codec_module
from pyjoy.rpc.codec import Codec, Decoder

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "tests" / "rpc_conformance"
CASES = json.loads((HERE / "cases.json").read_text())["cases"]


def cases(only: str) -> list[Any]:
    return [pytest.param(case, id=case["name"]) for case in CASES if case.get("only", only) == only]


# -- values in: the conventions of cases.json, as Python values ------------------------------

def build(value: Any, refs: dict[str, Any]) -> Any:
    if isinstance(value, list):
        return [build(item, refs) for item in value]
    if not isinstance(value, dict):
        return value
    if "$bytes" in value:
        return bytearray.fromhex(value["$bytes"])  # what transports deliver
    if "$ref" in value:
        return refs[value["$ref"]]
    if "$refkey" in value:
        return {refs[value["$refkey"]]: value["count"]}
    if "$bomb" in value:
        tree: Any = 0
        for _ in range(value["$bomb"]):
            tree = [tree, tree]
        return tree
    if "$deep" in value:
        tree = []
        for _ in range(value["$deep"] - 1):
            tree = [tree]
        return tree
    if "$cycle" in value:
        loop: list[Any] = []
        loop.append(loop)
        return loop
    return {key: build(item, refs) for key, item in value.items()}


# -- values out: Python values in the conventions of cases.json ------------------------------

class Point:
    def __init__(self, x: Any, y: Any) -> None:
        self.x, self.y = x, y


POINT = Codec("point", Point, lambda p: {"x": p.x, "y": p.y}, lambda d: Point(d["x"], d["y"]))


class StandIn:
    """The proxy a decode case gets for a method."""

    def __init__(self, target: str, name: str) -> None:
        self.target, self.name = target, name

    def __call__(self) -> None:  # callable, like a real proxy
        pass


def describe(value: Any) -> Any:
    np = codec_module.load_numpy()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": bytes(value).hex()}
    if isinstance(value, NDArray):
        return {"$array": {"dtype": value.dtype, "shape": list(value.shape), "bytes": bytes(value.data).hex()}}
    if np is not None and isinstance(value, np.ndarray):
        return {"$array": {"dtype": value.dtype.name, "shape": list(value.shape), "bytes": value.tobytes().hex()}}
    if isinstance(value, Blob):
        return {"$blob": {"type": value.type, "name": value.name, "bytes": bytes(value).hex()}}
    if isinstance(value, RemoteError):
        return {"$error": {"type": value.remote_type, "message": value.message, "text": value.args[0],
                           "traceback": value.traceback,
                           "code": value.code}}
    if isinstance(value, StandIn):
        return {"$proxy": {"target": value.target, "name": value.name}}
    if isinstance(value, Point):
        return {"$point": {"x": describe(value.x), "y": describe(value.y)}}
    if isinstance(value, list):
        return [describe(item) for item in value]
    if isinstance(value, dict):
        return {key: describe(item) for key, item in value.items()}
    return value


def match(expected: Any, actual: Any, refs: dict[str, Any], where: str = "value") -> None:
    """Raises AssertionError naming where `actual` differs from the pattern `expected`."""
    if isinstance(expected, dict):
        if expected.get("$any") is True:
            return
        if "$capture" in expected:
            refs[expected["$capture"]] = actual
            return
        if "$re" in expected:
            assert isinstance(actual, str) and re.search(expected["$re"], actual), \
                f"{where}: {actual!r} does not match /{expected['$re']}/"
            return
        if "$bomb" in expected or "$deep" in expected:
            assert actual == build(expected, refs), f"{where}: not the value {expected}"
            return
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        assert set(expected) == set(actual), f"{where}: keys {sorted(actual)}, expected {sorted(expected)}"
        for key in expected:
            match(expected[key], actual[key], refs, f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{where}: {actual!r}, expected {expected!r}"
        for index, (item, got) in enumerate(zip(expected, actual)):
            match(item, got, refs, f"{where}[{index}]")
    else:
        assert type(actual) is not bool or type(expected) is bool, f"{where}: {actual!r}, expected {expected!r}"
        assert actual == expected, f"{where}: {actual!r}, expected {expected!r}"


# -- the Python half -------------------------------------------------------------------------

@pytest.fixture(params=["numpy", "no numpy"])
def numpy_or_not(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "no numpy":
        monkeypatch.setattr(codec_module, "load_numpy", lambda: None)
    return request.param


def hostile(case: dict[str, Any]) -> bool:
    """Whether an unbounded decoder would take minutes and all the memory on this case."""
    text = json.dumps(case)
    return '"$cycle"' in text or any(int(n) > 20 for n in re.findall(r'"\$(?:bomb|deep)": (\d+)', text))


@pytest.mark.parametrize("case", cases("python"))
def test_python(case: dict[str, Any], numpy_or_not: str, hostile_results: dict[str, dict[str, str]]) -> None:
    if hostile(case):
        failure = hostile_results[numpy_or_not][case["name"]]
        assert not failure, failure
    else:
        check(case)


def check(case: dict[str, Any]) -> None:
    if "decode" in case:
        check_decode(case)
    else:
        run_async(check_session(case))


# The hostile cases run in a child process with 60 s and 4 GiB at most, so that a decoder that
# is not bounded fails them instead of hanging the run and filling the memory.
CHILD = """
import json, sys, traceback
sys.path.insert(0, sys.argv[1])
from tests import test_rpc_conformance as t
if sys.argv[2] == "no numpy":
    t.codec_module.load_numpy = lambda: None
failures = {}
for case in filter(t.hostile, t.CASES):
    try:
        t.check(case)
        failures[case["name"]] = ""
    except BaseException:
        failures[case["name"]] = traceback.format_exc()[-2000:]
print(json.dumps(failures))
"""


@pytest.fixture(scope="module")
def hostile_results() -> dict[str, dict[str, str]]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    results = {}
    for mode in ("numpy", "no numpy"):
        try:
            done = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), mode], capture_output=True, text=True,
                                  timeout=60, preexec_fn=limit, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
        except subprocess.TimeoutExpired:
            pytest.fail("the hostile cases took more than 60 s: decoding is not bounded")
        assert done.returncode == 0, done.stderr[-3000:]
        results[mode] = json.loads(done.stdout)
    return results


def check_decode(case: dict[str, Any]) -> None:
    wire = build(case["decode"], {})
    try:
        value = Decoder(StandIn, {"point": POINT}).decode(wire)
    except Exception as error:
        assert "error" in case, f"decoding raised {type(error).__name__}: {error}"
        assert type(error).__name__ == case["error"]["type"], f"{type(error).__name__}: {error}"
        assert re.search(case["error"]["message"], str(error)), str(error)
        return
    assert "error" not in case, f"decoded to {describe(value)!r}, expected {case['error']}"
    match(case.get("value_python", case["value"]), describe(value), {})


class Recorder:
    """A transport that hands the test every message the session sends."""

    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.handler: Any = None

    def send(self, message: Any, transfer: list[Any]) -> None:
        self.sent.append(message)

    def on_message(self, handler: Any) -> None:
        self.handler = handler

    def close(self) -> None:
        pass


class Unprintable(Exception):
    def __str__(self) -> str:
        raise ValueError("no text")


def fixture_root(session: Session) -> dict[str, Any]:
    kept: list[Any] = []

    async def apply(fn: Any, x: Any) -> Any:
        return await fn(x)

    async def call_kept(x: Any) -> Any:
        return await kept[0](x)

    def fail(message: str) -> None:
        raise TypeError(message)

    def unprintable() -> None:
        raise Unprintable()

    return {
        "echo": lambda x: x, "describe": lambda *args, **kwargs: {"args": list(args), "kwargs": kwargs},
        "fail": fail, "unencodable": lambda: object(), "unprintable": unprintable,
        "adder": lambda n: (lambda x: x + n), "apply": apply, "keep": kept.append, "call_kept": call_kept,
        "dispose_kept": lambda: session.dispose(kept[0]),
    }


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def check_session(case: dict[str, Any]) -> None:
    transport = Recorder()
    session = Session(transport, codecs={"point": POINT})
    session.set_root(fixture_root(session))
    root = transport.sent.pop(0)["value"]
    refs = {name: member["_rtarget"] for name, member in root.items() if isinstance(member, dict)}
    for number, step in enumerate(case["steps"]):
        where = f"step {number}"
        if "in" in step:
            transport.handler(build(step["in"], refs))
        elif "closed" in step:
            await settle()
            assert session.closed and re.search(step["closed"], session.close_reason or ""), session.close_reason
        else:
            expected = step.get("out_python", step.get("out"))
            await settle()
            if expected["type"] != "release":  # releases go out when GC runs: not part of the case
                transport.sent = [message for message in transport.sent if message.get("type") != "release"]
            assert transport.sent, f"{where}: the session sent nothing"
            match(expected, describe(transport.sent.pop(0)), refs, where)
    await settle()
    sent = [message for message in transport.sent if message.get("type") != "release"]
    assert not sent, f"after the last step the session sent {describe(sent)}"


# -- the JS half, under Node -----------------------------------------------------------------

@pytest.fixture(scope="module")
def js_results() -> Iterator[dict[str, Any]]:
    if not shutil.which("node"):
        pytest.skip("needs Node")
    done = subprocess.run(["node", "--no-warnings", str(HERE / "run.mjs")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    yield json.loads(done.stdout)


@pytest.mark.parametrize("case", cases("js"))
def test_js(case: dict[str, Any], js_results: dict[str, Any]) -> None:
    result = js_results[case["name"]]
    assert result["ok"], result["detail"]


def test_every_case_has_a_unique_name() -> None:
    names = [case["name"] for case in CASES]
    assert len(names) == len(set(names))
