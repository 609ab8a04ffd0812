// The image viewer's pixels (image.js): an array's contrast mapping to RGBA, done in a
// worker of the window's sandbox, so a 4096x4096 image or a stack's slices never hold up
// the window's own thread (its zoom, pan, readout and slider).
//
//   const pixels = pixelRenderer(canvas);            // canvas: the viewer's <canvas class="image">
//   const [lo, hi] = await pixels.load(image);         // image: readArray()'s; the min..max of its values
//   await pixels.draw({ slice, lo, hi });               // on the canvas once this resolves
//
// The worker keeps the image (a copy: the window keeps its own, for the pixel readout),
// maps one slice to RGBA and moves the bytes back (transferred, not copied, and sent back
// with the next request to be filled again: 64 MB for 4096x4096 is not allocated, and
// collected, on each draw); this thread only puts them on the canvas (putImageData, the
// floor bench/image_viewer.py measures; an OffscreenCanvas the worker drew on itself would
// save that too, but its frames reach the canvas here later, with no event saying when).
// Draws are coalesced: while one is being made, later requests replace each other and only
// the newest is drawn (a slider dragged across 64 slices draws what it stops on, not all
// 64), and each request's promise resolves once a draw at least as new is on the canvas.
// The worker is a classic blob: worker (an opaque-origin sandbox may start one, not a module
// worker from blob:). Where none can start, or it fails, the same functions run here.

/**
 * One slice of the image as RGBA ImageData, by the contrast mapping: each value v becomes
 * floor((v - lo) * 255 / (hi - lo) + 0.5), clamped to 0..255 (with lo == hi: 255 above lo,
 * else 0); one channel is grey, 3 are RGB (opaque), 4 RGBA.
 * `into`: an ArrayBuffer of width * height * 4 bytes to fill, reused rather than allocated.
 * It refers to nothing outside itself: its source is also the worker's.
 */
export function sliceData({ values, width, height, channels }, slice, lo, hi, into = null) {
  const pixels = into?.byteLength === width * height * 4 ? new ImageData(new Uint8ClampedArray(into), width, height) : new ImageData(width, height);
  const out = pixels.data;
  const count = width * height;
  const start = slice * count * channels;
  const span = hi - lo;
  let map = (v) => {
    if (!(span > 0)) return v > lo ? 255 : 0;
    const t = Math.floor(((v - lo) * 255) / span + 0.5); // as written: (v - lo) * (255 / span) rounds differently
    return t < 0 ? 0 : t > 255 ? 255 : t;
  };
  // 8- and 16-bit integers: every possible value mapped once, then looked up.
  const bits = { Uint8Array: 8, Int8Array: 8, Uint16Array: 16, Int16Array: 16 }[values.constructor.name];
  const base = bits && values.constructor.name.startsWith("Int") ? -(1 << (bits - 1)) : 0;
  const table = bits && count * channels > 1 << bits ? new Uint8Array(1 << bits) : null;
  if (table) {
    for (let k = 0; k < table.length; k++) table[k] = map(k + base);
  }
  if (channels === 1 && new Uint8Array(new Uint32Array([1]).buffer)[0] === 1) {
    // Grey, little-endian: one 32-bit write a pixel (A B G R in memory order R G B A).
    const words = new Uint32Array(out.buffer, out.byteOffset, count);
    if (table) {
      const grey = new Uint32Array(table.length);
      for (let k = 0; k < table.length; k++) grey[k] = (0xff000000 | (table[k] * 0x010101)) >>> 0;
      for (let p = 0; p < count; p++) words[p] = grey[values[start + p] - base];
    } else {
      for (let p = 0; p < count; p++) words[p] = (0xff000000 | (map(values[start + p]) * 0x010101)) >>> 0;
    }
    return pixels;
  }
  if (table) map = (v) => table[v - base];
  if (channels === 1) {
    for (let p = 0, i = start, o = 0; p < count; p++, i++, o += 4) {
      const g = map(values[i]);
      out[o] = g;
      out[o + 1] = g;
      out[o + 2] = g;
      out[o + 3] = 255;
    }
    return pixels;
  }
  for (let p = 0, i = start, o = 0; p < count; p++, i += channels, o += 4) {
    out[o] = map(values[i]);
    out[o + 1] = map(values[i + 1]);
    out[o + 2] = map(values[i + 2]);
    out[o + 3] = channels === 4 ? map(values[i + 3]) : 255;
  }
  return pixels;
}

/** [min, max] of the values ([0, 1] when there are none). Self-contained, as sliceData. */
export function rangeOf(values) {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? [lo, hi] : [0, 1];
}

const WORKER_SOURCE = `"use strict";
const sliceData = ${sliceData};
const rangeOf = ${rangeOf};
let image = null;
onmessage = ({ data }) => {
  if (data.image) {
    image = data.image;
    postMessage({ id: data.id, range: rangeOf(image.values) });
    return;
  }
  const pixels = sliceData(image, data.slice, data.lo, data.hi, data.spare);
  postMessage({ id: data.id, rgba: pixels.data.buffer, width: pixels.width, height: pixels.height }, [pixels.data.buffer]);
};`;

function startWorker() {
  try {
    const url = URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "text/javascript" }));
    const worker = new Worker(url);
    URL.revokeObjectURL(url);
    return worker;
  } catch {
    return null; // no worker here: the mapping runs on this thread
  }
}

export function pixelRenderer(canvas) {
  let worker = startWorker();
  let image = null;
  let spare = null; // the last draw's bytes, for the worker to fill next
  let serial = 0;
  const replies = new Map(); // request id -> {resolve, reject}

  const ask = (message, transfer = []) => new Promise((resolve, reject) => {
    const id = ++serial;
    replies.set(id, { resolve, reject });
    worker.postMessage({ ...message, id }, transfer);
  });
  // A worker that fails is dropped: what it was asked fails, and the next load works here.
  const dropWorker = (reason) => {
    worker?.terminate();
    worker = null;
    for (const { reject } of replies.values()) reject(new Error(`imjoy/image: the pixel worker failed (${reason}); try again`));
    replies.clear();
  };
  if (worker) {
    worker.onmessage = ({ data }) => {
      const reply = replies.get(data.id);
      replies.delete(data.id);
      reply?.resolve(data);
    };
    worker.onerror = (event) => {
      event.preventDefault();
      dropWorker(event.message || "error");
    };
  }

  // Coalesced draws: `wanted` is the newest request not yet started, with everyone waiting for it.
  let wanted = null;
  let drawing = false;
  async function pump() {
    if (drawing || !wanted) return;
    drawing = true;
    const { state, waiters } = wanted;
    wanted = null;
    try {
      await drawNow(state);
      for (const waiter of waiters) waiter.resolve();
    } catch (error) {
      for (const waiter of waiters) waiter.reject(error);
    } finally {
      drawing = false;
      pump();
    }
  }

  async function drawNow({ slice, lo, hi }) {
    if (!image) return;
    let pixels;
    if (worker) {
      const given = spare;
      spare = null;
      const { rgba, width, height } = await ask({ slice, lo, hi, spare: given }, given ? [given] : []);
      pixels = new ImageData(new Uint8ClampedArray(rgba), width, height);
      spare = rgba;
    } else pixels = sliceData(image, slice, lo, hi);
    canvas.getContext("2d").putImageData(pixels, 0, 0);
  }

  return {
    /** Takes the image ({values, width, height, channels, depth}); resolves to its [min, max]. */
    async load(next) {
      image = next;
      if (!worker) return rangeOf(next.values);
      const values = next.values.slice(); // the worker's copy; this one stays for the readout
      const { range } = await ask({ image: { ...next, values } }, [values.buffer]);
      return range;
    },
    draw(state) {
      return new Promise((resolve, reject) => {
        if (wanted) {
          wanted.state = state;
          wanted.waiters.push({ resolve, reject });
        } else wanted = { state, waiters: [{ resolve, reject }] };
        pump();
      });
    },
    /** No array to draw: what is on the canvas (a URL's image) stays. */
    forget() {
      image = null;
    },
  };
}
