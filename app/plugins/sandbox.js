// Plugin sandboxes, the page's side. Every plugin runs with an opaque origin, so it can
// touch neither this page, nor our storage (IndexedDB, Cache Storage, cookies,
// localStorage), nor another plugin:
// - window and iframe plugins in an <iframe sandbox="allow-scripts"> (never
//   allow-same-origin), which draws their UI;
// - worker plugins (JS or Python) in a worker started from a data: URL, whose origin is
//   opaque too. It stays in the page's process: Chromium puts sandboxed frames in a process
//   of their own, where every message is copied between processes (bench/rpc.py measured
//   64 MB round trips at 390 ms through a frame, 12 ms without).
// The page and the sandbox talk over two MessagePorts: RPC (app/rpc) and asset requests
// for our own files (sandbox/assets.js), which this side answers, offline included; a
// window plugin's frame gets a third, for the camera (plugins/camera.js).
import { Session } from "../rpc/session.js";
import { FRAME_CHUNK_BYTES, PostMessageTransport } from "../rpc/transport.js";
import { pythonConfig } from "../runtime.js";
import { serveCamera } from "./camera.js";

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

// Our files a sandbox may ask for: the runtime, the bundles, vendored libraries and models
// (models.json says where they are), the built-in plugins; nothing else.
const READABLE = ["pyodide/", "assets/", "vendor/", "plugins/", "models.json"];

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

function serveAssets(port) {
  const readable = READABLE.map((prefix) => new URL(prefix, document.baseURI).href);
  port.addEventListener("message", async ({ data }) => {
    const { id, url, integrity } = data ?? {};
    try {
      const target = new URL(url);
      if (target.origin !== location.origin || !readable.some((prefix) => target.href.startsWith(prefix))) {
        throw new Error("not a file plugins may read");
      }
      const response = await fetch(target, integrity ? { integrity } : {});
      const body = await response.arrayBuffer();
      const contentType = response.headers.get("Content-Type") ?? "";
      port.postMessage({ id, status: response.status, statusText: response.statusText, contentType, body }, [body]);
    } catch (error) {
      port.postMessage({ id, error: error.message });
    }
  });
  port.start();
}

function escapeScript(text) {
  return text.replace(/<\/script/gi, "<\\/script");
}

export class Sandbox {
  /**
   * kind: "window" (UI in a frame in container), "web-worker" or "web-python" (a worker).
   * Resolves once the sandbox's kernel is reachable (for Python: once booted).
   */
  static async create({ build, kind, container, permissions = [], onOutput = () => {} }) {
    const sandbox = new Sandbox();
    await sandbox.#start({ build, kind, container, permissions, onOutput });
    return sandbox;
  }

  frame = null;
  worker = null;
  session = null;
  kernel = null;
  boot = null; // {python, via, phases} for Python sandboxes
  camera = null; // {close()} for window sandboxes
  #onCrash = new Set();

  async #start({ build, kind, container, permissions, onOutput }) {
    const rpc = new MessageChannel();
    const assets = new MessageChannel();
    serveAssets(assets.port1);
    // A frame is another process: big buffers go to it in pieces (rpc/transport.js).
    const chunkBytes = kind === "window" ? FRAME_CHUNK_BYTES : 0;
    this.session = new Session(new PostMessageTransport(rpc.port1, { chunkBytes }));

    let crash;
    const crashed = new Promise((_resolve, reject) => (crash = reject));
    crashed.catch(() => {});
    const reportCrash = (message) => {
      crash(new Error(message));
      for (const listener of this.#onCrash) listener(message);
    };
    rpc.port1.addEventListener("message", ({ data }) => {
      if (data?.type === "failed") crash(Object.assign(new Error(data.error.message), { traceback: data.error.traceback }));
      else if (data?.type === "ready") this.boot = data;
      else if (data?.type === "stdout" || data?.type === "stderr") onOutput(data);
    });

    const ports = [rpc.port2, assets.port2];
    const boot = { config: pythonConfig(build), hostOrigin: location.origin };
    if (kind === "window") {
      const camera = new MessageChannel();
      this.camera = serveCamera(camera.port1, { allowed: permissions.includes("camera") });
      await this.#startFrame(build, container, permissions, [...ports, camera.port2], reportCrash);
    }
    else await this.#startWorker(build, kind, ports, boot, reportCrash);
    this.kernel = await Promise.race([this.session.remoteRoot, crashed]);
  }

  async #startFrame(build, container, permissions, ports, reportCrash) {
    const frameSource = await scriptText(build.sandbox.frame);
    const frame = document.createElement("iframe");
    frame.setAttribute("sandbox", "allow-scripts");
    frame.setAttribute("allow", allowAttribute(permissions));
    frame.className = "plugin-frame";
    frame.srcdoc = `<!doctype html><html><head><meta charset="utf-8"><script>${escapeScript(frameSource)}</script></head><body></body></html>`;
    this.frame = frame;
    window.addEventListener("message", (event) => {
      if (event.source === frame.contentWindow && event.data?.type === "pyjoy:sandbox-error") reportCrash(event.data.message);
    });
    const loaded = new Promise((resolve) => frame.addEventListener("load", resolve, { once: true }));
    container.append(frame);
    await loaded;
    frame.contentWindow.postMessage({ type: "pyjoy:sandbox", hostOrigin: location.origin }, "*", ports);
  }

  async #startWorker(build, kind, ports, boot, reportCrash) {
    const source = await scriptText(kind === "web-python" ? build.sandbox["python-worker"] : build.sandbox["js-worker"]);
    // A data: URL worker has an opaque origin; a blob: or same-origin URL would have ours.
    this.worker = new Worker(`data:text/javascript;charset=utf-8,${encodeURIComponent(source)}`, { name: kind });
    this.worker.addEventListener("error", (event) => reportCrash(event.message || "the plugin's worker failed"));
    this.worker.postMessage({ type: "pyjoy:boot", ...boot }, ports);
  }

  /** Calls listener(message) if the sandbox dies outside any call. */
  onCrash(listener) {
    this.#onCrash.add(listener);
  }

  /** Ends the sandbox at once, even a plugin stuck in an endless loop. */
  terminate(reason = "terminated") {
    this.session?.close(reason);
    this.camera?.close();
    this.worker?.terminate();
    this.frame?.remove(); // removing a frame ends its document
  }
}
