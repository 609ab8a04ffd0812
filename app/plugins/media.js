// Cameras and microphones for window plugins, the page's side. Chromium refuses
// getUserMedia in a frame with an opaque origin ("Invalid security origin"), and every
// plugin frame has one, so a plugin with the "camera" or "microphone" permission gets them
// through the page: the page opens the device (the browser asks the person, for PyJoy's
// origin) and relays what it captures over a MessagePort; in the frame,
// navigator.mediaDevices.getUserMedia returns a MediaStream rebuilt from it
// (sandbox/media.js). The messages: sandbox/contract.js, "media".
// - Video goes as ImageBitmaps, one frame in flight at a time, so a busy plugin never
//   makes frames pile up.
// - Audio goes as PCM chunks (f32-planar, as the browser captures them, about 10 ms each),
//   read with MediaStreamTrackProcessor, which needs no AudioContext (an AudioContext
//   stays suspended until a click, and a remembered answer asks for none). At most
//   AUDIO_IN_FLIGHT chunks wait for the frame's acknowledgement; later ones are dropped,
//   so a busy plugin loses sound rather than piling it up.
// Each kind is asked separately, per plugin (consent("camera"), consent("microphone"));
// revoke(kind) ends what is open of that kind at once: the page stops the device and the
// frame's track ends.
import { MEDIA } from "../sandbox/contract.js";

const MAX_FPS = 15;
export const AUDIO_IN_FLIGHT = 16;

// The permission (ImJoy's config "permissions") and the question for each kind of track.
const DEVICES = { video: "camera", audio: "microphone" };

// The next frame the video shows (each one once); where the browser lacks
// requestVideoFrameCallback, the next animation frame.
function nextFrame(video) {
  return new Promise((resolve) => {
    if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(() => resolve());
    else requestAnimationFrame(() => resolve());
  });
}

function notAllowed(message) {
  return Object.assign(new Error(message), { name: "NotAllowedError" });
}

/**
 * Answers a frame's requests for cameras and microphones; returns {close()} that stops
 * everything it opened, and revoke(device) ("camera" or "microphone") that stops what is
 * open of that device and ends the frame's tracks.
 * permissions: the plugin's config "permissions"; consent(device) then resolves to whether
 * the person lets it (the workbench asks once per plugin and workspace, and remembers the
 * answer until it is revoked in the plugin's menu).
 */
export function serveMedia(port, { permissions = [], consent = async () => false }) {
  const open = new Map(); // id -> {video?: {track, element, sent}, audio?: {track, reader, inFlight}}

  async function allow(device) {
    if (!permissions.includes(device)) {
      throw notAllowed(`this plugin may not use the ${device}: its config does not ask for the "${device}" permission ("permissions": ["${device}"])`);
    }
    if (!(await consent(device))) throw notAllowed(`you did not allow this plugin to use the ${device} (the plugin's menu in the workbench asks again)`);
  }

  // How many times each device was revoked: an answer given before a revocation does not
  // open a device after it (the browser's own question may take a while).
  const revocations = { camera: 0, microphone: 0 };

  async function openMedia(id, constraints) {
    const kinds = Object.keys(DEVICES).filter((kind) => constraints[kind]);
    const before = { ...revocations };
    for (const kind of kinds) await allow(DEVICES[kind]);
    if (kinds.includes("audio") && typeof MediaStreamTrackProcessor === "undefined") {
      throw Object.assign(new Error("this browser cannot relay a microphone to a plugin (it lacks MediaStreamTrackProcessor)"), { name: "NotSupportedError" });
    }
    const stream = await navigator.mediaDevices.getUserMedia({ video: constraints.video || false, audio: constraints.audio || false });
    const revoked = kinds.map((kind) => DEVICES[kind]).find((device) => revocations[device] !== before[device]);
    if (revoked) {
      for (const track of stream.getTracks()) track.stop();
      throw notAllowed(`you revoked this plugin's use of the ${revoked} while it was being opened`);
    }
    for (const kind of Object.keys(DEVICES)) end(id, kind); // an id reused: what it had open goes first
    const media = {};
    open.set(id, media);
    const opened = { type: MEDIA.opened, id, video: null, audio: null };
    for (const track of stream.getTracks()) {
      track.addEventListener("ended", () => end(id, track.kind));
      opened[track.kind] = { label: track.label, settings: track.getSettings() };
    }
    const [video] = stream.getVideoTracks();
    if (video) {
      const element = document.createElement("video");
      Object.assign(element, { muted: true, playsInline: true, srcObject: new MediaStream([video]) });
      media.video = { track: video, element, sent: 0 };
      await element.play();
    }
    const [audio] = stream.getAudioTracks();
    if (audio) media.audio = { track: audio, reader: new MediaStreamTrackProcessor({ track: audio }).readable.getReader(), inFlight: 0 };
    port.postMessage(opened);
    if (media.video) sendFrame(id);
    if (media.audio) relayAudio(id, media.audio);
  }

  async function sendFrame(id) {
    const camera = open.get(id)?.video;
    if (!camera) return;
    // At most MAX_FPS: on a phone's few cores every relayed frame (grab, copy, redraw in the
    // frame) takes CPU from the plugin's own work, such as recognising what it shows.
    const wait = camera.sent + 1000 / MAX_FPS - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    await nextFrame(camera.element);
    camera.sent = performance.now();
    if (open.get(id)?.video !== camera) return;
    const bitmap = await createImageBitmap(camera.element);
    port.postMessage({ type: MEDIA.frame, id, bitmap }, [bitmap]);
  }

  async function relayAudio(id, audio) {
    for (;;) {
      const { value, done } = await audio.reader.read().catch(() => ({ done: true }));
      if (done || open.get(id)?.audio !== audio) return value?.close();
      if (audio.inFlight >= AUDIO_IN_FLIGHT) {
        value.close(); // the frame is behind: this chunk is dropped, not kept anywhere
        continue;
      }
      const { sampleRate, numberOfChannels, numberOfFrames, timestamp } = value;
      const samples = new Float32Array(numberOfFrames * numberOfChannels);
      for (let channel = 0; channel < numberOfChannels; channel += 1) {
        value.copyTo(samples.subarray(channel * numberOfFrames, (channel + 1) * numberOfFrames), { planeIndex: channel, format: "f32-planar" });
      }
      value.close();
      audio.inFlight += 1;
      port.postMessage({ type: MEDIA.audio, id, sampleRate, numberOfChannels, numberOfFrames, timestamp, samples: samples.buffer }, [samples.buffer]);
    }
  }

  // Stops the page's track of `kind` for stream `id`; tells the frame when told by the
  // page (device ended, revoked), not when the frame asked (it ended its track itself).
  function end(id, kind, { tell = true } = {}) {
    const media = open.get(id);
    const relay = media?.[kind];
    if (!relay) return;
    delete media[kind];
    relay.track.stop();
    if (kind === "video") relay.element.srcObject = null;
    else relay.reader.cancel().catch(() => {});
    if (!media.video && !media.audio) open.delete(id);
    if (tell) port.postMessage({ type: MEDIA.ended, id, kind });
  }

  port.addEventListener("message", ({ data }) => {
    const { type, id } = data ?? {};
    if (type === MEDIA.open) {
      openMedia(id, { video: data.video, audio: data.audio }).catch((error) => {
        for (const kind of Object.keys(DEVICES)) end(id, kind, { tell: false });
        port.postMessage({ type: MEDIA.failed, id, name: error.name, message: error.message });
      });
    } else if (type === MEDIA.next) sendFrame(id);
    else if (type === MEDIA.heard) {
      const audio = open.get(id)?.audio;
      if (audio && audio.inFlight > 0) audio.inFlight -= 1;
    } else if (type === MEDIA.close) {
      for (const kind of Object.hasOwn(DEVICES, data.kind) ? [data.kind] : Object.keys(DEVICES)) end(id, kind, { tell: false });
    }
  });
  port.start();
  return {
    close: () => [...open.keys()].forEach((id) => Object.keys(DEVICES).forEach((kind) => end(id, kind, { tell: false }))),
    revoke(device) {
      const kind = Object.keys(DEVICES).find((each) => DEVICES[each] === device);
      if (!kind) return;
      revocations[device] += 1;
      for (const id of [...open.keys()]) end(id, kind);
    },
  };
}
