// The API the page gives each plugin: ImJoy's calls, with ImJoy's names and meanings.
// One object per plugin, so that getConfig, events and windows belong to that plugin.

const CONFIG_PREFIX = "pyjoy:plugin-config:"; // the workbench moves these into the workspace

function text(args) {
  return args.map((arg) => (typeof arg === "string" ? arg : JSON.stringify(arg))).join(" ");
}

function fraction(progress) {
  const value = Number(progress) || 0;
  return value > 1 ? value / 100 : value; // ImJoy plugins send 0..100 or 0..1
}

export function hostApiFor(plugin, host) {
  const { ui } = host;
  const name = plugin.name;
  const configKey = (key) => `${CONFIG_PREFIX}${name}:${key}`;
  const ops = new Map();

  return {
    config: { name, type: plugin.type, version: plugin.config.version },
    // Messages and progress
    log: (...args) => host.log(plugin, "info", text(args)),
    error: (...args) => host.log(plugin, "error", text(args)),
    progress: (value) => ui.progress(`${name}`, fraction(value)),
    showProgress: (value) => ui.progress(`${name}`, fraction(value)),
    showStatus: (message) => ui.status(`${name}: ${message}`),
    showMessage: (message, duration) => ui.toast(`${name}: ${message}`, "info", duration),
    showSnackbar: (message, duration) => ui.toast(`${name}: ${message}`, "info", duration),
    // Dialogs
    alert: (message) => ui.dialogs.alert(name, typeof message === "object" ? message?.content ?? "" : String(message)),
    confirm: (message) => ui.dialogs.confirm(name, typeof message === "object" ? message?.content ?? "" : String(message)),
    prompt: (message, initial) => ui.dialogs.prompt(name, typeof message === "object" ? message?.content ?? "" : String(message), initial),
    showDialog: (config) => host.createWindow(plugin, config),
    showFileDialog: (options = {}) => ui.chooseFiles(options),
    exportFile: (file, filename) => ui.download(file, filename),
    // Windows and other plugins
    createWindow: (config) => host.createWindow(plugin, config),
    getWindow: (windowName) => host.getWindow(windowName),
    getPlugin: (pluginName) => host.getPlugin(pluginName),
    loadPlugin: (source) => host.load(source).then((loaded) => loaded.api),
    installPlugin: (source) => host.load(typeof source === "object" ? source.src ?? source.uri : source).then((loaded) => loaded.api),
    uninstallPlugin: (pluginName) => host.terminate(typeof pluginName === "object" ? pluginName.name : pluginName),
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
    register: (op) => {
      ops.set(op.name, op);
      host.log(plugin, "info", `registered op ${op.name}`);
      return op.name;
    },
    unregister: (op) => ops.delete(typeof op === "string" ? op : op.name),
    // Settings, kept across reloads
    getConfig: (key) => {
      if (key === undefined || key === null) {
        const all = {};
        for (let i = 0; i < localStorage.length; i++) {
          const stored = localStorage.key(i);
          if (stored.startsWith(configKey(""))) all[stored.slice(configKey("").length)] = JSON.parse(localStorage.getItem(stored));
        }
        return all;
      }
      const stored = localStorage.getItem(configKey(key));
      return stored === null ? plugin.config.defaults?.[key] ?? null : JSON.parse(stored);
    },
    setConfig: (key, value) => {
      if (typeof key === "object") for (const [k, v] of Object.entries(key)) localStorage.setItem(configKey(k), JSON.stringify(v));
      else localStorage.setItem(configKey(key), JSON.stringify(value));
    },
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
