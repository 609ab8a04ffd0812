// bench/onnx_first.py: the model loaded with pyjoy/onnx/web.js in a worker of its own (a
// JavaScript realm with no Python in it), then run `count` times, each timed. Evaluated as
// one function expression, in a Python plugin's worker (run_js) and in a window plugin.
// The files come through the caller's fetch (the page's, as web.js's own would) and reach
// the worker as bytes, which its fetch serves to web.js.
async (webSource, appURL, url, count) => {
  const begun = performance.timeOrigin + performance.now();
  const absolute = (path) => new URL(path, appURL).href;
  const bytes = async (path) => (await fetch(absolute(path))).arrayBuffer();
  const files = { [absolute("models.json")]: await bytes("models.json") };
  const base = JSON.parse(new TextDecoder().decode(files[absolute("models.json")]))["onnxruntime-web"].base;
  const names = ["ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"].map((name) => base + name);
  await Promise.all([...names, url].map(async (path) => { files[absolute(path)] = await bytes(path); }));
  const worker = `onmessage = async ({ data: [files, webSource, appURL, url, count] }) => {
    self.fetch = async (address) => new Response(files[String(address)].slice(0));
    const web = await import(URL.createObjectURL(new Blob([webSource], { type: "text/javascript" })));
    const handle = await web.load({ appURL, model: { url }, provider: "auto", threads: null, name: "model" });
    postMessage({ loaded: performance.timeOrigin + performance.now() });
    const input = handle.session.inputNames[0];
    const runs = [];
    for (let run = 0; run < count; run++) {
      const tensor = new handle.ort.Tensor("float32", new Float32Array(3 * 224 * 224), [1, 3, 224, 224]);
      const started = performance.now();
      await handle.session.run({ [input]: tensor });
      runs.push(performance.now() - started);
    }
    postMessage({ runs, threads: handle.info.threads });
  };`;
  const runner = new Worker(URL.createObjectURL(new Blob([worker], { type: "text/javascript" })));
  let loaded = null;
  try {
    const { runs, threads } = await new Promise((resolve, reject) => {
      runner.onmessage = ({ data }) => (data.loaded ? (loaded = data.loaded) : resolve(data));
      runner.onerror = (event) => reject(new Error(event.message || "the model's worker failed"));
      runner.postMessage([files, webSource, appURL, absolute(url), count]);
    });
    return { load_model: loaded - begun, runs, threads };
  } finally {
    runner.terminate();
  }
}
