// ImJoy's built-in window types (`imjoy/image`, `imjoy/image-compare`, `imjoy/panel`,
// `imjoy/generic`, `imjoy/markdown`, `imjoy/files`, `imjoy/url_list`, `imjoy/joy`) and
// windows of a page by URL (`createWindow({src: URL})`). (`imjoy/plugin-editor` is the
// workbench's editor, in the page: plugins/host.js.)
//
// Design: each built-in window is a window plugin like any other, run in a sandbox frame
// (sandbox="allow-scripts", an opaque origin): its data comes over the RPC and nothing it
// renders (a plugin's markdown, HTML or page) can reach the page. This file is bundled
// by the build as one classic script (pyjoy/build/bundle.py, SCRIPT_ENTRIES); the host
// (plugins/host.js, createWindow) fetches it from the build (precached, so offline too) and
// runs it as the window plugin's script, followed by `pyjoyBuiltinWindow("imjoy/<type>")`.
//
// What each window's object offers (ImJoy's: run({data}) replaces the data, as imjoy-core's
// pluginManager.createWindow does for "imjoy/" windows; the rest are PyJoy's names):
//   imjoy/image          data: an ndarray, or {src | image | array, contrast_limits, labels};
//                        setImage(array, options), addLayer({type: "labels", data}),
//                        removeLayers(), setContrastLimits(lo, hi), setSlice(i),
//                        getPixelValue(x, y), getView(), zoom(factor)
//   imjoy/image-compare  data: {first, second} (URLs or ndarrays); setPosition(percent)
//   imjoy/panel          data: {ui} (or config.ui): HTML, sanitised
//   imjoy/generic        data: any object, each key shown; setData(data)
//   imjoy/markdown       data: {source}: markdown rendered with marked, sanitised with
//                        DOMPurify (no script, no event handler); setContent(source)
//   imjoy/files          data: {files: [File | Blob | {name, size, type}]}
//   imjoy/url_list       data: a list of URLs (or {urls}); links open after the person agrees
//   imjoy/joy            createWindow({ui}) (no type) or type "imjoy/joy": a form from ImJoy's
//                        ui (workbench/forms.js, as showDialog's): config {fields (the
//                        host reads the ui), onChange(values)}, data: initial values
//                        ({id: value} or Joy's {id: {value}}); get_config() -> {id: value}
//   url                  data: {src}: the page in a nested frame (inherits this sandbox)
import DOMPurify from "dompurify";
import { marked } from "marked";
import { fieldsElement, readFields } from "../workbench/forms.js";
import { imageViewer } from "./image.js";

const sanitise = (html) => DOMPurify.sanitize(html, { FORBID_TAGS: ["style", "form"], FORBID_ATTR: ["style"] });

function element(tag, props = {}, children = []) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

const STYLE = `body { margin: 0; padding: 8px; font: 14px system-ui, sans-serif; }
  .pj-compare { position: relative; display: inline-block; } .pj-compare img, .pj-compare canvas { display: block; max-width: 100%; }
  .pj-compare .second { position: absolute; left: 0; top: 0; }
  table.pj-generic td { vertical-align: top; padding: 2px 8px; border-bottom: 1px solid #ddd; } pre { margin: 0; white-space: pre-wrap; }
  iframe.pj-url { border: 0; width: 100%; height: calc(100vh - 16px); }`;

// An ndarray or a URL as an element to show (for image-compare), once drawn.
async function picture(item) {
  if (item && item._rtype === "ndarray") {
    const holder = element("div");
    await imageViewer(holder).setImage(item);
    const canvas = holder.querySelector("canvas.image");
    canvas.style.position = "static";
    return canvas;
  }
  return element("img", { src: String(item ?? ""), alt: "" });
}

function describe(value) {
  if (value && value._rtype === "ndarray") return `ndarray ${value._rdtype} [${value._rshape}]`;
  if (typeof Blob !== "undefined" && value instanceof Blob) return `${value.name ?? "blob"} (${value.type || "unknown type"}, ${value.size} bytes)`;
  if (typeof value === "string") return value;
  try {
    return JSON.stringify(value, (_k, v) => (v instanceof ArrayBuffer || ArrayBuffer.isView(v) ? `<${v.byteLength} bytes>` : v), 2);
  } catch {
    return String(value);
  }
}

const WINDOWS = {
  "imjoy/image"(root) {
    const viewer = imageViewer(root);
    const show = async (data) => {
      const array = data?._rtype === "ndarray" ? data : data?.image ?? data?.array ?? data?.data;
      if (array?._rtype === "ndarray") await viewer.setImage(array, data);
      else if (data?.src) await viewer.setSource(data.src);
      else if (data && Object.keys(data).length) throw new TypeError("imjoy/image: data needs an ndarray (data.image) or an image URL (data.src)");
      else return; // an empty viewer, as ImJoy opens one without data
      if (data?.labels) await viewer.addLayer({ type: "labels", data: data.labels });
    };
    return { show, methods: viewer };
  },
  "imjoy/image-compare"(root) {
    const box = element("div", { className: "pj-compare" });
    const slider = element("input", { type: "range", min: 0, max: 100, value: 50, className: "position" });
    root.append(box, element("div", {}, [slider]));
    const setPosition = (percent) => {
      slider.value = String(percent);
      const second = box.querySelector(".second");
      if (second) second.style.clipPath = `inset(0 0 0 ${Number(percent)}%)`;
    };
    slider.addEventListener("input", () => setPosition(slider.value));
    const show = async (data) => {
      if (!data?.first || !data?.second) throw new TypeError("imjoy/image-compare: data needs first and second (image URLs or ndarrays)");
      const [first, second] = await Promise.all([picture(data.first), picture(data.second)]);
      first.classList.add("first");
      second.classList.add("second");
      box.replaceChildren(first, second);
      setPosition(slider.value);
    };
    return { show, methods: { setPosition } };
  },
  "imjoy/panel"(root) {
    return { show: (data, config) => void (root.innerHTML = sanitise(String(data?.ui ?? config?.ui ?? ""))), methods: {} };
  },
  "imjoy/generic"(root) {
    const show = (data) => {
      const rows = Object.entries(data ?? {}).map(([key, value]) => element("tr", {}, [element("td", { textContent: key }), element("td", {}, [element("pre", { textContent: describe(value) })])]));
      root.replaceChildren(element("table", { className: "pj-generic" }, [element("tbody", {}, rows)]));
    };
    return { show, methods: { setData: show } };
  },
  "imjoy/markdown"(root) {
    const setContent = (source) => void (root.innerHTML = sanitise(marked.parse(String(source ?? ""), { async: false })));
    return { show: (data) => setContent(typeof data === "string" ? data : data?.source ?? data?.content ?? ""), methods: { setContent } };
  },
  "imjoy/files"(root) {
    const show = (data) => {
      const files = Array.isArray(data) ? data : data?.files ?? [];
      const items = files.map((file) => element("li", { className: "file", textContent: `${file?.name ?? "unnamed"} (${file?.type || "unknown type"}, ${file?.size ?? "?"} bytes)` }));
      root.replaceChildren(element("ul", {}, items));
    };
    return { show, methods: {} };
  },
  "imjoy/url_list"(root) {
    const show = (data) => {
      const urls = Array.isArray(data) ? data : data?.urls ?? data?.list ?? [];
      const items = urls.map((url) => {
        const link = element("a", { href: "#", textContent: String(url) });
        // A sandbox may open nothing itself: the page asks the person (api.utils.openUrl).
        link.addEventListener("click", (event) => {
          event.preventDefault();
          api.utils.openUrl(String(url));
        });
        return element("li", {}, [link]);
      });
      root.replaceChildren(element("ul", { className: "urls" }, items));
    };
    return { show, methods: {} };
  },
  "imjoy/joy"(root) {
    let fields = null;
    let onChange = null;
    let box = null;
    const values = () => (box ? readFields(box, fields) : {});
    // run({data}) again keeps the form and sets the values it names, as ImJoy's Joy reads
    // its data; a config with fields (from createWindow) builds the form anew.
    const show = (data, config = {}) => {
      const given = data && typeof data === "object" ? data : {};
      const current = values();
      if (Array.isArray(config?.fields)) {
        ({ fields } = config);
        onChange = typeof config.onChange === "function" ? config.onChange : null;
      }
      if (!fields) throw new TypeError("imjoy/joy: the window needs a ui (ImJoy's ui string or list), as createWindow({ui})");
      fields = fields.map((field) => {
        const value = Object.hasOwn(given, field.id) ? given[field.id] : current[field.id];
        return value === undefined ? field : { ...field, value: value && typeof value === "object" && "value" in value ? value.value : value };
      });
      box = fieldsElement(fields, { onChange });
      root.replaceChildren(box);
    };
    return { show, methods: { get_config: values } };
  },
  url(root) {
    const show = (data) => {
      const src = new URL(String(data?.src ?? ""), "https://invalid.invalid/");
      if (!["http:", "https:"].includes(src.protocol)) throw new TypeError(`createWindow: src must be an http(s) URL, not ${src.protocol}`);
      // Nested in this sandbox: it inherits sandbox="allow-scripts" and an opaque origin.
      root.replaceChildren(element("iframe", { className: "pj-url", src: src.href, sandbox: "allow-scripts" }));
    };
    return { show, methods: {} };
  },
};

globalThis.pyjoyBuiltinWindow = (type) => {
  document.head.append(element("style", { textContent: STYLE }));
  const root = element("div", { className: "pj-window" });
  document.body.append(root);
  const { show, methods } = WINDOWS[type](root);
  api.export({
    ...methods,
    setup() {},
    // As imjoy-core's run(new_config) for "imjoy/" windows: what it is given replaces what was.
    async run(context = {}) {
      if (context && "data" in context) await show(context.data ?? null, context.config ?? {});
    },
  });
};
