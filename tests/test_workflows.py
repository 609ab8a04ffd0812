"""Issue 13's workflows (app/workbench/workflows.js): ops that plugins register, chained.
A workflow of pure-Python ops (plugins/workflows/pixel_ops.imjoy.html: PyJoy's NDArray, no
numpy) run from the page with every step's output checked against values computed here; a
failing step; saved, shared by URL into a fresh profile, installed after asking, reopened
offline; malformed workflow URLs; the Workflows panel with an op, a file and the camera as input."""

from __future__ import annotations

import base64
import json
import shutil
import struct
import tempfile
import urllib.parse
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from conftest import open_offline, repository_server, wait_for_service_worker
from pyjoy.devtools import launch_options

PLUGIN = Path(__file__).parent / "plugins" / "workflows" / "pixel_ops.imjoy.html"

# A 2x1 RGBA PNG: (10, 20, 30, 255), (40, 50, 60, 255).
PNG_2X1 = "iVBORw0KGgoAAAANSUhEUgAAAAIAAAABCAYAAAD0In+KAAAAEUlEQVR4nGPgEpH7r2Fk8x8ACUEC0RSI/0oAAAAASUVORK5CYII="

WORKFLOW = {
    "name": "Pixel chain",
    "version": "1",
    "input": {"plugin": "Pixel Ops", "op": "Ramp", "params": {"size": 3}},
    "steps": [
        {"plugin": "Pixel Ops", "op": "Add", "params": {"amount": 1.5}},
        {"plugin": "Pixel Ops", "op": "Scale", "params": {"factor": 3}},
        {"plugin": "Pixel Ops", "op": "Invert", "params": {"maximum": 100}},
    ],
}

# Every step's output as {op, shape, values} (float64 images), or the error with the outputs before it.
RUN = """async ([workflow, input]) => {
  const asList = (outputs) => outputs.map(({ op, image }) => ({ op, shape: image._rshape, values: [...new Float64Array(image._rvalue)] }));
  const given = input && { _rtype: "ndarray", _rvalue: new Float64Array(input.values).buffer, _rshape: input.shape, _rdtype: "float64" };
  const progress = [];
  try {
    const outputs = await pyjoy.runWorkflow(workflow, given, { onProgress: ({ step, of, state }) => progress.push([step, of, state]) });
    return { outputs: asList(outputs), progress };
  } catch (error) {
    return { error: error.message, name: error.name, step: error.step, plugin: error.plugin, op: error.op, outputs: asList(error.outputs ?? []) };
  }
}"""


def expected(start: list[float], steps: list[dict]) -> list[list[float]]:
    """Each step's output, computed here from the ops' definitions."""
    outputs, values = [], start
    for step in steps:
        p = step["params"]
        apply = {"Add": lambda v: v + p["amount"], "Scale": lambda v: v * p["factor"], "Invert": lambda v: p["maximum"] - v}[step["op"]]
        values = [apply(v) for v in values]
        outputs.append(values)
    return outputs


def open_app(page: Page, url: str) -> Page:
    page.goto(url)
    page.wait_for_function("window.pyjoy && pyjoy.timings.workbenchReady", timeout=30_000)
    return page


def test_a_workflow_of_python_ops_runs_each_step_on_the_last_ones_output_and_a_failing_step_stops_it(page: Page, base_url: str) -> None:
    open_app(page, f"{base_url}?w=workflows-run")
    assert page.evaluate("(text) => pyjoy.installPlugin(text).then(() => 'ok', (e) => e.message)", PLUGIN.read_text()) == "ok"

    # From the workflow's input op (a 3x3 ramp): input, then each step.
    result = page.evaluate(RUN, [WORKFLOW, None])
    assert "error" not in result, result
    ramp = [float(i) for i in range(9)]
    assert [o["op"] for o in result["outputs"]] == ["Ramp", "Add", "Scale", "Invert"]
    assert result["progress"] == [[i, 4, state] for i in range(4) for state in ("running", "done")]
    assert result["outputs"][0]["values"] == ramp
    for output, values in zip(result["outputs"][1:], expected(ramp, WORKFLOW["steps"])):
        assert output["shape"] == [3, 3]
        assert output["values"] == pytest.approx(values)

    # From an image the page gives (2x3): the input op is not used.
    given = {"values": [5.0, -1.0, 0.25, 7.0, 2.0, 10.0], "shape": [2, 3]}
    result = page.evaluate(RUN, [WORKFLOW, given])
    assert [o["op"] for o in result["outputs"]] == ["Add", "Scale", "Invert"]
    for output, values in zip(result["outputs"], expected(given["values"], WORKFLOW["steps"])):
        assert output["shape"] == [2, 3]
        assert output["values"] == pytest.approx(values)

    # A failing step stops the run: its error names the step, plugin and op; earlier outputs kept.
    failing = {**WORKFLOW, "steps": [WORKFLOW["steps"][0], {"plugin": "Pixel Ops", "op": "Break", "params": {"why": "on purpose"}},
                                     WORKFLOW["steps"][2]]}
    result = page.evaluate(RUN, [failing, given])
    assert result["name"] == "WorkflowStepError"
    assert (result["step"], result["plugin"], result["op"]) == (1, "Pixel Ops", "Break")
    assert "Step 2 (Break of plugin Pixel Ops) failed" in result["error"] and "this step fails: on purpose" in result["error"]
    assert [o["op"] for o in result["outputs"]] == ["Add"]
    assert result["outputs"][0]["values"] == pytest.approx(expected(given["values"], WORKFLOW["steps"][:1])[0])

    # An op nobody registered, and a malformed workflow: clear errors.
    missing = {**WORKFLOW, "steps": [{"plugin": "Pixel Ops", "op": "Blur", "params": {}}]}
    result = page.evaluate(RUN, [missing, given])
    assert "has registered no op named Blur" in result["error"] and result["outputs"] == []
    bad = page.evaluate("(w) => pyjoy.runWorkflow(w).then(() => 'ran', (e) => e.message)", {**WORKFLOW, "steps": [{"plugin": "Pixel Ops", "op": "Add", "params": {"amount": [1]}}]})
    assert bad.startswith("Not a valid workflow: steps[0].params.amount must be a string, number, boolean or null"), bad


@pytest.mark.parametrize(("value", "message"), [
    ("{not json", "Not a valid workflow: it is not JSON"),
    (json.dumps({"name": "x", "steps": []}), "Not a valid workflow: steps must be a non-empty list"),
    (json.dumps({"name": "x", "steps": [{"plugin": "P", "op": "O"}], "code": "alert(1)"}), 'Not a valid workflow: unknown field "code"'),
    (json.dumps({"name": "x", "steps": [{"plugin": "P", "op": "O"}], "sources": {"P": "javascript:alert(1)"}}),
     'Not a valid workflow: sources["P"] must be an http(s) URL'),
])
def test_a_malformed_workflow_url_gives_a_clear_error(page: Page, base_url: str, value: str, message: str) -> None:
    page.goto(f"{base_url}?w=workflows-bad&workflow={urllib.parse.quote(value)}")
    expect(page.locator(".toast", has_text="Could not open the shared workflow")).to_contain_text(message)
    assert page.evaluate("pyjoy.workflows()") == []


def test_a_workflow_saved_shared_by_url_into_a_fresh_profile_installs_after_asking_and_runs_offline(playwright, base_url: str, tmp_path: Path) -> None:
    shutil.copy(PLUGIN, tmp_path / PLUGIN.name)
    with repository_server(tmp_path) as repo:
        shared = {**WORKFLOW, "sources": {"Pixel Ops": repo + PLUGIN.name}}
        profiles = [tempfile.mkdtemp(prefix="pyjoy-profile-") for _ in range(2)]
        try:
            # Saved in one workspace; kept across a reload; its share URL made.
            context = playwright.chromium.launch_persistent_context(profiles[0], **launch_options())
            page = open_app(context.new_page(), f"{base_url}?w=workflows-save")
            assert page.evaluate("(w) => pyjoy.saveWorkflow(w).then((s) => s.name)", shared) == "Pixel chain"
            page.reload()
            open_app(page, f"{base_url}?w=workflows-save")
            assert page.evaluate("pyjoy.workflows()") == [shared]
            url = page.evaluate("(w) => pyjoy.workflowURL(w)", shared)
            assert "?workflow=" in url
            context.close()

            # A fresh profile: the URL asks first; declining installs and saves nothing.
            context = playwright.chromium.launch_persistent_context(profiles[1], **launch_options())
            page = context.new_page()
            page.goto(url)
            dialog = page.locator("dialog", has_text="Open workflow")
            expect(dialog).to_contain_text(f"Pixel Ops (from {repo}{PLUGIN.name})")
            dialog.get_by_role("button", name="Cancel").click()
            page.wait_for_timeout(300)
            assert page.evaluate("pyjoy.workflows()") == []
            assert "Pixel Ops" not in [p["name"] for p in page.evaluate("pyjoy.plugins()")]

            page.goto(url)
            page.locator("dialog", has_text="Open workflow").get_by_role("button", name="OK").click()
            expect(page.locator(".toast", has_text='Workflow "Pixel chain" opened')).to_be_visible(timeout=30_000)
            assert page.evaluate("pyjoy.workflows()") == [shared]
            assert "Pixel Ops" in [p["name"] for p in page.evaluate("pyjoy.plugins()")]
            wait_for_service_worker(page)

            # Offline, from the saved workflow: the installed plugin starts from its stored file.
            context.set_offline(True)
            page.goto(base_url)
            page.wait_for_function("window.pyjoy && pyjoy.timings.workbenchReady", timeout=30_000)
            result = page.evaluate("async () => { const [w] = await pyjoy.workflows(); return (await pyjoy.runWorkflow(w)).map((o) => [...new Float64Array(o.image._rvalue)]); }")
            ramp = [float(i) for i in range(9)]
            assert result[0] == ramp
            for got, values in zip(result[1:], expected(ramp, WORKFLOW["steps"])):
                assert got == pytest.approx(values)
            context.close()
        finally:
            for profile in profiles:
                shutil.rmtree(profile, ignore_errors=True)


def test_the_workflows_panel_builds_runs_shows_progress_and_a_failing_steps_error(page: Page, base_url: str) -> None:
    page.set_viewport_size({"width": 1400, "height": 900})
    open_app(page, f"{base_url}?w=workflows-panel")
    assert page.evaluate("(text) => pyjoy.installPlugin(text).then(() => 'ok', (e) => e.message)", PLUGIN.read_text()) == "ok"
    panel = page.locator("#workflows-panel")
    expect(panel).to_be_visible()
    panel.get_by_label("Workflow name").fill("Panel chain")
    panel.get_by_label("Set input op").select_option(label="Ramp (Pixel Ops)")
    panel.get_by_role("button", name="Set input op").click()
    panel.locator('[data-step="0"]').get_by_label("Size").fill("2")
    for op in ("Add", "Break"):
        panel.get_by_label("Add step").select_option(label=f"{op} (Pixel Ops)")
        panel.get_by_role("button", name="Add step").click()
    panel.locator('[data-step="1"]').get_by_label("Amount").fill("10")

    # The failing step shows its error; the steps before it are done and their outputs shown.
    panel.get_by_role("button", name="Run workflow").click()
    expect(panel.locator('[data-step="2"] [data-role=state]')).to_have_text(" failed: ValueError: this step fails: broken", timeout=20_000)
    expect(panel.locator('[data-step="0"] [data-role=state]')).to_have_text(" done")
    expect(panel.locator('[data-step="1"] [data-role=state]')).to_have_text(" done")
    expect(page.locator(".toast", has_text="Step 3 (Break of plugin Pixel Ops) failed")).to_be_visible()

    # Without it, the run finishes and each step's output opens in an image viewer.
    panel.locator('[data-step="2"]').get_by_role("button", name="Remove").click()
    panel.get_by_role("button", name="Save").click()
    expect(page.locator(".toast", has_text='Workflow "Panel chain" saved')).to_be_visible()
    saved = page.evaluate("pyjoy.workflows()")
    assert saved == [{"name": "Panel chain", "version": "1", "input": {"plugin": "Pixel Ops", "op": "Ramp", "params": {"size": 2}},
                      "steps": [{"plugin": "Pixel Ops", "op": "Add", "params": {"amount": 10}}]}]
    panel.get_by_role("button", name="Run workflow").click()
    expect(page.locator(".toast", has_text='Workflow "Panel chain" done: 2 steps')).to_be_visible(timeout=20_000)
    expect(page.locator(".plugin-window h2", has_text="Panel chain: 1. Add")).to_be_visible()

    # Exported as a .pyjoy-workflow.json file, and imported back under another name.
    with page.expect_download() as download:
        panel.get_by_role("button", name="Export").click()
    assert download.value.suggested_filename == "Panel_chain.pyjoy-workflow.json"
    exported = json.loads(Path(download.value.path()).read_text())
    assert exported == saved[0]
    renamed = json.dumps({**exported, "name": "Imported chain"}).encode()
    with page.expect_file_chooser() as chooser:
        panel.get_by_role("button", name="Import").click()
    chooser.value.set_files({"name": "x.pyjoy-workflow.json", "mimeType": "application/json", "buffer": renamed})
    expect(panel.get_by_label("Workflow name")).to_have_value("Imported chain")
    panel.get_by_role("button", name="Save").click()
    expect(page.locator(".toast", has_text='Workflow "Imported chain" saved')).to_be_visible()
    assert [w["name"] for w in page.evaluate("pyjoy.workflows()")] == ["Panel chain", "Imported chain"]

    # A malformed file: a clear error, nothing lost.
    with page.expect_file_chooser() as chooser:
        panel.get_by_role("button", name="Import").click()
    chooser.value.set_files({"name": "bad.pyjoy-workflow.json", "mimeType": "application/json", "buffer": b'{"name": "x", "steps": "all"}'})
    expect(page.locator(".toast", has_text="Not a valid workflow: steps must be a non-empty list")).to_be_visible()
    assert len(page.evaluate("pyjoy.workflows()")) == 2

    # An image file as the input (2x1 RGBA): the steps run on its pixels.
    panel.get_by_label("Input", exact=True).select_option("file")
    with page.expect_file_chooser() as chooser:
        panel.get_by_role("button", name="Choose an image…").click()
    chooser.value.set_files({"name": "two.png", "mimeType": "image/png", "buffer": base64.b64decode(PNG_2X1)})
    expect(panel.get_by_role("button", name="Image: two.png")).to_be_visible()
    panel.get_by_role("button", name="Run workflow").click()
    expect(page.locator(".toast", has_text='Workflow "Imported chain" done: 1 step')).to_be_visible(timeout=20_000)
    expect(panel.locator('[data-step="1"] [data-role=state]')).to_have_text(" done")
    expect(page.locator(".plugin-window h2", has_text="Imported chain: 1. Add")).to_be_visible()


def test_a_shared_workflow_whose_source_serves_another_plugin_installs_nothing(page: Page, base_url: str, tmp_path: Path) -> None:
    impostor = Path(__file__).parent / "plugins" / "hostile" / "workflows_impostor.imjoy.html"
    shutil.copy(impostor, tmp_path / "pixel_ops.imjoy.html")
    with repository_server(tmp_path) as repo:
        shared = {**WORKFLOW, "sources": {"Pixel Ops": repo + "pixel_ops.imjoy.html"}}
        page.goto(f"{base_url}?w=workflows-impostor&workflow={urllib.parse.quote(json.dumps(shared))}")
        page.locator("dialog", has_text="Open workflow").get_by_role("button", name="OK").click()
        expect(page.locator(".toast", has_text="Could not open the shared workflow")).to_contain_text(
            f"{repo}pixel_ops.imjoy.html holds the plugin Workflow Impostor, not Pixel Ops")
        names = [p["name"] for p in page.evaluate("pyjoy.plugins()")]
        assert "Workflow Impostor" not in names and "Pixel Ops" not in names
        assert page.evaluate("pyjoy.workflows()") == []


def test_the_camera_as_a_workflows_input(playwright, base_url: str) -> None:
    browser = playwright.chromium.launch(**launch_options(args=["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]))
    try:
        page = open_app(browser.new_context().new_page(), f"{base_url}?w=workflows-camera")
        assert page.evaluate("(text) => pyjoy.installPlugin(text).then(() => 'ok', (e) => e.message)", PLUGIN.read_text()) == "ok"
        panel = page.locator("#workflows-panel")
        panel.get_by_label("Workflow name").fill("Camera chain")
        panel.get_by_label("Add step").select_option(label="Invert (Pixel Ops)")
        panel.get_by_role("button", name="Add step").click()
        panel.get_by_label("Input", exact=True).select_option("camera")
        panel.get_by_role("button", name="Run workflow").click()
        expect(page.locator(".toast", has_text='Workflow "Camera chain" done: 1 step')).to_be_visible(timeout=30_000)
        expect(page.locator(".plugin-window h2", has_text="Camera chain: 1. Invert")).to_be_visible()
    finally:
        browser.close()
