// Cameras for window plugins, the page's side. Chromium refuses getUserMedia in a frame
// with an opaque origin ("Invalid security origin"), and every plugin frame has one, so a
// plugin with the "camera" permission gets its camera through the page: the page opens it
// (the browser asks the person, for PyJoy's origin) and sends its frames, as ImageBitmaps,
// over a MessagePort; in the frame, navigator.mediaDevices.getUserMedia returns a
// MediaStream drawn from them (sandbox/camera.js). One frame is in flight at a time, so a
// busy plugin never makes frames pile up. The messages: sandbox/contract.js, "camera".
import { CAMERA } from "../sandbox/contract.js";

const MAX_FPS = 15;

// The next frame the video shows (each one once); where the browser lacks
// requestVideoFrameCallback, the next animation frame.
function nextFrame(video) {
  return new Promise((resolve) => {
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(() => resolve());
    else requestAnimationFrame(() => resolve());
  });
}

/**
 * Answers a frame's camera requests; returns {close()} that stops every camera it opened.
 * allowed: the plugin's config asks for the "camera" permission; consent("camera") then
 * resolves to whether the person lets it (the workbench asks once per plugin and workspace,
 * and remembers the answer until it is revoked in the plugin's menu).
 */
export function serveCamera(port, { allowed, consent = async () => false }) {
  const open = new Map(); // id -> {stream, video}

  async function openCamera(id, video) {
    if (!allowed) {
      throw Object.assign(new Error('this plugin may not use the camera: its config does not ask for the "camera" permission ("permissions": ["camera"])'), { name: "NotAllowedError" });
    }
    if (!(await consent("camera"))) {
      throw Object.assign(new Error("you did not allow this plugin to use the camera (the plugin's menu in the workbench asks again)"), { name: "NotAllowedError" });
    }
    const stream = await navigator.mediaDevices.getUserMedia({ video: video ?? true, audio: false });
    const element = document.createElement("video");
    Object.assign(element, { muted: true, playsInline: true, srcObject: stream });
    await element.play();
    const [track] = stream.getVideoTracks();
    track.addEventListener("ended", () => port.postMessage({ type: CAMERA.ended, id }));
    open.set(id, { stream, video: element, sent: 0 });
    port.postMessage({ type: CAMERA.opened, id, label: track.label, settings: track.getSettings() });
    sendFrame(id);
  }

  async function sendFrame(id) {
    const camera = open.get(id);
    if (!camera) return;
    // At most MAX_FPS: on a phone's few cores every relayed frame (grab, copy, redraw in the
    // frame) takes CPU from the plugin's own work, such as recognising what it shows.
    const wait = camera.sent + 1000 / MAX_FPS - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    await nextFrame(camera.video);
    camera.sent = performance.now();
    if (!open.has(id)) return;
    const bitmap = await createImageBitmap(camera.video);
    port.postMessage({ type: CAMERA.frame, id, bitmap }, [bitmap]);
  }

  function close(id) {
    const camera = open.get(id);
    if (!camera) return;
    open.delete(id);
    for (const track of camera.stream.getTracks()) track.stop();
    camera.video.srcObject = null;
  }

  port.addEventListener("message", ({ data }) => {
    const { type, id } = data ?? {};
    if (type === CAMERA.open) {
      openCamera(id, data.video).catch((error) => port.postMessage({ type: CAMERA.failed, id, name: error.name, message: error.message }));
    } else if (type === CAMERA.next) sendFrame(id);
    else if (type === CAMERA.close) close(id);
  });
  port.start();
  return { close: () => [...open.keys()].forEach(close) };
}
