"""Floods: how the page fares while a hostile plugin floods it, and how fast it is ended.

Run from the repository root after `python build.py`:

    python bench/floods.py [--json PATH] [--only SUBSTRING] [--flood-seconds S] [--terminate-cap S]
                           [--dist DIR --commit SHA]

(bench/results/floods-before.json: the same run on a dist/ built from the commit before
floods were bounded, 2fc3de0.)

For each scenario (a plugin type from tests/plugins/hostile/flood_*.imjoy.html and a
flood: an endless `print()` loop, endless fire-and-forget `showMessage` / `log` calls,
awaited ones, a thousand `alert`s), in a fresh page of Debian's Chromium:

1. the plugin is loaded and its flood started (not awaited);
2. after --flood-seconds (default 3), how long `pyjoy.runPython('1+1')` takes to answer
   (capped at PING_CAP_S; null: no answer within the cap), and the page's longest task
   since the flood began (Long Tasks API);
3. the toasts, Messages entries and dialogs in the page (DOM nodes);
4. how long `pyjoy.terminatePlugin(name)` takes (capped at TERMINATE_CAP_S), and whether
   the Messages count still grows a second later.

Every timing is taken from Python with a Playwright wait whose timeout holds even when the
page's thread is stuck. Writes bench/results/floods.json (with the machine and the date)
and prints a markdown table. About 1 to 3 minutes on 2 CPUs (longer while pages freeze).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, TimeoutError as PlaywrightTimeout, sync_playwright

from pyjoy.devtools import flood_plugin, launch_options, machine_facts, served

ROOT = Path(__file__).resolve().parents[1]
PING_CAP_S = 10
TERMINATE_CAP_S = 20

# (plugin type, what the flood does, the JS that starts it on the plugin `p`)
SCENARIOS = [
    ("web-python", "endless print()", "p.flood('print', null)"),
    ("web-python", "endless showMessage, not awaited", "p.flood('message', null)"),
    ("web-python", "endless log, not awaited", "p.flood('log', null)"),
    ("web-python", "endless showMessage, awaited", "p.flood_awaited('message', null)"),
    ("web-python", "1000 alerts, not awaited", "p.flood('alert', 1000)"),
    ("web-worker", "endless showMessage, not awaited", "p.flood('message', null)"),
    ("web-worker", "endless log, not awaited", "p.flood('log', null)"),
    ("web-worker", "endless error, not awaited", "p.flood('error', null)"),
    ("web-worker", "1000 alerts, not awaited", "p.flood('alert', 1000)"),
    ("window", "endless showMessage, not awaited", "p.flood('message', null)"),
    ("window", "endless log, not awaited", "p.flood('log', null)"),
    ("window", "endless log, awaited", "p.flood('log', null, true)"),
]

# Starts `code` (a promise) once and polls its outcome: a Playwright wait on this returns
# as soon as it settles, and its timeout holds even while the page's thread is stuck.
SETTLED = """([key, code]) => {
  const slots = (window.__bench ??= {});
  if (!(key in slots)) {
    slots[key] = null;
    (0, eval)(code).then((value) => (slots[key] = {value}), (error) => (slots[key] = {error: String(error)}));
  }
  return slots[key];
}"""

COUNTS = """() => ({
  toasts: document.querySelectorAll('#toasts > *').length,
  messages: document.querySelectorAll('#message-log > li').length,
  messageCount: Number(document.getElementById('message-count').textContent) || 0,
  dialogs: document.querySelectorAll('dialog').length,
  longestTask: Math.round(window.__longest ?? 0),
})"""


def settle(page: Page, key: str, code: str, cap_s: float) -> tuple[float | None, Any]:
    """Seconds until the promise `code` settles in the page (None past cap_s), and its outcome."""
    started = time.monotonic()
    try:
        outcome = page.wait_for_function(SETTLED, arg=[key, code], timeout=cap_s * 1000, polling=50).json_value()
    except PlaywrightTimeout:
        return None, None
    return round(time.monotonic() - started, 3), outcome


def counts(page: Page, cap_s: float = 3) -> dict | None:
    try:
        return page.wait_for_function(COUNTS, timeout=cap_s * 1000).json_value()
    except PlaywrightTimeout:
        return None


def scenario(browser: Browser, base_url: str, kind: str, flood: str, start: str, flood_seconds: float,
             terminate_cap_s: float = TERMINATE_CAP_S) -> dict:
    text, name = flood_plugin(kind)
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(base_url)
        page.evaluate("pyjoy.ready")
        page.evaluate("(text) => pyjoy.loadPlugin(text)", text)
        page.evaluate("""() => {
          window.__longest = 0;
          new PerformanceObserver((list) => {
            for (const entry of list.getEntries()) window.__longest = Math.max(window.__longest, entry.duration);
          }).observe({type: 'longtask'});
        }""")
        page.evaluate(f"pyjoy.getPlugin({json.dumps(name)}).then((p) => {{ {start}.catch(() => {{}}); }})")
        time.sleep(flood_seconds)
        ping_s, ping = settle(page, "ping", "pyjoy.runPython('1+1')", PING_CAP_S)
        during = counts(page) if ping_s is not None else None
        terminate_s, _ = settle(page, "terminate", f"pyjoy.terminatePlugin({json.dumps(name)})", terminate_cap_s)
        after = counts(page)
        time.sleep(1)
        later = counts(page) if after else None
        return {
            "type": kind, "flood": flood, "ping_s": ping_s, "ping_value": ping and ping.get("value"),
            "during": during, "terminate_s": terminate_s, "after_terminate": after, "one_second_later": later,
        }
    finally:
        context.close()


def cell(value: Any, cap: float) -> str:
    return f"> {cap} s" if value is None else f"{value:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "floods.json")
    parser.add_argument("--only", default="", help="run only scenarios whose type or flood contains this")
    parser.add_argument("--flood-seconds", type=float, default=3.0)
    parser.add_argument("--terminate-cap", type=float, default=TERMINATE_CAP_S, help="seconds to wait for terminatePlugin")
    parser.add_argument("--dist", type=Path, default=ROOT / "dist")
    parser.add_argument("--commit", default="", help="the commit dist/ was built from, recorded in the JSON")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    results = []
    with served(args.dist) as base_url, sync_playwright() as p:
        browser = p.chromium.launch(**launch_options())
        for kind, flood, start in SCENARIOS:
            if args.only and args.only not in f"{kind} {flood}":
                continue
            result = scenario(browser, base_url, kind, flood, start, args.flood_seconds, args.terminate_cap)
            print(json.dumps(result), flush=True)
            results.append(result)
        version = browser.version
        browser.close()
    print("\n| plugin | flood | `runPython('1+1')` during it | longest task | toasts / Messages entries / dialogs | `terminatePlugin` | Messages still growing after |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        during, after, later = r["during"] or {}, r["after_terminate"] or {}, r["one_second_later"] or {}
        growing = None if not after or not later else later.get("messageCount", 0) - after.get("messageCount", 0)
        print(f"| {r['type']} | {r['flood']} | {cell(r['ping_s'], PING_CAP_S)} | {during.get('longestTask', '?')} ms "
              f"| {during.get('toasts', '?')} / {during.get('messages', '?')} / {during.get('dialogs', '?')} "
              f"| {cell(r['terminate_s'], args.terminate_cap)} | {growing if growing is not None else '?'} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "build": json.loads((args.dist / ".build-stamp").read_text())["build"],
        "commit": args.commit,
        "machine": machine_facts(version, load_before),
        "flood_seconds": args.flood_seconds, "ping_cap_s": PING_CAP_S, "terminate_cap_s": args.terminate_cap,
        "results": results,
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
