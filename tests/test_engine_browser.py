"""The engine from the page: a real `pyjoy engine` process on 127.0.0.1 (allowing the test
server's origin), real Chromium connecting with ?engine= and pyjoy.connectEngine, and
native-python plugins in ImJoy's format running in real processes. Arrays are checked
against numpy here, never against values the page's code holds."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import struct
import threading
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from playwright.sync_api import Page, expect

from conftest import repository_server, wait_until
from pyjoy.devtools import engine_running, free_port
from test_engine import write_wheel
from test_engine_grace import COUNTER  # the plugin the Python client's resume tests use

TOKEN = "browser-test-token-" + "y" * 30
HOSTILE = Path(__file__).parent / "plugins" / "hostile"


def plugin(name: str, code: str, kind: str = "native-python", lang: str = "python", **config) -> str:
    fields = {"name": name, "type": kind, "version": "0.1.0", "api_version": "0.1.8", **config}
    return f'<config lang="json">\n{json.dumps(fields)}\n</config>\n<script lang="{lang}">\n{code}\n</script>\n'


ARRAYS = plugin("Arrays", '''
from imjoy import api
import numpy as np

class Arrays:
    async def setup(self):
        print("arrays process up")
        await api.log("arrays ready on", api.ENGINE_URL)

    def describe(self, a):
        return {"dtype": str(a.dtype), "shape": list(a.shape), "sum": float(a.sum()), "numpy": isinstance(a, np.ndarray)}

    def plus_one(self, a):
        return ~a if a.dtype == np.bool_ else a + np.ones(1, dtype=a.dtype)

    def make(self, dtype, shape):
        return np.arange(int(np.prod(shape))).astype(dtype).reshape(shape)

    async def through_page(self, callback, a):
        back = await callback(a * 2)          # the page's function, called with an array
        return back + 1

    def adder(self, n):
        def add(x):
            return x + n
        return add                            # the plugin's function, for the page to call

    async def ask_worker(self, text):
        worker = await api.getPlugin("Worker Echo")
        return await worker.shout(text)       # a browser plugin, called back by name

    def engine_url(self):
        return api.ENGINE_URL

    async def engine_facts(self):
        engine = await api.getEngine(api.ENGINE_URL)
        try:
            await api.getFileManager(api.ENGINE_URL)
            files = "answered"
        except Exception as error:
            files = str(error)
        return {"engine": engine, "files": files}

    async def wait(self):
        import asyncio
        await asyncio.sleep(3600)

    def pid(self):
        import os
        return os.getpid()

api.export(Arrays())
''')

WORKER = plugin("Worker Echo", '''
class Echo {
  async shout(text) { return text.toUpperCase() + "!"; }
  async useArrays() {
    const arrays = await api.getPlugin("Arrays");
    const a = new Float32Array([1.5, 2.5, 3]);
    const described = await arrays.describe(a);
    const plus = await arrays.plus_one({_rtype: "ndarray", _rvalue: new Int32Array([1, 2, 3, 4]).buffer, _rshape: [2, 2], _rdtype: "int32"});
    return {described, plus: {shape: plus._rshape, dtype: plus._rdtype, values: Array.from(new Int32Array(plus._rvalue))},
            back: await arrays.ask_worker("hi")};
  }
}
api.export(new Echo());
''', kind="web-worker", lang="javascript")

# Each case: the dtype, the shape and the page's values (what numpy makes of them is the reference).
CASES = [
    ("float32", [2, 3], [0.5, -1.25, 3.0, 1e-3, 7.5, -2.0]),
    ("uint16", [5], [0, 1, 65535, 300, 42]),
    ("int64", [3], [-(2**40), 0, 2**40 + 3]),
    ("bool", [4], [True, False, False, True]),
    ("float32", [2, 2, 3], [float(i) / 4 for i in range(12)]),  # 3-D
]

# JS for the page: each case goes to the plugin as an ndarray, comes back plus one, and is
# made there from np.arange; values come back as JSON (int64 as strings).
ROUND_TRIPS = """async ([cases]) => {
  const arrays = await pyjoy.getPlugin("Arrays");
  const types = {float32: Float32Array, uint16: Uint16Array, int64: BigInt64Array, bool: Uint8Array};
  const plain = (wire) => ({dtype: wire._rdtype, shape: wire._rshape,
    values: Array.from(new types[wire._rdtype](wire._rvalue), (v) => typeof v === "bigint" ? String(v) : v)});
  const out = [];
  for (const [dtype, shape, values] of cases) {
    const Type = types[dtype];
    const data = dtype === "int64" ? Type.from(values, (v) => BigInt(v)) : Type.from(values, (v) => Number(v));
    const wire = () => ({_rtype: "ndarray", _rvalue: data.slice().buffer, _rshape: shape, _rdtype: dtype});
    out.push({
      described: await arrays.describe(wire()),
      plus: plain(await arrays.plus_one(wire())),
      made: plain(await arrays.make(dtype, shape)),
    });
  }
  return out;
}"""


def numpy_of(dtype: str, values: list) -> np.ndarray:
    return np.array([int(v) for v in values] if dtype == "int64" else values, dtype=dtype)


def check_round_trips(results: list[dict]) -> None:
    """ROUND_TRIPS' answers for CASES against numpy: what the plugin saw, its array plus one
    (not for bool: inverted), and the array it made."""
    for (dtype, shape, values), result in zip(CASES, results, strict=True):
        reference = numpy_of(dtype, values).reshape(shape)
        assert result["described"] == {"dtype": dtype, "shape": shape, "sum": float(reference.sum()), "numpy": True}
        expected = ~reference if dtype == "bool" else reference + np.ones(1, dtype=dtype)
        plus = result["plus"]
        assert (plus["dtype"], plus["shape"]) == (dtype, shape)
        assert np.array_equal(numpy_of(dtype, plus["values"]).astype(bool if dtype == "bool" else dtype), expected.ravel())
        made = np.arange(int(np.prod(shape))).astype(dtype)
        assert np.array_equal(numpy_of(dtype, result["made"]["values"]).astype(bool if dtype == "bool" else dtype), made)


PROBE = plugin("Probe", '''
import pyjoy_engine_probe
class Probe:
    def value(self):
        return pyjoy_engine_probe.VALUE
api.export(Probe())
''', requirements=["pyjoy-engine-probe==0.1.0"])


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, base_url: str):
    workdir = tmp_path_factory.mktemp("engine-browser")
    write_wheel(workdir / "wheels")  # a requirement installed offline, from this folder
    env = {"PYJOY_ENGINE_TOKEN": TOKEN, "UV_OFFLINE": "1", "UV_NO_INDEX": "1", "UV_FIND_LINKS": str(workdir / "wheels"),
           "UV_CACHE_DIR": str(workdir / "uv-cache")}
    with engine_running(workdir / "work", "--app", base_url, env=env) as (url, process):
        yield {"url": url, "process": process, "workdir": workdir}


def chip(page: Page):
    return page.locator("#engine-status .engine-chip")


def open_connected(page: Page, base_url: str, url: str) -> None:
    page.goto(f"{base_url}?engine={quote(url, safe='')}")
    expect(chip(page)).to_have_attribute("data-state", "connected", timeout=30_000)


def load(page: Page, source: str) -> str:
    return page.evaluate("(text) => pyjoy.loadPlugin(text).then(() => 'ok', (e) => `${e.name} ${e.code}: ${e.message}`)", source)


def test_engine_in_the_url_connects_and_arrays_go_both_ways(page: Page, base_url: str, engine: dict) -> None:
    open_connected(page, base_url, engine["url"])
    expect(chip(page)).to_contain_text("connected")
    assert TOKEN not in chip(page).inner_text()  # the token is a secret: never shown
    assert load(page, ARRAYS) == "ok"
    # Its print() and api.log reach Messages under its name; ENGINE_URL is its engine's, without the token.
    log = page.locator("#message-log li")
    expect(log.filter(has_text="Arrays: arrays process up")).to_have_count(1)
    label = engine["url"].split("?")[0]
    expect(log.filter(has_text=f"Arrays: arrays ready on {label}")).to_have_count(1)
    assert page.evaluate("pyjoy.getPlugin('Arrays').then((p) => p.engine_url())") == label
    # ImJoy's getEngine answers with the engine it runs on (imjoy-core: the engine by its URL);
    # getFileManager answers with the engine's file manager (test_engine_files_browser.py).
    facts = page.evaluate("pyjoy.getPlugin('Arrays').then((p) => p.engine_facts())")
    assert facts["engine"]["url"] == label and facts["engine"]["state"] == "connected"
    assert facts["engine"]["info"]["python"]
    assert facts["files"] == "answered"

    check_round_trips(page.evaluate(ROUND_TRIPS, [CASES]))

    # Callbacks both ways: the plugin calls the page's function with an array; the page calls
    # a function the plugin returned.
    both = page.evaluate("""async () => {
      const arrays = await pyjoy.getPlugin("Arrays");
      const a = {_rtype: "ndarray", _rvalue: new Float32Array([1, 2, 3]).buffer, _rshape: [3], _rdtype: "float32"};
      const seen = [];
      const back = await arrays.through_page((x) => {
        seen.push(Array.from(new Float32Array(x._rvalue)));
        return x;
      }, a);
      const add = await arrays.adder(5);
      return {seen, back: Array.from(new Float32Array(back._rvalue)), added: await add(37)};
    }""")
    assert both["seen"] == [[2.0, 4.0, 6.0]]
    assert both["back"] == (np.array([1, 2, 3], np.float32) * 2 + 1).tolist()
    assert both["added"] == 42


def test_connect_engine_and_a_worker_plugin_calls_it_by_name(page: Page, base_url: str, engine: dict) -> None:
    page.goto(base_url)
    page.wait_for_function("window.pyjoy && pyjoy.timings.workbenchReady", timeout=30_000)
    connected = page.evaluate("(url) => pyjoy.connectEngine(url)", engine["url"])
    label = engine["url"].split("?")[0]
    assert connected["url"] == label and connected["state"] == "connected"
    assert connected["info"]["python"]  # the engine's info()
    assert page.evaluate("pyjoy.engines()")[0]["state"] == "connected"
    expect(chip(page)).to_have_attribute("data-state", "connected")
    assert load(page, ARRAYS) == "ok"
    assert load(page, WORKER) == "ok"
    result = page.evaluate("pyjoy.getPlugin('Worker Echo').then((p) => p.useArrays())")
    a = np.array([1.5, 2.5, 3], np.float32)
    assert result["described"] == {"dtype": "float32", "shape": [3], "sum": float(a.sum()), "numpy": True}
    assert result["plus"] == {"shape": [2, 2], "dtype": "int32", "values": [2, 3, 4, 5]}
    assert result["back"] == "HI!"
    # A requirement the engine refuses: the load fails, saying which and why.
    refused = load(page, plugin("Refused", "api.export({})", requirements=["cmd: touch /tmp/x"]))
    assert refused.startswith("PluginError plugin-load-failed: plugin Refused failed to start on engine ws://"), refused
    assert "cmd:" in refused
    # Remembered in the workspace: a reload connects again on its own.
    page.reload()
    expect(chip(page)).to_have_attribute("data-state", "connected", timeout=30_000)


def test_a_shared_link_installs_a_native_plugin_on_the_engine_showing_its_install(page: Page, base_url: str,
                                                                                 engine: dict, tmp_path: Path) -> None:
    (tmp_path / "probe.imjoy.html").write_text(PROBE)
    with repository_server(tmp_path) as repository:
        page.goto(f"{base_url}?w=probe&engine={quote(engine['url'], safe='')}&plugin={repository}probe.imjoy.html")
        ask = page.locator("dialog", has_text="Install the native-python plugin Probe")
        expect(ask).to_be_visible(timeout=30_000)
        ask.get_by_role("button", name="OK").click()
        log = page.locator("#message-log li")
        expect(log.filter(has_text="Probe: installing: making an environment for pyjoy-engine-probe==0.1.0")).to_have_count(1, timeout=60_000)
        wait_until(page, "pyjoy.plugins().then((all) => all.some((p) => p.name === 'Probe' && p.state === 'running'))",
                   timeout_ms=60_000)
        assert page.evaluate("pyjoy.getPlugin('Probe').then((p) => p.value())") == "probe 0.1.0"
        assert page.evaluate("pyjoy.workspace()") == "probe"


def test_a_browser_plugin_cannot_start_a_native_plugin_unless_the_person_agrees(page: Page, base_url: str,
                                                                                engine: dict, tmp_path: Path) -> None:
    open_connected(page, base_url, engine["url"])
    assert load(page, (HOSTILE / "enginebrowser_worker_runs_native.imjoy.html").read_text()) == "ok"
    marker = tmp_path / "escaped.txt"
    page.evaluate("(marker) => { window.tries = pyjoy.getPlugin('Engine Escalator').then((p) => p.escalate(marker)); }",
                  str(marker))
    for _ in range(2):  # loadPlugin, then getPlugin({src}): each asked, each refused
        ask = page.locator("dialog", has_text="Engine Escalator wants to load the native-python plugin Escaped")
        expect(ask).to_be_visible()
        expect(ask).to_contain_text("on the engine's machine")
        ask.get_by_role("button", name="Cancel").click()
    tries = page.evaluate("window.tries")
    assert all("said no" in outcome for outcome in tries.values()), tries
    assert not marker.exists()
    assert "Escaped" not in [p["name"] for p in page.evaluate("pyjoy.plugins()")]


def test_a_wrong_token_an_unreachable_engine_and_a_wrong_origin_are_refused(page: Page, base_url: str, engine: dict,
                                                                            tmp_path: Path) -> None:
    page.goto(base_url)
    page.wait_for_function("window.pyjoy && pyjoy.timings.workbenchReady", timeout=30_000)
    wrong = engine["url"].replace(TOKEN, "not-the-token")
    seen = "(url) => pyjoy.connectEngine(url).then(() => 'connected', (e) => `${e.name} ${e.code}: ${e.message}`)"
    assert page.evaluate(seen, wrong).startswith("EngineError engine-refused: engine ws://")
    assert "wrong token" in page.evaluate(seen, wrong)
    nobody = f"ws://127.0.0.1:{free_port()}/?token=x"
    unreachable = page.evaluate(seen, nobody)
    assert unreachable.startswith("EngineError engine-unreachable") and "refused (is this page's origin allowed?" in unreachable
    assert page.evaluate(seen, "http://127.0.0.1:1/") .startswith("EngineError engine-url: an engine URL starts with ws://")
    assert page.evaluate("pyjoy.engines()") == []  # a failed connectEngine leaves nothing behind
    # An engine that allows another origin: its 403 looks like an unreachable engine to a page.
    with engine_running(tmp_path, "--app", "http://127.0.0.1:1") as (url, _process):
        assert "or unreachable" in page.evaluate(seen, url)
    # With ?engine=, the header says why.
    page.goto(f"{base_url}?engine={quote(wrong, safe='')}")
    expect(chip(page)).to_have_attribute("data-state", "refused", timeout=30_000)
    expect(chip(page)).to_contain_text("wrong token")
    native = load(page, ARRAYS)
    assert "needs the PyJoy engine" in native and "connect one" in native


def test_a_killed_plugin_process_fails_its_pending_call_at_once(page: Page, base_url: str, engine: dict) -> None:
    open_connected(page, base_url, engine["url"])
    assert load(page, ARRAYS) == "ok"
    pid = page.evaluate("pyjoy.getPlugin('Arrays').then((p) => p.pid())")
    page.evaluate("""pyjoy.getPlugin('Arrays').then((p) => {
      window.pending = p.wait().then(() => 'answered', (e) => e.message);
    })""")
    os.kill(pid, signal.SIGKILL)
    failure = page.evaluate("window.pending")
    assert "Arrays" in failure and "SIGKILL" in failure, failure
    state = wait_until(page, "pyjoy.plugins().then((all) => all.find((p) => p.name === 'Arrays')?.state === 'crashed' && all)")
    crashed = next(p for p in state if p["name"] == "Arrays")
    assert "SIGKILL" in crashed["error"]
    # It can be started again.
    assert load(page, ARRAYS) == "ok"
    assert page.evaluate("pyjoy.getPlugin('Arrays').then((p) => p.adder(1)).then((add) => add(1))") == 2


def test_an_engine_restarted_is_reconnected_and_its_plugins_started_again(page: Page, base_url: str,
                                                                          tmp_path: Path) -> None:
    port = free_port()
    with engine_running(tmp_path, "--app", base_url, env={"PYJOY_ENGINE_TOKEN": TOKEN}, port=port) as (url, _process):
        open_connected(page, base_url, url)
        assert load(page, ARRAYS) == "ok"
        page.evaluate("pyjoy.getPlugin('Arrays').then((p) => { window.pending = p.wait().then(() => 'answered', (e) => e.message); })")
    # Stopped (as Ctrl+C): the pending call fails, the page says it is reconnecting.
    assert "Arrays" in page.evaluate("window.pending")
    expect(chip(page)).to_have_attribute("data-state", "reconnecting", timeout=15_000)
    expect(page.locator("#message-log li", has_text="dropped")).to_have_count(1)
    with engine_running(tmp_path, "--app", base_url, env={"PYJOY_ENGINE_TOKEN": TOKEN}, port=port):
        expect(chip(page)).to_have_attribute("data-state", "connected", timeout=30_000)
        expect(page.locator("#message-log li", has_text=f"Engine {url.split('?')[0]} reconnected")).to_have_count(1)
        wait_until(page, "pyjoy.plugins().then((all) => all.some((p) => p.name === 'Arrays' && p.state === 'running'))",
                   timeout_ms=30_000)
        assert page.evaluate("pyjoy.getPlugin('Arrays').then((p) => p.adder(2)).then((add) => add(40))") == 42


def test_the_engines_entry_connects_by_url_and_the_header_forgets_it(page: Page, base_url: str, engine: dict) -> None:
    page.goto(f"{base_url}?w=engines-ui")
    page.wait_for_function("window.pyjoy && pyjoy.timings.workbenchReady", timeout=30_000)
    expect(chip(page)).to_have_count(0)
    page.click("#workspace-menu-button")
    page.click('#workspace-menu [data-action="engines"]')
    page.locator("dialog input").fill(engine["url"])
    page.get_by_role("button", name="OK").click()
    expect(chip(page)).to_have_attribute("data-state", "connected")
    host = engine["url"].split("/")[2]
    expect(chip(page)).to_have_text(f"Engine {host}: connected")
    # The workspace remembers it (and no other workspace has it). Written down a moment after
    # its chip says connected: the reload waits until IndexedDB holds it.
    page.wait_for_function("""() => new Promise((resolve) => {
      const opening = indexedDB.open("pyjoy");
      opening.onsuccess = () => {
        const read = opening.result.transaction("workspaces").objectStore("workspaces").get("engines-ui");
        read.onsuccess = () => { resolve((read.result?.engines ?? []).length === 1); opening.result.close(); };
      };
    })""")
    page.reload()
    expect(chip(page)).to_have_attribute("data-state", "connected", timeout=30_000)
    page.goto(f"{base_url}?w=another")
    page.wait_for_function("window.pyjoy && pyjoy.timings.workbenchReady", timeout=30_000)
    assert page.evaluate("pyjoy.engines()") == []
    page.goto(f"{base_url}?w=engines-ui")
    expect(chip(page)).to_have_attribute("data-state", "connected", timeout=30_000)
    # An exported workspace holds no engine: its URL holds the token.
    page.click("#workspace-menu-button")
    with page.expect_download() as download:
        page.click('#workspace-menu [data-action="export"]')
    exported = Path(download.value.path()).read_text()
    assert TOKEN not in exported and '"engines"' not in exported
    # Its chip disconnects it and forgets it here.
    chip(page).click()
    page.locator("dialog").get_by_role("button", name="Disconnect").click()
    expect(chip(page)).to_have_count(0)
    page.reload()
    page.wait_for_function("window.pyjoy && pyjoy.timings.workbenchReady", timeout=30_000)
    page.wait_for_timeout(500)
    assert page.evaluate("pyjoy.engines()") == []


def test_concurrent_calls_from_two_pages_each_with_its_own_plugin(browser, base_url: str, engine: dict) -> None:
    pages = [browser.new_context().new_page() for _ in range(2)]
    try:
        for page in pages:
            open_connected(page, base_url, engine["url"])
            assert load(page, ARRAYS) == "ok"
        # 50 calls at once from each page, each with its own array; answers checked against numpy.
        calls = """(offset) => { window.calls = (async () => {
          const arrays = await pyjoy.getPlugin("Arrays");
          const wire = (i) => ({_rtype: "ndarray", _rvalue: new Float32Array([i, offset, 0.5]).buffer, _rshape: [3], _rdtype: "float32"});
          const answers = await Promise.all(Array.from({length: 50}, (_, i) => arrays.describe(wire(i))));
          return {sums: answers.map((a) => a.sum), pid: await arrays.pid()};
        })(); }"""
        for offset, page in zip((1000, 2000), pages):  # both pages' calls in flight together
            page.evaluate(calls, offset)
        results = [page.evaluate("window.calls") for page in pages]
        for offset, result in zip((1000, 2000), results):
            assert result["sums"] == [float(np.array([i, offset, 0.5], np.float32).sum()) for i in range(50)]
        assert results[0]["pid"] != results[1]["pid"]  # each page has a process of its own
    finally:
        for page in pages:
            page.context.close()


class CuttableProxy:
    """A TCP relay between the page and the engine whose connections the test cuts, as a
    network that fails does: no WebSocket close frame, each side sees its socket end."""

    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                page_side, _ = self._server.accept()
            except OSError:
                return
            engine_side = socket.create_connection(("127.0.0.1", self._target))
            self._pairs.append((page_side, engine_side))
            for a, b in ((page_side, engine_side), (engine_side, page_side)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(1 << 16):
                sink.sendall(data)
        except OSError:
            pass

    def cut(self) -> None:
        pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for end in pair:
                end.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, not FIN
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                end.close()

    def close(self) -> None:
        self.cut()
        self._server.close()


def test_a_page_whose_connection_drops_resumes_and_the_native_plugin_keeps_its_state(page: Page, base_url: str,
                                                                                      engine: dict) -> None:
    port = int(engine["url"].split("//127.0.0.1:")[1].split("/")[0])
    proxy = CuttableProxy(port)
    try:
        url = engine["url"].replace(f":{port}/", f":{proxy.port}/")
        open_connected(page, base_url, url)
        assert load(page, COUNTER) == "ok"
        pid = page.evaluate("pyjoy.getPlugin('Counter').then((p) => p.pid())")
        assert page.evaluate("pyjoy.getPlugin('Counter').then(async (p) => [await p.bump(), await p.bump()])") == [1, 2]
        page.evaluate("""pyjoy.getPlugin('Counter').then((p) => {
          window.pending = p.slow_square(7, 1.5).then((r) => r, (e) => e.message);
        })""")
        page.wait_for_timeout(300)  # the call reached the plugin; its answer comes while the connection is down
        proxy.cut()
        assert page.evaluate("window.pending") == {"square": 49, "count": 2}
        expect(chip(page)).to_have_attribute("data-state", "connected", timeout=15_000)
        assert page.evaluate("pyjoy.getPlugin('Counter').then((p) => p.pid())") == pid  # the same process ...
        assert page.evaluate("pyjoy.getPlugin('Counter').then((p) => p.bump())") == 3  # ... with its state
        assert page.evaluate("pyjoy.plugins().then((all) => all.find((p) => p.name === 'Counter').state)") == "running"
        expect(page.locator("#message-log li", has_text="resumed: its plugins ran on")).to_have_count(1)
        expect(page.locator("#message-log li", has_text="reconnected")).to_have_count(0)  # not started afresh
    finally:
        proxy.close()


def test_an_engine_killed_and_restarted_refuses_the_resume_and_the_page_starts_its_plugins_afresh(
        page: Page, base_url: str, tmp_path: Path) -> None:
    port = free_port()
    with engine_running(tmp_path, "--app", base_url, env={"PYJOY_ENGINE_TOKEN": TOKEN}, port=port) as (url, process):
        open_connected(page, base_url, url)
        assert load(page, COUNTER) == "ok"
        pid = page.evaluate("pyjoy.getPlugin('Counter').then((p) => p.pid())")
        page.evaluate("pyjoy.getPlugin('Counter').then((p) => { window.pending = p.slow_square(2, 60).then((r) => r, (e) => e.message); })")
        process.kill()  # SIGKILL: no close frame; its plugin processes end with their sockets
        process.wait()
        expect(chip(page)).to_have_attribute("data-state", "reconnecting", timeout=15_000)
    with engine_running(tmp_path, "--app", base_url, env={"PYJOY_ENGINE_TOKEN": TOKEN}, port=port):
        # The new engine has no such connection: the resume is refused, saying so, and the
        # page starts afresh: the pending call failed with that reason, the plugin runs again.
        failure = page.evaluate("window.pending")
        assert "was not resumed" in failure and "no connection has that resume key" in failure, failure
        expect(chip(page)).to_have_attribute("data-state", "connected", timeout=30_000)
        wait_until(page, "pyjoy.plugins().then((all) => all.some((p) => p.name === 'Counter' && p.state === 'running'))",
                   timeout_ms=30_000)
        assert page.evaluate("pyjoy.getPlugin('Counter').then((p) => p.pid())") != pid
        assert page.evaluate("pyjoy.getPlugin('Counter').then((p) => p.bump())") == 1  # a fresh process


def test_a_native_plugin_stopped_while_it_installs_leaves_no_process_on_the_engine(page: Page, base_url: str,
                                                                                  engine: dict) -> None:
    # Stopped while the engine makes its environment: the engine's start goes on and answers,
    # and the page must then end the process it no longer wants (it held one of the
    # connection's 32 plugin slots, unseen by the page, until the page closed).
    open_connected(page, base_url, engine["url"])
    before = engine_children(engine["process"].pid)
    source = plugin("Stopped While Installing", "api.export({})", requirements=["pyjoy-engine-probe>=0.1"])
    page.evaluate("(text) => { window.loading = pyjoy.loadPlugin(text).then(() => 'loaded', (e) => e.message); }", source)
    log = page.locator("#message-log li")
    expect(log.filter(has_text="Stopped While Installing: installing: making an environment")).to_have_count(1, timeout=30_000)
    assert page.evaluate("pyjoy.terminatePlugin('Stopped While Installing')") is True
    outcome = page.evaluate("Promise.race([window.loading, new Promise((r) => setTimeout(() => r('still loading after 60 s'), 60000))])")
    assert "was stopped while it started" in outcome, outcome
    deadline = time.monotonic() + 10
    while engine_children(engine["process"].pid) - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not engine_children(engine["process"].pid) - before, "the plugin's process still runs on the engine"
    assert "Stopped While Installing" not in [p["name"] for p in page.evaluate("pyjoy.plugins()")]


def engine_children(pid: int) -> set[int]:
    """The engine's child processes (its plugins'), from /proc."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.add(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return found


def test_replicas_on_an_engine_without_ray_are_refused_or_said_to_need_it(page: Page, base_url: str,
                                                                          engine: dict, tmp_path: Path) -> None:
    # An engine without --ray runs each plugin as one local process (ENGINE.md, "On a Ray cluster").
    label = engine["url"].split("?")[0]
    asks_two = plugin("Asks Two", "import os\napi.export({'pid': os.getpid})", replicas=2)
    before = engine_children(engine["process"].pid)
    # A shared link's count (&replicas=) is refused before anything is asked or installed.
    (tmp_path / "asks-two.imjoy.html").write_text(asks_two)
    with repository_server(tmp_path) as repository:
        page.goto(f"{base_url}?w=local-replicas&engine={quote(engine['url'], safe='')}"
                  f"&plugin={repository}asks-two.imjoy.html&replicas=2")
        expect(chip(page)).to_have_attribute("data-state", "connected", timeout=30_000)
        expect(page.locator(".toast").filter(has_text="Could not open the shared plugin")).to_have_text(re.compile(
            r"Could not open the shared plugin .*asks-two\.imjoy\.html: replicas of Asks Two: replicas need an engine "
            r"on a Ray cluster \(pyjoy engine --ray\); engine ws://[\d.:]+/ runs each plugin as one local process"),
            timeout=30_000)
    expect(page.locator("dialog")).to_have_count(0)  # nobody was asked
    # A count the page chooses is refused before anything starts, saying what replicas need.
    for call in ("loadPlugin", "installPlugin"):
        refused = page.evaluate(f"(text) => pyjoy.{call}(text, {{replicas: 2}}).then(() => 'started', (e) => e.message)", asks_two)
        assert refused == (f"replicas of Asks Two: replicas need an engine on a Ray cluster (pyjoy engine --ray); "
                           f"engine {label} runs each plugin as one local process"), refused
    assert "Asks Two" not in [p["name"] for p in page.evaluate("pyjoy.plugins()")]
    assert not engine_children(engine["process"].pid) - before
    # Its config's count: it runs as one local process, and its entry in the list says why.
    assert page.evaluate("(text) => pyjoy.installPlugin(text).then(() => 'ok', (e) => e.message)", asks_two) == "ok"
    pid = page.evaluate("pyjoy.getPlugin('Asks Two').then((p) => p.pid())")
    assert engine_children(engine["process"].pid) - before == {pid}
    item = page.locator(".plugin-item[data-name='Asks Two']")
    expect(item.locator(".plugin-runs").filter(has_text="Replicas")).to_have_text(
        f"Replicas: its config asks for 2; they need an engine on a Ray cluster (pyjoy engine --ray), and engine {label} "
        "runs it as one local process")
    expect(item.locator(".plugin-replicas")).to_have_count(0)  # no count to choose here
