// Cameras in a window plugin's frame: navigator.mediaDevices.getUserMedia answered by the
// page (plugins/camera.js has why; contract.js the messages). The MediaStream it returns is a
// canvas's capture stream, drawn from the page's frames, so a plugin uses it as it would
// use a camera: <video>.srcObject, createImageBitmap(video), track.stop().
// Video only: a request for audio is refused.
import { CAMERA } from "./contract.js";

export function installCamera(port) {
  const waiting = new Map(); // id -> {resolve, reject}
  const sinks = new Map(); // id -> {draw(bitmap), end()}
  let nextId = 0;

  port.addEventListener("message", ({ data }) => {
    const { type, id } = data ?? {};
    if (type === CAMERA.frame) {
      const sink = sinks.get(id);
      if (sink) sink.draw(data.bitmap);
      else data.bitmap.close();
    } else if (type === CAMERA.ended) {
      sinks.get(id)?.end();
    } else if (type === CAMERA.opened || type === CAMERA.failed) {
      const request = waiting.get(id);
      waiting.delete(id);
      if (type === CAMERA.opened) request?.resolve(data);
      else request?.reject(new DOMException(data.message, data.name));
    }
  });
  port.start();

  async function getUserMedia(constraints = {}) {
    if (constraints.audio) throw new DOMException("PyJoy gives plugins the camera, not the microphone", "NotSupportedError");
    if (!constraints.video) throw new TypeError("getUserMedia: ask for {video: true} or video constraints");
    const id = nextId++;
    const opened = await new Promise((resolve, reject) => {
      waiting.set(id, { resolve, reject });
      port.postMessage({ type: CAMERA.open, id, video: constraints.video });
    });
    const canvas = document.createElement("canvas");
    canvas.width = opened.settings.width || 640;
    canvas.height = opened.settings.height || 480;
    const context = canvas.getContext("2d");
    const stream = canvas.captureStream(0); // a frame each time requestFrame() is called
    const [track] = stream.getVideoTracks();
    const stop = track.stop.bind(track);
    const end = () => {
      sinks.delete(id);
      stop();
    };
    track.stop = () => {
      port.postMessage({ type: CAMERA.close, id });
      end();
    };
    sinks.set(id, {
      draw(bitmap) {
        if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) Object.assign(canvas, { width: bitmap.width, height: bitmap.height });
        context.drawImage(bitmap, 0, 0);
        bitmap.close();
        track.requestFrame();
        port.postMessage({ type: CAMERA.next, id });
      },
      end,
    });
    return stream;
  }

  Object.defineProperty(navigator.mediaDevices, "getUserMedia", { value: getUserMedia, configurable: true });
}
