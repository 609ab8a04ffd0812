"""Hostile floods: plugins of every type that flood the page with print() output,
showMessage, log, error and alert calls (tests/plugins/hostile/flood_*.imjoy.html).

However fast they call, the page keeps answering (`pyjoy.runPython('1+1')` within a second),
keeps a bounded number of toasts, Messages entries and dialogs, and `terminatePlugin` ends
the flood at once. Every read of the page is a Playwright wait with a timeout (kept by
Playwright, not the page: it holds even while the page's thread is stuck): a frozen page fails these tests, it does not hang them.
"""

from __future__ import annotations

import json
import time

import pytest
from playwright.sync_api import Page, TimeoutError as PlaywrightTimeout

from pyjoy.devtools import flood_plugin

# What the page promises, whatever a plugin does (app/status.js, app/ui/dialog.js).
TOASTS_PER_PLUGIN = 3
MESSAGES_KEPT = 500
DIALOGS_WAITING = 3

# Starts the promise `code` once, then reports its outcome to each poll (see settle()).
SETTLED = """([key, code]) => {
  const slots = (window.__settled ??= {});
  if (!(key in slots)) {
    slots[key] = null;
    (0, eval)(code).then((value) => (slots[key] = {value}), (error) => (slots[key] = {error: String(error)}));
  }
  return slots[key];
}"""

COUNTS = """(name) => ({
  toasts: [...document.querySelectorAll('#toasts .toast')].filter((toast) => toast.textContent.startsWith(name + ':')).length,
  toastTexts: [...document.querySelectorAll('#toasts .toast')].map((toast) => toast.textContent),
  entries: document.querySelectorAll('#message-log > li').length,
  logged: Number(document.getElementById('message-count').textContent),
  lastEntry: document.querySelector('#message-log > li:last-child')?.textContent ?? '',
  log: [...document.querySelectorAll('#message-log > li')].map((item) => item.textContent).join('\\n'),
  dialogs: [...document.querySelectorAll('dialog[open]')].map((dialog) => dialog.querySelector('p').textContent),
})"""


def settle(page: Page, key: str, code: str, within_s: float) -> dict:
    """The outcome ({value} or {error}) of the promise `code`, which must settle within_s."""
    try:
        return page.wait_for_function(SETTLED, arg=[key, code], timeout=within_s * 1000, polling=20).json_value()
    except PlaywrightTimeout:
        pytest.fail(f"{code} did not settle within {within_s} s: the page is stuck")


def counts(page: Page, name: str) -> dict:
    try:
        return page.wait_for_function(COUNTS, arg=name, timeout=5000).json_value()
    except PlaywrightTimeout:
        pytest.fail("the page did not answer within 5 s")


def responsive(page: Page, key: str) -> None:
    """`pyjoy.runPython('1+1')` answers within a second."""
    assert settle(page, key, "pyjoy.runPython('1+1')", 1) == {"value": 2}


def start(page: Page, base_url: str, kind: str) -> str:
    """Opens the app and loads the hostile plugin of that type; its name."""
    text, name = flood_plugin(kind)
    page.goto(base_url)
    page.evaluate("pyjoy.ready")
    page.evaluate("(text) => pyjoy.loadPlugin(text)", text)
    responsive(page, "ping-before")
    return name


def flood(page: Page, name: str, call: str) -> None:
    """Starts `call` on the plugin `p` and leaves it running; flood_outcome() reads how it ended."""
    page.evaluate(f"""pyjoy.getPlugin({json.dumps(name)}).then((p) => {{
      window.__flood = null;
      {call}.then((value) => (window.__flood = {{value}}), (error) => (window.__flood = {{error: error.message}}));
    }})""")


def flood_outcome(page: Page) -> dict | None:
    """{value} or {error} once the flood call ended, else None."""
    return page.wait_for_function("() => ({outcome: window.__flood})", timeout=5000).json_value()["outcome"]


def terminate_and_check_it_stops(page: Page, name: str) -> dict:
    """terminatePlugin ends the flood well within a second; nothing of it grows after."""
    assert settle(page, "terminate", f"pyjoy.terminatePlugin({json.dumps(name)})", 1) == {"value": True}
    time.sleep(0.5)  # what was already on its way is drawn
    after = counts(page, name)
    time.sleep(1)
    later = counts(page, name)
    assert later["logged"] == after["logged"], "messages kept coming after terminatePlugin"
    assert after["toasts"] == 0, after["toastTexts"]
    assert after["dialogs"] == []
    responsive(page, "ping-after")
    return after


def test_an_endless_print_loop_cannot_freeze_the_page(page: Page, base_url: str) -> None:
    name = start(page, base_url, "web-python")
    # A web-python plugin's output goes to Messages and, a bounded number of lines a second,
    # to the page's console (host.log in app/plugins/host.js).
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    flood(page, name, "p.flood('print', null)")
    time.sleep(3)
    responsive(page, "ping-during")
    # Tens of thousands of lines, in few messages, and a count of those dropped.
    printed = "\n".join(console)
    numbers = [int(line.split()[1]) for line in printed.splitlines() if line.startswith("print ")]
    assert max(numbers) > 10_000, "the plugin printed too little for this test to mean anything"
    assert "lines of output dropped" in printed
    assert len(console) < 400, f"{len(console)} console messages in about 3 s"
    terminate_and_check_it_stops(page, name)
    seen = len(console)
    time.sleep(1)
    assert len(console) == seen, "output kept coming after terminatePlugin"


FLOODS = [
    ("web-python", "message", "p.flood('message', null)"),
    ("web-worker", "message", "p.flood('message', null)"),
    ("window", "message", "p.flood('message', null)"),
    ("web-python", "log", "p.flood('log', null)"),
    ("web-worker", "log", "p.flood('log', null)"),
    ("window", "log", "p.flood('log', null)"),
    ("web-worker", "error", "p.flood('error', null)"),
]


@pytest.mark.parametrize(("kind", "what", "call"), FLOODS, ids=[f"{kind}-{what}" for kind, what, _ in FLOODS])
def test_endless_messages_cannot_freeze_the_page(page: Page, base_url: str, kind: str, what: str, call: str) -> None:
    name = start(page, base_url, kind)
    flood(page, name, call)
    # Until the flood has sent more than the log keeps (about a second; a busy machine takes
    # longer, and a fixed wait then read too little), then the page must answer at once.
    deadline = time.monotonic() + 30
    while counts(page, name)["logged"] <= MESSAGES_KEPT and time.monotonic() < deadline:
        time.sleep(0.2)
    responsive(page, "ping-during")
    during = counts(page, name)
    # Hundreds of calls a second reached the host; few toasts and a bounded log show them.
    assert during["logged"] > MESSAGES_KEPT, f"only {during['logged']} messages: the flood did not run"
    assert during["toasts"] <= TOASTS_PER_PLUGIN, during["toastTexts"]
    assert during["entries"] <= MESSAGES_KEPT
    assert f"{name}: {what} " in during["lastEntry"]
    if what != "log":  # the newest toast shows a recent message and counts the others
        assert during["toasts"] >= 1
        assert "more in Messages" in " ".join(during["toastTexts"])
    if call == "p.flood('message', null)" and kind == "web-python":
        # Its loop never awaits: past the calls that may wait in its sandbox, a call raises.
        deadline = time.monotonic() + 30  # past 10,000 waiting calls: a while on a busy machine
        while (outcome := flood_outcome(page)) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert outcome is not None and "await your calls" in outcome.get("error", ""), outcome
    terminate_and_check_it_stops(page, name)


@pytest.mark.parametrize("kind", ["web-python", "web-worker", "window"])
def test_a_plugin_has_one_dialog_open_and_a_few_waiting(page: Page, base_url: str, kind: str) -> None:
    name = start(page, base_url, kind)
    outcome = settle(page, "dialogs", f"pyjoy.getPlugin({json.dumps(name)}).then((p) => p.dialogs(1000))", 20)
    # One open, DIALOGS_WAITING waiting, the rest refused with an error that says why.
    assert outcome["value"]["refused"] == 1000 - 1 - DIALOGS_WAITING, outcome
    assert "too many dialogs" in outcome["value"]["first"]
    assert counts(page, name)["dialogs"] == ["alert 1"]
    responsive(page, "ping-during")
    # Answering one shows the next, in order.
    page.locator("dialog[open]").get_by_role("button", name="OK").click()
    page.wait_for_function("document.querySelector('dialog[open] p')?.textContent === 'alert 2'", timeout=5000)
    assert counts(page, name)["dialogs"] == ["alert 2"]
    # Ending the plugin closes its dialog, and those waiting never open.
    terminate_and_check_it_stops(page, name)
