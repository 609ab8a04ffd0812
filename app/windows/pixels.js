// The image viewer's pixels (image.js), drawn by a worker of the window's sandbox on the
// viewer's own canvas (transferControlToOffscreen), so that neither opening a 4096x4096
// image or a 64-slice stack, nor a contrast change, nor a slice dragged through, holds up
// the window's thread (its zoom, pan, readout and slider): that thread only asks.
//
//   const pixels = pixelRenderer(canvas, labelCanvas); // the viewer's fresh <canvas class="image"> and "labels"
//   const [lo, hi] = await pixels.load(image);     // image: readArray()'s; its values MOVE to the worker
//   await pixels.draw({ slice, lo, hi });           // on screen once this resolves, to the state drawn
//   await pixels.setLabels(labels, slice);          // a label layer (readArray()'s, moved too) or null
//   await pixels.value(x, y, slice);                // the value at a pixel: a number or [r, g, b(, a)]
//   await pixels.limits(0.5, 99.5);                 // [lo, hi]: percentiles of the values, by a histogram
//   pixels.canvas, pixels.labelCanvas               // the canvases shown (replaced if the worker fails)
//
// A label layer is drawn there too, over the image, the current slice's for a stack of labels.
// The worker holds the only copy of the values: the array's buffer is transferred to it, not
// copied (a 128 MiB stack copied on the window's thread was a long task), so the pixel
// readout asks the worker too. It maps one slice to RGBA (a lookup table for 8- and 16-bit
// values), puts it on its OffscreenCanvas and answers after its next animation frame, when
// the frame has gone to the compositor; this thread then waits until the canvas element
// (the placeholder) has the new size and one frame more, so that what resolves is on screen
// and readable (drawImage of the canvas shows it: answering at once after putImageData, the
// element still showed the old frame in most readbacks; after both frames, in none of 60,
// Chromium 156). Each wait is bounded (FRAME_WAIT_MS): a
// window out of view gets no animation frames, and must not hang its caller.
// Draws are coalesced: while one is being made, later requests replace each other and only
// the newest is drawn (a slider dragged across 64 slices draws what it stops on, at most one
// slice a frame), and each request's promise resolves once a draw at least as new is shown.
// The worker is a classic blob: worker (an opaque-origin sandbox may start one, not a module
// worker from blob:). Where none can start, or a canvas cannot be transferred, the same
// functions run on this thread (putImageData), as they did before the worker.

/** How long a draw waits for an animation frame before going on (a hidden window has none). */
const FRAME_WAIT_MS = 200;

/**
 * One slice of the image as RGBA ImageData, by the contrast mapping: each value v becomes
 * floor((v - lo) * 255 / (hi - lo) + 0.5), clamped to 0..255 (with lo == hi: 255 above lo,
 * else 0); one channel is grey, 3 are RGB (opaque), 4 RGBA.
 * `into`: an ImageData of the right size to fill, reused rather than allocated.
 * It refers to nothing outside itself: its source is also the worker's.
 */
export function sliceData({ values, width, height, channels }, slice, lo, hi, into = null) {
  const pixels = into?.width === width && into?.height === height ? into : new ImageData(width, height);
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

/** [min, max] of the values, NaN left out ([0, 1] when there are none). Self-contained, as sliceData. */
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

/**
 * [lo, hi]: for each percentile p of [low, high], the least value v with at least p% of
 * the values <= v. Integers of 8 and 16 bits are counted exactly (a bin a value); other
 * types in 4096 bins over [min, max], a bin standing for its lower edge (its upper one for
 * `high`). NaN is left out. Self-contained, as sliceData.
 */
export function percentiles(values, low, high) {
  const name = values.constructor.name;
  const exact = { Uint8Array: [256, 0], Int8Array: [256, -128], Uint16Array: [65536, 0], Int16Array: [65536, -32768] }[name];
  let bins;
  let first;
  let width;
  if (exact) {
    [bins, first] = exact;
    width = 1;
  } else {
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (!(lo <= hi)) return [0, 1];
    if (lo === hi) return [lo, hi];
    bins = 4096;
    first = lo;
    width = (hi - lo) / bins;
  }
  const counts = new Float64Array(bins);
  let total = 0;
  if (exact) {
    for (let i = 0; i < values.length; i++) counts[values[i] - first]++;
    total = values.length;
  } else {
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (v !== v) continue; // NaN
      counts[Math.min(bins - 1, Math.floor((v - first) / width))]++;
      total++;
    }
  }
  const at = (percent, upper) => {
    const needed = Math.max(1, Math.ceil((Math.min(100, Math.max(0, percent)) / 100) * total));
    let seen = 0;
    for (let b = 0; b < bins; b++) {
      seen += counts[b];
      if (seen >= needed) return exact ? b + first : first + (b + (upper ? 1 : 0)) * width;
    }
    return exact ? bins - 1 + first : first + bins * width;
  };
  return [at(low, false), at(high, true)];
}

/**
 * One slice of a label layer as RGBA ImageData: each label id its own colour (golden-angle
 * hues), half transparent; 0, the background, transparent. `into` as in sliceData.
 * Self-contained, as sliceData.
 */
export function labelData({ values, width, height, depth }, slice, into = null) {
  const pixels = into?.width === width && into?.height === height ? into : new ImageData(width, height);
  const out = pixels.data;
  const start = (depth > 1 ? slice : 0) * width * height;
  const colours = new Map();
  const colour = (id) => {
    const hue = (id * 137.508) % 360;
    const c = 0.9 * 0.5 * (1 - Math.abs(2 * 0.5 - 1));
    const h = hue / 60;
    const x = c * (1 - Math.abs((h % 2) - 1));
    const [r, g, b] = h < 1 ? [c, x, 0] : h < 2 ? [x, c, 0] : h < 3 ? [0, c, x] : h < 4 ? [0, x, c] : h < 5 ? [x, 0, c] : [c, 0, x];
    const m = 0.5 - c / 2;
    return [r + m, g + m, b + m].map((v) => Math.round(v * 255));
  };
  for (let p = 0, o = 0; p < width * height; p++, o += 4) {
    const id = values[start + p];
    if (!id) {
      out[o] = out[o + 1] = out[o + 2] = out[o + 3] = 0;
      continue;
    }
    let rgb = colours.get(id);
    if (!rgb) colours.set(id, (rgb = colour(id)));
    out[o] = rgb[0];
    out[o + 1] = rgb[1];
    out[o + 2] = rgb[2];
    out[o + 3] = 128;
  }
  return pixels;
}

/** The value at pixel (x, y) of a slice: a number, or [r, g, b(, a)]; null outside. */
export function valueAt({ values, width, height, channels }, x, y, slice) {
  if (!(x >= 0 && y >= 0 && x < width && y < height)) return null;
  const i = ((slice * height + y) * width + x) * channels;
  return channels === 1 ? values[i] : Array.from(values.subarray(i, i + channels));
}

// The worker: its image, the canvas it draws on, the ImageData it fills again each draw.
const WORKER_SOURCE = `"use strict";
const sliceData = ${sliceData};
const rangeOf = ${rangeOf};
const percentiles = ${percentiles};
const valueAt = ${valueAt};
const labelData = ${labelData};
let image = null;
let canvas = null;
let context = null;
let rgba = null;
let labels = null; // a label layer, drawn on its own canvas
let labelCanvas = null;
let labelContext = null;
let labelRgba = null;
const frame = () => new Promise((resolve) => {
  const timer = setTimeout(resolve, ${FRAME_WAIT_MS});
  requestAnimationFrame(() => { clearTimeout(timer); resolve(); });
});
function size(target, width, height) {
  if (target.width !== width || target.height !== height) Object.assign(target, { width, height });
}
function drawLabels(slice) {
  if (!labels) return labelContext.clearRect(0, 0, labelCanvas.width, labelCanvas.height);
  size(labelCanvas, labels.width, labels.height);
  labelRgba = labelData(labels, slice, labelRgba);
  labelContext.putImageData(labelRgba, 0, 0);
}
const handlers = {
  canvas({ canvas: given, labelCanvas: givenLabels }) {
    canvas = given;
    context = canvas.getContext("2d");
    labelCanvas = givenLabels;
    labelContext = labelCanvas.getContext("2d");
  },
  load({ image: given }) {
    const values = new self[given.type](given.buffer); // the name of a typed array, from readArray
    image = { ...given, values, buffer: undefined };
    rgba = null;
    labels = null;
    size(labelCanvas, image.width, image.height); // cleared
    return { range: rangeOf(values) };
  },
  async draw({ slice, lo, hi }) {
    if (!image) return {};
    size(canvas, image.width, image.height);
    rgba = sliceData(image, slice, lo, hi, rgba);
    context.putImageData(rgba, 0, 0);
    if (labels?.depth > 1) drawLabels(slice);
    await frame();
    return { width: image.width, height: image.height };
  },
  async labels({ labels: given, slice }) {
    labels = given && { ...given, values: new self[given.type](given.buffer), buffer: undefined };
    labelRgba = null;
    drawLabels(slice);
    await frame();
    return { width: labelCanvas.width, height: labelCanvas.height };
  },
  value: ({ x, y, slice }) => ({ value: image ? valueAt(image, x, y, slice) : null }),
  limits: ({ low, high }) => ({ limits: image ? percentiles(image.values, low, high) : null }),
};
onmessage = async ({ data }) => {
  try {
    postMessage({ id: data.id, ...(await handlers[data.kind](data)) });
  } catch (error) {
    postMessage({ id: data.id, error: String(error && error.message || error) });
  }
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

// An animation frame of this thread, or FRAME_WAIT_MS without one.
const nextFrame = () => new Promise((resolve) => {
  const timer = setTimeout(resolve, FRAME_WAIT_MS);
  requestAnimationFrame(() => {
    clearTimeout(timer);
    resolve();
  });
});

/** The worker's half: the canvas handed over, requests answered by id. Null where it cannot be. */
function workerRenderer(canvas, labelCanvas, onFail) {
  if (typeof canvas.transferControlToOffscreen !== "function") return null;
  const worker = startWorker();
  if (!worker) return null;
  let serial = 0;
  const replies = new Map(); // request id -> {resolve, reject}
  const ask = (message, transfer = []) => new Promise((resolve, reject) => {
    const id = ++serial;
    replies.set(id, { resolve, reject });
    worker.postMessage({ ...message, id }, transfer);
  });
  worker.onmessage = ({ data }) => {
    const reply = replies.get(data.id);
    replies.delete(data.id);
    if (data.error) reply?.reject(new Error(`imjoy/image: ${data.error}`));
    else reply?.resolve(data);
  };
  worker.onerror = (event) => {
    event.preventDefault();
    worker.terminate();
    const error = new Error(`imjoy/image: the pixel worker failed (${event.message || "error"}); show the image again`);
    for (const { reject } of replies.values()) reject(error);
    replies.clear();
    onFail();
  };
  try {
    const offscreen = canvas.transferControlToOffscreen();
    const labelOffscreen = labelCanvas.transferControlToOffscreen();
    worker.postMessage({ kind: "canvas", canvas: offscreen, labelCanvas: labelOffscreen }, [offscreen, labelOffscreen]);
  } catch {
    worker.terminate();
    return null;
  }
  // Until the canvas element has the size drawn (its frames come from the worker, later than
  // its answer) and one frame more; bounded, as each wait here.
  const shown = async ({ width, height }, target = canvas) => {
    const until = performance.now() + FRAME_WAIT_MS;
    while (width && (target.width !== width || target.height !== height) && performance.now() < until) await nextFrame();
    await nextFrame();
  };
  // An array for the worker: its buffer moves there; one shared with other data is copied first.
  const moved = ({ values, width, height, depth, channels }) => {
    const whole = values.byteOffset === 0 && values.byteLength === values.buffer.byteLength;
    const buffer = whole ? values.buffer : values.slice().buffer;
    return [{ buffer, type: values.constructor.name, width, height, depth, channels }, [buffer]];
  };
  return {
    async load(image) {
      const [given, transfer] = moved(image);
      return (await ask({ kind: "load", image: given }, transfer)).range;
    },
    async setLabels(labels, slice) {
      const [given, transfer] = labels ? moved(labels) : [null, []];
      await shown(await ask({ kind: "labels", labels: given, slice }, transfer), labelCanvas);
    },
    // {shown}: the next draw may start once the worker has answered, while this one shows.
    draw: async (state) => ({ shown: shown(await ask({ kind: "draw", ...state })) }),
    value: async (x, y, slice) => (await ask({ kind: "value", x, y, slice })).value,
    limits: async (low, high) => (await ask({ kind: "limits", low, high })).limits,
  };
}

/** The same on this thread, where no worker can draw: the values stay here. */
function localRenderer(canvas, labelCanvas) {
  let image = null;
  let labels = null;
  const size = (target, width, height) => {
    if (target.width !== width || target.height !== height) Object.assign(target, { width, height });
  };
  const drawLabels = (slice) => {
    const context = labelCanvas.getContext("2d");
    if (!labels) return context.clearRect(0, 0, labelCanvas.width, labelCanvas.height);
    size(labelCanvas, labels.width, labels.height);
    context.putImageData(labelData(labels, slice), 0, 0);
  };
  return {
    async load(next) {
      image = next;
      labels = null;
      size(labelCanvas, next.width, next.height);
      drawLabels(0);
      return rangeOf(next.values);
    },
    async setLabels(next, slice) {
      labels = next;
      drawLabels(slice);
    },
    async draw({ slice, lo, hi }) {
      if (image) {
        size(canvas, image.width, image.height);
        canvas.getContext("2d").putImageData(sliceData(image, slice, lo, hi), 0, 0);
        if (labels?.depth > 1) drawLabels(slice);
      }
      return { shown: Promise.resolve() };
    },
    value: async (x, y, slice) => (image ? valueAt(image, x, y, slice) : null),
    limits: async (low, high) => (image ? percentiles(image.values, low, high) : null),
  };
}

export function pixelRenderer(canvas, labelCanvas) {
  let renderer = null;
  // A worker that failed took the canvases with it: fresh ones take their place for the next image.
  const replaceCanvases = () => {
    const fresh = [canvas, labelCanvas].map((old) => {
      const copy = old.cloneNode(false);
      old.replaceWith(copy);
      return copy;
    });
    [canvas, labelCanvas] = fresh;
    renderer = null;
  };
  const current = () => (renderer ??= workerRenderer(canvas, labelCanvas, replaceCanvases) ?? localRenderer(canvas, labelCanvas));
  current();

  // Coalesced draws: `wanted` is the newest request not yet started, with everyone waiting for it.
  let wanted = null;
  let drawing = false;
  async function pump() {
    if (drawing || !wanted) return;
    drawing = true;
    const { state, waiters } = wanted;
    wanted = null;
    const settle = (error, drawn) => {
      for (const waiter of waiters) error ? waiter.reject(error) : waiter.resolve(drawn);
    };
    try {
      const { shown } = await current().draw(state);
      shown.then(() => settle(null, state), settle);
    } catch (error) {
      settle(error);
    } finally {
      drawing = false;
      pump();
    }
  }

  return {
    get canvas() {
      return canvas;
    },
    get labelCanvas() {
      return labelCanvas;
    },
    /** Takes the image ({values, width, height, channels, depth}); resolves to its [min, max]. */
    load: (image) => current().load(image),
    draw(state) {
      return new Promise((resolve, reject) => {
        if (wanted) {
          wanted.state = state;
          wanted.waiters.push({ resolve, reject });
        } else wanted = { state, waiters: [{ resolve, reject }] };
        pump();
      });
    },
    setLabels: (labels, slice) => current().setLabels(labels, slice),
    value: (x, y, slice) => current().value(x, y, slice),
    limits: (low, high) => current().limits(low, high),
  };
}
