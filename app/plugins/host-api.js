// The API the page gives each plugin: ImJoy's calls, with ImJoy's names and meanings.
// One object per plugin, so that getConfig, events and windows belong to that plugin (by
// its id: host.js). What a plugin could not do alone in a normal page it does not get
// through the host either:
// - loading a plugin that declares permissions, and installing, replacing or removing
//   plugins, ask the person first, naming the plugin, its source and its permissions;
// - saving a file, choosing files and opening a URL need a click from the person: the
//   question's button is that click, and the action runs in its handler.
// A "no" rejects the call with a PluginError "consent-denied". The page's own code
// (pyjoy.api, `asPerson`) is the person's and is not asked.
import { CODES, PluginError } from "../errors.js";
import { dependenciesText } from "../workbench/install.js";

function text(args) {
  return args.map((arg) => (typeof arg === "string" ? arg : JSON.stringify(arg))).join(" ");
}

function fraction(progress) {
  const value = Number(progress) || 0;
  return value > 1 ? value / 100 : value; // ImJoy plugins send 0..100 or 0..1
}

function permissionsOf(config) {
  const permissions = config.permissions ?? [];
  return permissions.length ? `It asks for these permissions: ${permissions.join(", ")}.` : "It asks for no permissions.";
}

// ImJoy's dialogs take a string or {content}.
function dialogText(message) {
  return typeof message === "object" ? String(message?.content ?? "") : String(message);
}

function own(object, key) {
  return object && Object.hasOwn(object, key) ? object[key] : undefined;
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

  return {
    config: { name, type: plugin.type, version: plugin.config.version },
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
    showDialog: (config) => host.createWindow(plugin, config),
    showFileDialog: (options = {}) => withGesture("Choose files", `${name} asks you to choose ${options.multiple ? "files" : "a file"} to give it.`,
      "Choose…", () => ui.chooseFiles(options)),
    exportFile: (file, filename) => withGesture("Save file", `${name} wants to save the file "${filename ?? file?.name ?? "download"}" to your device.`,
      "Save", () => ui.download(file, filename)),
    // Windows and other plugins
    createWindow: (config) => host.createWindow(plugin, config),
    getWindow: (query) => host.getWindow(plugin, query),
    getPlugin: (pluginName) => host.getPlugin(pluginName),
    // Loading runs a plugin for this page only, under a name nobody else has; one that
    // declares permissions is only loaded if the person agrees.
    loadPlugin: async (source) => (await host.load(source, {
      owner: plugin,
      approve: (config, url) => (config.permissions?.length
        ? ask("Load plugin", `${name} wants to load the ${config.type} plugin ${config.name} ${from(url)}. ${permissionsOf(config)} Load it?`, "Load")
        : undefined),
    })).api,
    // Installing keeps the plugin in the workspace (replacing one of the same name).
    installPlugin: (source) => host.installer.install(typeof source === "object" && source !== null ? source.src ?? source.uri : source, {
      approve: (config, url, installed, dependencies) => (installed
        ? ask("Replace plugin", `${name} wants to replace the plugin ${installed.name} (${installedFrom(installed)}) with the ${config.type} plugin ${config.name} ${from(url)}. ${permissionsOf(config)} ${dependenciesText(dependencies)} Replace it?`, "Replace")
        : ask("Install plugin", `${name} wants to install the ${config.type} plugin ${config.name} ${from(url)} into this workspace. ${permissionsOf(config)} ${dependenciesText(dependencies)} Install it?`, "Install")),
    }),
    uninstallPlugin: (pluginName) => host.installer.uninstall(typeof pluginName === "object" && pluginName !== null ? pluginName.name : pluginName, {
      approve: (entry) => ask("Remove plugin", `${name} wants to remove the plugin ${entry.name} (${installedFrom(entry)}) and its settings from this workspace. Remove it?`, "Remove"),
    }),
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
    // objects are kept as JSON text.
    getConfig: (key) => {
      if (key === undefined || key === null) return host.settings.get(settingsId);
      return host.settings.get(settingsId, String(key)) ?? own(plugin.config.defaults, key) ?? null;
    },
    setConfig: (key, value) => host.settings.set(settingsId, typeof key === "object" && key !== null ? Object.entries(key) : [[String(key), value]]),
    getAttachment: (attachmentName) => {
      const attachment = own(plugin.source.attachments, attachmentName);
      if (!attachment) throw new Error(`plugin ${name} has no attachment ${attachmentName}`);
      return attachment.text;
    },
    // Events between plugins
    on: (event, handler) => host.events.on(plugin, event, handler),
    off: (event, handler) => host.events.off(plugin, event, handler),
    emit: (event, data) => host.events.emit(event, data),
    echo: (value) => value,
    utils: {
      sleep: (seconds) => new Promise((resolve) => setTimeout(resolve, seconds * 1000)),
      openUrl: async (url) => {
        const href = webURL(url);
        await withGesture("Open link", `${name} wants to open ${href} in a new tab.`, "Open", () => void window.open(href, "_blank", "noopener,noreferrer"));
      },
    },
  };
}
