// Markdown to safe DOM, for the Docs view (docs/viewer.js) and plugins' <docs> blocks in
// the plugin manager: marked (npm, the library the imjoy/markdown window uses) parses,
// DOMPurify sanitises, and code blocks are highlighted with the editor's parsers
// (workbench/languages.js). What comes out is a DocumentFragment for PyJoy's own page,
// so nothing in it may run script: DOMPurify keeps HTML only (no SVG or MathML, no event
// handlers, no javascript: or data: links), and forms, styles, frames are dropped too.
//
//   const fragment = renderMarkdown(text, {
//     idPrefix: "user-content-",        // heading ids and #anchor links get it (a plugin's docs:
//                                       // its ids cannot take the name of anything of the page's)
//     resolveLink: (href) => url | null // a relative link: its URL in the app, or null (shown as text)
//   });
//   slug("The engine's `--grace`");     // "the-engines---grace": a heading's id, as GitHub makes it
//
// Links: "#x" stays in the page (the viewer scrolls to it); an absolute http(s) link opens in
// a new tab without a reference to this page (rel="noopener noreferrer"); any other
// relative link goes through resolveLink.

import DOMPurify from "dompurify";
import { Marked } from "marked";
import { highlight } from "../workbench/languages.js";

const parser = new Marked({
  gfm: true,
  async: false,
  renderer: {
    // A fenced block's info string: its first word is the language; the rest (the docs'
    // test marks, docs/README.md) is not shown.
    code({ text, lang }) {
      const language = String(lang ?? "").trim().split(/\s+/)[0].toLowerCase();
      const label = language ? ` data-lang="${language.replace(/[^\w-]/g, "")}"` : "";
      return `<pre class="code"${label}><code>${highlight(text, language)}</code></pre>\n`;
    },
  },
});

const PURIFY = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "option", "dialog", "template"],
  FORBID_ATTR: ["style", "id", "name", "target", "form", "formaction", "action"],
  RETURN_DOM_FRAGMENT: true,
};

/** A heading's id, as GitHub makes it: lower case, punctuation gone, spaces to hyphens. */
export function slug(text) {
  return String(text).trim().toLowerCase().replace(/[^\p{L}\p{N}_\- ]/gu, "").replace(/ /g, "-");
}

export function renderMarkdown(source, { idPrefix = "", resolveLink = () => null } = {}) {
  const fragment = DOMPurify.sanitize(parser.parse(String(source ?? "")), PURIFY);
  const seen = new Map();
  for (const heading of fragment.querySelectorAll("h1, h2, h3, h4, h5, h6")) {
    const base = slug(heading.textContent);
    const count = seen.get(base) ?? 0; // GitHub: a repeated heading gets -1, -2, ...
    seen.set(base, count + 1);
    heading.id = idPrefix + (count ? `${base}-${count}` : base);
  }
  for (const link of fragment.querySelectorAll("a[href]")) {
    const href = link.getAttribute("href");
    if (href.startsWith("#")) {
      link.setAttribute("href", `#${idPrefix}${href.slice(1)}`);
    } else if (/^https?:\/\//i.test(href)) {
      link.target = "_blank";
      link.rel = "noopener noreferrer";
    } else {
      const url = resolveLink(href);
      if (url) link.setAttribute("href", url);
      else link.replaceWith(Object.assign(document.createElement("span"), { className: "docs-path", textContent: link.textContent, title: href }));
    }
  }
  return fragment;
}
