// The Docs view: PyJoy's documentation (docs/*.md, and the contracts they link to: the
// build puts them in dist/docs/ with an index, pyjoy/build/docs.py) in a window of the
// workbench, offline like the rest of the build (the service worker precaches them).
// Pages link to each other and to headings; the search box searches every page.
//
//   const docs = docsViewer({ windows, onOpen });
//   await docs.open("plugin-guide", "requirements");  // that page at that heading (anchor optional)
//   docs.search("showDialog");                          // the results of a search, shown
//
// The address follows the view (?docs=PAGE#ANCHOR), so a page and heading can be
// bookmarked or shared; the page opens with the view there (main.js).

import { renderMarkdown, slug } from "./markdown.js";
import { el } from "../ui/dom.js";

const INDEX_URL = "docs/index.json";
// The pages' heading ids are prefixed, so that none takes an id of the page's own ("windows",
// "messages", ...); addresses and links carry the anchor as GitHub writes it, without it.
const ID_PREFIX = "docs-";
const REPOSITORY = "https://repository.invalid/"; // a base to resolve links between repository paths

export function docsViewer({ windows, onOpen = () => {} }) {
  let index = null;
  const texts = new Map();
  let view = null; // {win, nav, article, results, input}
  let current = null;

  const pages = async () => (index ??= await fetchJSON(INDEX_URL)).pages;
  const pageText = async (name) => {
    if (!texts.has(name)) {
      const page = (await pages()).find((known) => known.name === name);
      if (!page) throw new Error(`there is no docs page named "${name}"`);
      texts.set(name, fetchText(page.url));
    }
    return texts.get(name);
  };

  // A relative link in a page: another page (by its path in the repository, as the
  // Markdown is written to read on GitHub too) becomes ?docs=NAME#ANCHOR; others are text.
  const resolverFor = (page, known) => (href) => {
    const url = new URL(href, REPOSITORY + page.source);
    if (url.origin + "/" !== REPOSITORY) return null;
    const target = known.find((candidate) => candidate.source === decodeURIComponent(url.pathname.slice(1)));
    return target ? `?docs=${encodeURIComponent(target.name)}${url.hash}` : null;
  };

  function build() {
    const win = windows.open({ title: "Docs", onClose: () => { view = null; setAddress(null); } });
    win.element.classList.add("docs-window");
    const input = el("input", "docs-search");
    Object.assign(input, { type: "search", placeholder: "Search the docs", spellcheck: false });
    input.setAttribute("aria-label", "Search the docs");
    const nav = el("nav", "docs-nav");
    nav.setAttribute("aria-label", "Docs pages");
    const article = el("article", "docs-page markdown");
    const results = el("ol", "docs-results");
    results.hidden = true;
    const main = el("div", "docs-main");
    main.append(results, article);
    const side = el("div", "docs-side");
    side.append(input, nav);
    win.body.append(side, main);
    let typing = null;
    input.addEventListener("input", () => {
      clearTimeout(typing);
      typing = setTimeout(() => search(input.value).catch(showError), 120);
    });
    // Links inside the view: pages and headings stay in it; other links are the browser's.
    win.body.addEventListener("click", (event) => {
      const link = event.target.closest("a[href]");
      if (!link || event.ctrlKey || event.metaKey || event.shiftKey) return;
      const href = link.getAttribute("href");
      if (href.startsWith("#")) {
        event.preventDefault();
        const anchor = decodeURIComponent(href.slice(1)).slice(ID_PREFIX.length);
        scrollTo(anchor);
        setAddress(current, anchor);
      } else if (href.startsWith("?docs=")) {
        event.preventDefault();
        const url = new URL(href, location.href);
        open(url.searchParams.get("docs"), decodeURIComponent(url.hash.slice(1)) || null).catch(showError);
      }
    });
    view = { win, nav, article, results, input };
    win.maximize(true); // pages of prose and code want the room
    onOpen(win);
    return view;
  }

  const showError = (error) => view?.article.replaceChildren(el("p", "docs-error", `The docs could not be shown: ${error.message}`));

  function scrollTo(anchor) {
    const target = anchor && view.article.querySelector(`#${CSS.escape(ID_PREFIX + anchor)}`);
    if (target) target.scrollIntoView({ block: "start" });
    else view.article.scrollTop = 0;
    return Boolean(target);
  }

  async function drawNav() {
    const known = await pages();
    view.nav.replaceChildren(...known.map((page) => {
      const link = el("a", "", page.title);
      link.href = `?docs=${encodeURIComponent(page.name)}`;
      if (page.name === current) link.setAttribute("aria-current", "page");
      return link;
    }));
  }

  /** Shows a page (default: the first), at a heading if given; resolves once it is drawn. */
  async function open(name = null, anchor = null) {
    if (!view) build();
    else view.win.focus();
    const known = await pages();
    const page = name ? known.find((candidate) => candidate.name === name) : known[0];
    if (!page) {
      view.article.replaceChildren(el("p", "docs-error", `There is no docs page named "${name}". The pages: ${known.map((p) => p.name).join(", ")}.`));
      return false;
    }
    current = page.name;
    view.win.element.querySelector(".window-bar h2").textContent = `Docs: ${page.title}`;
    view.results.hidden = true;
    view.article.hidden = false;
    view.article.replaceChildren(renderMarkdown(await pageText(page.name), { idPrefix: ID_PREFIX, resolveLink: resolverFor(page, known) }));
    view.article.dataset.page = page.name;
    await drawNav();
    const found = scrollTo(anchor);
    setAddress(page.name, found ? anchor : null);
    return true;
  }

  /** Shows the sections of every page that hold all the query's words, best first. */
  async function search(query) {
    if (!view) build();
    view.input.value = query;
    const words = query.toLowerCase().split(/\s+/).filter(Boolean);
    if (!words.length) {
      view.results.hidden = true;
      view.article.hidden = false;
      return [];
    }
    const known = await pages();
    const found = [];
    for (const page of known) {
      for (const section of sections(await pageText(page.name))) {
        const heading = section.heading.toLowerCase();
        const body = section.text.toLowerCase();
        if (!words.every((word) => heading.includes(word) || body.includes(word))) continue;
        const score = words.reduce((sum, word) => sum + (heading.includes(word) ? 10 : 0) + body.split(word).length - 1, 0);
        found.push({ page, section, score, at: body.indexOf(words[0]) });
      }
    }
    found.sort((a, b) => b.score - a.score);
    const shown = found.slice(0, 40);
    view.results.replaceChildren(...(shown.length ? shown.map(({ page, section, at }) => {
      const item = el("li", "docs-result");
      const link = item.appendChild(el("a", "", section.heading ? `${page.title}: ${section.heading}` : page.title));
      link.href = `?docs=${encodeURIComponent(page.name)}${section.anchor ? `#${section.anchor}` : ""}`;
      const start = Math.max(0, at - 60);
      item.append(el("p", "docs-snippet", `${start ? "…" : ""}${section.text.slice(start, start + 180).replace(/\s+/g, " ")}…`));
      return item;
    }) : [el("li", "docs-none", `Nothing in the docs has all of: ${words.join(" ")}`)]));
    view.results.hidden = false;
    view.results.dataset.query = query;
    view.article.hidden = true;
    return shown.map(({ page, section }) => ({ page: page.name, anchor: section.anchor, heading: section.heading }));
  }

  return { open, search, get window() { return view?.win ?? null; } };
}

/** A page's sections: {heading, anchor, text}, split at its headings (not at "#" lines
 *  of code blocks), with the anchors renderMarkdown gives them. */
function sections(markdown) {
  const out = [{ heading: "", anchor: null, text: "" }];
  const seen = new Map();
  let fence = null;
  for (const line of markdown.split("\n")) {
    const opens = /^\s{0,3}(```+|~~~+)/.exec(line);
    if (opens && (!fence || opens[1].startsWith(fence))) fence = fence ? null : opens[1];
    const heading = !fence && /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (heading) {
      const base = slug(heading[1].replace(/\[([^\]]*)\]\([^)]*\)/g, "$1").replace(/\*/g, ""));
      const count = seen.get(base) ?? 0;
      seen.set(base, count + 1);
      out.push({ heading: heading[1].replace(/[`*]/g, ""), anchor: count ? `${base}-${count}` : base, text: "" });
    } else {
      out[out.length - 1].text += `${line}\n`;
    }
  }
  return out.filter((section) => section.heading || section.text.trim());
}

function setAddress(page, anchor = null) {
  const url = new URL(location.href);
  if (page) url.searchParams.set("docs", page);
  else url.searchParams.delete("docs");
  url.hash = page && anchor ? anchor : "";
  history.replaceState(history.state, "", url);
}

async function fetchJSON(url) {
  return JSON.parse(await fetchText(url));
}

async function fetchText(url) {
  const response = await fetch(new URL(url, document.baseURI));
  if (!response.ok) throw new Error(`${url}: ${response.status} ${response.statusText}`);
  return response.text();
}
