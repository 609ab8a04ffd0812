// The Workflows panel: build a workflow from the ops plugins register (workflows.js), set
// each step's parameters from its form (forms.js), choose its input (an image file, one
// frame from the camera, or an op whose output is the input: a sample), run it with progress per step, each step's
// output opened in an imjoy/image window; save it in the workspace, export/import it as a
// .pyjoy-workflow.json file, and copy a ?workflow= link that shares it.
//
//   mountWorkflows(document, { workbench, tools, api, status, dialogs, chooseFiles, download });
//   // tools() -> {module, shelf, findOp} (main.js's workflowTools); api: pyjoy.api
import { fieldsElement, opFields, readFields } from "./forms.js";
import { button, el } from "../ui/dom.js";

export function mountWorkflows(doc, { workbench, tools, api, status, chooseFiles, download }) {
  const panel = doc.getElementById("workflows-panel");
  const body = doc.getElementById("workflows-body");
  // The workflow being edited: steps as {plugin, op, params}, read back from their forms on use.
  let draft = { name: "My workflow", version: "1", input: null, steps: [] };
  let inputKind = "op"; // "op": draft.input's op; "file": an image file; "camera": one frame
  let inputFile = null;
  // Each shown step's form, by the step object itself: a render builds its new forms only after
  // awaiting the ops on offer, so what is typed meanwhile is read from the old forms then (sync).
  const forms = new WeakMap(); // step -> () => params
  let renders = 0; // only the latest render builds the panel

  async function ops() {
    if (!workbench.hostStarted) return [];
    const host = await workbench.host();
    const pluginOps = host.list().filter((known) => known.state === "running" && host.plugin(known.id)?.config.ui)
      .map((known) => ({ name: known.name, ui: host.plugin(known.id).config.ui, inputs: host.plugin(known.id).config.inputs, provider: known.name }));
    return [...pluginOps, ...host.services.find({ type: "operator" })];
  }

  /** Reads what is typed in the shown forms into the draft's steps. */
  function sync() {
    for (const step of [draft.input, ...draft.steps]) if (step && forms.has(step)) step.params = forms.get(step)();
  }

  /** A copy of the draft with each form's current values as its steps' params. */
  function current() {
    sync();
    // The input op is kept while a file or the camera is the input (a given image takes its place).
    return { ...draft, input: draft.input && { ...draft.input }, steps: draft.steps.map((step) => ({ ...step })) };
  }

  function stepElement(step, index, known, label) {
    const op = known.find((each) => each.name === step.op && each.provider === step.plugin);
    // A step whose plugin is not running still shows its saved params, as plain fields.
    let fields;
    try {
      fields = op ? opFields(op) : Object.entries(step.params).map(([id, value]) => ({ id, label: id, type: typeof value === "number" ? "number" : "string", value, step: "any" }));
    } catch (error) {
      fields = [];
      status.toast(error.message, "error");
    }
    for (const each of fields) if (Object.hasOwn(step.params, each.id)) each.value = step.params[each.id];
    const box = fieldsElement(fields);
    forms.set(step, () => readFields(box, fields));
    const item = el("li", "workflow-step");
    item.dataset.step = String(index);
    const head = el("div", "workflow-step-head");
    head.append(el("strong", "", `${label} ${step.op}`), el("span", "plugin-meta", ` (${step.plugin})${op ? "" : " — not running"}`));
    const state = el("span", "workflow-state", "");
    state.dataset.role = "state";
    head.append(state);
    if (index > 0) head.append(button("Remove", () => {
      sync();
      draft.steps = draft.steps.filter((each) => each !== step);
      render();
    }, "small"));
    item.append(head, box);
    return item;
  }

  // What each chooser has selected, by its label: a render (plugins starting or stopping
  // change the ops on offer) makes new choosers, which keep the person's choice.
  const chosen = new Map();

  function opChooser(known, label, onChoose) {
    const select = el("select");
    select.setAttribute("aria-label", label);
    known.forEach((op, index) => select.append(new Option(`${op.name} (${op.provider})`, String(index))));
    const kept = [...select.options].find((option) => option.text === chosen.get(label));
    if (kept) select.value = kept.value;
    select.addEventListener("change", () => chosen.set(label, select.selectedOptions[0]?.text));
    return [select, button(label, () => {
      const op = known[Number(select.value)];
      if (op) onChoose({ plugin: op.provider, op: op.name, params: {} });
    }, "small")];
  }

  async function render() {
    const generation = ++renders;
    const known = await ops();
    const shelf = (await tools()).shelf;
    const saved = await shelf.list();
    if (generation !== renders) return; // a later render builds it
    sync(); // what was typed while the ops were awaited
    panel.hidden = known.length === 0 && saved.length === 0 && draft.steps.length === 0;

    const bar = el("div", "workflow-bar");
    const open = el("select");
    open.setAttribute("aria-label", "Saved workflows");
    open.append(new Option("Saved workflows…", ""), ...saved.map((each) => new Option(each.name, each.name)));
    open.addEventListener("change", () => {
      const chosen = saved.find((each) => each.name === open.value);
      if (chosen) load(chosen);
    });
    const name = el("input");
    name.dataset.role = "name";
    name.setAttribute("aria-label", "Workflow name");
    name.value = draft.name;
    name.addEventListener("input", () => { draft.name = name.value.trim() || draft.name; });
    bar.append(open, name,
      button("Save", act(async () => {
        const saved = await shelf.save(current());
        Object.assign(draft, { name: saved.name, version: saved.version });
        status.toast(`Workflow "${saved.name}" saved`);
        render();
      }), "small"),
      button("Export", act(async () => {
        const { module } = await tools();
        const workflow = module.parseWorkflow(current());
        download(new Blob([JSON.stringify(workflow, null, 2)], { type: "application/json" }), `${workflow.name.replace(/[^\w.-]+/g, "_")}.pyjoy-workflow.json`);
      }), "small"),
      button("Import", act(async () => {
        const file = await chooseFiles({ accept: ".json,application/json" });
        if (!file) return;
        const { module } = await tools();
        load(module.parseWorkflow(await file.text()));
        status.toast(`Workflow "${draft.name}" imported: save it to keep it`);
      }), "small"),
      button("Share", act(async () => {
        const { module } = await tools();
        const url = `${location.origin}${location.pathname}?workflow=${module.encodeWorkflow(current())}`;
        await navigator.clipboard?.writeText(url).catch(() => {});
        status.toast(`Link copied: ${url.length > 120 ? `${url.slice(0, 120)}…` : url}`);
      }), "small"));

    // The input: an op's output (a sample image) or an image file.
    const inputRow = el("div", "workflow-input");
    const kind = el("select");
    kind.setAttribute("aria-label", "Input");
    kind.append(new Option("Input from an op (a sample)", "op"), new Option("Input from an image file", "file"),
      new Option("Input from the camera (one frame)", "camera"));
    kind.value = inputKind;
    kind.addEventListener("change", () => {
      sync();
      inputKind = kind.value;
      render();
    });
    inputRow.append(kind);
    if (inputKind === "file") {
      inputRow.append(button(inputFile ? `Image: ${inputFile.name}` : "Choose an image…", act(async () => {
        inputFile = (await chooseFiles({ accept: "image/*" })) ?? inputFile;
        render();
      }), "small"));
    } else if (inputKind === "op") {
      inputRow.append(...opChooser(known, "Set input op", (step) => {
        sync();
        draft.input = step;
        render();
      }));
    }

    const list = el("ol", "workflow-steps");
    if (inputKind === "op" && draft.input) list.append(stepElement(draft.input, 0, known, "Input:"));
    draft.steps.forEach((step, index) => list.append(stepElement(step, index + 1, known, `${index + 1}.`)));

    const adder = el("div", "workflow-add");
    adder.append(...opChooser(known, "Add step", (step) => {
      sync();
      draft.steps.push(step);
      render();
    }));
    const run = button("Run workflow", act(runDraft), "");
    run.dataset.role = "run";
    body.replaceChildren(bar, inputRow, list, adder, run);
  }

  function load(workflow) {
    draft = structuredClone(workflow);
    inputKind = workflow.input ? "op" : inputKind;
    render();
  }

  async function runDraft() {
    const { module, findOp } = await tools();
    const workflow = module.parseWorkflow(current());
    const image = inputKind === "file" ? await imageOf(inputFile) : inputKind === "camera" ? await cameraFrame() : null;
    if (!image && !workflow.input) throw new Error("Set an input op, or choose an image file as the input");
    // Progress rows: the input op's row is 0; steps' rows follow (runWorkflow numbers from its first op).
    const offset = image ? 1 : 0;
    const stateOf = (index) => body.querySelector(`[data-step="${index + offset}"] [data-role=state]`);
    body.querySelectorAll("[data-role=state]").forEach((each) => { each.textContent = ""; });
    const outputs = await module.runWorkflow(workflow, image, {
      findOp,
      onProgress: ({ step, state, error }) => {
        const shown = stateOf(step);
        if (shown) {
          shown.textContent = state === "failed" ? ` failed: ${error.cause?.message ?? error.message}` : ` ${state}`;
          shown.dataset.state = state;
        }
      },
    });
    for (const [index, output] of outputs.entries()) {
      if (output.image) await api.createWindow({ name: `${workflow.name}: ${index + offset}. ${output.op}`, type: "imjoy/image", data: { image: output.image } });
    }
    status.toast(`Workflow "${workflow.name}" done: ${outputs.length} ${outputs.length === 1 ? "step" : "steps"}`);
  }

  function act(work) {
    return () => work().catch((error) => status.toast(error.message, "error"));
  }

  // Plugins starting or stopping change the ops on offer: render again, keeping what was typed.
  const refresh = () => {
    render().catch((error) => status.toast(error.message, "error"));
  };
  workbench.subscribe(refresh);
  doc.defaultView.addEventListener("pyjoy-workflows", refresh);
  render();
  return { render };
}

/** An image file's (or a bitmap's) pixels as an RGBA uint8 ndarray (ImJoy's form, as codec.js sends ImageData). */
async function imageOf(file) {
  if (!file) throw new Error("Choose an image file as the workflow's input first");
  const bitmap = file instanceof ImageBitmap ? file : await createImageBitmap(file);
  const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
  const context = canvas.getContext("2d");
  context.drawImage(bitmap, 0, 0);
  const pixels = context.getImageData(0, 0, bitmap.width, bitmap.height);
  return { _rtype: "ndarray", _rvalue: pixels.data.buffer, _rshape: [bitmap.height, bitmap.width, 4], _rdtype: "uint8" };
}

/**
 * One frame from the camera as an RGBA uint8 ndarray. The page asks the browser itself
 * (PyJoy's origin is the person's own, as for plugins' camera relay, plugins/media.js),
 * and stops the camera once the frame is taken.
 */
async function cameraFrame() {
  const stream = await navigator.mediaDevices.getUserMedia({ video: true });
  try {
    const video = document.createElement("video");
    video.muted = true;
    video.srcObject = stream;
    await video.play();
    if (!video.videoWidth) await new Promise((resolve) => video.addEventListener("loadeddata", resolve, { once: true }));
    return imageOf(await createImageBitmap(video));
  } finally {
    for (const track of stream.getTracks()) track.stop();
  }
}
