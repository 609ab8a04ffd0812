// The JavaScript half of pyjoy.onnx in the browser: onnxruntime-web driven for Python
// (pyjoy/onnx/web.py imports this file's text as a blob: module, in whatever Pyodide runs
// it: a web-python plugin's worker, the console's worker, a frame).
//
//   const session = await load({ appURL, model: { url, integrity } | { buffer }, provider, threads, name });
//   session.inputs; session.outputs; session.info;     // described for Python
//   const [described, ...data] = await run(session, inputsJSON, ...buffers);
//   await close(session);
//   const bytes = await fetchBytes(url, integrity, what);   // an ArrayBuffer
//
// onnxruntime-web's files are PyJoy's own (models.json says where, with their hashes): the
// sandbox's fetch() gets them from the page, offline too. Arrays cross without a
// per-element conversion: each input is a typed-array view of the Python buffer (Pyodide's
// getBuffer, no copy), which onnxruntime copies once into its own WASM heap; each output is
// the one copy onnxruntime makes out of its heap, which Python copies into its own memory.

const RUNTIMES = new Map(); // "wasm 2", "webgpu auto", ... -> the promise of {ort, threads, simd, wasmFile, notes, ...}

const blobURL = (text) => URL.createObjectURL(new Blob([text], { type: "text/javascript" }));

/** The bytes at `url` (an ArrayBuffer), checked against `integrity` where given. */
export async function fetchBytes(url, integrity, what) {
  let response;
  try {
    response = await fetch(url, integrity ? { integrity } : {});
  } catch (error) {
    // A failed integrity check is a network error like any other: fetched again without
    // it, the file that is there says which it was.
    if (integrity && (await fetch(url).then((again) => again.ok, () => false))) {
      throw new Error(`could not load ${what} (${url}): its bytes do not match its integrity ${integrity}; the file is corrupt or not the one meant. Nothing was loaded.`);
    }
    throw new Error(`could not load ${what} (${url}): ${error.message}`);
  }
  if (!response.ok) throw new Error(`could not load ${what} (${url}): ${response.status} ${response.statusText}`);
  return response.arrayBuffer();
}

// WebAssembly SIMD in this engine: a module with one v128 instruction validates or not.
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11]);

// WebGPU needs a hardware adapter, not just navigator.gpu: a software one (SwiftShader) is
// far slower than WASM, so "auto" passes it by (the Image Recognition plugin decides alike).
async function webgpuAdapter() {
  if (!globalThis.navigator?.gpu) {
    return { adapter: null, state: `absent (no navigator.gpu${globalThis.isSecureContext ? "" : ": not a secure context"})` };
  }
  try {
    const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
    if (!adapter) return { adapter: null, state: "absent (no adapter)" };
    const name = `${adapter.info?.vendor || "unknown vendor"} ${adapter.info?.architecture || ""}`.trim();
    const software = adapter.info?.isFallbackAdapter || adapter.isFallbackAdapter || /swiftshader/i.test(name);
    return software ? { adapter: null, usable: adapter, state: `software only (${name})` } : { adapter, state: `present (${name})` };
  } catch (error) {
    return { adapter: null, state: `absent (${error.message})` };
  }
}

// Emscripten starts each thread with new Worker(new URL(import.meta.url), {type: "module"}).
// From a blob: URL in an opaque origin, Chromium refuses module workers but starts classic
// ones, which may import() the module: each thread is such a worker (as the Image
// Recognition plugin does). Messages that come before the module set its handler are kept.
const THREAD_START = 'new Worker(new URL(import.meta.url),{type:"module",workerData:"em-pthread",name:"em-pthread"})';
let threadedRuntimes = 0; // each threaded runtime starts its threads through a global of its own
function threadedGlue(glueText, counter) {
  if (!glueText.includes(THREAD_START)) return null;
  const starter = `__pyjoyOnnxThread${threadedRuntimes++}`;
  const glue = glueText.replace(THREAD_START, `self.${starter}()`);
  const threadURL = blobURL(`
    const early = [];
    self.onmessage = (event) => early.push(event.data);
    self.${starter} = () => { throw new Error("threads start no threads"); };
    import(URL.createObjectURL(new Blob([${JSON.stringify(glue)}], { type: "text/javascript" })))
      .then(() => { for (const data of early.splice(0)) self.dispatchEvent(new MessageEvent("message", { data })); });`);
  globalThis[starter] = () => {
    const worker = new Worker(threadURL, { name: "em-pthread" });
    worker.addEventListener("message", ({ data }) => {
      if (data && typeof data === "object" && Object.values(data).includes("loaded")) counter.loaded++;
    });
    return worker;
  };
  return glue;
}

// onnxruntime-web for one provider, once per JavaScript realm: its files from models.json.
function runtime(appURL, provider, threads) {
  const key = `${provider} ${threads ?? "auto"}`;
  if (!RUNTIMES.has(key)) {
    const loading = startRuntime(appURL, provider, threads);
    loading.catch(() => RUNTIMES.delete(key)); // the next load tries again
    RUNTIMES.set(key, loading);
  }
  return RUNTIMES.get(key);
}

// An Identity model of 76 bytes (onnx.helper), run once when a runtime loads: its WASM and
// threads start then, so a model's own errors are never taken for the runtime's.
const PROBE = Uint8Array.from(atob("CAgSBXB5am95OjsKEAoBYRIBYiIISWRlbnRpdHkSBXByb2JlWg8KAWESCgoICAESBAoCCAFiDwoBYhIKCggIARIECgIIAUIECgAQEQ=="), (c) => c.charCodeAt(0));

async function startRuntime(appURL, provider, threads) {
  const probe = async (loaded) => {
    const session = await loaded.ort.InferenceSession.create(PROBE, { executionProviders: [provider] });
    await session.run({ a: new loaded.ort.Tensor("float32", new Float32Array(1), [1]) });
    await session.release();
    return loaded;
  };
  const loaded = await loadRuntime(appURL, provider, threads, null);
  try {
    return await probe(loaded);
  } catch (error) {
    if (loaded.threads === 1) throw error;
    // WebAssembly cannot start twice in one module instance: a fresh import, on one thread.
    return probe(await loadRuntime(appURL, provider, 1, `threads failed to start (${error.message}): one thread`));
  }
}

// wanted: the threads asked for (null: one per core where it can); oneThread: why threads
// are not to be tried again (they failed), or null.
async function loadRuntime(appURL, provider, wanted, oneThread) {
  const catalogURL = new URL("models.json", appURL).href;
  const catalog = JSON.parse(new TextDecoder().decode(await fetchBytes(catalogURL, null, "PyJoy's model catalog")));
  const files = catalog["onnxruntime-web"];
  if (!files) throw new Error(`${catalogURL} does not say where onnxruntime-web is`);
  const file = (name) => fetchBytes(new URL(files.base + name, appURL).href, files.integrity[name], `onnxruntime-web's ${name}`);
  const text = async (name) => new TextDecoder().decode(await file(name));
  const [ortFile, glueFile, wasmFile] = provider === "webgpu"
    ? ["ort.webgpu.min.mjs", "ort-wasm-simd-threaded.asyncify.mjs", "ort-wasm-simd-threaded.asyncify.wasm"]
    : ["ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"];
  const [ortText, glueText, wasm] = await Promise.all([text(ortFile), text(glueFile), file(wasmFile)]);
  const notes = [];
  // Threads need shared memory, so cross-origin isolation; WebGPU runs on one.
  const cores = globalThis.navigator?.hardwareConcurrency || 1;
  let threads = 1;
  if (provider !== "wasm") notes.push("WebGPU: one thread for what runs on the CPU");
  else if (oneThread) notes.push(oneThread);
  else if (!globalThis.crossOriginIsolated) {
    notes.push(`${wanted > 1 ? `${wanted} threads asked for, but ` : ""}not cross-origin isolated (no shared memory): one thread`);
  } else if (wanted) {
    threads = wanted;
    notes.push(wanted === 1 ? "one thread, as asked for" : `${wanted} threads, as asked for`);
  } else if (cores === 1) notes.push("one core: one thread");
  else {
    threads = cores;
    notes.push(`cross-origin isolated: ${cores} threads, one per core`);
  }
  const counter = { loaded: 0 };
  let glue = glueText;
  if (threads > 1) {
    glue = threadedGlue(glueText, counter);
    if (!glue) {
      notes.push("this onnxruntime-web starts its threads in a way pyjoy.onnx does not know: one thread");
      threads = 1;
      glue = glueText;
    }
  }
  const ort = await import(blobURL(ortText));
  ort.env.logLevel = "error"; // its warnings (nodes placed on the CPU beside WebGPU) are not the plugin's to fix
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.simd = true;
  ort.env.wasm.proxy = false; // the proxy worker would be a module worker, which the sandbox refuses
  ort.env.wasm.wasmPaths = { mjs: blobURL(glue) };
  ort.env.wasm.wasmBinary = wasm;
  const simd = WebAssembly.validate(SIMD_PROBE) && /-simd[-.]/.test(wasmFile);
  return { ort, version: files.version, provider, threads, counter, simd, wasmFile, notes };
}

const SESSIONS = new Set();

/**
 * A session for the model: {url, integrity} (fetched here; the bytes never enter Python)
 * or {buffer} (a PyProxy of a Python buffer of the model file's bytes).
 * provider: "auto" (WebGPU where a hardware adapter exists, else WASM), "wasm" or "webgpu";
 * threads: for WASM, how many (null: one per core where cross-origin isolated, else one).
 */
export async function load({ appURL, model, provider = "auto", threads = null, name }) {
  const gpu = await webgpuAdapter();
  const facts = {
    crossOriginIsolated: Boolean(globalThis.crossOriginIsolated),
    secureContext: Boolean(globalThis.isSecureContext),
    cores: globalThis.navigator?.hardwareConcurrency || 1,
    webgpu: gpu.state,
  };
  const why = [];
  let chosen;
  if (provider === "webgpu") {
    if (!gpu.adapter && !gpu.usable) throw new Error(`provider "webgpu" was asked for, but WebGPU is ${gpu.state}`);
    chosen = "webgpu";
    why.push(`WebGPU, as asked for (${gpu.state})`);
  } else if (provider === "auto" && gpu.adapter) {
    chosen = "webgpu";
    why.push(`WebGPU: a hardware adapter is ${gpu.state}`);
  } else {
    chosen = "wasm";
    why.push(provider === "wasm" ? "WASM, as asked for" : `WASM: WebGPU is ${gpu.state}`);
  }
  // The runtime (its files fetched, its WASM compiled, its threads started) loads while the
  // model's bytes come, not after: both are megabytes through the page (bench/vision_route.py).
  runtime(appURL, chosen, threads).catch(() => {}); // its error, if any, is create()'s below
  let bytes;
  if (model.url) {
    bytes = new Uint8Array(await fetchBytes(model.url, model.integrity, `the model ${name}`));
  } else {
    // A copy out of Pyodide's heap: onnxruntime reads the model after waits (compiling its
    // WASM) during which Python runs and may grow that heap under a view.
    const view = model.buffer.getBuffer("u8");
    bytes = view.data.slice();
    view.release();
  }
  const create = async (which) => {
    const loaded = await runtime(appURL, which, threads);
    const session = await loaded.ort.InferenceSession.create(bytes, { executionProviders: [which], graphOptimizationLevel: "all" });
    return { loaded, session };
  };
  let made;
  try {
    made = await create(chosen);
  } catch (error) {
    if (chosen !== "webgpu" || provider === "webgpu") throw error;
    why.push(`WebGPU failed (${error.message}): WASM`);
    chosen = "wasm";
    made = await create(chosen);
  }
  const { loaded, session } = made;
  why.push(...loaded.notes);
  const describe = (metadata) =>
    metadata.map((value) => ({ name: value.name, type: value.isTensor ? value.type : "non-tensor", shape: value.isTensor ? [...value.shape] : [] }));
  const handle = {
    session,
    ort: loaded.ort,
    inputs: describe(session.inputMetadata),
    outputs: describe(session.outputMetadata),
    info: {
      runtime: "onnxruntime-web",
      version: loaded.version,
      provider: chosen,
      // Threads that started: onnxruntime-web starts them with its first session.
      threads: chosen === "wasm" ? (loaded.threads > 1 ? 1 + loaded.counter.loaded : 1) : 1,
      simd: loaded.simd,
      wasm: loaded.wasmFile,
      ...facts,
      reason: why.join("; "),
    },
  };
  SESSIONS.add(handle);
  return handle;
}

// A Python buffer's bytes (a Uint8Array view into Pyodide's heap) as the typed array
// onnxruntime-web takes for `type`: a view when aligned, else one copy.
const TYPED = {
  float32: Float32Array, float64: Float64Array, int8: Int8Array, uint8: Uint8Array, int16: Int16Array,
  uint16: Uint16Array, int32: Int32Array, uint32: Uint32Array, int64: BigInt64Array, uint64: BigUint64Array, bool: Uint8Array,
};
function typedView(bytes, type) {
  const Type = TYPED[type];
  const source = bytes.byteOffset % Type.BYTES_PER_ELEMENT ? bytes.slice() : bytes;
  return new Type(source.buffer, source.byteOffset, source.byteLength / Type.BYTES_PER_ELEMENT);
}

/**
 * Runs the session once. inputs: JSON of [{name, type, dims}], buffers: PyProxies of Python
 * buffers of those inputs' bytes (C order), in that order. Answers [JSON of [{name, type,
 * dims}] by output, then each output's bytes (a Uint8Array)]: plain values, so that Python
 * reads them without a conversion each.
 */
export async function run(handle, inputs, ...buffers) {
  if (!SESSIONS.has(handle)) throw new Error("this model was closed");
  const views = [];
  try {
    const feeds = {};
    for (const [index, { name, type, dims }] of JSON.parse(inputs).entries()) {
      const view = buffers[index].getBuffer("u8");
      views.push(view);
      feeds[name] = new handle.ort.Tensor(type, typedView(view.data, type), dims);
    }
    // onnxruntime copies each input into its heap before its first real wait: no Python
    // runs meanwhile, so Pyodide's heap cannot grow under the views.
    const results = await handle.session.run(feeds);
    const described = [];
    const data = [];
    for (const name of handle.session.outputNames) {
      const { type, dims, data: values } = results[name];
      described.push({ name, type, dims: [...dims] });
      data.push(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
    }
    return [JSON.stringify(described), ...data];
  } finally {
    for (const view of views) view.release();
  }
}

export async function close(handle) {
  if (!SESSIONS.delete(handle)) return;
  await handle.session.release();
}
