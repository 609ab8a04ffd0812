// The workbench's face: the workspace switcher and its menu, the plugin list with its
// actions, the add-plugin dialog (a URL, a repository manifest, a file), ops' forms (ops
// plugins register, and each running plugin whose <config> has a ui), the
// message log, the phone's tab bar, and dropping files on the page. It draws what the
// Workbench (workbench.js) holds and calls it for every action.
//
//   mountManager(document, { workbench, engines, status, dialogs, windows, builtinManifest, show });  // show(view): ui/views.js
import { fetchManifest, isNewer } from "./install.js";
import { opForm } from "./forms.js";
import { openEditorWindow } from "./editor-window.js";
import { button, el } from "../ui/dom.js";
import { describeRuns } from "./engines.js";
import { MAX_REPLICAS } from "./workspace.js";

export function mountManager(doc, { workbench, engines = null, status, dialogs, windows, builtinManifest, show, actions = {} }) {
  const list = doc.getElementById("plugin-list");
  const emptyHint = doc.getElementById("plugin-empty");
  const select = doc.getElementById("workspace-select");
  const fail = (error) => status.toast(error.message ?? String(error), "error");
  const act = (work) => (...args) => Promise.resolve().then(() => work(...args)).catch(fail);

  // -- the plugin list -----------------------------------------------------------------
  const openDocs = new Set();
  async function renderPlugins() {
    const plugins = workbench.list();
    emptyHint.hidden = plugins.length > 0;
    list.replaceChildren(...plugins.map(pluginItem));
    doc.getElementById("window-count").textContent = windows.windows().length ? String(windows.windows().length) : "";
  }

  function pluginItem(plugin) {
    const item = el("li", "plugin-item");
    item.dataset.state = plugin.state;
    item.dataset.name = plugin.name;
    item.dataset.id = plugin.id;
    const title = el("div", "plugin-title");
    title.append(iconFor(plugin), el("span", "plugin-name", plugin.name), el("span", "plugin-state", plugin.state));
    const meta = el("div", "plugin-meta");
    meta.append(el("span", "", plugin.type), el("span", "", plugin.version ? `v${plugin.version}` : ""));
    // Its tags (ImJoy's variants of one plugin: config `tags`), the loaded one marked.
    for (const tag of plugin.tags ?? []) {
      const chip = meta.appendChild(el("span", tag === plugin.tag ? "tag current" : "tag", tag));
      if (tag === plugin.tag) Object.assign(chip, { title: "the tag it loads" }).setAttribute("aria-current", "true");
    }
    item.append(title, meta);
    if (plugin.runs) item.append(el("p", "plugin-runs", describeRuns(plugin.runs, plugin.engine)));
    const replicasNote = localReplicasNote(plugin);
    if (replicasNote) item.append(el("p", "plugin-runs", replicasNote));
    if (plugin.description) item.append(el("p", "plugin-description", plugin.description));
    if (plugin.error) item.append(el("p", "plugin-error", plugin.error));
    const actions = el("div", "plugin-actions");
    const running = plugin.state === "running";
    actions.append(
      button(running ? "Run again" : "Run", act(() => runPlugin(plugin)), "primary"),
      ...(running ? [button("Stop", act(() => workbench.stop(plugin.id)))] : []),
      button("Reload", act(() => workbench.start(plugin.id).then(() => status.toast(`${plugin.name} reloaded`)))),
      button("Edit", act(() => editPlugin(plugin.id))),
      button("Docs", () => {
        if (openDocs.has(plugin.id)) openDocs.delete(plugin.id);
        else openDocs.add(plugin.id);
        renderPlugins();
      }),
      button("Remove", act(() => removePlugin(plugin))),
      ...((plugin.tags ?? []).length > 1 ? [tagChooser(plugin)] : []),
      ...(choosesReplicas(plugin) ? [replicasChooser(plugin)] : []),
      // The camera and microphone answers kept for this plugin (workbench.consent): changed
      // here; revoking also ends what the plugin has open.
      ...["camera", "microphone"].filter((device) => workbench.workspace.grant(plugin.id, device) !== null).map((device) => button(
        workbench.workspace.grant(plugin.id, device) ? `Revoke ${device}` : `Ask about ${device} again`,
        act(() => workbench.revoke(plugin.id, device).then(() => status.toast(`${plugin.name} will be asked before it uses the ${device} again`))),
      )),
    );
    item.append(actions);
    if (openDocs.has(plugin.id)) item.append(docsOf(workbench.workspace.plugin(plugin.id)));
    return item;
  }

  // The engine a native-python plugin starts on (host.js: the first connected), or null.
  const engineNow = () => engines?.connected() ?? null;

  // A plugin whose Ray actor count the person may choose: one running on the cluster, or an
  // installed native-python plugin not started yet (or stopped) while the engine it would
  // start on runs on Ray, so that its first start has the count.
  function choosesReplicas(plugin) {
    if (plugin.state === "running") return plugin.runs?.where === "cluster";
    return plugin.type === "native-python" && plugin.state !== "loading" && Boolean(engineNow()?.info?.cluster);
  }

  // On an engine without Ray a native-python plugin is one local process whatever count it
  // has (its config's, or one kept from a Ray engine): say so, and what replicas need.
  function localReplicasNote(plugin) {
    const engine = engineNow();
    if (plugin.type !== "native-python" || !engine || engine.info?.cluster || plugin.runs?.where === "cluster") return null;
    const count = plugin.replicas ?? (Number.isInteger(plugin.configReplicas) && plugin.configReplicas > 1 ? plugin.configReplicas : null);
    if (count === null) return null;
    const whose = plugin.replicas === null ? "its config asks for" : "your choice kept in this workspace:";
    return `Replicas: ${whose} ${count}; they need an engine on a Ray cluster (pyjoy engine --ray), and engine ${engine.label} runs it as one local process`;
  }

  // How many Ray actors a plugin runs as on a --ray engine (ENGINE.md, "On a Ray cluster"):
  // the person's count, kept in the workspace; a running plugin starts again with it, one
  // not started has it at its first start. An empty box: its config's count again.
  function replicasChooser(plugin) {
    const label = el("label", "plugin-replicas", "Replicas ");
    const running = plugin.state === "running" && Array.isArray(plugin.runs?.replicas) ? plugin.runs.replicas.length : null;
    const configured = Number.isInteger(plugin.configReplicas) ? plugin.configReplicas : 1;
    const shown = running ?? plugin.replicas;
    const count = label.appendChild(Object.assign(el("input"), {
      type: "number", min: "1", max: String(MAX_REPLICAS), step: "1", value: shown === null ? "" : String(shown), placeholder: String(configured),
    }));
    count.title = plugin.replicas === null ? "as its config says; change it to run more or fewer actors" : "your choice, kept in this workspace";
    // A second change event with the same value (focus moving on, even while the first is
    // still being kept) changes nothing: the value counts as applied from the moment it is asked.
    let applied = plugin.replicas;
    count.addEventListener("change", act(async () => {
      const chosen = count.value.trim() === "" ? null : Number(count.value);
      if (chosen === applied) return;
      const before = applied;
      applied = chosen;
      try {
        await workbench.setReplicas(plugin.id, chosen);
      } catch (error) {
        applied = before;
        throw error;
      }
      const actors = (n) => `${n} Ray actor${n === 1 ? "" : "s"}`;
      if (chosen === null) status.toast(`${plugin.name} runs as its config says (${actors(configured)})`);
      else status.toast(running === null ? `${plugin.name} will run as ${actors(chosen)} when it starts` : `${plugin.name} runs as ${actors(chosen)}`);
    }));
    return label;
  }

  // Which of its tags a plugin loads (ImJoy's switchTag): installed again with that tag.
  function tagChooser(plugin) {
    const label = el("label", "plugin-tag", "Tag ");
    const choice = label.appendChild(el("select"));
    for (const tag of plugin.tags) choice.append(Object.assign(el("option", "", tag), { value: tag, selected: tag === plugin.tag }));
    choice.addEventListener("change", act(async () => {
      await workbench.switchTag(plugin.id, choice.value);
      status.toast(`${plugin.name} now loads its tag ${choice.value}`);
    }));
    return label;
  }

  async function runPlugin({ id, name, type }) {
    status.show(`Starting ${name}…`, 0.3);
    await workbench.run(id);
    status.show(`${name} is running`);
    if (type === "window" || type === "web-python-window") show("windows");
  }

  async function removePlugin({ id, name }) {
    if (!(await dialogs.confirm("Remove plugin", `Remove ${name} from workspace "${workbench.workspace.name}"? Its settings go too.`))) return;
    await workbench.remove(id);
    status.toast(`${name} removed`);
  }

  function editPlugin(id) {
    const entry = workbench.workspace.plugin(id);
    return openEditorWindow({ windows, workbench, status, text: entry.text, filename: fileName(entry), onOpen: () => show("windows") });
  }

  // -- workspaces ------------------------------------------------------------------------
  async function renderWorkspaces() {
    const names = await workbench.workspaces.names();
    const current = workbench.workspace.name;
    select.replaceChildren(...names.map((name) => new Option(name, name, false, name === current)));
    const url = new URL(location.href);
    if (url.searchParams.get("w") !== current && (url.searchParams.has("w") || current !== "default")) {
      url.searchParams.set("w", current);
      history.replaceState(null, "", url); // the address names the workspace, to share or bookmark
    }
  }
  select.addEventListener("change", act(() => workbench.switchWorkspace(select.value)));

  const menuButton = doc.getElementById("workspace-menu-button");
  const menu = doc.getElementById("workspace-menu");
  const setMenu = (open) => {
    menu.hidden = !open;
    menuButton.setAttribute("aria-expanded", String(open));
    if (open) menu.querySelector("button").focus();
  };
  menuButton.addEventListener("click", () => setMenu(menu.hidden));
  doc.addEventListener("click", (event) => !menu.hidden && !event.target.closest(".workspace-switch") && setMenu(false));
  menu.addEventListener("keydown", (event) => event.key === "Escape" && (setMenu(false), menuButton.focus()));
  const workspaceActions = {
    new: async () => {
      const name = await dialogs.prompt("New workspace", "Name of the new workspace:", "");
      if (name) await workbench.switchWorkspace(name);
    },
    rename: async () => {
      const old = workbench.workspace.name;
      const name = await dialogs.prompt("Rename workspace", `New name for "${old}":`, old);
      if (name && name !== old) await workbench.workspaces.rename(old, name);
    },
    export: async () => {
      const file = await workbench.workspaces.exportFile();
      const link = Object.assign(doc.createElement("a"), { href: URL.createObjectURL(file), download: file.name });
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
    },
    import: async () => {
      const input = Object.assign(doc.createElement("input"), { type: "file", accept: ".json,application/json" });
      input.addEventListener("change", act(async () => {
        if (!input.files[0]) return;
        const workspace = await workbench.workspaces.importFile(input.files[0]);
        await workbench.switchWorkspace(workspace.name);
        status.toast(`Workspace "${workspace.name}" imported`);
      }));
      input.click();
    },
    delete: async () => {
      const name = workbench.workspace.name;
      if (!(await dialogs.confirm("Delete workspace", `Delete workspace "${name}" and its plugins?`))) return;
      const undo = await workbench.workspaces.remove(name);
      await workbench.switchWorkspace(workbench.workspace.name);
      status.toast(`Workspace "${name}" deleted`, "info", 12, { label: "Undo", run: act(async () => {
        await undo();
        await workbench.switchWorkspace(name);
      }) });
    },
  };
  Object.assign(workspaceActions, actions); // the workspace menu's other entries (Engines…: engines.js)
  menu.addEventListener("click", (event) => {
    const action = event.target.closest("button")?.dataset.action;
    if (!action || !Object.hasOwn(workspaceActions, action)) return;
    setMenu(false);
    act(workspaceActions[action])();
  });

  // -- adding plugins ----------------------------------------------------------------------
  doc.getElementById("add-plugin").addEventListener("click", act(() => addPluginDialog()));
  doc.getElementById("new-plugin").addEventListener("click", act(() => openEditorWindow({
    windows, workbench, status, template: "web-python", onOpen: () => show("windows"),
  })));

  async function addPluginDialog() {
    const dialog = el("dialog", "dialog wide");
    dialog.setAttribute("aria-label", "Add a plugin");
    const form = el("form");
    form.method = "dialog";
    form.innerHTML = `<h2>Add a plugin</h2>
      <label for="plugin-url">From a URL (a plugin file, a GitHub file or a Gist)</label>
      <div class="dialog-row"><input id="plugin-url" name="url" type="url" placeholder="https://…/my-plugin.imjoy.html" autocomplete="off">
      <button type="submit" value="url">Install</button></div>
      <div class="dialog-row" id="plugin-replicas-row" hidden><label for="plugin-replicas">Replicas on the Ray cluster
      (a native-python plugin's actors from its first start; empty: as its config says)</label>
      <input id="plugin-replicas" name="replicas" type="number" min="1" max="${MAX_REPLICAS}" step="1" placeholder="config"></div>
      <h2>From a repository</h2>
      <div class="dialog-row"><select id="repository" name="repository"></select>
      <button type="button" class="secondary" id="add-repository">Other…</button></div>
      <input id="catalog-search" type="search" placeholder="Search plugins" aria-label="Search plugins">
      <ul class="catalog" id="catalog"><li>Loading…</li></ul>
      <div class="dialog-buttons"><button type="button" class="secondary" id="close-add">Close</button></div>`;
    dialog.append(form);
    doc.body.append(dialog);
    // On an engine on Ray, a plugin installed by URL may start with a count of actors chosen here.
    form.querySelector("#plugin-replicas-row").hidden = !engineNow()?.info?.cluster;
    const repositories = [builtinManifest, ...(await workbench.workspaces.store.getState("repositories") ?? [])].filter(Boolean);
    const repoSelect = form.querySelector("#repository");
    const fill = () => repoSelect.replaceChildren(...repositories.map((url) => new Option(url === builtinManifest ? "PyJoy built-in plugins" : url, url)));
    fill();
    let manifest = null;
    const catalog = form.querySelector("#catalog");
    const search = form.querySelector("#catalog-search");
    const renderCatalog = () => {
      const query = search.value.trim().toLowerCase();
      const rows = (manifest?.plugins ?? []).filter((plugin) => !query || `${plugin.name} ${plugin.description} ${plugin.tags.join(" ")}`.toLowerCase().includes(query));
      catalog.replaceChildren(...rows.map((plugin) => {
        const installed = workbench.workspace.pluginNamed(plugin.name);
        const row = el("li");
        const text = el("div", "catalog-text");
        text.append(el("strong", "", plugin.name), el("span", "", [plugin.type, plugin.version && `v${plugin.version}`, plugin.description].filter(Boolean).join(" · ")));
        const label = !installed ? "Install" : isNewer(plugin.version, installed.version) ? `Update to v${plugin.version}` : "Installed";
        const install = button(label, act(async () => {
          install.disabled = true;
          await workbench.install(plugin.uri, { start: false });
          status.toast(`${plugin.name} ${installed ? "updated" : "installed"}`);
          renderCatalog();
        }), "small");
        install.disabled = label === "Installed";
        row.append(text, install);
        return row;
      }));
      if (!rows.length) catalog.replaceChildren(el("li", "", manifest ? "No plugin matches." : "No repository."));
    };
    const loadRepository = async () => {
      catalog.replaceChildren(el("li", "", "Loading…"));
      try {
        manifest = await fetchManifest(repoSelect.value);
      } catch (error) {
        manifest = null;
        catalog.replaceChildren(el("li", "plugin-error", error.message));
        return;
      }
      renderCatalog();
    };
    repoSelect.addEventListener("change", loadRepository);
    search.addEventListener("input", renderCatalog);
    form.querySelector("#add-repository").addEventListener("click", act(async () => {
      const url = await dialogs.prompt("Add a repository", "URL of a manifest.imjoy.json:", "");
      if (!url) return;
      await fetchManifest(url); // only keep one that reads
      const kept = [...new Set([...(await workbench.workspaces.store.getState("repositories") ?? []), url])];
      await workbench.workspaces.store.setState("repositories", kept);
      repositories.push(url);
      fill();
      repoSelect.value = url;
      await loadRepository();
    }));
    form.querySelector("#close-add").addEventListener("click", () => dialog.close());
    form.addEventListener("submit", act(async (event) => {
      event.preventDefault();
      const url = form.elements.url.value.trim();
      if (!url) return;
      const replicas = form.elements.replicas.value.trim();
      const entry = await installWithFeedback(url, replicas === "" ? undefined : { replicas: Number(replicas) });
      if (entry) dialog.close();
    }));
    dialog.addEventListener("close", () => dialog.remove());
    dialog.showModal();
    if (repositories.length) loadRepository();
    else catalog.replaceChildren();
  }

  async function installWithFeedback(source, options) {
    status.show("Installing…", 0.2);
    try {
      const entry = await workbench.install(source, options);
      status.show(`${entry.name} installed`);
      status.toast(`${entry.name} installed in workspace "${workbench.workspace.name}"`);
      return entry;
    } catch (error) {
      status.show("Install failed");
      fail(error.line && !/\bline\b/.test(error.message) ? new Error(`${error.message} (line ${error.line})`) : error);
      return null;
    }
  }

  // -- dropping files ----------------------------------------------------------------------
  const dropHint = doc.getElementById("drop-hint");
  let depth = 0;
  const hasFiles = (event) => [...(event.dataTransfer?.types ?? [])].includes("Files");
  doc.addEventListener("dragenter", (event) => hasFiles(event) && (depth += 1, (dropHint.hidden = false)));
  doc.addEventListener("dragleave", (event) => hasFiles(event) && (depth -= 1) <= 0 && ((depth = 0), (dropHint.hidden = true)));
  doc.addEventListener("dragover", (event) => hasFiles(event) && event.preventDefault());
  doc.addEventListener("drop", act(async (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth = 0;
    dropHint.hidden = true;
    await installFiles([...event.dataTransfer.files]);
  }));

  async function installFiles(files) {
    for (const file of files) {
      if (/\.json$/i.test(file.name)) {
        const workspace = await workbench.workspaces.importFile(file);
        await workbench.switchWorkspace(workspace.name);
        status.toast(`Workspace "${workspace.name}" imported`);
      } else if (/\.(imjoy\.html|html|py|js)$/i.test(file.name)) {
        await installWithFeedback(await file.text(), { url: null, filename: file.name });
      } else {
        status.toast(`${file.name} is not a plugin file (.imjoy.html, .py, .js) or a workspace (.json)`, "error");
      }
    }
  }

  // -- ops -------------------------------------------------------------------------------
  const opsPanel = doc.getElementById("ops-panel");
  const opsList = doc.getElementById("ops-list");
  async function renderOps() {
    const host = await workbench.host();
    // ImJoy registers each running plugin whose <config> has a ui as an op of its own name,
    // run by the plugin's run (imjoy-core pluginManager: _register(plugin, template)).
    const pluginOps = host.list().filter((known) => known.state === "running" && host.plugin(known.id)?.config.ui)
      .map((known) => ({ name: known.name, ui: host.plugin(known.id).config.ui, inputs: host.plugin(known.id).config.inputs, provider: known.name, providerId: known.id }));
    const ops = [...pluginOps, ...host.services.find({ type: "operator" })];
    opsPanel.hidden = ops.length === 0;
    opsList.replaceChildren(...ops.map((op) => {
      // As in ImJoy (imjoy-core registerOp): an op without run or update uses its plugin's,
      // and then ctx.config.type names the op, so that one run can serve several ops.
      const provider = host.plugin(op.providerId)?.api ?? {};
      const run = op.run ?? provider.run;
      const update = op.update ?? provider.update;
      const context = (values, own) => ({ config: own || Object.hasOwn(values, "type") ? values : { ...values, type: op.name }, data: {} });
      try {
        return opForm(op, {
          onRun: act(async (values) => {
            if (typeof run !== "function") throw new Error(`${op.name}: neither the op nor its plugin ${op.provider} has a run function`);
            const result = await run(context(values, Boolean(op.run)));
            status.toast(`${op.name}: ${result === undefined || result === null ? "done" : typeof result === "object" ? JSON.stringify(result) : result}`);
          }),
          onUpdate: typeof update === "function" ? act((values) => update(context(values, Boolean(op.update)))) : null,
        });
      } catch (error) {
        return el("p", "plugin-error", error.message);
      }
    }));
  }

  // -- keeping it current ------------------------------------------------------------------
  let scheduled = false;
  const render = () => {
    if (scheduled) return;
    scheduled = true;
    queueMicrotask(async () => {
      scheduled = false;
      await Promise.all([renderPlugins(), renderWorkspaces()]).catch(fail);
      if (workbench.hostStarted) await renderOps().catch(fail);
    });
  };
  workbench.subscribe(render);
  engines?.onChange(render); // what the list offers of replicas depends on the engine (Ray or not)
  render();
  return { render, installFiles };
}


function iconFor(plugin) {
  const holder = el("span", "plugin-icon");
  holder.setAttribute("aria-hidden", "true");
  if (/^(https?:|data:image\/)/.test(plugin.icon ?? "")) {
    const image = el("img");
    image.src = plugin.icon;
    image.alt = "";
    holder.append(image);
  } else {
    // A short icon (an emoji) as it is; otherwise the name's first letter, which every font has.
    holder.textContent = plugin.icon && [...plugin.icon].length <= 2 ? plugin.icon : [...plugin.name.trim()][0]?.toUpperCase() ?? "?";
    holder.dataset.type = plugin.type;
  }
  return holder;
}

// A plugin's <docs> block (of the tag it loads), rendered as the Docs view renders its pages
// (docs/markdown.js: sanitised; its heading ids prefixed, so that none takes an id of the
// page's). Markdown and its highlighting load when docs are first opened.
function docsOf(entry) {
  const box = el("div", "plugin-docs markdown", "…");
  Promise.all([import("../plugins/format.js"), import("../docs/markdown.js")]).then(([{ parsePlugin }, { renderMarkdown }]) => {
    const docs = entry ? parsePlugin(entry.text, { filename: fileName(entry), tag: entry.tag ?? undefined }).docs : null;
    if (docs?.markdown.trim()) box.replaceChildren(renderMarkdown(docs.markdown, { idPrefix: "user-content-" }));
    else box.textContent = "This plugin has no docs.";
  }).catch((error) => (box.textContent = `The docs could not be shown: ${error.message}`));
  return box;
}

function fileName(entry) {
  if (entry.url) return decodeURIComponent(entry.url.split(/[?#]/)[0].split("/").pop());
  return /<config/i.test(entry.text) ? `${entry.name}.imjoy.html` : entry.type === "web-python" ? `${entry.name}.py` : `${entry.name}.js`;
}
