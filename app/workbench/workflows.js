// Workflows: ops that plugins register (api.register({name, ui, inputs, outputs, run}))
// chained, each step's output image the next step's input. A workflow is plain JSON:
//
//   {name: "Edges", version: "1",
//    input: {plugin: "Samples", op: "Gradient", params: {size: 4}},   // optional: an op whose output is the input
//    steps: [{plugin: "Edges and filters", op: "Edges and filters", params: {filter: "sobel"}}, ...],
//    sources: {"Samples": "https://host/samples.imjoy.html"}}         // optional: where to install a plugin from
//
//   const workflow = parseWorkflow(textOrObject);        // validated; a WorkflowFormatError names what is wrong
//   const outputs = await runWorkflow(workflow, image, { findOp: opFinder(host), onProgress });
//   // a step that fails rejects with a WorkflowStepError: .step, .plugin, .op, .outputs (the earlier ones)
//   encodeWorkflow(workflow) / decodeWorkflow(param);   // the ?workflow= value (JSON, URI-encoded)
//
// How an op's output maps to the next step's input: an ndarray (ImJoy's {_rtype: "ndarray"})
// is the image; else an object's `image` field; else its first field that is an ndarray.
// A step's output without an image is kept, but no step can follow it.
//
// A workflow is data, never code: it names plugins and ops and gives them JSON values, so
// one from a URL (untrusted) is validated field by field and runs only ops already installed.

const MAX_STEPS = 100;
const MAX_TEXT = 200;
const WORKFLOW_KEYS = new Set(["name", "version", "steps", "input", "description", "sources"]);
const STEP_KEYS = new Set(["plugin", "op", "params"]);

/** A workflow's JSON is not a workflow: the message names the field and what is wrong. */
export class WorkflowFormatError extends Error {
  constructor(message) {
    super(`Not a valid workflow: ${message}`);
    this.name = "WorkflowFormatError";
    this.code = "bad-workflow";
  }
}

/** A step failed: the run stopped there; `outputs` holds the steps' outputs before it. */
export class WorkflowStepError extends Error {
  constructor(index, step, cause, outputs) {
    super(`Step ${index + 1} (${step.op} of plugin ${step.plugin}) failed: ${cause?.message ?? cause}`);
    this.name = "WorkflowStepError";
    this.code = "workflow-step-failed";
    this.step = index;
    this.plugin = step.plugin;
    this.op = step.op;
    this.outputs = outputs;
    this.cause = cause;
  }
}

function text(value, where) {
  if (typeof value !== "string" || !value.trim()) throw new WorkflowFormatError(`${where} must be a non-empty string, not ${JSON.stringify(value)}`);
  if (value.length > MAX_TEXT) throw new WorkflowFormatError(`${where} is longer than ${MAX_TEXT} characters`);
  return value;
}

/** A step's params: a flat object of JSON scalars, as a form gives them. */
function params(value, where) {
  if (value === undefined) return {};
  if (!value || typeof value !== "object" || Array.isArray(value)) throw new WorkflowFormatError(`${where} must be an object of values, not ${JSON.stringify(value)}`);
  const out = Object.create(null);
  for (const [key, item] of Object.entries(value)) {
    text(key, `${where}: a parameter name`);
    const ok = item === null || ["string", "number", "boolean"].includes(typeof item);
    if (!ok) throw new WorkflowFormatError(`${where}.${key} must be a string, number, boolean or null, not ${JSON.stringify(item)}`);
    if (typeof item === "number" && !Number.isFinite(item)) throw new WorkflowFormatError(`${where}.${key} must be a finite number`);
    out[key] = item;
  }
  return { ...out };
}

/** {plugin name: http(s) URL of its file}: where a plugin the workflow needs can be installed from. */
function sources(value) {
  if (typeof value !== "object" || Array.isArray(value)) throw new WorkflowFormatError(`sources must be an object {plugin name: URL}, not ${JSON.stringify(value)}`);
  const out = {};
  for (const [name, url] of Object.entries(value)) {
    text(name, "sources: a plugin name");
    let parsed;
    try {
      parsed = new URL(text(url, `sources["${name}"]`));
    } catch (error) {
      if (error instanceof WorkflowFormatError) throw error;
      throw new WorkflowFormatError(`sources["${name}"] is not a URL: ${JSON.stringify(url)}`);
    }
    if (!["http:", "https:"].includes(parsed.protocol)) throw new WorkflowFormatError(`sources["${name}"] must be an http(s) URL, not ${parsed.protocol}`);
    out[name] = parsed.href;
  }
  return out;
}

function step(value, where) {
  if (!value || typeof value !== "object" || Array.isArray(value)) throw new WorkflowFormatError(`${where} must be an object {plugin, op, params}, not ${JSON.stringify(value)}`);
  for (const key of Object.keys(value)) if (!STEP_KEYS.has(key)) throw new WorkflowFormatError(`${where} has an unknown field "${key}" (expected plugin, op, params)`);
  return { plugin: text(value.plugin, `${where}.plugin`), op: text(value.op, `${where}.op`), params: params(value.params, `${where}.params`) };
}

/** The workflow in `value` (JSON text or an object), checked and copied; throws WorkflowFormatError. */
export function parseWorkflow(value) {
  let data = value;
  if (typeof value === "string") {
    try {
      data = JSON.parse(value);
    } catch (error) {
      throw new WorkflowFormatError(`it is not JSON (${error.message})`);
    }
  }
  if (!data || typeof data !== "object" || Array.isArray(data)) throw new WorkflowFormatError(`expected an object {name, version, steps}, not ${JSON.stringify(data)?.slice(0, 80)}`);
  for (const key of Object.keys(data)) if (!WORKFLOW_KEYS.has(key)) throw new WorkflowFormatError(`unknown field "${key}" (expected ${[...WORKFLOW_KEYS].join(", ")})`);
  if (!Array.isArray(data.steps) || data.steps.length === 0) throw new WorkflowFormatError("steps must be a non-empty list of {plugin, op, params}");
  if (data.steps.length > MAX_STEPS) throw new WorkflowFormatError(`it has ${data.steps.length} steps; at most ${MAX_STEPS}`);
  const workflow = {
    name: text(data.name, "name"),
    version: data.version === undefined ? "1" : text(String(data.version), "version"),
    steps: data.steps.map((each, index) => step(each, `steps[${index}]`)),
    input: data.input === undefined || data.input === null ? null : step(data.input, "input"),
  };
  if (data.sources !== undefined && data.sources !== null) workflow.sources = sources(data.sources);
  if (data.description !== undefined) workflow.description = typeof data.description === "string" ? data.description.slice(0, 2000) : text(data.description, "description");
  return workflow;
}

/** The plugins a workflow needs, each once, in order. */
export function pluginsOf(workflow) {
  return [...new Set([workflow.input, ...workflow.steps].filter(Boolean).map((each) => each.plugin))];
}

const isNdarray = (value) => Boolean(value) && typeof value === "object" && value._rtype === "ndarray";

/** The image in an op's output, or undefined (see the file-top comment for the rule). */
export function outputImage(result) {
  if (isNdarray(result)) return result;
  if (!result || typeof result !== "object") return undefined;
  if (result.image !== undefined && result.image !== null) return result.image;
  return Object.values(result).find(isNdarray);
}

/**
 * Runs the workflow on `input` (an image, or null to use the workflow's input op). Each
 * step's op gets ctx {config: {...params, type: op}, data: {image}} as ImJoy's ops do.
 * findOp(plugin, op) -> async (ctx) => result, or throws naming what is missing.
 * onProgress({step, of, state: "running"|"done"|"failed", output, error}).
 * Resolves to [{plugin, op, output, image}] per step (the input op's first, when used).
 */
export async function runWorkflow(workflow, input, { findOp, onProgress = () => {} }) {
  onProgress ??= () => {};
  const steps = input === null || input === undefined
    ? (workflow.input ? [workflow.input, ...workflow.steps] : null)
    : workflow.steps;
  if (!steps) throw new WorkflowFormatError("it has no input op, and no input image was given");
  const outputs = [];
  let image = input ?? undefined;
  for (const [index, each] of steps.entries()) {
    onProgress({ step: index, of: steps.length, state: "running" });
    try {
      if (index > 0 && image === undefined) throw new Error(`the step before it returned no image (${describe(outputs.at(-1).output)})`);
      const run = await findOp(each.plugin, each.op);
      const output = await run({ config: { ...each.params, type: each.op }, data: image === undefined ? {} : { image: copy(image) } });
      image = outputImage(output);
      outputs.push({ plugin: each.plugin, op: each.op, output, image });
      onProgress({ step: index, of: steps.length, state: "done", output });
    } catch (error) {
      const failure = new WorkflowStepError(index, each, error, outputs);
      onProgress({ step: index, of: steps.length, state: "failed", error: failure });
      throw failure;
    }
  }
  return outputs;
}

// Sending an ndarray to a plugin transfers its buffer (the RPC's codec.js), which would
// empty the step output kept here: each step gets a copy.
function copy(image) {
  if (!isNdarray(image)) return image;
  const buffer = ArrayBuffer.isView(image._rvalue) ? image._rvalue.slice().buffer : image._rvalue.slice(0);
  return { ...image, _rvalue: buffer };
}

function describe(value) {
  if (value === undefined || value === null) return String(value);
  if (typeof value !== "object") return typeof value;
  return `an object with ${Object.keys(value).join(", ") || "no fields"}`;
}

/**
 * findOp for runWorkflow on a plugin host: the op `op` registered by the running plugin
 * named `plugin` (as the workbench's ops list shows them: registered ops, and a running
 * plugin whose <config> has a ui as an op of its own name). An op without run uses its
 * plugin's run (imjoy-core registerOp), which ctx.config.type tells which op it is.
 */
export function opFinder(host) {
  return async (plugin, op) => {
    const id = host.idOf(plugin);
    const running = id && host.plugin(id);
    if (!running) throw new Error(`the plugin ${plugin} is not running (install it, then start it)`);
    const registered = host.services.find({ type: "operator", providerId: id }).find((known) => known.name === op);
    const run = registered?.run ?? ((registered || (op === plugin && running.config.ui)) ? running.api?.run : undefined);
    if (!registered && !(op === plugin && running.config.ui)) throw new Error(`the plugin ${plugin} has registered no op named ${op}`);
    if (typeof run !== "function") throw new Error(`neither the op ${op} nor its plugin ${plugin} has a run function`);
    return run;
  };
}

/**
 * The workflows saved in a workspace, in the workspace store's state (store.js) under
 * "workflows:<workspace>", kept by name (saving a name again replaces it).
 */
export function workflowShelf(store, workspace) {
  const key = `workflows:${workspace}`;
  const all = async () => (await store.getState(key)) ?? [];
  return {
    list: all,
    async get(name) {
      return (await all()).find((known) => known.name === name) ?? null;
    },
    async save(value) {
      const workflow = parseWorkflow(value);
      await store.setState(key, [...(await all()).filter((known) => known.name !== workflow.name), workflow]);
      return workflow;
    },
    async remove(name) {
      await store.setState(key, (await all()).filter((known) => known.name !== name));
    },
  };
}

/** The ?workflow= value for a workflow: its JSON, URI-encoded. */
export function encodeWorkflow(workflow) {
  return encodeURIComponent(JSON.stringify(parseWorkflow(workflow)));
}

/** The workflow in a ?workflow= value (URLSearchParams has decoded it already, or not). */
export function decodeWorkflow(param) {
  let textValue = param;
  if (/^%7B/i.test(textValue.trim())) {
    try {
      textValue = decodeURIComponent(textValue);
    } catch {
      throw new WorkflowFormatError("the URL's workflow= value is not valid URI encoding");
    }
  }
  return parseWorkflow(textValue);
}
