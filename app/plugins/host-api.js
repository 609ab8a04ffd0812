// The API the page gives each plugin: ImJoy's calls, with ImJoy's names and meanings.
// One object per plugin, so that getConfig, events and windows belong to that plugin (by
// its id: host.js). What a plugin could not do alone in a normal page it does not get
// through the host either:
// - loading a plugin that declares permissions or brings dependencies, and installing,
//   replacing or removing plugins, ask the person first, naming the plugin, its source,
//   its permissions and its dependencies;
// - saving a file, choosing files and opening a URL need a click from the person: the
//   question's button is that click, and the action runs in its handler.
// A "no" rejects the call with a PluginError "consent-denied". The page's own code
// (pyjoy.api, `asPerson`) is the person's and is not asked.
// Calls ImJoy gives only through a Python engine (getEngine, getFileManager, ...) are here
// too: without a connected engine they reject with an error that names the call and says
// no engine is connected (engineCalls below).
// PyJoy's engine calls: api.engineStatus(onChange) -> {connected} and
// api.engineModel({data, integrity, name}) -> a model on the engine's model service, bound
// to this plugin (plugins/host.js engineModel). engineModel asks no question: sending a
// model's bytes and arrays to the person's own engine runs no code there (onnxruntime
// evaluates the graph's operators in the service's own process, which opens no paths and
// fetches no URLs; ENGINE.md, "The model service"), so it is no power over the person's
// machine beyond the computing a plugin already does in its sandbox. The person connected
// the engine to this page for such work. What does run code there, a native-python
// plugin, is asked about when a plugin loads one (loadPlugin below).
import { CODES, PluginError } from "../errors.js";
import { fieldsElement, formCallback, readFields, uiFields } from "../workbench/forms.js";
import { dependenciesText, permissionsOf } from "../workbench/install.js";

function text(args) {
  return args.map((arg) => (typeof arg === "string" ? arg : JSON.stringify(arg))).join(" ");
}

function fraction(progress) {
  const value = Number(progress) || 0;
  return value > 1 ? value / 100 : value; // ImJoy plugins send 0..100 or 0..1
}

// ImJoy's dialogs take a string or {content}.
function dialogText(message) {
  return typeof message === "object" ? String(message?.content ?? "") : String(message);
}

function own(object, key) {
  return object && Object.hasOwn(object, key) ? object[key] : undefined;
}

export const MAX_CLOSE_HANDLERS = 100;

// ImJoy's calls that need its Python engine. Without a connected engine they say so. With
// one, getEngine answers as imjoy-core's pluginManager.getEngine (the engine registered
// under that URL, else "engine with url ... not found"): here {url, state, info}, the URL
// without its token (a plugin never gets the token); PyJoy has no engine factories.
function notConnected(call) {
  return new PluginError(`api.${call}: PyJoy's engine is not connected, so there is no engine or file manager to ask (ImJoy answers ${call} only through a Python engine)`, { code: CODES.notFound });
}
function engineCalls(host, plugin, ask) {
  const connected = (call) => {
    const engine = host.engines?.connected();
    if (!engine) throw notConnected(call);
    return engine;
  };
  return {
    getEngine: async (url) => {
      connected("getEngine");
      const engine = url === undefined || url === null ? host.engines.connected() : host.engines.find(String(url));
      if (!engine) throw new PluginError(`api.getEngine: engine with url ${url} not found; connected: ${host.engines.list().map((known) => known.url).join(", ")}`, { code: CODES.notFound });
      return { url: engine.label, state: engine.state, info: engine.info };
    },
    getEngineFactory: async (name) => {
      connected("getEngineFactory");
      throw new PluginError(`api.getEngineFactory: engine factory with name ${name} not found: PyJoy's engines are connected by the person (Engines… in the workspace menu), not made by plugins`, { code: CODES.notFound });
    },
    ...fileCalls(host, plugin, ask, connected),
  };
}

// ImJoy's file calls (imjoy-core pluginManager.js getFileUrl/requestUploadUrl, deprecated
// there for getFileManager(url), whose manager has the same calls; its engine's
// file_server.py), answered by the engine's file service (ENGINE.md, "Files"): a URL of a
// file on the engine, a URL to upload one to, listings, removal, inside the engine's file
// area. A native-python plugin uses its own engine's files unasked (it runs there, and
// its relative paths are its folder's); a plugin in the browser is asked about once per
// engine, as it reaches past its sandbox onto the person's machine.
function fileCalls(host, plugin, ask, connected) {
  const granted = new Set(); // engines the person let this plugin use the files of
  const home = plugin.type === "native-python" ? plugin.engine ?? null : null; // the engine it runs on
  const engineFor = (call, where) => {
    if (where === undefined || where === null || where === "") return home ?? connected(call);
    const engine = host.engines?.find(String(where));
    if (!engine) connected(call); // none at all: say that first
    if (!engine) throw new PluginError(`api.${call}: file manager ${where} not found; connected engines: ${host.engines?.list().map((known) => known.url).join(", ") || "none"}`, { code: CODES.notFound });
    return engine;
  };
  const use = async (call, where, op, args) => {
    const engine = engineFor(call, where);
    const own = home === engine ? plugin.sandbox?.info?.id ?? null : null;
    if (own === null && !granted.has(engine)) {
      await ask("Engine files", `${plugin.name} wants to use files on the engine ${engine.label}: get links to them, upload, list and remove files in its file area. Allow it?`, "Allow");
      granted.add(engine);
    }
    const answer = await engine.files(op, args, own);
    return typeof answer === "string" && answer.startsWith("/") ? engine.httpUrl(answer) : answer;
  };
  const configOf = (call, config, needsPath = true) => {
    if (!config || typeof config !== "object" || (needsPath && typeof config.path !== "string")) {
      throw new TypeError(`api.${call}: give an object with a path (and file_manager: the engine's URL, if more than one is connected), not ${JSON.stringify(config)}`);
    }
    return config;
  };
  const where = (config) => config.file_manager ?? config.engine;
  const getFileUrl = (config, manager) => use("getFileUrl", manager ?? where(configOf("getFileUrl", config)), "url", { path: config.path });
  const requestUploadUrl = (config, manager) => {
    configOf("requestUploadUrl", config, false);
    return use("requestUploadUrl", manager ?? where(config), "upload_url", { path: config.path ?? null, dir: config.dir ?? null, overwrite: Boolean(config.overwrite) });
  };
  const getFilePath = (config, manager) => use("getFilePath", manager ?? config?.file_manager, "path", { url: typeof config === "string" ? config : config?.url });
  return {
    getFileUrl: (config) => getFileUrl(config),
    requestUploadUrl: (config) => requestUploadUrl(config),
    getFilePath: (config) => getFilePath(config),
    // The manager of imjoy-core's serviceSpec "file-manager": its calls bound to one engine.
    getFileManager: async (url) => {
      const engine = engineFor("getFileManager", url);
      const at = engine.httpUrl("/");
      return {
        name: `PyJoy engine ${engine.label}`, type: "file-manager", url: at,
        getFileUrl: (config) => getFileUrl(configOf("getFileUrl", config), at),
        requestUploadUrl: (config) => requestUploadUrl(config ?? {}, at),
        getFilePath: (config) => getFilePath(config, at),
        listFiles: (root = null, type = null, recursive = false) => use("listFiles", at, "list", { path: root, type, recursive }),
        removeFile: (path, type = "file", recursive = false) => use("removeFile", at, "remove", { path, type, recursive }),
        // ImageAnnotator's fm.putFile(file, path): a File or Blob, written (replaced) at path.
        putFile: async (file, path, overwrite = true) => {
          if (!(file instanceof Blob)) throw new TypeError(`putFile: give a File or Blob, not ${typeof file}`);
          const target = await requestUploadUrl({ path: path ?? file.name, overwrite }, at);
          const form = new FormData();
          form.append("file", file, file.name ?? "file");
          const response = await fetch(target, { method: "POST", body: form });
          if (!response.ok) throw new PluginError(`putFile: the engine refused the upload: ${await response.text()}`);
          return response.json();
        },
        heartbeat: async () => engine.state === "connected",
      };
    },
  };
}

// ImJoy's utils for the File System Access API: a plugin's sandbox cannot open the person's
// pickers without the page's gesture, so these say what to use instead.
function noPicker(call) {
  return async () => {
    throw new Error(`api.utils.${call} is not available to PyJoy plugins: use api.showFileDialog to be given files, or api.exportFile to save one`);
  };
}

// ImJoy's showDialog shows a form ("joy") when the config has a ui and no window type, or
// type "joy" / "imjoy/joy" (imjoy-core pluginManager createWindow).
function isFormDialog(config) {
  return config?.ui !== undefined && (config.type === undefined || config.type === null || ["joy", "imjoy/joy"].includes(config.type));
}

// A string loadPlugin takes as a plugin's name rather than its source or URL: one line,
// no path, no plugin file extension (ImJoy: a multi-line string, a URL or a URI is source).
function isPluginName(text) {
  return typeof text === "string" && !/[\n/<:]/.test(text) && !/\.(py|js|html)$/i.test(text.trim());
}

/** An http(s) URL to open, or an error: never javascript:, data: or the like. */
function webURL(url) {
  const parsed = new URL(String(url), document.baseURI);
  if (!["http:", "https:"].includes(parsed.protocol)) throw new TypeError(`openUrl: only http and https URLs can be opened, not ${parsed.protocol} URLs`);
  return parsed.href;
}

export function hostApiFor(plugin, host, { asPerson = false } = {}) {
  const { ui } = host;
  const name = plugin.name;
  const settingsId = plugin.settingsId ?? plugin.id;
  const from = (url) => (url ? `from ${url}` : `given as text by ${asPerson ? "this page" : `plugin ${name}`}`);
  const installedFrom = (entry) => (entry.url ? `installed from ${entry.url}` : "installed from text");

  // Asks the person; a "no" rejects the plugin's call.
  const ask = async (title, message, label) => {
    if (asPerson) return;
    if (!(await ui.dialogs.confirm(title, message, { ok: label, cautious: true, owner: plugin }))) {
      throw new PluginError(`${title}: the person said no to ${name}'s request`, { code: CODES.consentDenied });
    }
  };
  // Runs action() in the click on the question's button: the person's gesture.
  const withGesture = async (title, message, label, action) => {
    if (asPerson) return action();
    const answer = await ui.dialogs.act(title, message, label, action, { owner: plugin });
    if (!answer) throw new PluginError(`${title}: the person said no to ${name}'s request`, { code: CODES.consentDenied });
    return answer.value;
  };

  const workspace = host.settings?.workspace?.() ?? null;
  const tag = plugin.config.tag ?? null;

  // A form dialog: resolves {id: value} on OK and undefined on Cancel, as ImJoy's "joy"
  // dialog does (ImJoy web/src/components/Imjoy.vue showDialog); onupdate/update on a change.
  const formDialog = (config) => {
    const fields = uiFields(config.ui, `showDialog ${config.name ?? ""}`.trim());
    const box = fieldsElement(fields, { onChange: formCallback(config) });
    return ui.dialogs.form(String(config.name ?? name), `${name} asks:`, box, () => readFields(box, fields), { owner: plugin });
  };

  // The question before a plugin's installPlugin (and the Save of an editor window it
  // opened, whose text it gave) installs or replaces a plugin.
  const approveInstall = (config, url, installed, dependencies) => (installed
    ? ask("Replace plugin", `${name} wants to replace the plugin ${installed.name} (${installedFrom(installed)}) with the ${config.type} plugin ${config.name} ${from(url)}. ${permissionsOf(config)} ${dependenciesText(dependencies)} Replace it?`, "Replace")
    : ask("Install plugin", `${name} wants to install the ${config.type} plugin ${config.name} ${from(url)} into this workspace. ${permissionsOf(config)} ${dependenciesText(dependencies)} Install it?`, "Install"));
  const openWindow = (config) => host.createWindow(plugin, config, { approveInstall });

  // ImJoy's getPlugin takes a name, {name}, {id} or {src} (then it loads, as loadPlugin):
  // imjoy-core pluginManager.js getPlugin.
  const getPlugin = (query) => {
    if (query && typeof query === "object") {
      if (query.src !== undefined) return api.loadPlugin(query);
      if (query.id !== undefined && host.plugin(String(query.id))) return host.getPlugin(host.plugin(String(query.id)).name);
      if (query.name === undefined) throw new TypeError(`getPlugin: give a plugin's name, or {name}, {id} or {src}, not ${JSON.stringify(query)}`);
      return host.getPlugin(String(query.name));
    }
    // A URL, a URI (owner/repo:Name) or source text is loaded, as imjoy-core's getPlugin does.
    const text = String(query);
    if (/https?:\/\//i.test(text) || text.includes("\n") || (text.includes("/") && text.includes(":"))) return api.loadPlugin(text);
    return host.getPlugin(text);
  };

  const api = {
    config: { name, type: plugin.type, version: plugin.config.version, tag, workspace, engine: plugin.engine?.label ?? null },
    // ImJoy's constants (deprecated there for config.tag and config.workspace, still used).
    TAG: tag,
    WORKSPACE: workspace,
    // The engine a native-python plugin runs on (imjoy-core: its engine's url), without its
    // token; ImJoy leaves it unset for plugins that run in the browser.
    ENGINE_URL: plugin.engine?.label ?? null,
    FILE_MANAGER_URL: plugin.type === "native-python" ? plugin.engine?.httpUrl("/") ?? null : null,
    ...engineCalls(host, plugin, ask),
    engineStatus: (onChange) => host.engineStatus(plugin, onChange),
    engineModel: (model) => {
      if (!model || typeof model !== "object") throw new TypeError("api.engineModel: give {data, integrity, name}: the ONNX file's bytes, its sha256- integrity and a name");
      return host.engineModel(plugin, { data: model.data, integrity: model.integrity, name: model.name ?? null });
    },
    // Messages and progress
    log: (...args) => host.log(plugin, "info", text(args)),
    error: (...args) => host.log(plugin, "error", text(args)),
    progress: (value) => ui.progress(`${name}`, fraction(value)),
    showProgress: (value) => ui.progress(`${name}`, fraction(value)),
    showStatus: (message) => ui.status(`${name}: ${message}`),
    // Toasts and dialogs name their plugin: each plugin has a few toasts on screen and one
    // dialog open at a time, however often it calls (status.js, ui/dialog.js).
    showMessage: (message, duration) => ui.toast(`${name}: ${message}`, "info", duration, null, plugin),
    showSnackbar: (message, duration) => ui.toast(`${name}: ${message}`, "info", duration, null, plugin),
    // Dialogs
    alert: (message) => ui.dialogs.alert(name, dialogText(message), { owner: plugin }),
    confirm: (message) => ui.dialogs.confirm(name, dialogText(message), { owner: plugin }),
    prompt: (message, initial) => ui.dialogs.prompt(name, dialogText(message), initial, { owner: plugin }),
    showDialog: (config) => (isFormDialog(config) ? formDialog(config) : openWindow(config)),
    showFileDialog: (options = {}) => withGesture("Choose files", `${name} asks you to choose ${options.multiple ? "files" : "a file"} to give it.`,
      "Choose…", () => ui.chooseFiles(options)),
    exportFile: (file, filename) => withGesture("Save file", `${name} wants to save the file "${filename ?? file?.name ?? "download"}" to your device.`,
      "Save", () => ui.download(file, filename)),
    // Windows and other plugins
    createWindow: openWindow,
    getWindow: (query) => host.getWindow(plugin, query),
    updateWindow: (query, config) => host.updateWindow(plugin, query, config),
    showImage: (image, options = {}) => openWindow({ type: "imjoy/image", name: options?.name ?? "Image", data: { ...options, image } }),
    getPlugin,
    // [{id, name, type, version, state, config, api}] of the plugins loaded now (ImJoy's
    // getPlugins: {name, config, api}); api is null for one that is not running.
    getPlugins: () => host.list().map((known) => {
      const loaded = host.plugin(known.id);
      return { ...known, config: loaded?.config ?? {}, api: known.state === "running" ? loaded.api : null };
    }),
    // Loading runs a plugin for this page only, under a name nobody else has, with its
    // config `dependencies` (loaded first, as this plugin's too). One that declares
    // permissions, brings dependencies, or is native-python (it runs outside any sandbox,
    // on the engine's machine) is only loaded if the person agrees (the question
    // names each dependency, as an install's does). It takes the source or URL (a URL may
    // end in "@tag"), {src, tag}, or (as ImJoy) a plugin's name, which gives getPlugin's answer.
    loadPlugin: async (source) => {
      let tag = null;
      if (source && typeof source === "object") {
        tag = source.tag ?? null;
        source = source.src ?? source.uri;
      }
      if (typeof source !== "string") throw new TypeError("loadPlugin: give a plugin's source, its URL or {src}");
      if (isPluginName(source)) return host.getPlugin(source);
      return (await host.load(source, {
        owner: plugin,
        tag: tag === null ? null : String(tag),
        approve: (config, url, dependencies) => (config.permissions?.length || dependencies.length || config.type === "native-python"
          ? ask("Load plugin", `${name} wants to load the ${config.type} plugin ${config.name} ${from(url)}. ${permissionsOf(config)} ${dependenciesText(dependencies, "loaded and started before it")} Load it?`.replace(/  +/g, " "), "Load")
          : undefined),
      })).api;
    },
    // Installing keeps the plugin in the workspace (replacing one of the same name).
    installPlugin: (source) => host.installer.install(typeof source === "object" && source !== null ? source.src ?? source.uri : source, { approve: approveInstall }),
    uninstallPlugin: (pluginName) => host.installer.uninstall(typeof pluginName === "object" && pluginName !== null ? pluginName.name : pluginName, {
      approve: (entry) => ask("Remove plugin", `${name} wants to remove the plugin ${entry.name} (${installedFrom(entry)}) and its settings from this workspace. Remove it?`, "Remove"),
    }),
    // run and call start an installed plugin that is not running (host.getPlugin).
    run: async (pluginName, context = {}) => (await host.getPlugin(pluginName)).run?.(context),
    call: async (pluginName, fn, ...args) => {
      const target = await host.getPlugin(pluginName);
      if (typeof target?.[fn] !== "function") throw new TypeError(`plugin ${pluginName} has no function ${fn}`);
      return target[fn](...args);
    },
    // Services and ops
    registerService: (service) => host.services.register(plugin, service),
    unregisterService: (service) => host.services.unregister(plugin, service),
    getServices: (query = {}) => host.services.find(query),
    // ImJoy's register/unregister: ops (type "operator", the default) and services alike,
    // all found by getServices.
    register: (op) => host.services.register(plugin, { type: "operator", ...op }),
    unregister: (op) => host.services.unregister(plugin, op),
    // Settings, kept in the workspace (IndexedDB) across reloads and restarts.
    // As in ImJoy, settings are strings (setConfig("n", 123) then getConfig("n") is "123");
    // objects are kept as JSON text; a null value removes the key. "_" and a field of the
    // plugin's <config> ("_name", "_version", "_tags", ...) read that field and cannot be set
    // (imjoy-core pluginManager getPluginConfig / setPluginConfig).
    getConfig: (key) => {
      if (key === undefined || key === null) return host.settings.get(settingsId);
      const field = configField(key);
      if (field !== undefined) return field;
      return host.settings.get(settingsId, String(key)) ?? own(plugin.config.defaults, key) ?? null;
    },
    setConfig: (key, value) => {
      const entries = typeof key === "object" && key !== null ? Object.entries(key) : [[String(key), value]];
      for (const [entryKey] of entries) {
        if (configField(entryKey) !== undefined) throw new PluginError(`setConfig: "${entryKey}" is read-only: it is the ${String(entryKey).slice(1)} field of plugin ${name}'s <config>`);
      }
      return host.settings.set(settingsId, entries);
    },
    getAttachment: (attachmentName) => {
      const attachment = own(plugin.source.attachments, attachmentName);
      if (!attachment) throw new Error(`plugin ${name} has no attachment ${attachmentName}`);
      return attachment.text;
    },
    // Events between plugins; "close" is this plugin's own: its handlers run when it is
    // ended (stopped, reloaded or its window closed), before its sandbox goes.
    on: (event, handler) => void (event === "close" ? onClose(handler) : host.events.on(plugin, event, handler)),
    off: (event, handler) => (event === "close" ? void (handler ? plugin.closeHandlers?.delete(handler) : plugin.closeHandlers?.clear()) : host.events.off(plugin, event, handler)),
    onClose: (handler) => void onClose(handler), // ImJoy's older spelling of on("close")
    // The plugin closes itself (imjoy-core forwards a plugin's close to its host): its
    // window, where it has one, else the plugin; its close handlers run first, as for the
    // person's close. Not awaited: the plugin's sandbox goes before an answer could reach it.
    close: () => void (plugin.window ? plugin.window.close() : host.terminate(plugin.id)),
    emit: (event, data) => host.events.emit(event, data),
    echo: (value) => value,
    // ImJoy's api.utils (imjoy-core pluginManager, ImJoy web Imjoy.vue).
    utils: {
      $forceUpdate: () => undefined, // ImJoy redraws its Vue UI; PyJoy's UI is always current
      assert: (condition, message) => {
        if (!condition) throw new Error(message || "Assertion failed");
      },
      ...Object.fromEntries(["showOpenFilePicker", "showSaveFilePicker", "showDirectoryPicker"].map((call) => [call, noPicker(call)])),
      sleep: (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000)),
      openUrl: async (url) => {
        const href = webURL(url);
        await withGesture("Open link", `${name} wants to open ${href} in a new tab.`, "Open", () => void window.open(href, "_blank", "noopener,noreferrer"));
      },
    },
  };

  // A close handler; each is called when the plugin ends, so a plugin has a few, not millions.
  function onClose(handler) {
    if (typeof handler !== "function") throw new TypeError(`on("close"): the handler must be a function, not ${typeof handler}`);
    if (plugin.closeHandlers?.size >= MAX_CLOSE_HANDLERS) throw new PluginError(`on("close"): plugin ${name} already has ${MAX_CLOSE_HANDLERS} close handlers; this one was refused`);
    plugin.closeHandlers?.add(handler);
  }

  // "_name" -> the plugin's config.name, for any field its <config> has; else undefined.
  function configField(key) {
    const text = String(key);
    return text.startsWith("_") ? own(plugin.config, text.slice(1)) : undefined;
  }

  return api;
}
