// Plugin sandboxes, the page's side. Every plugin runs with an opaque origin, so it can
// touch neither this page, nor our storage (IndexedDB, Cache Storage, cookies,
// localStorage), nor another plugin:
// - window and iframe plugins in an <iframe sandbox="allow-scripts allow-modals"> (never
//   allow-same-origin), which draws their UI and may show native alert/confirm/prompt;
//   a Python window plugin's Python runs there too, with PyScript (sandbox/python-window.js);
// - web-worker plugins in a worker started from a data: URL (an opaque origin too) inside
//   a hidden frame of that kind. Chromium runs sandboxed frames in a process apart from the
//   page's, so a plugin that exhausts memory or crashes takes down that process, never the
//   page: in the page's own process it took the whole tab (bench/isolation.py has the
//   price: every message is copied between processes);
// - web-python plugins in a data: URL worker in the page's process: Python's memory is its
//   WASM heap, whose limit is a MemoryError in Python rather than a crash, and the 20 MB of
//   Python a sandbox boots from would cross processes too. One whose config says
//   `"isolated": true` runs in a hidden frame's worker instead, as web-worker plugins do:
//   that worker (from a blob: URL of the frame) is cross-origin isolated, which a data: URL
//   worker in the page is not (measured, Chromium 156), so onnxruntime-web gets threads
//   there (pyjoy.onnx: one per core).
// The page and a sandbox talk over MessagePorts, one per channel: RPC (app/rpc), status
// (boot, output, failure), assets (our own files, which this side answers, offline
// included) and, for window frames, cameras and microphones (plugins/media.js); sandbox/contract.js
// describes each. A sandbox that dies (its frame's process crashed, its frame navigated
// away or was taken out of the page, even before it loaded, or it reported itself failed)
// is ended at once and its pending calls fail; one ended while it starts fails its start.
import { pythonConfig } from "../python/config.js";
import { checkIntegrity, sri } from "../python/integrity.js";
import { snapshotCopy } from "../python/kept-snapshot.js";
import { packageIndex } from "../python/package-index.js";
import { Session } from "../rpc/session.js";
import { FRAME_CHUNK_BYTES, PostMessageTransport } from "../rpc/transport.js";
import { ASSET_PREFIXES, FRAME_HANDSHAKE, PORTS, STATUS, WORKER_HANDSHAKE } from "../sandbox/contract.js";
import { serveMedia } from "./media.js";

// ImJoy plugin permissions -> the iframe's `allow` (Permissions Policy) features.
const PERMISSIONS = {
  camera: "camera",
  microphone: "microphone",
  geolocation: "geolocation",
  "full-screen": "fullscreen",
  fullscreen: "fullscreen",
  "clipboard-read": "clipboard-read",
  "clipboard-write": "clipboard-write",
  midi: "midi",
  "display-capture": "display-capture",
  usb: "usb",
  serial: "serial",
  bluetooth: "bluetooth",
};

const scriptTexts = new Map();
function scriptText(url) {
  if (!scriptTexts.has(url)) {
    scriptTexts.set(url, fetch(url).then((response) => {
      if (!response.ok) throw new Error(`${url} answered ${response.status}`);
      return response.text();
    }));
  }
  return scriptTexts.get(url);
}

/** The `allow` attribute for a plugin's permissions; unknown names are refused loudly. */
export function allowAttribute(permissions = []) {
  const features = ["cross-origin-isolated"];
  for (const permission of permissions) {
    const feature = PERMISSIONS[permission];
    if (!feature) throw new Error(`unknown permission "${permission}"; known: ${Object.keys(PERMISSIONS).join(", ")}`);
    features.push(feature);
  }
  return [...new Set(features)].join("; ");
}

/**
 * The URL to fetch for a sandbox's request for one of our files; throws an Error naming
 * why not. The path is decoded first (repeatedly: double encoding too), and it is the
 * decoded path that must be plain (no "." or ".." segment, no empty segment, no backslash
 * or NUL) and under ASSET_PREFIXES: a server decodes %2F and %2e and then resolves "..",
 * so a check of the encoded form (assets/..%2Fsw.js) would let a sandbox read any file.
 */
export function readableURL(url, base = document.baseURI) {
  const root = new URL(".", base);
  let target;
  try {
    target = new URL(String(url));
  } catch {
    throw new Error("not a URL");
  }
  if (target.origin !== root.origin) throw new Error(`not on ${root.origin}`);
  if (!target.pathname.startsWith(root.pathname)) throw new Error(`not under ${root.pathname}`);
  let path = target.pathname.slice(root.pathname.length);
  for (let round = 0; path.includes("%"); round += 1) {
    if (round === 2) throw new Error("percent-encoded more than twice");
    try {
      path = decodeURIComponent(path);
    } catch {
      throw new Error("malformed percent-encoding");
    }
  }
  const segments = path.split("/");
  if (/[\\\0]/.test(path)) throw new Error("a backslash or NUL in the path");
  if (segments.some((segment, index) => segment === "." || segment === ".." || (segment === "" && index < segments.length - 1))) {
    throw new Error('a ".", ".." or empty segment in the path');
  }
  if (!ASSET_PREFIXES.some((prefix) => (prefix.endsWith("/") ? path.startsWith(prefix) && path.length > prefix.length : path === prefix))) {
    throw new Error(`not a file plugins may read (they may read ${ASSET_PREFIXES.join(", ")})`);
  }
  return new URL(segments.map(encodeURIComponent).join("/") + target.search, root).href;
}

// index: the package index of the sandbox's Python (python/package-index.js, read as it
// started): its wheels are fetched here, through the service worker, which keeps them for
// offline use (service_worker/sw.js). The person chose it; a plugin cannot.
function serveAssets(port, index) {
  port.addEventListener("message", async ({ data }) => {
    const { id, url, integrity } = data ?? {};
    try {
      const wanted = typeof integrity === "string" && integrity ? integrity : "";
      const kept = snapshotCopy(url, wanted); // the console's, verified: no fetch (python/kept-snapshot.js)
      if (kept) return port.postMessage({ id, status: 200, statusText: "OK", contentType: "application/octet-stream", body: kept }, [kept]);
      const wheel = indexWheel(url, index);
      const response = wheel ? await fetchWheel(url, index, wanted) : await fetch(readableURL(url));
      const body = await response.arrayBuffer();
      if (!wheel && wanted && response.ok) await checkIntegrity(body, wanted, url.slice(url.lastIndexOf("/") + 1));
      const contentType = response.headers.get("Content-Type") ?? "";
      port.postMessage({ id, status: response.status, statusText: response.statusText, contentType, body }, [body]);
    } catch (error) {
      port.postMessage({ id, error: error.message });
    }
  });
  port.start();
}

function indexWheel(url, index) {
  if (!index || typeof url !== "string") return false;
  try {
    const target = new URL(url); // normalised: no "..", so it stays under the index
    return target.href.startsWith(index) && target.pathname.endsWith(".whl") && !target.search && !target.hash;
  } catch {
    return false;
  }
}

// The hash is checked here rather than by fetch's integrity option so that a mismatch can
// say what it means: the lock is the build's, and a mirror must serve the build's wheels.
async function fetchWheel(url, index, integrity) {
  const response = await fetch(url);
  if (!response.ok || !integrity) return response;
  const bytes = await response.arrayBuffer();
  if ((await sri(bytes)) !== integrity) {
    await caches.open(PACKAGES_CACHE).then((cache) => cache.delete(url)).catch(() => {}); // never served again
    const name = url.slice(url.lastIndexOf("/") + 1);
    throw new Error(`${name} from ${index} does not match the build's lock (sha256): a package index must serve the same wheels as the build's (${PACKAGE_INDEX_HINT})`);
  }
  return new Response(bytes, { status: response.status, statusText: response.statusText, headers: response.headers });
}

const PACKAGES_CACHE = "pyjoy-packages"; // service_worker/sw.js
const PACKAGE_INDEX_HINT = "mirror the build's index, or set the build's back in the workspace menu's Package index…";

function escapeScript(text) {
  return text.replace(/<\/script/gi, "<\\/script");
}

// Frames cannot say that they died: the page watches each one's child count (contract.js,
// "Liveness"), which drops to 0 when its process dies or it navigates away. A navigation
// also drops it while the next document loads, and that load names the cause; so a frame
// is called dead only once it has stayed childless for DEATH_CONFIRM_MS.
const LIVENESS_MS = 250;
const DEATH_CONFIRM_MS = 1000;
const watched = new Set(); // sandboxes with a frame
let watching = null;

function watch(sandbox) {
  watched.add(sandbox);
  watching ??= setInterval(() => {
    for (const each of watched) each.checkAlive();
  }, LIVENESS_MS);
}

function unwatch(sandbox) {
  watched.delete(sandbox);
  if (!watched.size) {
    clearInterval(watching);
    watching = null;
  }
}

export class Sandbox {
  /**
   * kind: "window" (UI in a frame in container), "web-worker" or "web-python" (a worker).
   * python: a window whose plugin is Python, run in its frame with PyScript.
   * consent(what): resolves to whether the person lets the plugin use "camera" or
   * "microphone" (asked when it opens one, plugins/media.js); by default no.
   * isolated: a worker in a hidden sandboxed frame (in container), in another process;
   * by default web-worker plugins are, web-python ones are not unless asked (see the top of this file).
   * preloadOnnx: a Python sandbox (a web-python worker, a Python window) starts loading
   * onnxruntime-web as its Python boots (its plugin imports pyjoy.onnx; python/boot.js).
   * Resolves once the sandbox's kernel is reachable (for Python: once booted).
   */
  static async create({ build, kind, container, permissions = [], onOutput = () => {}, consent = async () => false, isolated = kind === "web-worker", python = false, preloadOnnx = false }) {
    if (isolated && kind === "window") throw new Error("only worker sandboxes (web-worker, web-python) can be isolated in a frame, not window");
    if (python && kind !== "window") throw new Error(`only window sandboxes run Python with PyScript, not ${kind}`);
    const sandbox = new Sandbox();
    await sandbox.#start({ build, kind, container, permissions, onOutput, consent, isolated, python, preloadOnnx });
    return sandbox;
  }

  frame = null;
  worker = null;
  session = null;
  kernel = null;
  boot = null; // {python, via, phases} for Python sandboxes
  // Where {type: "stdout" | "stderr", text} goes: settable, for a spare Python sandbox booted
  // before the plugin it will run is known (host.js sets it to that plugin's log).
  onOutput = () => {};
  media = null; // {close(), revoke(device)} for window sandboxes (plugins/media.js)
  state = "starting"; // then "running", and "crashed" or "terminated" once ended
  #onCrash = new Set();
  #crashed = null; // rejects when the sandbox dies
  #rejectCrashed;
  #ports = [];
  #frameLoaded = false;
  #childlessSince = null; // when the liveness watch first saw the loaded frame without its child

  async #start({ build, kind, container, permissions, onOutput, consent, isolated, python, preloadOnnx }) {
    const channels = { rpc: new MessageChannel(), status: new MessageChannel(), assets: new MessageChannel() };
    if (kind === "window") channels.media = new MessageChannel();
    // Python's boot configuration, for a web-python worker or a Python window.
    const config = kind === "web-python" || python ? { ...pythonConfig(build), preloadOnnx } : null;
    this.#ports = Object.values(channels).map((channel) => channel.port1);
    serveAssets(channels.assets.port1, packageIndex(build));
    // A frame is another process: big buffers go to it in pieces (rpc/transport.js; Python
    // there takes them through transport.js's chunkingEndpoint). A worker in the page's
    // process needs none: transfer moves them free.
    const chunkBytes = kind === "window" || isolated ? FRAME_CHUNK_BYTES : 0;
    this.session = new Session(new PostMessageTransport(channels.rpc.port1, { chunkBytes }));
    this.#crashed = new Promise((_resolve, reject) => (this.#rejectCrashed = reject));
    this.#crashed.catch(() => {});
    this.onOutput = onOutput;
    this.#listenToStatus(channels.status.port1);

    const ports = [];
    for (const [name, channel] of Object.entries(channels)) ports[PORTS[name]] = channel.port2;
    if (kind === "window") {
      this.media = serveMedia(channels.media.port1, { permissions, consent });
      const handshake = { type: FRAME_HANDSHAKE, hostOrigin: location.origin };
      // A Python window boots Python from the build's snapshot with PyScript (sandbox/python-window.js).
      if (python) handshake.python = { config, pyscript: new URL(build.pyscript, document.baseURI).href };
      await this.#startFrame(build, container, allowAttribute(permissions), ports, handshake);
    } else {
      const source = await scriptText(kind === "web-python" ? build.sandbox["python-worker"] : build.sandbox["js-worker"]);
      if (isolated) {
        const worker = kind === "web-python" ? { source, chunkBytes, kind, config } : { source, chunkBytes, kind };
        const handshake = { type: FRAME_HANDSHAKE, hostOrigin: location.origin, worker };
        await this.#startFrame(build, container, allowAttribute([]), ports, handshake);
      } else {
        const handshake = { type: WORKER_HANDSHAKE, hostOrigin: location.origin, chunkBytes };
        if (kind === "web-python") handshake.config = config;
        this.#startWorker(source, kind, ports, handshake);
      }
    }
    this.kernel = await Promise.race([this.session.remoteRoot, this.#crashed]);
    if (this.state === "starting") this.state = "running";
  }

  #listenToStatus(port) {
    const onOutput = (output) => this.onOutput(output); // read at each line: settable later
    port.addEventListener("message", ({ data }) => {
      const type = data?.type;
      if (type === STATUS.failed) this.crash(String(data.error?.message ?? "it reported a failure"), { traceback: data.error?.traceback });
      else if (type === STATUS.ready) this.boot = data;
      else if (type === STATUS.stdout || type === STATUS.stderr) onOutput({ type, text: String(data.text) });
      else if (type === STATUS.error) {
        // An uncaught error in a worker: fatal only before its kernel is up.
        if (this.state === "starting") this.crash(`its worker failed to start: ${data.message}`);
        else onOutput({ type: STATUS.stderr, text: String(data.message) });
      }
    });
    port.start();
  }

  async #startFrame(build, container, allow, ports, handshake) {
    const frameSource = await scriptText(build.sandbox.frame);
    const frame = document.createElement("iframe");
    // A window plugin's frame may show the browser's own alert/confirm/prompt, which ImJoy's
    // window plugins call and which must answer synchronously (no other dialog can); the
    // frame bounds how many come in a row (sandbox/frame.js, "Native dialogs"). Never
    // allow-same-origin. A worker's hidden frame runs no plugin code: scripts only.
    frame.setAttribute("sandbox", handshake.worker ? "allow-scripts" : "allow-scripts allow-modals");
    frame.setAttribute("allow", allow);
    frame.className = handshake.worker ? "plugin-worker-frame" : "plugin-frame";
    if (handshake.worker) frame.hidden = true;
    frame.srcdoc = `<!doctype html><html><head><meta charset="utf-8"><script>${escapeScript(frameSource)}</script></head><body></body></html>`;
    this.frame = frame;
    const loaded = new Promise((resolve) => frame.addEventListener("load", resolve, { once: true }));
    container.append(frame);
    // A frame taken out of the page before it loads (its window closed meanwhile) never
    // fires load: the liveness watch ends the sandbox then, and create() rejects instead of
    // waiting for ever; so does terminate() (#end).
    watch(this);
    await Promise.race([loaded, this.#crashed]);
    this.#frameLoaded = true;
    if (this.state !== "starting") return frame.remove(); // ended while it loaded
    // Any later load is another document: the plugin navigated its frame away.
    frame.addEventListener("load", () => this.crash("its frame navigated away from the plugin"));
    frame.contentWindow.postMessage(handshake, "*", ports);
  }

  #startWorker(source, kind, ports, handshake) {
    // A data: URL worker has an opaque origin; a blob: or same-origin URL would have ours.
    this.worker = new Worker(`data:text/javascript;charset=utf-8,${encodeURIComponent(source)}`, { name: kind });
    this.worker.addEventListener("error", (event) => {
      if (this.state === "starting") this.crash(`its worker failed to start: ${event.message || "its script did not run"}`);
    });
    this.worker.postMessage(handshake, ports);
  }

  /** Called by the liveness watch: ends the sandbox as crashed if its frame has died. */
  checkAlive() {
    const frame = this.frame;
    if (!frame || this.state === "crashed" || this.state === "terminated") return;
    if (!frame.isConnected) return this.crash("its frame was taken out of the page");
    const childless = this.#frameLoaded && frame.contentWindow?.length === 0; // its liveness child comes with its document
    if (!childless) this.#childlessSince = null;
    else if (this.#childlessSince === null) this.#childlessSince = performance.now();
    else if (performance.now() - this.#childlessSince >= DEATH_CONFIRM_MS) {
      this.crash("its frame died: the sandbox's process crashed (out of memory?) or the plugin replaced its document");
    }
  }

  /**
   * Ends the sandbox as crashed: its pending calls fail with the message, and onCrash
   * listeners hear it (before its kernel is up, create() rejects with it instead).
   */
  crash(message, details = {}) {
    if (this.state === "crashed" || this.state === "terminated") return;
    this.#rejectCrashed(Object.assign(new Error(message), details));
    this.#end("crashed", `the plugin crashed: ${message}`);
    for (const listener of this.#onCrash) listener(message);
  }

  /** Calls listener(message) if the sandbox dies outside any call; it is then ended. */
  onCrash(listener) {
    this.#onCrash.add(listener);
  }

  /** Ends the sandbox at once, even a plugin stuck in an endless loop. */
  terminate(reason = "terminated") {
    this.#end("terminated", reason);
  }

  #end(state, reason) {
    if (this.state === "crashed" || this.state === "terminated") return;
    if (this.state === "starting") this.#rejectCrashed(new Error(`it was ended while it started: ${reason}`)); // create() rejects
    this.state = state;
    unwatch(this);
    this.session?.close(reason); // pending calls fail now, with the reason
    this.media?.close();
    this.worker?.terminate();
    this.frame?.remove(); // removing a frame ends its document (and a worker it started)
    for (const port of this.#ports) port.close();
  }
}
