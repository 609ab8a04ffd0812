// Runs first in a sandbox frame: an iframe with sandbox="allow-scripts" (plus allow-modals
// for a window plugin's: "Native dialogs" below) (an opaque
// origin: no access to the page, its storage or other plugins), which Chromium runs in a
// process of its own. The page sends one handshake (contract.js) and the frame is then
// one of two things:
// - a window or iframe plugin's frame (ports: RPC, status, assets, media): it offers the
//   page a kernel whose load_plugin(plugin) puts the plugin's style, HTML and scripts here,
//   as ImJoy does. fetch() of PyJoy's own files (vendor/, models.json, ...) is answered by
//   the page, offline too (assets.js); navigator.mediaDevices.getUserMedia by the page's
//   camera and microphone (media.js). A Python window's frame ({python} in the handshake)
//   runs Python with PyScript instead, and Python's kernel serves the page
//   (python-window.js), with this file's loaders for requirements, HTML and scripts.
// - the hidden host of a web-worker plugin ({worker: {source, chunkBytes}}; ports: RPC,
//   status, assets), or of an isolated web-python plugin ({worker: {kind: "web-python",
//   config, ...}}): it starts the plugin's worker, hands it the RPC and asset ports, and
//   relays its status. The worker lives in this frame's process, so a plugin that exhausts
//   memory takes that process down, not the page's.
// Either way it keeps the empty child frame the page watches to know it is alive.
import { Session } from "../rpc/session.js";
import { FRAME_CHUNK_BYTES, PostMessageTransport } from "../rpc/transport.js";
import { assetFetcher } from "./assets.js";
import { FRAME_HANDSHAKE, LIVENESS_FRAME, PORTS, STATUS, WORKER_HANDSHAKE } from "./contract.js";
import { installMedia } from "./media.js";
import { createPluginApi, exportOf } from "./plugin-api.js";
import { startPythonWindow } from "./python-window.js";
import { cacheRequirement, requirementOf } from "./requirements.js";

// Outside <body>, where a plugin's own HTML goes, so a plugin that rewrites its body keeps it.
const alive = document.createElement("iframe");
alive.id = LIVENESS_FRAME;
alive.hidden = true;
document.documentElement.append(alive);

// Scripts set through innerHTML do not run: recreate each, in order, waiting for src ones.
async function runScripts(container) {
  for (const old of [...container.querySelectorAll("script")]) {
    const script = document.createElement("script");
    for (const { name, value } of old.attributes) script.setAttribute(name, value);
    script.textContent = old.textContent;
    const loaded = script.src ? new Promise((resolve, reject) => {
      script.onload = resolve;
      script.onerror = () => reject(new Error(`could not load ${script.src}`));
    }) : null;
    old.replaceWith(script);
    await loaded;
  }
}

function addScript(code, { type, line = 1, name }) {
  const script = document.createElement("script");
  if (type) script.type = type;
  // Blank lines first, so that errors name the plugin file's own line numbers. V8 ignores a
  // sourceURL with a space in it (most plugin names), hence encodeURI.
  script.textContent = `${"\n".repeat(Math.max(0, line - 1))}${code}\n//# sourceURL=${encodeURI(name)}`;
  document.body.append(script);
}

function loadRequirement(requirement) {
  const { kind, url } = requirementOf(requirement);
  if (kind === "cache") return cacheRequirement(url);
  const element = document.createElement(kind === "css" ? "link" : "script");
  if (kind === "css") Object.assign(element, { rel: "stylesheet", href: url });
  else Object.assign(element, { src: url, type: kind === "mjs" ? "module" : "text/javascript" });
  return new Promise((resolve, reject) => {
    element.onload = resolve;
    element.onerror = () => reject(new Error(`requirement ${requirement} could not be loaded`));
    document.head.append(element);
  });
}

// Native dialogs. A window plugin's frame may show alert/confirm/prompt (sandbox
// allow-modals), as ImJoy's window plugins do: they answer synchronously, which no dialog of
// the page's could. Each blocks the tab until answered, so a plugin that calls them in a loop
// would lock the person out (and again on every visit, as its window is restored): past
// NATIVE_DIALOGS_IN_A_ROW dialogs each opened within NATIVE_DIALOG_GAP_MS of the last one's
// answer, further ones are refused as a person's "Cancel" (alert does nothing, confirm is
// false, prompt null) and the plugin is told why on its console, as the page's own dialogs
// bound a plugin's queue (ui/dialog.js). A bound for plugins with a bug: a plugin set on it
// could reach the browser's own functions through a child frame of its own.
const NATIVE_DIALOGS_IN_A_ROW = 3;
const NATIVE_DIALOG_GAP_MS = 10_000;

function boundNativeDialogs() {
  let inARow = 0;
  let answeredAt = -Infinity;
  for (const [name, refused] of [["alert", undefined], ["confirm", false], ["prompt", null]]) {
    const native = window[name].bind(window);
    window[name] = (...args) => {
      inARow = performance.now() - answeredAt < NATIVE_DIALOG_GAP_MS ? inARow + 1 : 1;
      if (inARow > NATIVE_DIALOGS_IN_A_ROW) {
        console.warn(`${name}() refused: ${NATIVE_DIALOGS_IN_A_ROW} dialogs came one right after another; they are shown again once ${NATIVE_DIALOG_GAP_MS / 1000} s pass without one`);
        answeredAt = performance.now();
        return refused;
      }
      try {
        return native(...args);
      } finally {
        answeredAt = performance.now();
      }
    };
  }
}

// A plugin's <style> and <window> blocks, into this page; then the scripts its HTML holds.
async function loadWindow(htmlParts, styles) {
  for (const css of styles) {
    const element = document.createElement("style");
    element.textContent = css;
    document.head.append(element);
  }
  for (const html of htmlParts) {
    const holder = document.createElement("div");
    holder.innerHTML = html;
    document.body.append(...holder.childNodes);
  }
  await runScripts(document.body);
}

function startWindow(ports, hostOrigin, python) {
  boundNativeDialogs();
  const [rpcPort, statusPort, assetPort, mediaPort] = [ports[PORTS.rpc], ports[PORTS.status], ports[PORTS.assets], ports[PORTS.media]];
  self.fetch = assetFetcher(assetPort, hostOrigin, python?.config?.packageIndex);
  installMedia(mediaPort);
  // Errors in the plugin's own scripts surface where the page shows them.
  let lastError = null;
  window.addEventListener("error", (event) => (lastError = event.error ?? new Error(event.message)));
  const runScript = (code, line, name, type) => {
    lastError = null;
    addScript(code, { type, line, name });
    if (lastError) throw lastError;
  };
  if (python) {
    // A Python window: Python serves the page over the RPC port (python-window.js).
    const javascript = { page: true, loadRequirement, loadWindow: (html, styles) => loadWindow([...html], [...styles]), runScript };
    return startPythonWindow({ rpcPort, fetchAsset: self.fetch, post: (message) => statusPort.postMessage(message), python, javascript });
  }
  // The page is another process: big buffers go back in pieces too (rpc/transport.js).
  const session = new Session(new PostMessageTransport(rpcPort, { chunkBytes: FRAME_CHUNK_BYTES }));
  const { api, exported } = createPluginApi(session);
  window.api = api;
  session.setRoot({
    async load_plugin(plugin) {
      for (const url of plugin.config.requirements ?? []) await loadRequirement(url);
      await loadWindow((plugin.windows ?? []).map((part) => part.html), (plugin.styles ?? []).map((style) => style.css));
      for (const script of plugin.scripts ?? [plugin.script]) runScript(script.code, script.line, plugin.config.name, script.attrs?.type);
      return exportOf(plugin, exported());
    },
  });
}

function startWorker(ports, hostOrigin, { source, chunkBytes, kind = "web-worker", config }) {
  const status = ports[PORTS.status];
  const relay = new MessageChannel();
  relay.port1.onmessage = ({ data }) => status.postMessage(data);
  // Python's worker from a blob: URL of this frame: it shares the frame's cross-origin
  // isolation (threads for onnxruntime-web), which a data: URL worker does not (measured);
  // both have this frame's opaque origin.
  const url = kind === "web-python" ? URL.createObjectURL(new Blob([source], { type: "text/javascript" })) : `data:text/javascript;charset=utf-8,${encodeURIComponent(source)}`;
  const worker = new Worker(url, { name: kind });
  worker.addEventListener("error", (event) => status.postMessage({ type: STATUS.error, message: event.message || "the plugin's worker failed" }));
  const handed = [];
  handed[PORTS.rpc] = ports[PORTS.rpc];
  handed[PORTS.status] = relay.port2;
  handed[PORTS.assets] = ports[PORTS.assets];
  worker.postMessage(config ? { type: WORKER_HANDSHAKE, hostOrigin, chunkBytes, config } : { type: WORKER_HANDSHAKE, hostOrigin, chunkBytes }, handed);
}

window.addEventListener("message", function init(event) {
  if (event.source !== parent || event.data?.type !== FRAME_HANDSHAKE) return;
  window.removeEventListener("message", init);
  const { hostOrigin, worker, python } = event.data;
  if (worker) startWorker(event.ports, hostOrigin, worker);
  else startWindow(event.ports, hostOrigin, python);
});
