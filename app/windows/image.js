// The `imjoy/image` window: an image viewer for ImJoy n-d arrays ({_rtype: "ndarray",
// _rvalue, _rshape, _rdtype}) and image URLs (`data.src`, as ImJoy documents).
//
//   const viewer = imageViewer(document.body);
//   viewer.setImage(array, {contrast_limits: [lo, hi], name});  // 2-D/3-D grey, RGB(A)
//   viewer.addLayer({type: "labels", data: labelsArray});         // a label overlay
//   viewer.setSlice(3); viewer.setContrastLimits(0, 1000); viewer.getView();
//   await viewer.autoContrast(0.1, 99.9); await viewer.getPixelValue(x, y);
//
// Shapes: [h, w] grey; [h, w, 3|4] colour; [d, h, w] a stack of grey; [d, h, w, 3|4] a
// stack of colour; a slider picks the slice of a stack. The canvas has one pixel per image
// pixel; zoom and pan are a CSS transform on it (wheel, drag, two-finger pinch: pointer
// events), so zooming and panning redraw nothing: the compositor moves the canvas.
// Contrast: each value v becomes floor((v - lo) * 255 / (hi - lo) + 0.5), clamped to
// 0..255; the limits default to 0..255 for uint8 and to the array's min..max otherwise
// ("auto": percentiles of the values, autoContrast).
// The array's buffer moves to a worker of this sandbox (pixels.js), which computes the
// range, maps slices and draws them on this canvas (handed over to it, as is the label
// layer's, whose values move there too) and answers the pixel readout, so this frame's
// thread only asks. setImage, setContrastLimits, setSlice, autoContrast and addLayer
// resolve once the pixels are on screen; a canvas has a data-drawing attribute while a
// draw is on its way, and the image canvas data-shown-slice: the slice shown.
import { pixelRenderer } from "./pixels.js";

const DTYPES = {
  uint8: Uint8Array, int8: Int8Array, uint16: Uint16Array, int16: Int16Array,
  uint32: Uint32Array, int32: Int32Array, float32: Float32Array, float64: Float64Array,
};

/** {values, shape, depth, height, width, channels} of an ImJoy ndarray, or a TypeError naming what is wrong. */
export function readArray(array) {
  if (!array || array._rtype !== "ndarray") throw new TypeError("imjoy/image: expected an ndarray ({_rtype: \"ndarray\", _rvalue, _rshape, _rdtype})");
  const Type = DTYPES[array._rdtype];
  if (!Type) throw new TypeError(`imjoy/image: cannot show an ndarray of _rdtype ${JSON.stringify(array._rdtype)}; expected one of ${Object.keys(DTYPES).join(", ")}`);
  const shape = [...array._rshape].map(Number);
  const given = array._rvalue;
  if (!(given instanceof ArrayBuffer) && !ArrayBuffer.isView(given)) throw new TypeError("imjoy/image: an ndarray's _rvalue should be an ArrayBuffer or a typed array");
  // A view of another type or alignment is copied; otherwise its memory is used as it is.
  const view = ArrayBuffer.isView(given);
  const aligned = !view || (given.byteOffset % Type.BYTES_PER_ELEMENT === 0 && given.byteLength % Type.BYTES_PER_ELEMENT === 0);
  const values = !view ? new Type(given) : aligned ? new Type(given.buffer, given.byteOffset, given.byteLength / Type.BYTES_PER_ELEMENT)
    : new Type(given.buffer.slice(given.byteOffset, given.byteOffset + given.byteLength));
  const colour = shape.length >= 3 && [3, 4].includes(shape.at(-1));
  const spatial = colour ? shape.slice(0, -1) : shape;
  if (spatial.length < 2 || spatial.length > 3) throw new TypeError(`imjoy/image: cannot show shape [${shape}]; expected [h, w], [h, w, 3|4], [d, h, w] or [d, h, w, 3|4]`);
  const [depth, height, width] = spatial.length === 3 ? spatial : [1, ...spatial];
  const channels = colour ? shape.at(-1) : 1;
  if (values.length !== depth * height * width * channels) throw new TypeError(`imjoy/image: shape [${shape}] does not fit ${values.length} values`);
  return { values, shape, dtype: array._rdtype, depth, height, width, channels };
}

export function imageViewer(root) {
  root.innerHTML = `
    <style>
      body { margin: 0; font: 13px system-ui, sans-serif; }
      .pj-image { display: flex; flex-direction: column; height: 100vh; }
      .pj-image .bar { display: flex; gap: 8px; align-items: center; padding: 4px 6px; flex-wrap: wrap; }
      .pj-image .bar input[type=number] { width: 6em; }
      .pj-image .view { position: relative; flex: 1; overflow: hidden; background: #222; touch-action: none; cursor: grab; }
      .pj-image .stage { position: absolute; left: 0; top: 0; transform-origin: 0 0; }
      .pj-image canvas, .pj-image img.source { position: absolute; left: 0; top: 0; image-rendering: pixelated; }
      .pj-image .error { color: #b00; padding: 6px; }
    </style>
    <div class="pj-image">
      <div class="bar">
        <label>min <input type="number" class="lo" step="any"></label>
        <label>max <input type="number" class="hi" step="any"></label>
        <button type="button" class="auto" title="contrast from the 0.1 and 99.9 percentiles">auto</button>
        <label class="slice" hidden>slice <input type="range" class="slider" min="0" value="0"> <span class="index"></span></label>
        <span class="readout" aria-live="polite"></span>
      </div>
      <div class="view"><div class="stage"><canvas class="image" width="1" height="1"></canvas><canvas class="labels" width="1" height="1"></canvas></div></div>
    </div>`;
  const $ = (selector) => root.querySelector(selector);
  const [view, stage] = [$(".view"), $(".stage")];
  const [loInput, hiInput, slider, readout] = [$(".lo"), $(".hi"), $(".slider"), $(".readout")];
  // readArray()'s result (its values moved to the worker: `array` says there is one), or
  // {width, height} of a URL's image whose values are unknown
  let image = null;
  let limits = [0, 255];
  let slice = 0;
  let transform = { scale: 1, x: 0, y: 0 };
  const pixels = pixelRenderer($("canvas.image"), $("canvas.labels"));
  const canvas = () => pixels.canvas; // the image canvas (a new one if the worker failed)

  function applyTransform() {
    stage.style.transform = `translate(${transform.x}px, ${transform.y}px) scale(${transform.scale})`;
  }

  function fit() {
    const { clientWidth: vw, clientHeight: vh } = view;
    if (!image || !vw || !vh) return applyTransform();
    const scale = Math.min(vw / image.width, vh / image.height);
    transform = { scale, x: (vw - image.width * scale) / 2, y: (vh - image.height * scale) / 2 };
    applyTransform();
  }

  // The image's current slice with the current limits (and a stack of labels' slice; a 2-D
  // label layer stays as addLayer drew it; a new image cleared it).
  let drawing = 0;
  async function draw() {
    if (!image?.array) return;
    const target = canvas();
    target.toggleAttribute("data-drawing", ++drawing > 0);
    try {
      const drawn = await pixels.draw({ slice, lo: limits[0], hi: limits[1] });
      if (drawn) target.dataset.shownSlice = String(drawn.slice);
    } finally {
      target.toggleAttribute("data-drawing", --drawing > 0);
    }
  }

  // The labels canvas has data-drawing until the layer is on screen.
  let drawingLabels = 0;
  async function labelsDrawn(drawing) {
    const target = pixels.labelCanvas;
    target.toggleAttribute("data-drawing", ++drawingLabels > 0);
    try {
      await drawing;
    } finally {
      target.toggleAttribute("data-drawing", --drawingLabels > 0);
    }
  }

  function showLimits() {
    loInput.value = String(limits[0]);
    hiInput.value = String(limits[1]);
  }

  // An <img> in the canvas's place (null: the canvas again).
  function showElement(element) {
    stage.querySelector("img.source")?.remove();
    canvas().hidden = Boolean(element);
    if (!element) return;
    element.className = "source";
    element.alt = "";
    stage.prepend(element);
  }

  const viewer = {
    async setImage(array, options = {}) {
      const read = readArray(array);
      showElement(null);
      image = { ...read, values: null, array: true }; // the values go to the worker
      slice = 0;
      const range = await pixels.load(read);
      limits = options.contrast_limits ? options.contrast_limits.map(Number) : image.dtype === "uint8" ? [0, 255] : range;
      slider.max = String(image.depth - 1);
      slider.value = "0";
      $(".slice").hidden = image.depth < 2;
      $(".index").textContent = `0 / ${image.depth - 1}`;
      showLimits();
      fit();
      await draw();
    },
    async setSource(src) {
      const element = new Image();
      await new Promise((resolve, reject) => {
        element.onload = resolve;
        element.onerror = () => reject(new Error(`imjoy/image: could not load the image ${String(src).slice(0, 100)}`));
        element.src = String(src);
      });
      const [width, height] = [element.naturalWidth, element.naturalHeight];
      const reader = new OffscreenCanvas(width, height).getContext("2d");
      reader.drawImage(element, 0, 0);
      let data = null;
      try { // pixel values, where the image is not another origin's
        data = reader.getImageData(0, 0, width, height).data;
      } catch { /* a tainted canvas: shown, values unknown */ }
      if (data) {
        await viewer.setImage({ _rtype: "ndarray", _rvalue: data.buffer, _rshape: [height, width, 4], _rdtype: "uint8" }, { contrast_limits: [0, 255] });
        return;
      }
      // Another origin's image (every http(s) one, from this opaque-origin sandbox, unless it
      // allows CORS): no canvas can pass it to the worker, so the element itself is shown.
      image = { width, height, channels: 4, depth: 1 };
      showElement(element);
      fit();
      await viewer.removeLayers();
    },
    async addLayer(layer) {
      const array = layer?._rtype === "ndarray" ? layer : layer?.data;
      const read = readArray(array);
      if (!image || read.width !== image.width || read.height !== image.height || read.channels !== 1 || (read.depth > 1 && read.depth !== image.depth)) {
        throw new TypeError(`imjoy/image: a label layer must be one integer value per pixel of the image (${image?.depth > 1 ? `${image.depth}x` : ""}${image?.height}x${image?.width}, or one slice of it), not shape [${read.shape}]`);
      }
      await labelsDrawn(pixels.setLabels(read, slice)); // its values go to the worker
    },
    async removeLayers() {
      await labelsDrawn(pixels.setLabels(null, slice));
    },
    async setContrastLimits(lo, hi) {
      if (!Number.isFinite(Number(lo)) || !Number.isFinite(Number(hi))) throw new TypeError(`imjoy/image: contrast limits must be numbers, not ${lo}, ${hi}`);
      limits = [Number(lo), Number(hi)];
      showLimits();
      await draw();
    },
    async setSlice(index) {
      const depth = image?.depth ?? 1;
      if (!Number.isInteger(index) || index < 0 || index >= depth) throw new RangeError(`imjoy/image: slice ${index} is not in 0..${depth - 1}`);
      slice = index;
      slider.value = String(index);
      $(".index").textContent = `${index} / ${depth - 1}`;
      await draw();
    },
    /** The value at image pixel (x, y) of the current slice: a number, or [r, g, b(, a)]; null outside. */
    async getPixelValue(x, y) {
      if (!image?.array || !Number.isInteger(x) || !Number.isInteger(y)) return null;
      return pixels.value(x, y, slice);
    },
    /** Contrast limits at percentiles of the values (default 0.1 and 99.9), computed by the worker. */
    async autoContrast(low = 0.1, high = 99.9) {
      if (!Number.isFinite(Number(low)) || !Number.isFinite(Number(high)) || !(Number(low) < Number(high))) {
        throw new TypeError(`imjoy/image: autoContrast needs two percentiles, low < high, not ${low}, ${high}`);
      }
      const found = image?.array ? await pixels.limits(Number(low), Number(high)) : null;
      if (found) await viewer.setContrastLimits(...found);
      return [...limits];
    },
    getView: () => ({ ...transform, slice, contrast_limits: [...limits], shape: image?.shape ?? null }),
    zoom(factor, cx = view.clientWidth / 2, cy = view.clientHeight / 2) {
      const scale = Math.min(256, Math.max(1 / 64, transform.scale * factor));
      const k = scale / transform.scale;
      transform = { scale, x: cx - (cx - transform.x) * k, y: cy - (cy - transform.y) * k };
      applyTransform();
    },
    fit,
  };

  const report = (error) => console.error(error);
  $(".auto").addEventListener("click", () => viewer.autoContrast().catch(report));
  loInput.addEventListener("change", () => viewer.setContrastLimits(loInput.value, limits[1]).catch(report));
  hiInput.addEventListener("change", () => viewer.setContrastLimits(limits[0], hiInput.value).catch(report));
  slider.addEventListener("input", () => viewer.setSlice(Number(slider.value)).catch(report));

  // Wheel zooms about the pointer; one pointer pans; two pointers pinch.
  view.addEventListener("wheel", (event) => {
    event.preventDefault();
    const box = view.getBoundingClientRect();
    viewer.zoom(Math.exp(-event.deltaY / 500), event.clientX - box.left, event.clientY - box.top);
  }, { passive: false });
  const pointers = new Map();
  let pinch = null; // the distance between two pointers, at the last zoom
  const spread = () => {
    const [a, b] = [...pointers.values()];
    return Math.hypot(a.x - b.x, a.y - b.y);
  };
  view.addEventListener("pointerdown", (event) => {
    view.setPointerCapture?.(event.pointerId);
    pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
    pinch = pointers.size === 2 ? spread() : null; // a pinch zooms by how far the fingers move from here
  });
  const release = (event) => {
    pointers.delete(event.pointerId);
    pinch = null;
  };
  view.addEventListener("pointerup", release);
  view.addEventListener("pointercancel", release);
  // The readout asks the worker for the value under the pointer: one question at a time,
  // the newest position next.
  let asking = false;
  let nextPosition = null;
  async function showValue() {
    if (asking || !nextPosition) return;
    asking = true;
    const { x, y } = nextPosition;
    nextPosition = null;
    try {
      const value = await viewer.getPixelValue(x, y);
      readout.textContent = value === null ? "" : `x=${x} y=${y} value=${Array.isArray(value) ? value.join(",") : value}`;
    } catch (error) {
      report(error);
    } finally {
      asking = false;
      showValue();
    }
  }
  view.addEventListener("pointermove", (event) => {
    const box = canvas().getBoundingClientRect();
    if (image?.array && box.width) {
      nextPosition = {
        x: Math.floor(((event.clientX - box.left) * image.width) / box.width),
        y: Math.floor(((event.clientY - box.top) * image.height) / box.height),
      };
      showValue();
    }
    const last = pointers.get(event.pointerId);
    if (!last) return;
    const now = { x: event.clientX, y: event.clientY };
    if (pointers.size === 1) {
      transform.x += now.x - last.x;
      transform.y += now.y - last.y;
      applyTransform();
    }
    pointers.set(event.pointerId, now);
    if (pointers.size === 2) {
      const [a, b] = [...pointers.values()];
      const distance = spread();
      const viewBox = view.getBoundingClientRect();
      if (pinch) viewer.zoom(distance / pinch, (a.x + b.x) / 2 - viewBox.left, (a.y + b.y) / 2 - viewBox.top);
      pinch = distance;
    }
  });
  new ResizeObserver(() => image && fit()).observe(view);
  return viewer;
}
