// The host <-> sandbox channels that are not the RPC: one place for their names and
// shapes, imported by both sides (plugins/sandbox.js and plugins/media.js on the page;
// sandbox/*.js in the sandboxes). The RPC has its own contract: pyjoy/rpc/PROTOCOL.md.
//
// Handshakes. The page makes one MessageChannel per channel and hands the far ends over
// in one message, ports in the order of PORTS:
// - a window or iframe plugin's frame (sandbox/frame.js), once it has loaded:
//     frame.contentWindow.postMessage({type: FRAME_HANDSHAKE, hostOrigin, python?}, "*", [rpc, status, assets, media])
//   python: {config, pyscript} for a Python window (sandbox/python-window.js): Python's boot
//   configuration (python/config.js, with preloadOnnx as a worker's below) and PyScript's
//   URL; its status port then carries ready/failed and Python's output as a Python worker's does.
// - a worker plugin's worker (sandbox/js-worker.js, sandbox/python-worker.js):
//     worker.postMessage({type: WORKER_HANDSHAKE, hostOrigin, chunkBytes, config?}, [rpc, status, assets])
//   config: Python's boot configuration (python/config.js), for Python workers only, with
//   preloadOnnx: true where the plugin imports pyjoy.onnx (python/boot.js then loads
//   onnxruntime-web while Python boots);
//   chunkBytes: the RPC transport's chunk size (0 in the page's process).
// - a web-worker plugin isolated in a hidden frame, or a web-python one that asked to be
//   (`"isolated": true`): the frame gets
//     {type: FRAME_HANDSHAKE, hostOrigin, worker: {source, chunkBytes, kind, config?}} with [rpc, status, assets],
//   starts the worker from source (a data: URL; for kind "web-python" a blob: URL, which
//   keeps the frame's cross-origin isolation) and hands rpc and assets (and config) through
//   to it in the worker handshake; it keeps status and relays the worker's status messages
//   there, adding {type: "error"} for the worker's own error events.
// Each side listens for its handshake once and ignores every other message on its global
// channel; the page listens on no global channel at all, so nothing a plugin posts to
// `parent` reaches the host.
//
// rpc: the RPC only (app/rpc/transport.js envelopes), both ways.
//
// status: sandbox -> page, never the other way. STATUS names each message:
//   {type: "ready", python, via, phases}      a Python sandbox has booted (python/boot.js)
//   {type: "failed", error: {type, message, traceback}}  the sandbox cannot go on: the page
//                                             ends it and marks its plugin crashed
//   {type: "error", message}                  an uncaught error in the worker: before the
//                                             kernel is up the start failed; after, logged
//   {type: "stdout" | "stderr", text}         output (Python's print, tracebacks)
//   {type: "progress" | "notice", ...}        Python's boot progress; ignored by the host
// A status port belongs to one sandbox, so whatever arrives there concerns that sandbox
// only: a plugin that forges a "failed" report ends itself and nothing else.
//
// assets: sandbox -> page requests for PyJoy's own files, which a sandbox cannot fetch
// itself (opaque origin, no service worker): {id, url, integrity?} -> {id, status,
// statusText, contentType, body: ArrayBuffer} or {id, error}. The page answers only for
// paths under ASSET_PREFIXES, decided after decoding the path (plugins/sandbox.js), and for
// .whl files under the package index the person chose (python/package-index.js); it checks
// each answer against the integrity given ("sha256-<base64>"; another form is an error). The
// build's snapshot may come from the copy the page keeps (python/kept-snapshot.js).
//
// media: window frames only: getUserMedia answered by the page (plugins/media.js,
// sandbox/media.js); video and audio are constraints, or false.
//   frame -> page: {type: "open", id, video, audio}
//                  | {type: "next", id}            the last video frame is drawn: send one more
//                  | {type: "heard", id}           an audio chunk is written: one fewer in flight
//                  | {type: "close", id, kind}     the plugin stopped its "video" or "audio" track
//   page -> frame: {type: "opened", id, video: {label, settings} | null, audio: {label, settings} | null}
//                  | {type: "failed", id, name, message}   (name: NotAllowedError, ...)
//                  | {type: "frame", id, bitmap}
//                  | {type: "audio", id, sampleRate, numberOfChannels, numberOfFrames, timestamp,
//                     samples: ArrayBuffer (f32-planar)}   at most AUDIO_IN_FLIGHT not yet heard
//                  | {type: "ended", id, kind}      the page ended that track (device gone, revoked)
//
// Liveness: a frame cannot tell its parent that it died (a crashed renderer, or a plugin
// that navigates its frame away). Each sandbox frame keeps one empty child frame
// (LIVENESS_FRAME); the page sees the child count as contentWindow.length, which Chromium
// keeps in the page's own process and resets to 0 when the frame's process dies or its
// document is replaced, so the page polls it without asking the frame anything (and a
// busy frame is not taken for a dead one). The page calls a frame dead once it stays
// childless for a second (a navigation is named by its next load before that). A plugin
// that removes the child is ended as crashed: that harms only itself.

export const FRAME_HANDSHAKE = "pyjoy:sandbox";
export const WORKER_HANDSHAKE = "pyjoy:boot";

/** The index of each channel's port in a handshake's ports. */
export const PORTS = Object.freeze({ rpc: 0, status: 1, assets: 2, media: 3 });

export const STATUS = Object.freeze({
  ready: "ready",
  failed: "failed",
  error: "error",
  stdout: "stdout",
  stderr: "stderr",
  progress: "progress",
  notice: "notice",
});

export const MEDIA = Object.freeze({
  open: "open",
  next: "next",
  heard: "heard",
  close: "close",
  opened: "opened",
  failed: "failed",
  frame: "frame",
  audio: "audio",
  ended: "ended",
});

/** Paths (relative to the app's base URL) whose files a sandbox may read. */
export const ASSET_PREFIXES = Object.freeze(["pyodide/", "assets/", "vendor/", "plugins/", "models.json"]);

/** The id of the empty child frame each sandbox frame keeps, so the page sees it alive. */
export const LIVENESS_FRAME = "pyjoy-alive";
