// The plugin config: the types PyJoy runs, the fields ImJoy defines and their defaults,
// and the checks that turn a parsed <config> (or a .py/.js front matter) into the config a
// loader can trust. format.js calls normalizeConfig(); nothing here reads the file itself.
//
// Behaviour follows imjoy-core (src/pluginManager.js `parsePluginCode`, src/api.js
// `CONFIGURABLE_FIELDS` and `upgradePluginAPI`) so that existing ImJoy plugins load as
// they are; where PyJoy is stricter, the error says what to write instead.

export class PluginFormatError extends Error {
  // block: "file", "config", "script", "window", "style", "docs", "attachment", ...
  // line: 1-based line in the plugin FILE (not in the block), so an editor can jump to it.
  constructor(block, line, detail) {
    super(`${block} (line ${line}): ${detail}`);
    this.name = "PluginFormatError";
    this.block = block;
    this.line = line;
    this.detail = detail;
  }
}

export const PLUGIN_TYPES = ["web-python", "web-worker", "window", "iframe", "native-python", "web-python-window"];

// The language a type's <script> is written in when it does not say. A window or iframe
// plugin may be written in Python instead (<script lang="python">): its frame runs it with
// PyScript, as ImJoy's web-python-window (sandbox/python-window.js).
export function languageOf(type) {
  return type === "web-python" || type === "native-python" || type === "web-python-window" ? "python" : "javascript";
}

/** Whether a plugin of this type may be written in Python though its default is JavaScript. */
export function mayBePython(type) {
  return type === "window" || type === "iframe";
}

// Fields that may hold one value per tag, e.g. "requirements": {"CPU": [...], "GPU": [...]}
// (imjoy-core src/api.js CONFIGURABLE_FIELDS).
export const CONFIGURABLE_FIELDS = [
  "env", "requirements", "dependencies", "icon", "ui", "type", "flags", "labels", "cover", "base_frame",
];

// What a field is when the file leaves it out: ImJoy's templates for a new plugin
// (imjoy-core src/plugins/*Template.imjoy.html) and parsePluginCode's own defaults
// (runnable, requirements). A function, so no two configs share an array.
function defaults() {
  return {
    version: "0.1.0",
    api_version: "0.1.8",
    description: "",
    tags: [],
    ui: "",
    inputs: null,
    outputs: null,
    flags: [],
    icon: "extension",
    cover: "",
    labels: [],
    env: "",
    permissions: [],
    requirements: [],
    dependencies: [],
    defaults: {},
    base_frame: null,
    runnable: true,
  };
}

/**
 * Where fields are in the file, for error lines. `lines` are the config's text lines,
 * lines[0] being file line `first`; `fallback` is the line errors use when a field is
 * missing or cannot be found (the <config> tag, or the front matter's opening line).
 */
export function locator(lines, first, fallback) {
  const indent = (l) => l.length - l.trimStart().length;
  const lineOf = (key) => {
    // A YAML key at the start of a line, or a JSON key anywhere in it.
    const escaped = key.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    const re = new RegExp(`(^\\s*|["'])${escaped}["']?\\s*:`);
    // The least indented match: a top-level key, not the same name nested in a value.
    let best = -1;
    lines.forEach((l, i) => {
      if (re.test(l) && (best < 0 || indent(l) < indent(lines[best]))) best = i;
    });
    return best < 0 ? fallback : first + best;
  };
  const lineOfText = (text, afterKey) => {
    const from = Math.max(0, lineOf(afterKey) - first);
    const i = lines.findIndex((l, n) => n >= from && l.includes(text));
    return i < 0 ? lineOf(afterKey) : first + i;
  };
  return { line: fallback, lineOf, lineOfText };
}

const isMapping = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

function describe(v) {
  if (v === null || v === undefined) return "nothing";
  return Array.isArray(v) ? "a list" : `a ${typeof v}`;
}

// "0.1.1" <= "0.1.2", numerically per part (imjoy-core src/utils.js compareVersions).
function versionAtMost(version, max) {
  const a = String(version).split(".").map((p) => parseInt(p, 10) || 0);
  const b = max.split(".").map((p) => parseInt(p, 10) || 0);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    if ((a[i] || 0) !== (b[i] || 0)) return (a[i] || 0) < (b[i] || 0);
  }
  return true;
}

/**
 * Returns the config a loader uses: the tag chosen, per-tag fields resolved, pre-0.1.2
 * configs upgraded, name/type/requirements checked, defaults filled, unknown fields kept.
 * Throws PluginFormatError with the file line of the offending field.
 *
 * options.tag: the tag to load (default: the first of config.tags, as ImJoy does).
 * options.defaultType: the type when the config names none (plain .py/.js files).
 */
export function normalizeConfig(raw, where, { tag, defaultType, python = false } = {}) {
  const fail = (line, detail) => new PluginFormatError("config", line, detail);
  if (!isMapping(raw)) {
    throw fail(where.line, `expected a mapping of fields (name, type, ...), got ${describe(raw)}`);
  }
  const config = { ...raw };

  // api_version <= 0.1.1 named the type "mode" and used older type names (imjoy-core
  // src/api.js upgradePluginAPI).
  if (config.api_version !== undefined && versionAtMost(config.api_version, "0.1.1")) {
    config.type = config.type || config.mode;
    delete config.mode;
    const renamed = { pyworker: "native-python", webworker: "web-worker", webpython: "web-python" };
    config.type = renamed[config.type] || config.type;
  }
  // YAML reads `version: 1.0` as a number; ImJoy compares versions as strings.
  for (const key of ["version", "api_version"]) {
    if (typeof config[key] === "number") config[key] = String(config[key]);
  }

  const tags = config.tags ?? [];
  if (!Array.isArray(tags) || !tags.every((t) => typeof t === "string")) {
    throw fail(where.lineOf("tags"), `"tags" must be a list of strings, got ${describe(tags)}`);
  }
  if (tag !== undefined && tag !== null && !tags.includes(tag)) {
    throw fail(where.lineOf("tags"), tags.length
      ? `tag "${tag}" is not one of this plugin's tags; expected one of ${tags.join(", ")}`
      : `tag "${tag}" was asked for, but this plugin has no "tags"`);
  }
  const chosen = tag ?? tags[0] ?? null;

  // A configurable field holding an object is a value per tag (imjoy-core parsePluginCode).
  for (const key of CONFIGURABLE_FIELDS) {
    const value = config[key];
    if (!isMapping(value)) continue;
    if (chosen === null) {
      const keys = Object.keys(value);
      throw fail(where.lineOf(key), `"${key}" has a value per tag (${keys.join(", ")}) but the config has no "tags"; `
        + `expected "tags": ${JSON.stringify(keys)}`);
    }
    config[key] = Object.hasOwn(value, chosen) ? value[chosen] : undefined; // a tag it does not list leaves the field to its default, as in ImJoy
  }

  if (typeof config.name !== "string" || !config.name.trim()) {
    throw fail(config.name === undefined ? where.line : where.lineOf("name"),
      config.name === undefined ? `missing "name"; every plugin needs one` : `"name" must be a non-empty string, got ${describe(config.name)}`);
  }
  if (config.name.includes("/")) { // imjoy-core validatePluginConfig refuses these too
    throw fail(where.lineOf("name"), `plugin name "${config.name}" contains "/"; expected a name without "/"`);
  }

  config.type = config.type ?? defaultType;
  if (config.type === undefined) {
    throw fail(where.line, `missing "type"; expected one of ${PLUGIN_TYPES.join(", ")}`);
  }
  if (!PLUGIN_TYPES.includes(config.type)) {
    throw fail(where.lineOf("type"), `unknown plugin type ${JSON.stringify(config.type)}; expected one of ${PLUGIN_TYPES.join(", ")}`);
  }

  // A window written in Python (`python`: the file has a Python script) takes a Python
  // plugin's requirements: packages, and the web prefixes its frame loads.
  config.requirements = checkRequirements(config.requirements, config.type, where, python && mayBePython(config.type));

  for (const [key, value] of Object.entries(defaults())) {
    if (config[key] === undefined) config[key] = value;
  }
  config.runnable = config.runnable !== false; // ImJoy: runnable unless explicitly false
  config.tag = chosen;
  return config;
}

// --- requirements ---------------------------------------------------------------------

// PEP 508 without URLs: name, [extras], version specifiers (bare or in parentheses), ;marker.
const NAME = "[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?";
const SPEC = "(?:===|==|~=|!=|<=|>=|<|>)\\s*[A-Za-z0-9.*+!_-]+";
const SPECS = `${SPEC}(?:\\s*,\\s*${SPEC})*`;
const PEP508 = new RegExp(
  `^${NAME}\\s*(?:\\[\\s*(?:${NAME}(?:\\s*,\\s*${NAME})*)?\\s*\\])?\\s*(?:\\(\\s*${SPECS}\\s*\\)|${SPECS})?\\s*(?:;.+)?$`,
);
const WHEEL = /^\S+\.whl(?:[?#]\S*)?$/i;
// A URL or a path a page or worker can fetch: https://, //host, /, ./, ../
const FETCHABLE = /^(?:https?:\/\/|\/\/|\/|\.\.?\/)\S+$/i;
// What an unprefixed web requirement may end with (imjoy-rpc loadRequirementsIn*).
const WEB_EXTENSION = /\.(?:m?js|css)(?:[?#]\S*)?$/i;

const EXPECTED = {
  "web-python": `a package name with an optional version (e.g. "numpy", "scikit-image>=0.22"), `
    + `a URL to a .whl file, or "js:", "mjs:", "css:", "cache:" followed by a URL`,
  "web-worker": `a script URL (https://...), or "js:", "mjs:", "cache:" followed by a URL`,
  window: `a script or stylesheet URL (https://...), or "js:", "mjs:", "css:", "cache:" followed by a URL`,
};
EXPECTED.iframe = EXPECTED.window;
EXPECTED["web-python-window"] = EXPECTED["web-python"];

// Why `req` cannot be loaded by a plugin of `type`, or null when it can. Prefixes as
// imjoy-rpc's loaders read them: css: a stylesheet, js: a classic script, mjs: an ES
// module, cache: only cached for offline use.
function requirementProblem(req, type) {
  const prefixed = /^(js|mjs|css|cache):(.*)$/is.exec(req);
  const prefix = prefixed ? prefixed[1].toLowerCase() : null;
  const target = prefixed ? prefixed[2].trim() : req.trim();
  const isCss = prefix === "css" || (!prefix && /\.css(?:[?#]\S*)?$/i.test(target));
  // A web-worker plugin's css: is an error, as in imjoy-rpc's loadRequirementsInWebworker;
  // ImJoy's web-python runtime accepted one, so PyJoy's skips it, saying so in Messages.
  if (isCss && type === "web-worker") return "it runs in a worker, and workers cannot load CSS";
  if (prefix) return FETCHABLE.test(target) || WEB_EXTENSION.test(target) ? null : `"${prefix}:" must be followed by a URL`;
  if (type === "web-python" || type === "web-python-window") return PEP508.test(target) || WHEEL.test(target) ? null : "";
  return (FETCHABLE.test(target) || WEB_EXTENSION.test(target)) && !/\s/.test(target) ? null : "";
}

function checkRequirements(value, type, where, pythonWindow = false) {
  // ImJoy accepts a single string as well as a list.
  const list = value === undefined || value === null ? [] : typeof value === "string" ? [value] : value;
  if (!Array.isArray(list)) {
    throw new PluginFormatError("config", where.lineOf("requirements"), `"requirements" must be a list of strings, got ${describe(value)}`);
  }
  for (const req of list) {
    if (typeof req !== "string" || !req.trim()) {
      throw new PluginFormatError("config", where.lineOf("requirements"), `requirement ${JSON.stringify(req)} is not a non-empty string`);
    }
    // native-python requirements (pip:, conda:, repo:, cmd:, bare pip names) are the
    // native engine's to interpret.
    if (type === "native-python") continue;
    const rules = pythonWindow ? "web-python-window" : type;
    const problem = requirementProblem(req, rules);
    if (problem !== null) {
      const why = problem ? `: ${problem}` : "";
      throw new PluginFormatError("config", where.lineOfText(req, "requirements"),
        `requirement ${JSON.stringify(req)} is not valid for a ${pythonWindow ? `Python ${type}` : type} plugin${why}; expected ${EXPECTED[rules]}`);
    }
  }
  return list;
}
