// Reads a plugin file into a plain, structured-cloneable object. Runs on the page's main
// thread (no Python here); the result can be posted to a worker as it is.
//
//   import { parsePlugin, PluginFormatError } from "./plugins/format.js";
//   const plugin = parsePlugin(text, { filename: "Unet.imjoy.html" });  // or { url }, { tag }
//   plugin.config.name; plugin.script.code; plugin.script.line;  // line: where code starts in the file
//
// Formats:
// - ImJoy (.imjoy.html, .html, or text with a <config> block): top-level blocks <config
//   lang="json|yaml">, <script lang="python|javascript"> (the plugin type's language; a
//   window or iframe plugin may be Python instead; a Python plugin other than a
//   native-python one may have javascript ones too), <window>, <style>, <docs>,
//   <attachment name="...">, <link>. A block may carry tag="..." to be kept only when that
//   tag is loaded (config.tags, first one by default).
// - Plain .py / .js: a front matter of YAML lines between "# ---" (or "// ---") lines, each
//   prefixed "# " (or "// "); the rest of the file is the script.
//
// Result: {format, config, script: {lang, code, line, attrs}, scripts: [every kept
// <script>, in file order, as ImJoy runs them], window: {html, line, attrs} | null,
// windows: [...], style: {css, line, attrs} | null, styles: [...], links: [{attrs, line}],
// docs: {markdown, line} | null, attachments: {name: {text, line}}}.
// A malformed file throws PluginFormatError (.block, .line in the file, .message).

import { parse as parseYaml } from "yaml";
import { PluginFormatError, languageOf, locator, mayBePython, normalizeConfig } from "./config.js";

export { PluginFormatError };

// A line of Python that imports pyjoy.onnx: `import pyjoy.onnx`, `from pyjoy.onnx import ...`,
// `from pyjoy import onnx` (indented too: inside a function).
const IMPORTS_PYJOY_ONNX = /^[ \t]*(?:import[ \t]+pyjoy\.onnx\b|from[ \t]+pyjoy\.onnx\b|from[ \t]+pyjoy[ \t]+import[ \t(]+(?:[\w \t,]*[ \t,(])?onnx\b)/m;

/** Whether the parsed plugin's Python imports pyjoy.onnx (its sandbox may load onnxruntime-web early). */
export function importsPyjoyOnnx(plugin) {
  return (plugin.scripts ?? [plugin.script]).some((script) => script?.lang === "python" && IMPORTS_PYJOY_ONNX.test(script.code));
}

export function parsePlugin(text, { filename, url, tag } = {}) {
  // One line ending everywhere, so line numbers are the same whatever the file used.
  text = String(text ?? "").replace(/^\uFEFF/, "").replace(/\r\n?/g, "\n");
  if (!text.trim()) {
    throw new PluginFormatError("file", 1, "the plugin file is empty; expected an ImJoy plugin "
      + "(<config> and <script> blocks) or a .py/.js file with a front matter");
  }
  const format = detectFormat(text, filename || url || "");
  return format === "imjoy" ? parseImJoy(text, tag) : parsePlain(text, format, tag);
}

function detectFormat(text, name) {
  const path = name.split(/[?#]/)[0].toLowerCase();
  if (path.endsWith(".html") || path.endsWith(".htm")) return "imjoy";
  if (path.endsWith(".py")) return "py";
  if (path.endsWith(".js")) return "js";
  // No telling name (a gist's raw URL, pasted text): look at the text.
  if (/<config[\s>]/i.test(text)) return "imjoy";
  const first = text.split("\n").find((l) => l.trim()).trim();
  if (first === "# ---") return "py";
  if (first === "// ---") return "js";
  throw new PluginFormatError("file", 1, `cannot tell the plugin format of ${name ? JSON.stringify(name) : "this text"}; `
    + `expected an ImJoy plugin with a <config> block, or a .py/.js file starting with a "# ---" / "// ---" front matter`);
}

const lineAt = (text, index) => text.slice(0, index).split("\n").length;

// --- ImJoy format ---------------------------------------------------------------------

// Blocks whose content is text, closed by the first </name> (as HTML does for <script>
// and <style>): markdown or code in them may hold any "<".
const TEXT_BLOCKS = new Set(["config", "script", "style", "docs", "attachment", "textarea"]);
// Inside HTML (<window>), elements whose content is skipped when looking for the close.
const RAW_ELEMENTS = new Set(["script", "style", "textarea"]);
const VOID_ELEMENTS = new Set(["link", "meta", "br", "hr", "img", "input", "base"]);
const OPEN_TAG = /<([a-zA-Z][\w.:-]*)((?:\s+[^\s"'<>/=]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?)*)\s*(\/?)>/y;
const ATTRIBUTE = /([^\s"'<>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;

function attributes(source) {
  const attrs = {};
  for (const m of source.matchAll(ATTRIBUTE)) attrs[m[1].toLowerCase()] = m[2] ?? m[3] ?? m[4] ?? "";
  return attrs;
}

// Where the block <type> whose content starts at `from` ends: {end, after} or null.
function findClose(text, type, from) {
  if (TEXT_BLOCKS.has(type)) {
    const close = new RegExp(`</${type}\\s*>`, "ig");
    close.lastIndex = from;
    const m = close.exec(text);
    return m && { end: m.index, after: close.lastIndex };
  }
  // HTML: only this block's own closing tag ends it, so count nested <type>s and skip
  // comments and <script>/<style> bodies (their JavaScript may say "</window>").
  const tags = /<!--|<(\/?)([a-zA-Z][\w.:-]*)[^>]*>/g;
  tags.lastIndex = from;
  let depth = 1;
  for (let m; (m = tags.exec(text));) {
    if (m[0] === "<!--") {
      const end = text.indexOf("-->", tags.lastIndex);
      if (end < 0) return null;
      tags.lastIndex = end + 3;
      continue;
    }
    const name = m[2].toLowerCase();
    const selfClosing = m[0].endsWith("/>");
    if (!m[1] && !selfClosing && RAW_ELEMENTS.has(name)) {
      const inner = findClose(text, name, tags.lastIndex);
      if (!inner) {
        throw new PluginFormatError(type, lineAt(text, m.index), `<${name}> inside <${type}> is opened but never closed; expected </${name}>`);
      }
      tags.lastIndex = inner.after;
    } else if (name === type && m[1] && --depth === 0) {
      return { end: m.index, after: tags.lastIndex };
    } else if (name === type && !m[1] && !selfClosing) {
      depth++;
    }
  }
  return null;
}

// The top-level blocks in file order: {type, attrs, tagLine, line, body}.
function scanBlocks(text) {
  const blocks = [];
  for (let i = text.indexOf("<"); i >= 0; i = text.indexOf("<", i)) {
    if (text.startsWith("<!--", i)) { // a commented-out block is not a block
      const end = text.indexOf("-->", i + 4);
      if (end < 0) throw new PluginFormatError("file", lineAt(text, i), "a comment <!-- is opened but never closed; expected -->");
      i = end + 3;
      continue;
    }
    OPEN_TAG.lastIndex = i;
    const open = OPEN_TAG.exec(text);
    if (!open) { // <!DOCTYPE>, a stray </tag>, or a "<" in text between blocks
      i += 1;
      continue;
    }
    const type = open[1].toLowerCase();
    const start = OPEN_TAG.lastIndex;
    const block = { type, attrs: attributes(open[2]), tagLine: lineAt(text, i) };
    if (open[3] || VOID_ELEMENTS.has(type)) {
      blocks.push({ ...block, line: block.tagLine, body: "" });
      i = start;
      continue;
    }
    const close = findClose(text, type, start);
    if (!close) throw new PluginFormatError(type, block.tagLine, `<${type}> is opened but never closed; expected </${type}>`);
    blocks.push({ ...block, ...blockBody(text, start, close.end) });
    i = close.after;
  }
  return blocks;
}

// A block's text and the file line it starts on. The line break after the opening tag is
// not content; common indentation is removed as ImJoy does (its deIndent), which keeps
// every line where it was, so `line + n - 1` is the file line of the text's line n.
function blockBody(text, start, end) {
  let body = text.slice(start, end);
  let line = lineAt(text, start);
  const firstBreak = body.indexOf("\n");
  if (firstBreak >= 0 && !body.slice(0, firstBreak).trim()) {
    body = body.slice(firstBreak + 1);
    line += 1;
  }
  return { line, body: body.trim() ? dedent(body).replace(/[ \t]+$/, "") : "" };
}

function dedent(body) {
  const lines = body.split("\n");
  const first = lines.find((l) => l.trim());
  if (!first || !/^[ \t]/.test(first)) return body;
  const leading = first[0] === " " ? /^ */ : /^\t*/; // ImJoy counts the first line's kind only
  const width = (l) => leading.exec(l)[0].length;
  const common = Math.min(...lines.filter((l) => l.trim()).map(width));
  return lines.map((l) => l.slice(Math.min(common, width(l)))).join("\n");
}

function parseImJoy(text, tag) {
  const blocks = scanBlocks(text);
  const configBlock = blocks.find((b) => b.type === "config"); // ImJoy reads the first one
  if (!configBlock) {
    throw new PluginFormatError("config", 1, "no <config> block; an ImJoy plugin file needs a <config> (JSON or YAML) and a <script>");
  }
  const lines = configBlock.body.split("\n");
  const where = locator(lines, configBlock.line, configBlock.tagLine);
  // Whether it has a Python script (a window's requirements depend on its language).
  const python = blocks.some((b) => b.type === "script" && LANGUAGES[b.attrs.lang?.toLowerCase()] === "python");
  const config = normalizeConfig(parseConfigBlock(configBlock), where, { tag, python });

  // Untagged blocks, and blocks tagged with the loaded tag (ImJoy does this for <script>;
  // PyJoy does it for every block).
  const kept = blocks.filter((b) => b !== configBlock && (b.attrs.tag === undefined || b.attrs.tag === config.tag));
  const scriptBlocks = kept.filter((b) => b.type === "script");
  // A window or iframe plugin with a lang="python" <script> is a Python window.
  const language = mayBePython(config.type) && scriptBlocks.some((b) => LANGUAGES[b.attrs.lang?.toLowerCase()] === "python")
    ? "python" : languageOf(config.type);
  const scripts = scriptBlocks.map((b) => scriptOf(b, config.type, language));
  if (!scripts.length) {
    const tagged = blocks.filter((b) => b.type === "script");
    throw tagged.length
      ? new PluginFormatError("script", tagged[0].tagLine, `no <script> block for tag ${JSON.stringify(config.tag)}; `
        + `the <script> blocks here are tagged ${[...new Set(tagged.map((b) => b.attrs.tag))].join(", ")}`)
      : new PluginFormatError("script", 1, `no <script> block; an ImJoy plugin needs a <script lang="${languageOf(config.type)}">`);
  }
  config.lang = (scripts.find((s) => s.lang === language) ?? scripts[0]).lang;

  const windows = kept.filter((b) => b.type === "window").map((b) => ({ html: b.body, line: b.line, attrs: b.attrs }));
  const styles = kept.filter((b) => b.type === "style").map((b) => ({ css: b.body, line: b.line, attrs: b.attrs }));
  const docs = kept.find((b) => b.type === "docs");
  const attachments = Object.create(null); // a null prototype: any name, "__proto__" included, is just a key
  for (const b of kept.filter((b) => b.type === "attachment")) {
    if (!b.attrs.name) throw new PluginFormatError("attachment", b.tagLine, `<attachment> has no name; expected <attachment name="...">`);
    attachments[b.attrs.name] ??= { text: b.body, line: b.line }; // the first of a name wins, as api.getAttachment finds it
  }
  return {
    format: "imjoy",
    config,
    // The script ImJoy calls config.script: the one tagged with the loaded tag, else the first.
    script: scripts.find((s) => s.attrs.tag !== undefined) ?? scripts[0],
    scripts,
    window: windows[0] ?? null,
    windows,
    style: styles[0] ?? null,
    styles,
    links: kept.filter((b) => b.type === "link").map((b) => ({ attrs: b.attrs, line: b.tagLine })),
    docs: docs ? { markdown: docs.body, line: docs.line } : null,
    attachments,
  };
}

const LANGUAGES = { python: "python", py: "python", javascript: "javascript", js: "javascript" };

function scriptOf(block, type, expected) {
  const given = block.attrs.lang;
  const lang = given === undefined ? expected : LANGUAGES[given.toLowerCase()];
  if (!lang) {
    throw new PluginFormatError("script", block.tagLine, `unknown script language lang="${given}"; expected lang="python" or lang="javascript"`);
  }
  // ImJoy's web-python runtime ran a lang="javascript" block too, in the JavaScript that runs
  // Python (imjoy-core's jailed/_pluginWebPython.js): so does PyJoy's (pyjoy/plugin/kernel.py),
  // in a worker or in a Python window's frame.
  if (lang !== expected && !(expected === "python" && type !== "native-python" && lang === "javascript")) {
    throw new PluginFormatError("script", block.tagLine, `a ${type} plugin runs ${expected}, but this <script> is lang="${given}"; `
      + `expected lang="${expected}"`);
  }
  return { lang, code: block.body, line: block.line, attrs: block.attrs };
}

function parseConfigBlock(block) {
  const { body, line, tagLine } = block;
  const lang = block.attrs.lang?.toLowerCase();
  if (!body.trim()) throw new PluginFormatError("config", tagLine, "the <config> block is empty; expected JSON or YAML fields (name, type, ...)");
  if (lang === "json") return parseJson(body, line);
  if (lang === "yaml" || lang === "yml") return parseYamlAt(body, line);
  if (lang !== undefined) {
    throw new PluginFormatError("config", tagLine, `unknown config language lang="${block.attrs.lang}"; expected lang="json" or lang="yaml"`);
  }
  // No lang: ImJoy's older files are JSON; YAML is tried next. A text that looks like
  // JSON reports its JSON error, anything else its YAML error.
  try {
    return parseJson(body, line);
  } catch (jsonError) {
    try {
      return parseYamlAt(body, line);
    } catch (yamlError) {
      throw body.trimStart().startsWith("{") ? jsonError : yamlError;
    }
  }
}

function parseJson(body, line) {
  try {
    return JSON.parse(body);
  } catch (e) {
    // V8 says where only for some errors ("Unexpected token ']'" has no position), so the
    // place is found by walking the text; the message keeps what V8 says is wrong.
    const at = jsonErrorOffset(body);
    const upTo = at >= body.trimEnd().length ? body.trimEnd() : body.slice(0, at);
    const what = e.message.replace(/\s+in JSON at position[\s\S]*$/, "").replace(/, (?:\.\.\.)?"[\s\S]*$/, "");
    throw new PluginFormatError("config", line + upTo.split("\n").length - 1, `invalid JSON: ${what}`);
  }
}

// The offset where a JSON parser stops on `s` (s.length when the text ends too early).
function jsonErrorOffset(s) {
  let i = 0;
  const space = () => { while (" \t\n\r".includes(s[i]) && i < s.length) i++; };
  const expect = (char) => { space(); if (s[i] !== char) throw i; i++; };
  const string = () => {
    expect('"');
    for (; s[i] !== '"'; i++) {
      if (i >= s.length || s[i] < " ") throw i;
      if (s[i] === "\\") i++;
    }
    i++;
  };
  const value = () => {
    space();
    if (s[i] === "{" || s[i] === "[") {
      const close = s[i] === "{" ? "}" : "]";
      i++;
      space();
      if (s[i] === close) { i++; return; }
      for (;;) {
        if (close === "}") { string(); expect(":"); }
        value();
        space();
        if (s[i] === close) { i++; return; }
        expect(",");
      }
    }
    if (s[i] === '"') return string();
    const literal = /^(?:true|false|null|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?)/.exec(s.slice(i));
    if (!literal) throw i;
    i += literal[0].length;
  };
  try {
    value();
    space();
    return i < s.length ? i : s.length;
  } catch (at) {
    return Math.min(at, s.length);
  }
}

function parseYamlAt(body, line) {
  try {
    return parseYaml(body, { logLevel: "error" });
  } catch (e) {
    const at = e.linePos?.[0]?.line ?? 1;
    const what = e.message.split("\n")[0].replace(/ at line \d+, column \d+:?$/, "");
    throw new PluginFormatError("config", line + at - 1, `invalid YAML: ${what}`);
  }
}

// --- plain .py / .js ------------------------------------------------------------------

function parsePlain(text, format, tag) {
  const marker = format === "py" ? "#" : "//";
  const fence = `${marker} ---`;
  const lines = text.split("\n");
  const open = lines.findIndex((l) => l.trim()); // the front matter is the first thing in the file
  if (lines[open].trimEnd() !== fence) {
    throw new PluginFormatError("config", open + 1, `no front matter; a .${format} plugin starts with a "${fence}" line, `
      + `YAML lines each prefixed "${marker} " (at least name:), and a closing "${fence}" line`);
  }
  const yamlLines = [];
  let close = open + 1;
  for (; close < lines.length && lines[close].trimEnd() !== fence; close++) {
    if (!lines[close].startsWith(marker)) {
      throw new PluginFormatError("config", open + 1, `the front matter opened here is never closed; expected a "${fence}" line `
        + `before line ${close + 1}, which is not a "${marker}" comment`);
    }
    yamlLines.push(lines[close].slice(marker.length).replace(/^ /, ""));
  }
  if (close === lines.length) {
    throw new PluginFormatError("config", open + 1, `the front matter opened here is never closed; expected a "${fence}" line`);
  }
  const yamlText = yamlLines.join("\n");
  const raw = yamlText.trim() ? parseYamlAt(yamlText, open + 2) : {};
  const where = locator(yamlLines, open + 2, open + 1);
  const lang = format === "py" ? "python" : "javascript";
  const config = normalizeConfig(raw, where, { tag, defaultType: format === "py" ? "web-python" : "web-worker", python: format === "py" });
  if (languageOf(config.type) !== lang && !(lang === "python" && mayBePython(config.type))) {
    throw new PluginFormatError("config", where.lineOf("type"), `a .${format} file holds ${lang}, but a ${config.type} plugin runs `
      + `${languageOf(config.type)}; expected a type that runs ${lang}`);
  }
  config.lang = lang;
  const script = { lang, code: lines.slice(close + 1).join("\n"), line: close + 2, attrs: {} };
  return {
    format,
    config,
    script,
    scripts: [script],
    window: null,
    windows: [],
    style: null,
    styles: [],
    links: [],
    docs: null,
    attachments: Object.create(null),
  };
}
