// The code editor in a window: write a plugin from a template or edit an installed one,
// save it into the workspace (Ctrl+S), run it (Ctrl+Enter). Errors from parsing and from
// running mark the line in the editor. CodeMirror loads only when an editor opens.
//
//   openEditorWindow({ windows, workbench, status, template: "web-python" });
//   openEditorWindow({ windows, workbench, status, text, filename });
//   openEditorWindow({ ..., title, approve, onClose });  // a plugin's imjoy/plugin-editor (plugins/host.js):
//     approve(config, url, installed, dependencies) asks before Save installs; onClose() when it closes

let untitled = 0;

export async function openEditorWindow({ windows, workbench, status, text = null, filename = null, template = null, title = null, approve = null, onClose = () => {}, onOpen = () => {} }) {
  const { createEditor, TEMPLATES, errorLine } = await import("./editor.js");
  if (text === null) {
    // A new plugin from a template, with a name no installed plugin has.
    const taken = new Set(workbench.workspace.plugins.map((plugin) => plugin.name));
    let name;
    do name = `Untitled Plugin ${++untitled}`; while (taken.has(name));
    text = TEMPLATES[template ?? "web-python"].replace(/("name"\s*:\s*)"[^"]*"/, `$1${JSON.stringify(name)}`);
    filename = `${name}.imjoy.html`;
  }
  const win = windows.open({ title: title ?? `Edit ${filename}`, onClose });
  win.element.classList.add("editor-window");
  const toolbar = document.createElement("div");
  toolbar.className = "editor-toolbar";
  const host = document.createElement("div");
  host.className = "editor-host";
  const message = document.createElement("p");
  message.className = "editor-message";
  message.setAttribute("role", "status");
  win.body.append(toolbar, host, message);

  const report = (error, source) => {
    const line = errorLine(error, source);
    message.textContent = `${line ? `Line ${line}: ` : ""}${error.message}${error.traceback ? `\n${error.traceback}` : ""}`;
    if (line) editor.showError({ line, message: error.message });
  };
  const clear = () => {
    message.textContent = "";
    editor.clearErrors();
  };

  // Saving installs the file in the workspace (by its config's name); a running plugin
  // of that name is reloaded with it.
  const save = async (source) => {
    clear();
    try {
      const entry = await workbench.install(source, { filename, start: false, approve });
      win.element.querySelector(".window-bar h2").textContent = `Edit ${entry.name}`;
      status.show(`${entry.name} saved in workspace "${workbench.workspace.name}"`);
      return entry;
    } catch (error) {
      report(error, source);
      return null;
    }
  };
  const run = async (source) => {
    const entry = await save(source);
    if (!entry) return;
    try {
      status.show(`Running ${entry.name}…`, 0.3);
      // Saving has started a running plugin's new version already; run() starts one that
      // is not running (or joins its start), so the new version starts once.
      await workbench.run(entry.id);
      status.show(`${entry.name} ran`);
    } catch (error) {
      status.show(`${entry.name} failed`);
      report(error, source);
    }
  };

  const editor = createEditor(host, { text, filename, onSave: save, onRun: run });
  win.element.editor = editor; // reachable from the window's element: for tests, and pages that drive the editor
  if (template !== null) {
    const choose = document.createElement("select");
    choose.setAttribute("aria-label", "Template");
    for (const kind of Object.keys(TEMPLATES)) choose.append(new Option(`${kind} template`, kind, false, kind === template));
    choose.addEventListener("change", () => {
      const name = (editor.getText().match(/"name"\s*:\s*"([^"]*)"/) ?? [])[1] ?? "Untitled Plugin";
      editor.setText(TEMPLATES[choose.value].replace(/("name"\s*:\s*)"[^"]*"/, `$1${JSON.stringify(name)}`));
    });
    toolbar.append(choose);
  }
  const button = (label, onClick, className = "") => {
    const element = document.createElement("button");
    element.type = "button";
    element.textContent = label;
    element.className = className;
    element.addEventListener("click", onClick);
    toolbar.append(element);
    return element;
  };
  button("Save", () => save(editor.getText()), "secondary editor-save");
  button("Run", () => run(editor.getText()), "editor-run");
  // The plugin author's guide, in the Docs view (main.js listens: the editor has no viewer of its own).
  button("Guide", () => window.dispatchEvent(new CustomEvent("pyjoy-docs", { detail: { page: "plugin-guide" } })), "secondary editor-guide");
  onOpen();
  editor.focus();
  return { window: win, editor };
}
