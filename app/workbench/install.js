// Where plugins come from: a URL (a plugin file, a GitHub file in its blob or raw form, a
// Gist), a repository manifest in ImJoy's manifest.imjoy.json format, or a file dropped on
// the page. This module only fetches and describes; the workspace keeps what is installed.
//
//   rawURL("https://github.com/o/r/blob/main/x.imjoy.html")  // -> raw.githubusercontent.com/...
//   const { text, url } = await fetchPluginText(url);
//   const manifest = await fetchManifest(url);  // {name, url, plugins: [{name, type, version, uri, ...}]}
//   describe(parsedPlugin) -> {name, type, version, description, tags, tag, icon, permissions, dependencies, replicas}
//   splitTag("https://host/x.imjoy.html@GPU")  // -> {uri: "https://host/x.imjoy.html", tag: "GPU"}
//   await dependencySource("Image Window@GPU", { from: pluginURL })  // -> {url, tag}: what to fetch, which tag
//   const plan = await resolvePlugins(urlOrText, { installed });  // the plugin and its dependencies, parsed
import { CODES, PluginError, asPluginError } from "../errors.js";

// Bounds on a plugin's dependency tree, so that a repository that names plugins without end
// is refused rather than followed.
const MAX_DEPENDENCY_DEPTH = 8;
const MAX_DEPENDENCIES = 32;

/** The URL that serves a plugin file's text, for the forms people copy from GitHub. */
export function rawURL(input) {
  const url = new URL(String(input).trim(), document.baseURI);
  if (url.hostname === "github.com") {
    // github.com/OWNER/REPO/blob/REF/PATH -> raw.githubusercontent.com/OWNER/REPO/REF/PATH
    const match = url.pathname.match(/^\/([^/]+)\/([^/]+)\/(?:blob|raw)\/(.+)$/);
    if (match) return `https://raw.githubusercontent.com/${match[1]}/${match[2]}/${match[3]}`;
  }
  if (url.hostname === "gist.github.com") {
    // gist.github.com/USER/ID (a one-file gist) -> its raw text, newest revision
    const match = url.pathname.match(/^\/([^/]+)\/([0-9a-f]+)\/?$/i);
    if (match) return `https://gist.githubusercontent.com/${match[1]}/${match[2]}/raw`;
  }
  return url.href;
}

/** Fetches a plugin file; errors say which URL and what went wrong. */
export async function fetchPluginText(input) {
  const url = rawURL(input);
  let response;
  try {
    response = await fetch(url, { cache: "no-cache" });
  } catch (error) {
    throw new Error(`could not fetch ${url}: ${navigator.onLine ? error.message : "you are offline"}`);
  }
  if (!response.ok) throw new Error(`could not fetch ${url}: ${response.status} ${response.statusText}`);
  return { text: await response.text(), url };
}

/** What the plugin list shows of a parsed plugin; `tag` is the one it was parsed with (ImJoy's config.tag). */
export function describe(plugin) {
  const { name, type, version = "", description = "", tags = [], tag = null, icon = "", permissions = [], replicas = null } = plugin.config;
  // replicas: its config's count of Ray actors (a native-python plugin; the engine checks it), shown before it starts
  return { name, type, version: String(version), description, tags, tag, icon, permissions, dependencies: dependencyList(plugin.config), replicas };
}

/** What a consent question says of a plugin's permissions (from its config). */
export function permissionsOf(config) {
  const permissions = config.permissions ?? [];
  const asks = permissions.length ? `It asks for these permissions: ${permissions.join(", ")}.` : "It asks for no permissions.";
  // No sandbox holds it: it is a process on the engine's machine (ENGINE.md).
  return config.type === "native-python" ? `${asks} It runs outside the browser, on the engine's machine, with the rights of whoever started pyjoy engine there.` : asks;
}

/**
 * What a consent question says of the dependencies a plugin brings (workbench.install's
 * and host.load's approve get them): each one's name, type, source and permissions, and
 * `how` they come with it; "" when none.
 */
export function dependenciesText(dependencies = [], how = "installed and started with it") {
  if (!dependencies.length) return "";
  const each = dependencies.map(({ name, type, url, permissions, replaces }) => {
    const asks = permissions.length ? `asks for ${permissions.join(", ")}` : "asks for no permissions";
    return `${name} (${type} plugin from ${url ?? "this file"}; ${asks}${replaces ? `; replaces the installed ${replaces.name}` : ""})`;
  });
  return `It needs ${dependencies.length === 1 ? "another plugin" : `${dependencies.length} other plugins`}, ${how}: ${each.join("; ")}.`;
}

/** A config's `dependencies`, checked: a list of non-empty strings (ImJoy's plugin URIs). */
export function dependencyList(config) {
  const list = config.dependencies ?? [];
  if (!Array.isArray(list) || list.some((item) => typeof item !== "string" || !item.trim())) {
    throw new Error(`plugin ${config.name}: "dependencies" must be a list of plugin URLs or names, not ${JSON.stringify(list)}`);
  }
  return list.map((item) => item.trim());
}

/**
 * A plugin URI and the tag it names, as imjoy-core's normalizePluginUrl reads them: a URL
 * ends in ".imjoy.html@TAG"; "owner/repo@ref:Name@TAG" and "Name@TAG" end in "@TAG" after
 * the name. {uri, tag}, tag null when none is named (the plugin's first tag is loaded then).
 */
export function splitTag(spec) {
  const text = String(spec).trim();
  if (/^[a-z][a-z0-9+.-]*:\/\/|^\.{0,2}\//i.test(text)) {
    const match = text.match(/^(.*\.imjoy\.html)@([^/?#@]+)$/i);
    return match ? { uri: match[1], tag: match[2].trim() } : { uri: text, tag: null };
  }
  const at = text.lastIndexOf("@");
  if (at <= text.lastIndexOf(":")) return { uri: text, tag: null }; // "owner/repo@ref:Name": a ref, not a tag
  return { uri: text.slice(0, at).trim(), tag: text.slice(at + 1).trim() || null };
}

/**
 * The plugin file a dependency names, in ImJoy's plugin URI forms (imjoy-core,
 * PluginManager.normalizePluginUrl): {url, tag}. A URL (a GitHub or Gist link too);
 * "owner/repo:Name", optionally "owner/repo@ref:Name", a plugin in that GitHub
 * repository's manifest.imjoy.json; or a plain "Name", which ImJoy looks up in the
 * repository the plugin came from. Each may end in "@tag" (splitTag). PyJoy has no list of
 * every repository a person added at hand here, so "the repository the plugin came from" is
 * the manifest.imjoy.json beside the plugin's own file (`from`), where repositories keep it.
 */
export async function dependencySource(spec, { from = null } = {}) {
  const { uri, tag } = splitTag(spec);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(uri)) return { url: rawURL(uri), tag };
  if (/^\.{0,2}\//.test(uri)) {
    if (!from) throw new Error(`dependency "${spec}" is a relative path, and the plugin has no URL to resolve it against`);
    return { url: new URL(uri, from).href, tag };
  }
  const repo = uri.match(/^([^/:@\s]+\/[^/:@\s]+)(?:@([^:]+))?:(.+)$/);
  let manifestURL;
  let name;
  if (repo) {
    manifestURL = `https://raw.githubusercontent.com/${repo[1]}/${repo[2] ?? "master"}/manifest.imjoy.json`;
    name = repo[3].trim();
  } else {
    if (!from) throw new Error(`dependency "${spec}" names a plugin, and the plugin has no URL whose repository to look it up in`);
    manifestURL = new URL("manifest.imjoy.json", from).href;
    name = uri;
  }
  const manifest = await fetchManifest(manifestURL);
  const found = manifest.plugins.find((plugin) => plugin.name === name);
  if (!found) throw new Error(`dependency "${spec}": no plugin named ${name} in the repository ${manifestURL}`);
  return { url: found.uri, tag };
}

/**
 * A plugin and (depth first) its config's dependencies, read and parsed: a Map name ->
 * {parsed, text, url, tag, needs (the names it needs)}, each after what it needs, the
 * plugin itself last. As imjoy-core's reloadPluginRecursively, which installs and loads
 * alike. `source` is a plugin's text or its URL (which may end in "@tag"); `tag` the tag
 * to parse it with (else the URL's, else a kept one, else its first). `installed(name)`
 * -> {name, text, url, tag} | null: a plain name that is installed is that plugin, and a
 * plugin installed under its name keeps its tag unless another is named (as ImJoy keeps
 * an installed plugin's tag). `verb` ("installed", "loaded") says what failed to happen to
 * a dependency. A malformed file is a PluginError (block, line); a dependency that cannot
 * be fetched or parsed, or names a tag its plugin does not have, is a PluginError naming it
 * and the plugin that needed it; so is a cycle, and a tree past the bounds.
 */
export async function resolvePlugins(source, { url = null, filename = null, tag = null, installed = () => null, verb = "installed" } = {}) {
  const plan = new Map();
  await resolve(String(source), { url, filename, tag, chain: [], plan, installed, verb });
  return plan;
}

async function resolve(text, { url, filename, tag, chain, plan, installed, verb }) {
  let parsed;
  try {
    if (!url && !filename && !/[\n<]/.test(text)) {
      const split = splitTag(text);
      tag ??= split.tag;
      ({ text, url } = await fetchPluginText(split.uri));
    }
    const { parsePlugin } = await import("../plugins/format.js");
    const parse = (chosen) => parsePlugin(text, { url: url ?? undefined, filename: filename ?? url?.split("/").pop(), tag: chosen ?? undefined });
    parsed = parse(tag);
    const kept = tag ? null : installed(parsed.config.name)?.tag;
    if (kept && kept !== parsed.config.tag && parsed.config.tags.includes(kept)) parsed = parse(kept);
    dependencyList(parsed.config);
  } catch (error) {
    throw asPluginError(error);
  }
  const { name } = parsed.config;
  if (chain.includes(name)) {
    throw new PluginError(`dependency cycle: ${[...chain, name].join(" needs ")}`, { code: CODES.loadFailed });
  }
  if (plan.has(name)) return name;
  if (chain.length > MAX_DEPENDENCY_DEPTH || plan.size >= MAX_DEPENDENCIES) {
    throw new PluginError(`${chain[0]}'s dependencies go deeper than ${MAX_DEPENDENCY_DEPTH} levels or past ${MAX_DEPENDENCIES} plugins`, { code: CODES.loadFailed });
  }
  const needs = [];
  for (const spec of dependencyList(parsed.config)) {
    try {
      const below = { chain: [...chain, name], plan, installed, verb };
      // A plain name installed here is that plugin (editor drafts have no URL to look a name up beside).
      const { uri, tag: named } = splitTag(spec);
      const entry = /[/:]/.test(uri) ? null : installed(uri);
      if (entry) {
        needs.push(await resolve(entry.text, { url: entry.url, filename: entry.url ? null : `${entry.name}.imjoy.html`, tag: named ?? entry.tag ?? null, ...below }));
      } else {
        const found = await dependencySource(spec, { from: url });
        needs.push(await resolve(found.url, { url: null, filename: null, tag: found.tag, ...below }));
      }
    } catch (error) {
      if (error.dependencyError) throw error; // already names its plugin and dependency
      throw Object.assign(new PluginError(`${name} needs the plugin "${spec}", which could not be ${verb}: ${error.message}`, {
        code: error.code ?? CODES.loadFailed, block: error.block, line: error.line,
      }), { dependencyError: true });
    }
  }
  plan.set(name, { parsed, text, url, tag: parsed.config.tag ?? null, needs });
  return name;
}

/** A repository manifest, each plugin's `uri` made absolute. */
export async function fetchManifest(input) {
  const url = rawURL(input);
  let data;
  try {
    const response = await fetch(url, { cache: "no-cache" });
    if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
    data = await response.json();
  } catch (error) {
    throw new Error(`could not read the plugin manifest ${url}: ${error.message}`);
  }
  if (!Array.isArray(data?.plugins)) throw new Error(`${url} is not a plugin manifest: it has no "plugins" list`);
  const base = data.uri_root ? new URL(data.uri_root, url).href : url;
  const plugins = data.plugins
    .filter((entry) => entry?.name && (entry.uri || entry.url))
    .map((entry) => ({
      name: String(entry.name), type: entry.type ?? "", version: String(entry.version ?? ""),
      description: entry.description ?? "", tags: entry.tags ?? [], icon: entry.icon ?? "",
      uri: new URL(entry.uri ?? entry.url, base.endsWith("/") ? base : base.replace(/[^/]*$/, "")).href,
    }));
  return { name: data.name ?? url, description: data.description ?? "", url, plugins };
}

/** True when `available` (a manifest's version) is newer than `installed`. */
export function isNewer(available, installed) {
  const parts = (version) => String(version ?? "").split(/[.+-]/).map((part) => (/^\d+$/.test(part) ? Number(part) : part));
  const a = parts(available);
  const b = parts(installed);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x === y) continue;
    if (typeof x === "number" && typeof y === "number") return x > y;
    return String(x) > String(y);
  }
  return false;
}
