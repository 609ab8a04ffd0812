// The API the page gives each plugin: ImJoy's calls, with ImJoy's names and meanings.
// One object per plugin, so that getConfig, events and windows belong to that plugin.

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

export function hostApiFor(plugin, host) {
  const { ui } = host;
  const name = plugin.name;
  const configKey = (key) => `${CONFIG_PREFIX}${name}:${key}`;

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
    showFileDialog: (options = {}) => ui.chooseFiles(options),
    exportFile: (file, filename) => ui.download(file, filename),
    // Windows and other plugins
    createWindow: (config) => host.createWindow(plugin, config),
    getWindow: (windowName) => host.getWindow(windowName),
    getPlugin: (pluginName) => host.getPlugin(pluginName),
    loadPlugin: (source) => host.load(source).then((loaded) => loaded.api),
    // Installing keeps the plugin in the workspace; loading runs it for this page only.
    installPlugin: (source) => host.installer.install(typeof source === "object" ? source.src ?? source.uri : source),
    uninstallPlugin: (pluginName) => host.installer.uninstall(typeof pluginName === "object" ? pluginName.name : pluginName),
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
      if (key === undefined || key === null) return host.settings.get(name);
      return host.settings.get(name, key) ?? plugin.config.defaults?.[key] ?? null;
    },
    setConfig: (key, value) => host.settings.set(name, typeof key === "object" && key !== null ? Object.entries(key) : [[key, value]]),
    getAttachment: (attachmentName) => {
      const attachment = plugin.source.attachments?.[attachmentName];
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
      openUrl: (url) => void window.open(String(url), "_blank", "noopener,noreferrer"),
    },
  };
}
