// The workbench's code editor: CodeMirror 6 set up for plugin files, with templates for
// new plugins and a way to find the line an error points at. Lazy-loaded by the workbench
// when an editor opens (about 200 KB gzipped: CodeMirror and five languages), so nothing
// here runs at start-up.
//
//   const { createEditor, TEMPLATES, errorLine } = await import("./workbench/editor.js");
//   const editor = createEditor(parent, {
//     text: TEMPLATES["web-python"], filename: "My Plugin.imjoy.html",  // the name picks the language
//     onChange(text) {},   // after typing pauses (250 ms), and before save, run and destroy
//     onSave(text) {},     // Ctrl/Cmd+S, or editor.save()
//     onRun(text) {},      // Ctrl/Cmd+Enter or Shift+Enter, or editor.run()
//   });
//   try { await host.load(editor.getText()); }
//   catch (error) { editor.showError(error); }       // {line, message}, or any error: see errorLine
//   editor.getText(); editor.setText(text, { filename }); editor.clearErrors();
//   editor.focus(); editor.destroy(); editor.view;    // the EditorView, for tests
//
// Languages: .imjoy.html (and .html) is the ImJoy plugin format: HTML whose
// <script lang="python"> is Python, <script lang="javascript"> JavaScript, <config> JSON or
// YAML, <style> CSS, <window> HTML and <docs> plain text; .py is Python, .js JavaScript,
// .json JSON. Tokens carry stable class names (`tok-keyword`, `tok-typeName`, ...: Lezer's
// classHighlighter, workbench/languages.js), coloured by style.css as the Docs view's code is, so tests can rely on them.
//
// Keyboard: CodeMirror's defaults (undo, search with Ctrl/Cmd+F, bracket matching), Tab
// indents; Escape then Tab moves focus out of the editor (CodeMirror's tab focus mode, so
// the editor is no keyboard trap), as does Ctrl+M (Shift+Alt+M on macOS) until pressed again.

import { closeBrackets, closeBracketsKeymap } from "@codemirror/autocomplete";
import { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
import { bracketMatching, indentOnInput, indentUnit, syntaxHighlighting } from "@codemirror/language";
import { highlightSelectionMatches, searchKeymap } from "@codemirror/search";
import { Annotation, Compartment, EditorState, RangeSet, StateEffect, StateField } from "@codemirror/state";
import {
  Decoration, drawSelection, EditorView, gutterLineClass, GutterMarker, highlightActiveLine,
  highlightActiveLineGutter, highlightSpecialChars, keymap, lineNumbers, WidgetType,
} from "@codemirror/view";
import { classHighlighter } from "@lezer/highlight";

import { jsSupport, languageOf, pythonSupport } from "./languages.js";

export { TEMPLATES } from "./templates.js";

// --- languages (languages.js) and indentation --------------------------------------

// The file's own indentation (2 or 4 spaces, or a tab), so Tab and Enter indent as the
// file already does: the templates use 4 in Python and 2 in JavaScript.
function indentOf(text, fallback) {
  const widths = [...text.matchAll(/^( +|\t)\S/gm)].map((m) => (m[1] === "\t" ? "\t" : m[1].length));
  if (widths.includes("\t") && !widths.some((w) => w !== "\t")) return "\t";
  const smallest = Math.min(...widths.filter((w) => w !== "\t"));
  return smallest === 2 || smallest === 4 ? " ".repeat(smallest) : fallback;
}

/** The language and indentation for a file: its name picks the language, else its text. */
function languageFor(filename = "", text = "") {
  const language = languageOf(filename, text);
  // In a plugin file the script's indentation counts (the config's JSON has its own).
  const script = language === pythonSupport || language === jsSupport ? null : /<script\b([^>]*)>([\s\S]*?)<\/script>/i.exec(text);
  const python = script ? /\blang\s*=\s*["']?py/i.test(script[1]) : language === pythonSupport;
  return [language, indentUnit.of(indentOf(script ? script[2] : text, python ? "    " : "  "))];
}

// --- errors in the text ----------------------------------------------------------------

const setError = StateEffect.define(); // {line, message} or null

// The message under the line it is about: on a phone there is no hover for a tooltip, and
// a screen reader hears it (role="alert") when it appears.
class ErrorMessage extends WidgetType {
  constructor(message) { super(); this.message = message; }
  eq(other) { return other.message === this.message; }
  toDOM() {
    const box = document.createElement("div");
    box.className = "cm-pyjoy-errorMessage";
    box.setAttribute("role", "alert");
    box.textContent = this.message;
    return box;
  }
  ignoreEvent() { return false; }
}

const errorGutterMarker = new (class extends GutterMarker { elementClass = "cm-pyjoy-errorGutter"; })();

// The error shown, if any: {line, message}. It goes when the text changes, since the line
// it names may no longer hold what was wrong.
const errorField = StateField.define({
  create: () => null,
  update(error, tr) {
    for (const effect of tr.effects) if (effect.is(setError)) error = effect.value;
    return tr.docChanged && !tr.effects.some((e) => e.is(setError)) ? null : error;
  },
  provide: (field) => [
    EditorView.decorations.from(field, (error) => {
      if (!error) return Decoration.none;
      return Decoration.set([
        Decoration.line({ class: "cm-pyjoy-errorLine", attributes: { "data-error": error.message } }).range(error.from),
        Decoration.widget({ widget: new ErrorMessage(error.message), block: true, side: 1 }).range(error.to),
      ]);
    }),
    gutterLineClass.from(field, (error) => (error ? RangeSet.of([errorGutterMarker.range(error.from)]) : RangeSet.empty)),
  ],
});

const external = Annotation.define(); // changes made by setText, which onChange does not report

/**
 * The 1-based line of the plugin file that an error points at, or null.
 * - a PluginFormatError or PluginError with `.line` (parse errors: the block's line);
 * - a Python traceback (`.traceback`, or the text itself): the last frame in the plugin
 *   file, `File "<plugin NAME>", line N`; a SyntaxError's `File "<plugin NAME>", line N`;
 * - a JavaScript stack (`.traceback` of a RemoteError from a JS plugin, or `.stack`): the
 *   first frame in the plugin's script, which runs with `//# sourceURL=NAME` and the file's
 *   line numbers (`at run (NAME:12:7)`, `run@NAME:12:7`).
 * `text` is the plugin file: its config's name picks the frames that are this plugin's
 * (a traceback may cross plugins), and a line past its end is not trusted.
 */
export function errorLine(error, text = "") {
  if (error == null) return null;
  const lines = String(text).split("\n").length;
  const valid = (n) => (Number.isInteger(n) && n >= 1 && (!text || n <= lines) ? n : null);
  if (typeof error === "object" && error.line != null) return valid(Number(error.line));
  const name = pluginName(text);
  const traces = typeof error === "string" ? [error] : [error.traceback, error.stack, error.message].filter((t) => typeof t === "string" && t);
  for (const trace of traces) {
    const line = pythonLine(trace, name) ?? jsLine(trace, name);
    if (valid(line)) return line;
  }
  return null;
}

// Python names a frame `File "<plugin NAME>", line N, in f`; the innermost frame is last.
function pythonLine(trace, name) {
  const frames = [...trace.matchAll(/File "<plugin (.*?)>", line (\d+)/g)];
  const ours = name ? frames.filter((m) => m[1] === name) : frames;
  const last = (ours.length ? ours : frames).at(-1);
  return last ? Number(last[2]) : null;
}

// V8 writes `at f (NAME:LINE:COL)` or `at NAME:LINE:COL`, Firefox and Safari `f@NAME:LINE:COL`;
// the innermost frame is first. The sandboxes name the script encodeURI(NAME) (V8 ignores
// a sourceURL with spaces). Without a name, the first frame whose script is no URL.
function jsLine(trace, name) {
  for (const m of trace.matchAll(/(?:^|\n)\s*(?:at (?:.*? \()?|[^@\n]*@)(.+?):(\d+):\d+\)?\s*(?=\n|$)/g)) {
    const script = m[1];
    if (name ? script === name || script === encodeURI(name) : !/^[a-z][\w+.-]*:/i.test(script) && !script.startsWith("<anonymous>")) return Number(m[2]);
  }
  return null;
}

// The plugin's name from its config (JSON, YAML or a .py/.js front matter), without a
// full parse (the parser brings a YAML library this chunk does not need).
function pluginName(text) {
  const m = /"name"\s*:\s*"((?:[^"\\]|\\.)*)"/.exec(text)
    ?? /^(?:#|\/\/)?\s*name\s*:\s*(?:"([^"]*)"|'([^']*)'|(.*?))\s*$/m.exec(text);
  if (!m) return null;
  if (m.length === 2) {
    try { return JSON.parse(`"${m[1]}"`); } catch { return m[1]; }
  }
  return m[1] ?? m[2] ?? m[3] ?? null;
}

// --- theme -----------------------------------------------------------------------------

// The app's calm palette (app/style.css), through its CSS variables where the page has
// them, so the editor follows the shell; the fallbacks are the same colours.
const theme = EditorView.theme({
  "&": {
    height: "100%",
    fontSize: "14px",
    color: "var(--text, #1d2421)",
    backgroundColor: "var(--surface, #ffffff)",
  },
  "&.cm-focused": { outline: "2px solid color-mix(in srgb, var(--primary, #1f6f5c) 45%, transparent)", outlineOffset: "-2px" },
  ".cm-scroller": {
    fontFamily: 'ui-monospace, "SFMono-Regular", "Cascadia Mono", "Roboto Mono", Menlo, Consolas, "Liberation Mono", monospace',
    lineHeight: "1.55",
    overflow: "auto",
  },
  ".cm-content": { padding: "8px 0", caretColor: "var(--primary, #1f6f5c)" },
  ".cm-line": { padding: "0 12px 0 6px" },
  ".cm-cursor, .cm-dropCursor": { borderLeftColor: "var(--primary, #1f6f5c)", borderLeftWidth: "2px" },
  "&.cm-focused > .cm-scroller > .cm-selectionLayer .cm-selectionBackground, .cm-selectionBackground, ::selection":
    { backgroundColor: "color-mix(in srgb, var(--primary, #1f6f5c) 20%, white)" },
  ".cm-gutters": {
    backgroundColor: "var(--bg, #f6f7f5)",
    color: "var(--muted, #5b6661)",
    borderRight: "1px solid var(--line, #dfe3e0)",
  },
  ".cm-lineNumbers .cm-gutterElement": { padding: "0 8px 0 6px", minWidth: "2.5em" },
  ".cm-activeLine": { backgroundColor: "color-mix(in srgb, var(--primary, #1f6f5c) 5%, transparent)" },
  ".cm-activeLineGutter": { backgroundColor: "color-mix(in srgb, var(--primary, #1f6f5c) 12%, transparent)", color: "var(--text, #1d2421)" },
  "&.cm-focused .cm-matchingBracket": { backgroundColor: "color-mix(in srgb, var(--accent, #f2b950) 45%, white)", outline: "none" },
  "&.cm-focused .cm-nonmatchingBracket": { backgroundColor: "color-mix(in srgb, var(--danger, #b3261e) 25%, white)" },
  ".cm-selectionMatch": { backgroundColor: "color-mix(in srgb, var(--accent, #f2b950) 30%, white)" },
  ".cm-searchMatch": { backgroundColor: "color-mix(in srgb, var(--accent, #f2b950) 40%, white)", outline: "1px solid var(--accent, #f2b950)" },
  ".cm-searchMatch.cm-searchMatch-selected": { backgroundColor: "color-mix(in srgb, var(--accent, #f2b950) 75%, white)" },
  // The search panel wraps on a phone instead of widening the page.
  ".cm-panels": { backgroundColor: "var(--bg, #f6f7f5)", color: "var(--text, #1d2421)" },
  ".cm-panels.cm-panels-bottom": { borderTop: "1px solid var(--line, #dfe3e0)" },
  ".cm-panel.cm-search": { display: "flex", flexWrap: "wrap", alignItems: "center", gap: "6px", padding: "8px 34px 8px 8px", fontFamily: "inherit" },
  ".cm-panel.cm-search input, .cm-panel.cm-search button, .cm-panel.cm-search label": { margin: "0", fontSize: "14px" },
  ".cm-panel.cm-search br": { flexBasis: "100%", height: "0" },
  ".cm-textfield": { padding: "5px 8px", border: "1px solid var(--line, #dfe3e0)", borderRadius: "8px", backgroundColor: "var(--surface, #fff)", minWidth: "0", maxWidth: "100%" },
  ".cm-button": { padding: "5px 10px", border: "1px solid var(--line, #dfe3e0)", borderRadius: "8px", backgroundImage: "none", backgroundColor: "var(--surface, #fff)" },
  // An error: the line number in the danger colour, the line tinted, the message below it.
  ".cm-gutterElement.cm-pyjoy-errorGutter": { backgroundColor: "var(--danger, #b3261e)", color: "#fff", fontWeight: "600" },
  ".cm-pyjoy-errorLine": { backgroundColor: "color-mix(in srgb, var(--danger, #b3261e) 10%, transparent)" },
  ".cm-pyjoy-errorMessage": {
    margin: "2px 12px 6px 6px",
    padding: "6px 10px",
    borderLeft: "3px solid var(--danger, #b3261e)",
    borderRadius: "0 8px 8px 0",
    backgroundColor: "color-mix(in srgb, var(--danger, #b3261e) 8%, white)",
    color: "var(--danger, #b3261e)",
    fontFamily: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
    whiteSpace: "pre-wrap",
    overflowWrap: "anywhere",
  },
  // Tokens (classHighlighter's names) are coloured by style.css, as in the Docs view.
}, { dark: false });

// --- the editor --------------------------------------------------------------------------

/**
 * A CodeMirror editor in `parent` (which sets its size: the editor fills it and scrolls).
 * Options: text, filename, onChange(text), onSave(text), onRun(text), and lineWrapping
 * (default: on at phone widths, where sideways scrolling through code is hard).
 */
export function createEditor(parent, {
  text = "", filename = "", onChange, onSave, onRun,
  lineWrapping = globalThis.matchMedia?.("(max-width: 640px)").matches ?? false,
} = {}) {
  const language = new Compartment();
  let changeTimer = null;
  let pendingChange = false;

  // onChange after typing pauses: the text may be a large file, and each report may be a
  // write to the workspace. flush() reports at once what is pending.
  const flush = () => {
    clearTimeout(changeTimer);
    if (pendingChange) {
      pendingChange = false;
      onChange?.(view.state.doc.toString());
    }
  };
  const save = () => { flush(); onSave?.(view.state.doc.toString()); return true; };
  const run = () => { flush(); onRun?.(view.state.doc.toString()); return true; };

  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc: text,
      extensions: [
        // Ours first, over the defaults (Mod-Enter would insert a blank line).
        keymap.of([
          { key: "Mod-s", run: save, preventDefault: true },
          { key: "Mod-Enter", run, preventDefault: true },
          { key: "Shift-Enter", run, preventDefault: true },
        ]),
        lineNumbers(),
        highlightActiveLineGutter(),
        highlightSpecialChars(),
        history(),
        drawSelection(),
        EditorState.allowMultipleSelections.of(true),
        indentOnInput(),
        syntaxHighlighting(classHighlighter),
        bracketMatching(),
        closeBrackets(),
        highlightActiveLine(),
        highlightSelectionMatches(),
        keymap.of([...closeBracketsKeymap, ...defaultKeymap, ...searchKeymap, ...historyKeymap, indentWithTab]),
        language.of(languageFor(filename, text)),
        lineWrapping ? EditorView.lineWrapping : [],
        EditorView.contentAttributes.of({ "aria-label": `Code editor${filename ? `: ${filename}` : ""}` }),
        errorField,
        theme,
        EditorView.updateListener.of((update) => {
          if (!update.docChanged || update.transactions.every((tr) => tr.annotation(external))) return;
          pendingChange = true;
          clearTimeout(changeTimer);
          changeTimer = setTimeout(flush, 250);
        }),
      ],
    }),
  });

  return {
    view,
    getText: () => view.state.doc.toString(),
    /** Replaces the text (undoable; not reported to onChange); a filename switches the language. */
    setText(newText, { filename: newName } = {}) {
      // An edit not yet reported is superseded: the caller chose this text.
      clearTimeout(changeTimer);
      pendingChange = false;
      view.dispatch({
        changes: { from: 0, to: view.state.doc.length, insert: String(newText ?? "") },
        effects: newName === undefined ? [] : language.reconfigure(languageFor(newName, newText)),
        annotations: external.of(true),
      });
    },
    /**
     * Marks a line as wrong and scrolls to it: `{line, message}`, or an error whose line
     * errorLine() finds (a PluginFormatError, a RemoteError's traceback, ...). An error with no
     * line shows its message on the first line. Replaces the error shown before; kept until
     * clearErrors() or the text changes. Returns the line marked.
     */
    showError(error) {
      const doc = view.state.doc;
      const found = error?.line ?? errorLine(error, doc.toString());
      const number = Math.min(Math.max(1, Number(found) || 1), doc.lines);
      const line = doc.line(number);
      const message = String(error?.message ?? error ?? "error");
      view.dispatch({
        effects: [setError.of({ line: number, message, from: line.from, to: line.to }), EditorView.scrollIntoView(line.from, { y: "center" })],
      });
      return number;
    },
    clearErrors() { view.dispatch({ effects: setError.of(null) }); },
    save,
    run,
    focus() { view.focus(); },
    destroy() { flush(); view.destroy(); },
  };
}
