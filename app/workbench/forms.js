// Forms for ops (api.register({name, ui, inputs, run})): ImJoy describes an op's fields in
// `ui`, lines like "Threshold: {id: 'th', type: 'number', min: 0, placeholder: 128}" (a
// label, then a flow mapping, which YAML reads), or in `inputs`, a JSON schema whose
// properties are the fields. Running the op calls run({config: {id: value}, data: {}}).
//
//   const form = opForm(op, { onRun: (config) => op.run({ config, data: {} }) });
import { parse as parseYaml } from "yaml";

/** The fields an op asks for: [{id, label, type, value, min, max, step, options}]. */
export function opFields(op) {
  const fields = [];
  const lines = Array.isArray(op.ui) ? op.ui : op.ui ? String(op.ui).split(/<br\s*\/?>|\n/) : [];
  for (const line of lines) {
    if (line && typeof line === "object") {
      fields.push(field(line.id, line.name ?? line.id, line));
      continue;
    }
    const match = String(line).match(/^\s*([^{]*?)\s*:?\s*(\{.*\})\s*$/s);
    if (!match) continue; // prose in the ui string: ImJoy shows it as text; a form needs none
    let spec;
    try {
      spec = parseYaml(match[2]);
    } catch (error) {
      throw new Error(`op ${op.name}: cannot read the ui field "${line}": ${error.message}`);
    }
    if (spec?.id) fields.push(field(spec.id, match[1] || spec.id, spec));
  }
  for (const [id, schema] of Object.entries(op.inputs?.properties ?? {})) {
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

/** A <form> for the op: its fields and a Run button; onRun(config) on submit. */
export function opForm(op, { onRun }) {
  const form = document.createElement("form");
  form.className = "op-form";
  const title = document.createElement("h3");
  title.textContent = op.name;
  form.append(title);
  const fields = opFields(op);
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
      input.type = spec.type === "number" ? "number" : spec.type === "checkbox" ? "checkbox" : "text";
      if (input.type === "checkbox") input.checked = Boolean(spec.value);
      else input.value = String(spec.value ?? "");
      if (spec.min !== undefined) input.min = String(spec.min);
      if (spec.max !== undefined) input.max = String(spec.max);
      if (input.type === "number") input.step = String(spec.step);
    }
    input.name = spec.id;
    label.append(input);
    form.append(label);
  }
  const run = document.createElement("button");
  run.type = "submit";
  run.className = "small";
  run.textContent = "Run";
  form.append(run);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const config = {};
    for (const spec of fields) {
      const input = form.elements[spec.id];
      config[spec.id] = spec.type === "checkbox" ? input.checked : spec.type === "number" ? Number(input.value) : input.value;
    }
    run.disabled = true;
    try {
      await onRun(config);
    } finally {
      run.disabled = false;
    }
  });
  return form;
}
