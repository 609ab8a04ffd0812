// Where plugins come from: a URL (a plugin file, a GitHub file in its blob or raw form, a
// Gist), a repository manifest in ImJoy's manifest.imjoy.json format, or a file dropped on
// the page. This module only fetches and describes; the workspace keeps what is installed.
//
//   rawURL("https://github.com/o/r/blob/main/x.imjoy.html")  // -> raw.githubusercontent.com/...
//   const { text, url } = await fetchPluginText(url);
//   const manifest = await fetchManifest(url);  // {name, url, plugins: [{name, type, version, uri, ...}]}
//   describe(parsedPlugin) -> {name, type, version, description, tags, icon, permissions, dependencies}
//   await dependencySource("Image Window", { from: pluginURL })  // -> the URL to fetch

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

/** What the plugin list shows of a parsed plugin. */
export function describe(plugin) {
  const { name, type, version = "", description = "", tags = [], icon = "", permissions = [] } = plugin.config;
  return { name, type, version: String(version), description, tags, icon, permissions, dependencies: dependencyList(plugin.config) };
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
 * approve gets them): each one's name, type, source and permissions; "" when none.
 */
export function dependenciesText(dependencies = []) {
  if (!dependencies.length) return "";
  const each = dependencies.map(({ name, type, url, permissions, replaces }) => {
    const asks = permissions.length ? `asks for ${permissions.join(", ")}` : "asks for no permissions";
    return `${name} (${type} plugin from ${url ?? "this file"}; ${asks}${replaces ? `; replaces the installed ${replaces.name}` : ""})`;
  });
  return `It needs ${dependencies.length === 1 ? "another plugin" : `${dependencies.length} other plugins`}, installed and started with it: ${each.join("; ")}.`;
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
 * The URL of the plugin file a dependency names, in ImJoy's plugin URI forms (imjoy-core,
 * PluginManager.getPluginFromUrl): a URL (a GitHub or Gist link too); "owner/repo:Name",
 * optionally "owner/repo@ref:Name@tag", a plugin in that GitHub repository's
 * manifest.imjoy.json; or a plain "Name" (optionally "Name@tag"), which ImJoy looks up in
 * the repository the plugin came from. PyJoy has no list of every repository a person
 * added at hand here, so "the repository the plugin came from" is the manifest.imjoy.json
 * beside the plugin's own file (`from`), where repositories keep it. A "@tag" is
 * accepted and not applied: PyJoy loads the plugin's default tag.
 */
export async function dependencySource(spec, { from = null } = {}) {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec)) return rawURL(spec.replace(/(\.imjoy\.html)@[^/?#]*$/, "$1"));
  if (/^\.{0,2}\//.test(spec)) {
    if (!from) throw new Error(`dependency "${spec}" is a relative path, and the plugin has no URL to resolve it against`);
    return new URL(spec, from).href;
  }
  const repo = spec.match(/^([^/:@\s]+\/[^/:@\s]+)(?:@([^:]+))?:(.+)$/);
  let manifestURL;
  let name;
  if (repo) {
    manifestURL = `https://raw.githubusercontent.com/${repo[1]}/${repo[2] ?? "master"}/manifest.imjoy.json`;
    name = repo[3];
  } else {
    if (!from) throw new Error(`dependency "${spec}" names a plugin, and the plugin has no URL whose repository to look it up in`);
    manifestURL = new URL("manifest.imjoy.json", from).href;
    name = spec;
  }
  name = name.replace(/@[^@]*$/, "").trim();
  const manifest = await fetchManifest(manifestURL);
  const found = manifest.plugins.find((plugin) => plugin.name === name);
  if (!found) throw new Error(`dependency "${spec}": no plugin named ${name} in the repository ${manifestURL}`);
  return found.uri;
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
