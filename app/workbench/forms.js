// Forms from ImJoy's `ui` and `inputs`, for ops (api.register({name, ui, inputs, run})) and
// form dialogs (api.showDialog({name, ui})). ImJoy's `ui` is a string or a list:
// - a string of lines (split on newlines or <br>), each prose with flow mappings in it:
//   "Threshold: {id: 'th', type: 'number', min: 0, placeholder: 128}" (YAML reads them);
// - a list of such strings, or of objects {Label: {id, type, ...}} (or {Label: "{...}"}),
//   which ImJoy turns into "Label: {...}" lines (imjoy-core src/joy.js, Joy.normalizeUI).
// `inputs` is a JSON schema whose properties are more fields (those of type object or
// array are data, ctx.data's, and get none).
//
//   const fields = uiFields(ui);                          // [{id, label, type, value, ...}]
//   const box = fieldsElement(fields, { onChange: (values) => ... });
//   readFields(box, fields);                              // {id: value}, numbers as numbers
//   const form = opForm(op, { onRun: (values) => ..., onUpdate: (values) => ... });
//   const onChange = formCallback(config);                // a form's callbacks, or null
import { parse as parseYaml } from "yaml";

const MAPPING = /\{[^{}]*\}/g; // a flow mapping; options lists hold [] but no {}
export const UPDATE_DELAY_MS = 300; // ImJoy debounces an op's update by 300 ms (imjoy-core registerOp)

/** ImJoy's ui (a string or a list) as lines of text. */
function uiLines(ui, where) {
  if (!ui) return [];
  if (typeof ui === "string") return ui.split(/<br\s*\/?>|\n/);
  if (!Array.isArray(ui)) throw new TypeError(`${where}: ui must be a string or a list, not ${typeof ui}`);
  const lines = [];
  for (const item of ui) {
    if (typeof item === "string") lines.push(item);
    else if (item && typeof item === "object" && Object.hasOwn(item, "id")) lines.push(item); // a bare {id, type}
    else if (item && typeof item === "object") {
      for (const [label, spec] of Object.entries(item)) lines.push(typeof spec === "string" ? `${label}: ${spec}` : { label, ...spec });
    } else throw new TypeError(`${where}: a ui list holds strings and {Label: {id, type}} objects, not ${JSON.stringify(item)}`);
  }
  return lines;
}

/** The fields an ImJoy ui asks for: [{id, label, type, value, min, max, step, options}]. */
export function uiFields(ui, where = "ui") {
  const fields = [];
  for (const line of uiLines(ui, where)) {
    if (typeof line === "object") {
      if (line.id === undefined) throw new TypeError(`${where}: the ui field ${JSON.stringify(line.label)} has no id`);
      fields.push(field(line.id, line.label ?? line.name ?? line.id, line));
      continue;
    }
    let start = 0;
    for (const match of String(line).matchAll(MAPPING)) {
      // The prose before a mapping is its label; prose alone is text ImJoy shows, no field.
      const label = line.slice(start, match.index).replace(/^[\s.,;]+|[\s:]+$/g, "");
      start = match.index + match[0].length;
      let spec;
      try {
        // ImJoy writes JavaScript-style mappings ({id:'sigma'}), which YAML reads only with a
        // space after each key's colon.
        spec = parseYaml(match[0].replace(/([{,]\s*)([A-Za-z_$][\w$]*)\s*:/g, "$1$2: "));
      } catch (error) {
        throw new Error(`${where}: cannot read the ui field "${match[0]}": ${error.message}`);
      }
      if (spec?.id !== undefined && spec.id !== null) fields.push(field(spec.id, label || spec.id, spec));
    }
  }
  return fields;
}

/** The fields an op asks for: its ui's, then its inputs schema's. */
export function opFields(op) {
  const fields = uiFields(op.ui, `op ${op.name}`);
  for (const [id, schema] of Object.entries(op.inputs?.properties ?? {})) {
    // An object or array (an image, a mask, a table) is data the op is given, as ImJoy
    // passes it in ctx.data, not a value a person types: no field for it.
    if (schema?.type === "object" || schema?.type === "array") continue;
    if (!fields.some((known) => known.id === id)) fields.push(field(id, schema.title ?? schema.description ?? id, schema));
  }
  return fields;
}

function field(id, label, spec) {
  const type = { integer: "number", float: "number", boolean: "checkbox", choose: "select", text: "string" }[spec.type] ?? spec.type ?? "string";
  const options = spec.options ?? spec.enum ?? null;
  return {
    id: String(id), label: String(label), type: options ? "select" : type,
    value: spec.placeholder ?? spec.default ?? spec.value ?? (options ? options[0] : ""),
    min: spec.min ?? spec.minimum, max: spec.max ?? spec.maximum, step: spec.step ?? (spec.type === "integer" ? 1 : "any"), options,
  };
}

/**
 * The function a form's changed values go to, from its config's callbacks, or null: Joy's
 * onupdate({data: values}) (imjoy-core src/joy.js, Op.update), and update({config: values,
 * data: {}}) as an op's update gets them (imjoy-core pluginManager joy2plugin). Used by
 * showDialog's form and by the imjoy/joy window (windows/builtin.js).
 */
export function formCallback(config) {
  const calls = [];
  if (typeof config?.onupdate === "function") calls.push((values) => config.onupdate({ data: values }));
  if (typeof config?.update === "function") calls.push((values) => config.update({ config: values, data: {} }));
  return calls.length ? (values) => Promise.all(calls.map((call) => call(values))) : null;
}

/** Labelled inputs for the fields; onChange(values) after a field changes. */
export function fieldsElement(fields, { onChange = null } = {}) {
  const box = document.createElement("div");
  box.className = "form-fields";
  for (const spec of fields) {
    const label = document.createElement("label");
    label.className = "field";
    label.textContent = spec.label;
    let input;
    if (spec.type === "select") {
      input = document.createElement("select");
      for (const option of spec.options) input.append(new Option(String(option), String(option)));
      input.value = String(spec.value);
    } else {
      input = document.createElement("input");
      input.type = { number: "number", checkbox: "checkbox", color: "color" }[spec.type] ?? "text";
      if (input.type === "checkbox") input.checked = Boolean(spec.value);
      else input.value = String(spec.value ?? "");
      if (spec.min !== undefined) input.min = String(spec.min);
      if (spec.max !== undefined) input.max = String(spec.max);
      if (input.type === "number") input.step = String(spec.step);
    }
    input.name = spec.id;
    input.dataset.field = spec.id;
    label.append(input);
    box.append(label);
  }
  if (onChange) {
    let timer = null;
    box.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => onChange(readFields(box, fields)), UPDATE_DELAY_MS);
    });
  }
  return box;
}

/** The values in the fields' inputs: {id: value}; numbers as numbers, checkboxes as booleans. */
export function readFields(box, fields) {
  const values = {};
  for (const spec of fields) {
    const input = [...box.querySelectorAll("[data-field]")].find((element) => element.dataset.field === spec.id);
    values[spec.id] = spec.type === "checkbox" ? input.checked : spec.type === "number" ? Number(input.value) : input.value;
  }
  return values;
}

/** A <form> for the op: its fields and a Run button; onRun(values) on submit, onUpdate(values) on a change. */
export function opForm(op, { onRun, onUpdate = null }) {
  const form = document.createElement("form");
  form.className = "op-form";
  const title = document.createElement("h3");
  title.textContent = op.name;
  const fields = opFields(op);
  const box = fieldsElement(fields, { onChange: onUpdate });
  const run = document.createElement("button");
  run.type = "submit";
  run.className = "small";
  run.textContent = "Run";
  form.append(title, box, run);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    run.disabled = true;
    try {
      await onRun(readFields(box, fields));
    } finally {
      run.disabled = false;
    }
  });
  return form;
}
