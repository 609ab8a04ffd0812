"""The engine on a Ray cluster from the page: `pyjoy.mapOnEngine` over a plugin's replicas,
and the plugin list saying where an engine plugin runs. A real `pyjoy engine --ray` on a
local Ray it starts (2 CPUs, a 500 MB object store), real Chromium; no mocks of Ray."""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect

pytest.importorskip("ray")

from pyjoy.devtools import engine_running  # noqa: E402
from tests.test_engine import TOKEN  # noqa: E402
from tests.test_engine_ray import RAY_INIT, REPLICATED  # noqa: E402


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, base_url: str):
    root = tmp_path_factory.mktemp("ray-engine-browser")
    with engine_running(root / "work", "--app", base_url, "--ray", "--ray-init", json.dumps(RAY_INIT),
                        env={"PYJOY_ENGINE_TOKEN": TOKEN}) as (url, process):
        yield {"url": url, "process": process}


def test_the_page_maps_over_replicas_and_shows_where_its_engine_plugins_run(page: Page, base_url: str,
                                                                            engine: dict) -> None:
    page.goto(f"{base_url}?engine={quote(engine['url'], safe='')}")
    expect(page.locator("#engine-status .engine-chip")).to_have_attribute("data-state", "connected", timeout=30_000)
    # The engine's chip says it runs plugins on a Ray cluster, and what the cluster holds.
    expect(page.locator("#engine-status .engine-chip")).to_have_attribute(
        "title", re.compile(r"Ray 2\.60\.0 cluster \(local\): 1 nodes, 2 CPUs, 0 GPUs"))
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
