"""The bounds that keep a flooding plugin from freezing the page, without a browser: a Python
plugin's calls in flight (pyjoy/plugin/api.py, under CPython) and a Python worker's output
(app/python/output.js, under Node). tests/test_hostile_floods.py drives them in Chromium."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from pyjoy.devtools import run_async
from pyjoy.plugin import api as api_module
from pyjoy.plugin.api import MAX_IN_FLIGHT, MAX_WAITING, PluginAPI

ROOT = Path(__file__).resolve().parents[1]


class FakeHost(dict):
    """A host whose log(text) answers only when the test says so, as a slow page would."""

    def __init__(self) -> None:
        super().__init__(log=self.log, version="1.0")
        self.calls: list[tuple[str, asyncio.Future]] = []

    def log(self, text: str) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self.calls.append((text, future))
        return future

    def answer(self, count: int) -> None:
        for text, future in self.calls:
            if count and not future.done():
                future.set_result(f"seen {text}")
                count -= 1


def test_a_python_plugin_has_a_bounded_number_of_calls_in_flight() -> None:
    async def scenario() -> None:
        host = FakeHost()
        api = PluginAPI()
        api._connect(host, session=None)
        assert api.version == "1.0"  # values are passed through as they are
        # A loop that never awaits: the host sees MAX_IN_FLIGHT calls, the rest wait in order.
        futures = [api.log(f"line {n}") for n in range(MAX_IN_FLIGHT + 50)]
        assert len(host.calls) == MAX_IN_FLIGHT
        host.answer(10)
        await asyncio.sleep(0)  # done callbacks run
        assert [text for text, _ in host.calls] == [f"line {n}" for n in range(MAX_IN_FLIGHT + 10)]
        assert futures[0].result() == "seen line 0"
        # A waiting call settles with the answer to the call it became.
        host.answer(len(host.calls))
        await asyncio.sleep(0)
        host.answer(len(host.calls))
        await asyncio.sleep(0)
        assert futures[-1].result() == f"seen line {MAX_IN_FLIGHT + 49}"
        assert len(host.calls) == MAX_IN_FLIGHT + 50

    run_async(scenario())


def test_past_the_waiting_calls_a_python_plugins_call_raises_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api_module, "MAX_WAITING", 5)

    async def scenario() -> None:
        host = FakeHost()
        api = PluginAPI()
        api._connect(host, session=None)
        for n in range(MAX_IN_FLIGHT + 5):
            api.log(f"line {n}")
        with pytest.raises(RuntimeError, match="5 calls to PyJoy already wait .* await your calls"):
            api.log("one too many")
        # Once some are answered, calls wait again, and go out in order.
        host.answer(1)
        await asyncio.sleep(0)
        api.log("after")
        host.answer(len(host.calls))
        await asyncio.sleep(0)
        assert len(host.calls) == MAX_IN_FLIGHT + 5 + 1
        assert host.calls[-1][0] == "after"

    run_async(scenario())
    assert MAX_WAITING == 10_000  # the module's own value was only patched for the test


def node(script: str) -> object:
    result = subprocess.run(["node", "--input-type=module", "-e", script], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


OUTPUT = """
import { boundedOutput, OUTPUT_INTERVAL_MS, OUTPUT_MESSAGES_PER_INTERVAL, OUTPUT_CHARACTERS_PER_INTERVAL } from "./app/python/output.js";
let time = 0;
const posted = [];
const output = boundedOutput((message) => posted.push(message), { now: () => time });
"""


def test_slow_output_goes_out_line_by_line_at_once() -> None:
    posted = node(OUTPUT + """
      output.write("stdout", "one"); time += 5;
      output.write("stderr", "two"); time += 500;
      output.write("stdout", "three");
      console.log(JSON.stringify(posted));
    """)
    assert posted == [{"type": "stdout", "text": "one"}, {"type": "stderr", "text": "two"}, {"type": "stdout", "text": "three"}]


def test_an_endless_print_loop_posts_few_messages_and_counts_what_it_drops() -> None:
    result = node(OUTPUT + """
      // 10 seconds of a loop printing a line every microsecond (never yielding: no timers run).
      let lines = 0;
      for (time = 0; time < 10_000; time += 0.001) output.write("stdout", `print ${++lines}`);
      output.flush();
      const text = posted.map((message) => message.text).join("\\n");
      const shown = text.split("\\n").filter((line) => line.startsWith("print ")).length;
      const dropped = [...text.matchAll(/\\.\\.\\. (\\d+) lines of output dropped/g)].reduce((sum, match) => sum + Number(match[1]), 0);
      console.log(JSON.stringify({ lines, messages: posted.length, shown, dropped, interval: OUTPUT_INTERVAL_MS,
        perInterval: OUTPUT_MESSAGES_PER_INTERVAL, characters: OUTPUT_CHARACTERS_PER_INTERVAL }));
    """)
    intervals = 10_000 / result["interval"]
    # Every line is either shown or counted as dropped; a few messages per interval at most.
    assert result["shown"] + result["dropped"] == result["lines"]
    assert result["messages"] <= intervals * (result["perInterval"] + 2)
    assert result["shown"] * len("print 1000000") <= intervals * result["characters"]


def test_a_huge_line_is_cut_and_says_so() -> None:
    posted = node(OUTPUT + """
      output.write("stdout", "x".repeat(1_000_000));
      console.log(JSON.stringify(posted.map((message) => message.text.slice(-60))));
    """)
    assert len(posted) == 1
    assert posted[0].endswith(f"({1_000_000 - 16_384} more characters cut)")
