"""A `--ray` engine's lost cluster, as the page shows it: the engine chip says the Ray cluster
is lost while the engine serves on without it, and stops saying so once the cluster is back.
A real Ray head (`ray start --head`, test_engine_ray_lost.py's), killed and started again on
the same port, a real engine, real Chromium; no mocks of Ray."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect

pytest.importorskip("ray")

from pyjoy.devtools import engine_running  # noqa: E402
from tests.test_engine import TOKEN  # noqa: E402
from tests.test_engine_ray_lost import head, start_head, stop_head  # noqa: E402,F401  (head: the fixture)


def test_the_engine_chip_says_the_cluster_is_lost_and_when_it_is_back(page: Page, base_url: str, head: dict,
                                                                       tmp_path) -> None:
    address = f"127.0.0.1:{head['port']}"
    env = {"PYJOY_ENGINE_TOKEN": TOKEN, "RAY_AUTH_MODE": "disabled"}
    with engine_running(tmp_path / "work", "--app", base_url, "--ray", address, env=env) as (url, process):
        page.goto(f"{base_url}?engine={quote(url, safe='')}")
        chip = page.locator("#engine-status .engine-chip")
        expect(chip).to_have_attribute("data-state", "connected", timeout=30_000)
        expect(chip).to_have_attribute("data-cluster", "connected")
        expect(chip).to_have_attribute("title", re.compile(rf"Ray 2\.60\.0 cluster \({re.escape(address)}\): 1 nodes"))
        expect(chip).not_to_contain_text("lost")

        stop_head(head["temp"])
        # The engine ends its Ray plugins, is run again without Ray by its supervisor, and the
        # page reconnects to it: the chip says the cluster is lost, the title why.
        expect(chip).to_have_attribute("data-cluster", "lost", timeout=60_000)
        expect(chip).to_have_attribute("data-state", "connected")
        expect(chip).to_have_text(re.compile(r"^Engine 127\.0\.0\.1:\d+: connected, Ray cluster lost \(reconnecting…\)$"))
        expect(chip).to_have_attribute("title", re.compile(rf"Ray cluster at {re.escape(address)} was lost"))

        start_head(head["temp"], head["port"])
        expect(chip).to_have_attribute("data-cluster", "connected", timeout=120_000)
        expect(chip).to_have_text(re.compile(r"^Engine 127\.0\.0\.1:\d+: connected$"))
        assert process.poll() is None  # the same engine command served throughout
