// Plugin sandboxes, the page's side. Every plugin runs in an iframe with
// sandbox="allow-scripts" and never allow-same-origin: an opaque origin that can touch
// neither this page, nor our storage, nor another plugin. Window plugins draw in that
// frame; worker plugins (JS or Python) run in a worker the frame starts from a blob.
// The page and the sandbox talk over two MessagePorts: RPC (app/rpc) and asset requests
// for our own files (sandbox/assets.js), which this side answers, offline included.
import { Session } from "../rpc/session.js";
import { PostMessageTransport } from "../rpc/transport.js";
import { pythonConfig } from "../runtime.js";

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

// Our files a sandbox may ask for: the runtime and the bundles, nothing else.
const READABLE = ["pyodide/", "assets/"];

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
   * kind: "window" (UI in the frame), "web-worker" or "web-python" (a worker in a hidden
   * frame). Resolves once the sandbox's kernel is reachable (for Python: once booted).
   */
  static async create({ build, kind, container, permissions = [], onOutput = () => {} }) {
    const sandbox = new Sandbox();
    await sandbox.#start({ build, kind, container, permissions, onOutput });
    return sandbox;
  }

  frame = null;
  session = null;
  kernel = null;
  boot = null; // {python, via, phases} for Python sandboxes
  #onCrash = new Set();

  async #start({ build, kind, container, permissions, onOutput }) {
    const frameSource = await scriptText(build.sandbox.frame);
    const workerSource = kind === "window" ? null
      : await scriptText(kind === "web-python" ? build.sandbox["python-worker"] : build.sandbox["js-worker"]);
    const frame = document.createElement("iframe");
    frame.setAttribute("sandbox", "allow-scripts");
    frame.setAttribute("allow", allowAttribute(permissions));
    frame.className = kind === "window" ? "plugin-frame" : "plugin-frame hidden-frame";
    frame.srcdoc = `<!doctype html><html><head><meta charset="utf-8"><script>${escapeScript(frameSource)}</script></head><body></body></html>`;
    this.frame = frame;

    const rpc = new MessageChannel();
    const assets = new MessageChannel();
    serveAssets(assets.port1);
    this.session = new Session(new PostMessageTransport(rpc.port1));

    const failed = new Promise((_resolve, reject) => {
      const onError = (event) => {
        if (event.source !== frame.contentWindow || event.data?.type !== "pyjoy:sandbox-error") return;
        reject(new Error(event.data.message));
        for (const listener of this.#onCrash) listener(event.data.message);
      };
      window.addEventListener("message", onError);
      rpc.port1.addEventListener("message", ({ data }) => {
        if (data?.type === "failed") reject(Object.assign(new Error(data.error.message), { traceback: data.error.traceback }));
        else if (data?.type === "ready") this.boot = data;
        else if (data?.type === "stdout" || data?.type === "stderr") onOutput(data);
      });
    });
    failed.catch(() => {});

    const loaded = new Promise((resolve) => frame.addEventListener("load", resolve, { once: true }));
    container.append(frame);
    await loaded;
    frame.contentWindow.postMessage(
      { type: "pyjoy:sandbox", kind: kind === "window" ? "window" : "worker", workerSource, config: pythonConfig(build), hostOrigin: location.origin },
      "*",
      [rpc.port2, assets.port2],
    );
    this.kernel = await Promise.race([this.session.remoteRoot, failed]);
  }

  /** Calls listener(message) if the sandbox's worker dies outside any call. */
  onCrash(listener) {
    this.#onCrash.add(listener);
  }

  /** Ends the sandbox at once, even a plugin stuck in an endless loop. */
  terminate(reason = "terminated") {
    this.session?.close(reason);
    this.frame?.remove(); // removing the frame ends its document and its workers
  }
}
