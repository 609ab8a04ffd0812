// Cameras and microphones in a window plugin's frame: navigator.mediaDevices.getUserMedia
// answered by the page (plugins/media.js has why; contract.js the messages). The
// MediaStream it returns is rebuilt from what the page relays, so a plugin uses it as it
// would use the devices: <video>.srcObject, createImageBitmap(video), MediaRecorder,
// track.stop(), the track's "ended" event.
// - video: a canvas's capture stream, drawn from the page's frames;
// - audio: a MediaStreamTrackGenerator's track, fed the page's PCM chunks (Chromium; where
//   it is missing, a request for audio fails with NotSupportedError).
// When the page ends a track (the device went away, or the person revoked the plugin's
// permission in its menu) the track here is stopped and fires "ended".
import { MEDIA } from "./contract.js";

export function installMedia(port) {
  const waiting = new Map(); // id -> {resolve, reject}
  const sinks = new Map(); // id -> {video?: {draw(bitmap), end()}, audio?: {write(chunk), end()}}
  let nextId = 0;

  port.addEventListener("message", ({ data }) => {
    const { type, id } = data ?? {};
    if (type === MEDIA.frame) {
      const sink = sinks.get(id)?.video;
      if (sink) sink.draw(data.bitmap);
      else data.bitmap.close();
    } else if (type === MEDIA.audio) {
      const sink = sinks.get(id)?.audio;
      if (sink) sink.write(data);
    } else if (type === MEDIA.ended) {
      sinks.get(id)?.[data.kind === "audio" ? "audio" : "video"]?.end();
    } else if (type === MEDIA.opened || type === MEDIA.failed) {
      const request = waiting.get(id);
      waiting.delete(id);
      if (type === MEDIA.opened) request?.resolve(data);
      else request?.reject(new DOMException(data.message, data.name));
    }
  });
  port.start();

  // A track that stops as a device's does: stop() tells the page and ends it here;
  // ended() (the page ended it) stops it and fires "ended", which stop() never does.
  function relayed(id, kind, track, { onEnd = () => {} } = {}) {
    const stop = track.stop.bind(track);
    const sinksOf = sinks.get(id);
    const end = () => {
      if (sinksOf[kind]?.track !== track) return;
      delete sinksOf[kind];
      if (!sinksOf.video && !sinksOf.audio) sinks.delete(id);
      onEnd();
      stop();
    };
    track.stop = () => {
      port.postMessage({ type: MEDIA.close, id, kind });
      end();
    };
    return {
      track,
      end() {
        const live = track.readyState === "live";
        end();
        if (live) track.dispatchEvent(new Event("ended"));
      },
    };
  }

  function videoTrack(id, opened) {
    const canvas = document.createElement("canvas");
    canvas.width = opened.settings.width || 640;
    canvas.height = opened.settings.height || 480;
    const context = canvas.getContext("2d");
    const [track] = canvas.captureStream(0).getVideoTracks(); // a frame each time requestFrame() is called
    sinks.get(id).video = Object.assign(relayed(id, "video", track), {
      draw(bitmap) {
        if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) Object.assign(canvas, { width: bitmap.width, height: bitmap.height });
        context.drawImage(bitmap, 0, 0);
        bitmap.close();
        track.requestFrame();
        port.postMessage({ type: MEDIA.next, id });
      },
    });
    return track;
  }

  function audioTrack(id) {
    const generator = new MediaStreamTrackGenerator({ kind: "audio" });
    const writer = generator.writable.getWriter();
    sinks.get(id).audio = Object.assign(relayed(id, "audio", generator, { onEnd: () => writer.abort().catch(() => {}) }), {
      // The page sends at most a few chunks ahead (plugins/media.js, AUDIO_IN_FLIGHT): each
      // is acknowledged once written, which is what lets the page send the next.
      async write({ sampleRate, numberOfChannels, numberOfFrames, timestamp, samples }) {
        try {
          const chunk = new AudioData({ format: "f32-planar", sampleRate, numberOfChannels, numberOfFrames, timestamp, data: new Float32Array(samples) });
          await writer.write(chunk);
        } catch {
          // ended meanwhile, or a chunk the browser refused: it is dropped
        } finally {
          port.postMessage({ type: MEDIA.heard, id });
        }
      },
    });
    return generator;
  }

  async function getUserMedia(constraints = {}) {
    if (!constraints.video && !constraints.audio) throw new TypeError("getUserMedia: ask for {video: true}, {audio: true} or constraints for either");
    if (constraints.audio && typeof MediaStreamTrackGenerator === "undefined") {
      throw new DOMException("this browser cannot give a plugin a microphone (it lacks MediaStreamTrackGenerator)", "NotSupportedError");
    }
    const id = nextId++;
    const opened = await new Promise((resolve, reject) => {
      waiting.set(id, { resolve, reject });
      port.postMessage({ type: MEDIA.open, id, video: constraints.video || false, audio: constraints.audio || false });
    });
    sinks.set(id, {});
    const tracks = [];
    if (opened.video) tracks.push(videoTrack(id, opened.video));
    if (opened.audio) tracks.push(audioTrack(id));
    return new MediaStream(tracks);
  }

  Object.defineProperty(navigator.mediaDevices, "getUserMedia", { value: getUserMedia, configurable: true });
}
