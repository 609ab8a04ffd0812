// The languages PyJoy's code is written in, as CodeMirror/Lezer parsers: the editor's
// (editor.js) and the docs' highlighting (docs/markdown.js) read code the same way, with
// the same token class names (Lezer's classHighlighter: `tok-keyword`, `tok-string`, ...),
// coloured by the same CSS.
//
//   languageOf("My Plugin.imjoy.html", text);   // the LanguageSupport the editor uses
//   highlight("print('hi')", "python");           // HTML: the code escaped, tokens in <span class="tok-...">
//                                                  // languages: python, js, html (the plugin format), json, yaml, sh

import { html } from "@codemirror/lang-html";
import { javascript, javascriptLanguage } from "@codemirror/lang-javascript";
import { json, jsonLanguage } from "@codemirror/lang-json";
import { python, pythonLanguage } from "@codemirror/lang-python";
import { StreamLanguage } from "@codemirror/language";
import { shell } from "@codemirror/legacy-modes/mode/shell";
import { yaml } from "@codemirror/legacy-modes/mode/yaml";
import { classHighlighter, highlightCode } from "@lezer/highlight";

const yamlLanguage = StreamLanguage.define(yaml);
const shellLanguage = StreamLanguage.define(shell);
// <docs> is markdown, shown as plain text: without a language of its own, the HTML parser
// would read its "<" and "&" as markup.
const plainText = StreamLanguage.define({ name: "text", token(stream) { stream.skipToEnd(); return null; } });

const langIs = (...names) => (attrs) => names.includes(String(attrs.lang ?? "").toLowerCase());

// The ImJoy plugin format. lang-html tries these before its own rules, so a
// <script lang="python"> (which has no type, and would otherwise be JavaScript) is Python.
const pluginLanguage = () => html({
  nestedLanguages: [
    { tag: "script", attrs: langIs("python", "py"), parser: pythonLanguage.parser },
    { tag: "script", attrs: langIs("javascript", "js"), parser: javascriptLanguage.parser },
    { tag: "config", attrs: langIs("yaml", "yml"), parser: yamlLanguage.parser },
    { tag: "config", parser: jsonLanguage.parser }, // ImJoy reads a <config> without lang as JSON first
    { tag: "docs", parser: plainText.parser },
    { tag: "attachment", parser: plainText.parser },
  ],
  autoCloseTags: true,
});

export const pythonSupport = python();
export const jsSupport = javascript();

/** The editor's language for a file: its name picks it, else its text. */
export function languageOf(filename, text) {
  const name = filename.toLowerCase().split(/[?#]/)[0];
  if (/\.html?$/.test(name)) return pluginLanguage();
  if (name.endsWith(".py")) return pythonSupport;
  if (/\.[cm]?js$/.test(name)) return jsSupport;
  if (name.endsWith(".json")) return json();
  if (/^\s*# ---/.test(text)) return pythonSupport;
  if (/^\s*\/\/ ---/.test(text)) return jsSupport;
  if (/<config[\s>]/i.test(text) || !name) return pluginLanguage();
  return [];
}

// A fenced block's language (its info string's first word) to a parser.
let pluginParser = null;
function parserFor(language) {
  switch (String(language).toLowerCase()) {
    case "python": case "py": return pythonLanguage.parser;
    case "js": case "javascript": case "mjs": return javascriptLanguage.parser;
    case "html": case "imjoy": return (pluginParser ??= pluginLanguage().language.parser);
    case "json": return jsonLanguage.parser;
    case "yaml": case "yml": return yamlLanguage.parser;
    case "sh": case "bash": case "shell": case "console": return shellLanguage.parser;
    default: return null;
  }
}

const escapeHTML = (text) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** The code as HTML: escaped, its tokens in spans of classHighlighter's classes; plain
 *  (escaped) for a language it does not know. */
export function highlight(code, language) {
  const parser = parserFor(language);
  if (!parser) return escapeHTML(code);
  let out = "";
  highlightCode(code, parser.parse(code), classHighlighter,
    (text, classes) => { out += classes ? `<span class="${classes}">${escapeHTML(text)}</span>` : escapeHTML(text); },
    () => { out += "\n"; });
  return out;
}
