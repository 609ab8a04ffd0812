"""Big buffers to and from Python in another process than the page (a Python window, an
isolated web-python worker): they go in pieces both ways (PROTOCOL.md, Chunks; the sandbox's
side is transport.js's chunkingEndpoint under pyjoy/rpc/pyodide_transport.py), in real
Chromium, and come back byte for byte, as checked in the page with a hash of its own."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page

SCRIPT = '''
from imjoy import api

class Echo:
    def echo(self, value):
        return value

    def size(self, value):
        return len(memoryview(value["data"] if isinstance(value, dict) else value).cast("B"))

    def make(self, n):
        return bytes(i % 251 for i in range(n))

api.export(Echo())
'''


def plugin(name: str, kind: str, isolated: bool = False) -> str:
    config = {"name": name, "type": kind, "version": "0.1.0", "api_version": "0.1.8"}
    if isolated:
        config["isolated"] = True
    return f'<config lang="json">\n{json.dumps(config)}\n</config>\n<script lang="python">{SCRIPT}</script>\n'


@pytest.mark.parametrize("kind,isolated", [("web-python-window", False), ("web-python", True)])
def test_big_buffers_cross_to_python_in_another_process_and_back_whole(page: Page, base_url: str, kind: str,
                                                                      isolated: bool) -> None:
    page.goto(base_url)
    page.evaluate("pyjoy.ready")
    name = f"Echo {kind}{' isolated' if isolated else ''}"
    assert page.evaluate("(text) => pyjoy.loadPlugin(text).then(() => 'ok', (e) => e.message)",
                         plugin(name, kind, isolated)) == "ok"
    seen = page.evaluate("""async (name) => {
      const p = await pyjoy.getPlugin(name);
      const digest = async (buffer) => [...new Uint8Array(await crypto.subtle.digest("SHA-256", buffer))]
        .map((b) => b.toString(16).padStart(2, "0")).join("");
      const values = new Float64Array(3_000_000);  // 24 MB: 23 pieces of 1 MiB each way
      for (let i = 0; i < values.length; i++) values[i] = Math.sin(i) * 1e6;
      const sent = await digest(values.buffer.slice(0));
      const array = {_rtype: "ndarray", _rvalue: values.buffer, _rshape: [values.length], _rdtype: "float64"};
      const back = await p.echo(array);
      const size = await p.size(new Uint8Array(5 * 2 ** 20 + 3).buffer);  // not a multiple of a piece
      const made = await p.make(3 * 2 ** 20 + 1);
      const bytes = new Uint8Array(made.buffer ?? made);
      let pattern = bytes.length === 3 * 2 ** 20 + 1;
      for (let i = 0; pattern && i < bytes.length; i += 4099) pattern = bytes[i] === i % 251;
      return {sent, back: await digest(back._rvalue.buffer ?? back._rvalue), shape: back._rshape,
              dtype: back._rdtype, size, pattern};
    }""", name)
    assert seen["back"] == seen["sent"] and seen["shape"] == [3_000_000] and seen["dtype"] == "float64"
    assert seen["size"] == 5 * 2**20 + 3
    assert seen["pattern"] is True
