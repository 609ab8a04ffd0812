"""The engine on a Ray cluster from the page: `pyjoy.mapOnEngine` over a plugin's replicas,
and the plugin list saying where an engine plugin runs. A real `pyjoy engine --ray` on a
local Ray it starts (2 CPUs, a 500 MB object store), real Chromium; no mocks of Ray."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect

pytest.importorskip("ray")

from conftest import repository_server  # noqa: E402
from pyjoy.devtools import engine_running  # noqa: E402
from tests.test_engine import TOKEN, plugin  # noqa: E402
from tests.test_engine_ray import RAY_INIT, REPLICATED  # noqa: E402


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, base_url: str):
    root = tmp_path_factory.mktemp("ray-engine-browser")
    with engine_running(root / "work", "--app", base_url, "--ray", "--ray-init", json.dumps(RAY_INIT),
                        env={"PYJOY_ENGINE_TOKEN": TOKEN}) as (url, process):
        yield {"url": url, "process": process}
        # Shown by pytest where a test of this module failed: the engine's and Ray's own words.
        print("the engine printed:\n" + "".join(process.output))


def test_the_page_maps_over_replicas_and_shows_where_its_engine_plugins_run(page: Page, base_url: str,
                                                                            engine: dict) -> None:
    page.goto(f"{base_url}?engine={quote(engine['url'], safe='')}")
    expect(page.locator("#engine-status .engine-chip")).to_have_attribute("data-state", "connected", timeout=30_000)
    # The engine's chip says it runs plugins on a Ray cluster, and what the cluster holds.
    # (Within a minute: should the engine's local Ray end under load, the supervisor starts a new one.)
    expect(page.locator("#engine-status .engine-chip")).to_have_attribute(
        "title", re.compile(r"Ray 2\.60\.0 cluster \(local\): 1 nodes, 2 CPUs, 0 GPUs"), timeout=60_000)
    loaded = page.evaluate("""(text) => pyjoy.installPlugin(text).then(() => pyjoy.reloadPlugin("Replicated"))
      .then(() => 'ok', (e) => `${e.name}: ${e.message}`)""", REPLICATED)
    assert loaded == "ok"
    answer = page.evaluate("""async () => {
      const progress = [];
      const items = Array.from({length: 60}, (_, i) => i - 30);
      const results = await pyjoy.mapOnEngine("Replicated", "square", items, {onProgress: (p) => progress.push(p)});
      await new Promise((resolve) => setTimeout(resolve, 200));
      return {squares: results.map((r) => r.square), pids: [...new Set(results.map((r) => r.pid))], last: progress.at(-1)};
    }""")
    assert answer["squares"] == [(i - 30) ** 2 for i in range(60)]
    assert len(answer["pids"]) == 2 and answer["last"] == {"done": 60, "total": 60}
    refused = page.evaluate("pyjoy.mapOnEngine('Nobody', 'square', [1]).then(() => 'answered', (e) => e.message)")
    assert refused == "map: no running engine plugin named Nobody"
    # More arrays than one message to the engine holds (16 MiB): sent as several maps, answered
    # in order; a failing item is named by its index in the whole batch.
    big = page.evaluate("""async () => {
      const array = (i) => ({_rtype: "ndarray", _rvalue: new Float32Array(40000).fill(i).buffer, _rshape: [40000], _rdtype: "float32"});
      const items = Array.from({length: 110}, (_, i) => array(i));  // 17.6 MB
      const progress = [];
      const results = await pyjoy.mapOnEngine("Replicated", "square", items, {onProgress: (p) => progress.push(p)});
      await new Promise((resolve) => setTimeout(resolve, 200));
      const bad = Array.from({length: 110}, (_, i) => (i === 100 ? "seven" : array(i)));  // (sent buffers are moved)
      const failed = await pyjoy.mapOnEngine("Replicated", "square", bad).then(() => "answered", (e) => e.message);
      return {firsts: results.map((r) => new Float32Array(r.square._rvalue)[0]), last: progress.at(-1), failed};
    }""")
    assert big["firsts"] == [float(i * i) for i in range(110)]
    assert big["last"] == {"done": 110, "total": 110}
    assert re.search(r"map: square\(item 100\) failed on replica [01]: TypeError", big["failed"]), big["failed"]
    # Where it runs, in the plugin list: the cluster, two actors, each one's node.
    runs = page.locator(".plugin-item[data-name='Replicated'] .plugin-runs")
    expect(runs).to_contain_text("Runs on the Ray cluster")
    expect(runs).to_contain_text("2 actors")
    # Replica 1 and 2, each with its node and process: the processes that answered the map.
    expect(runs).to_contain_text(re.compile(r"replica 1 on node [\d.]+ \w{8}, pid \d+; replica 2 on node [\d.]+ \w{8}, pid \d+$"))
    shown = {int(pid) for pid in re.findall(r"pid (\d+)", runs.text_content())}
    assert shown == set(answer["pids"])

    # The person chooses 3 replicas in the plugin list: the plugin starts again as 3 actors, and
    # a map spreads over 3 processes (the engine's answer, not the page's count).
    choice = page.locator(".plugin-item[data-name='Replicated'] .plugin-replicas input")
    expect(choice).to_have_value("2")
    choice.fill("3")
    choice.dispatch_event("change")
    expect(runs).to_contain_text("3 actors", timeout=60_000)
    pids = page.evaluate("""() => pyjoy.mapOnEngine("Replicated", "square", Array.from({length: 30}, (_, i) => i))
      .then((results) => [...new Set(results.map((r) => r.pid))].length)""")
    assert pids == 3
    # Kept in the workspace: the next start runs 3 again.
    assert page.evaluate("pyjoy.reloadPlugin('Replicated').then(() => 'ok', (e) => e.message)") == "ok"
    expect(page.locator(".plugin-item[data-name='Replicated'] .plugin-runs")).to_contain_text("3 actors", timeout=60_000)
    # A count out of range is refused, saying so; the plugin runs on as it was.
    choice = page.locator(".plugin-item[data-name='Replicated'] .plugin-replicas input")
    choice.fill("0")
    choice.dispatch_event("change")
    expect(page.get_by_text("replicas of Replicated: a whole number from 1 to 64, not 0", exact=True)).to_be_visible()
    expect(page.locator(".plugin-item[data-name='Replicated'] .plugin-runs")).to_contain_text("3 actors")


CHOSEN = plugin("Chosen Replicas", '''
import os
class Chosen:
    def where(self, x):
        return {"pid": os.getpid(), "x": x}
api.export(Chosen())
''')  # no "replicas" in its config: one actor unless the person or the page chooses more


def test_a_replica_count_chosen_before_the_first_start(page: Page, base_url: str, engine: dict, tmp_path: Path) -> None:
    def actors_answering(name: str) -> set[int]:
        """The processes that answer a map over 20 items: the plugin's actors, as the engine runs them."""
        results = page.evaluate("(name) => pyjoy.mapOnEngine(name, 'where', Array.from({length: 20}, (_, i) => i))", name)
        assert [result["x"] for result in results] == list(range(20))
        return {result["pid"] for result in results}

    (tmp_path / "chosen.imjoy.html").write_text(CHOSEN)
    with repository_server(tmp_path) as repository:
        page.goto(f"{base_url}?w=chosen&engine={quote(engine['url'], safe='')}")
        expect(page.locator("#engine-status .engine-chip")).to_have_attribute("data-state", "connected", timeout=30_000)
        # Bad counts are refused before anything is asked, installed or started, naming the value.
        for value, shown in ((0, "0"), (-2, "-2"), (1.5, "1.5"), (65, "65"), ("2", '"2"')):
            for call in ("loadPlugin", "installPlugin"):
                refused = page.evaluate(f"([text, n]) => pyjoy.{call}(text, {{replicas: n}}).then(() => 'started', (e) => e.message)",
                                        [CHOSEN, value])
                assert refused == f"replicas of Chosen Replicas: a whole number from 1 to 64, not {shown}", (call, refused)
        assert not [p for p in page.evaluate("pyjoy.plugins()") if p["name"] == "Chosen Replicas"]
        browser_plugin = '<config lang="json">{"name": "In The Browser", "type": "web-worker"}</config>' \
                         '<script lang="javascript">api.export({})</script>'
        refused = page.evaluate("(text) => pyjoy.loadPlugin(text, {replicas: 2}).then(() => 'loaded', (e) => e.message)",
                                browser_plugin)
        assert refused.startswith("replicas of In The Browser: replicas are Ray actors of a native-python plugin"), refused

        # The person installs it by URL choosing 2 replicas in the Add-plugin dialog (shown since
        # the engine runs on Ray): its first start runs 2 actors, which a map reaches (2 processes).
        page.click("#add-plugin")
        expect(page.locator("#plugin-replicas")).to_be_visible()
        page.fill("#plugin-url", repository + "chosen.imjoy.html")
        page.fill("#plugin-replicas", "2")
        page.click("dialog button[type=submit]")
        expect(page.locator("dialog")).to_have_count(0, timeout=60_000)
        item = page.locator(".plugin-item[data-name='Chosen Replicas']")
        expect(item).to_have_attribute("data-state", "running", timeout=60_000)
        pids = actors_answering("Chosen Replicas")
        assert len(pids) == 2 and engine["process"].pid not in pids
        for pid in pids:
            os.kill(pid, 0)  # each a live process on this machine (the local Ray's worker)
        expect(item.locator(".plugin-runs")).to_contain_text("2 actors")
        expect(item.locator(".plugin-replicas input")).to_have_value("2")

        # Not running, its box still chooses: kept, and its next start has the count.
        page.evaluate("pyjoy.terminatePlugin('Chosen Replicas')")
        expect(item).not_to_have_attribute("data-state", "running")
        box = item.locator(".plugin-replicas input")
        expect(box).to_have_value("2")
        box.fill("3")
        box.dispatch_event("change")
        expect(page.get_by_text("Chosen Replicas will run as 3 Ray actors when it starts", exact=True)).to_be_visible()
        expect(item).not_to_have_attribute("data-state", "running")  # not started by the choice
        item.get_by_role("button", name="Run", exact=True).click()
        expect(item).to_have_attribute("data-state", "running", timeout=60_000)
        assert len(actors_answering("Chosen Replicas")) == 3
        # The page's loadPlugin chooses too.
        loaded = page.evaluate("(text) => pyjoy.loadPlugin(text.replace('Chosen Replicas', 'Loaded Replicas'), {replicas: 2})"
                               ".then(() => 'ok', (e) => e.message)", CHOSEN)
        assert loaded == "ok"
        assert len(actors_answering("Loaded Replicas")) == 2
