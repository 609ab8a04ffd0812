// The JavaScript half of pyjoy.onnx in the browser: onnxruntime-web driven for Python
// (pyjoy/onnx/web.py imports this file's text as a blob: module, in whatever Pyodide runs
// it: a plugin's worker or frame, the console's worker; or takes the build's copy,
// assets/onnx-web-<hash>.js, that app/python/boot.js imported as Python booted).
//
//   const session = await load({ appURL, model: { url, integrity } | { buffer }, provider, threads, name });
//   session.inputs; session.outputs; session.info;     // described for Python
//   const [described, ...data] = await run(session, inputsJSON, ...buffers);
//   await close(session);
//   const bytes = await fetchBytes(url, integrity, what);   // an ArrayBuffer
//   await preload(appURL);   // the runtime load() would take, started before a model is asked for
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
const PRELOADED = new Set(); // RUNTIMES' keys that preload() started
const runtimeKey = (provider, threads) => `${provider} ${threads ?? "auto"}`;
function runtime(appURL, provider, threads) {
  const key = runtimeKey(provider, threads);
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

// A small image network (pyjoy/onnx/warm_up.py, 7 KB: uint8 frame -> antialiased Resize ->
// Conv 3x3 stride 2, depthwise 3x3 and 5x5, 1x1, Clip, Add, GlobalAveragePool, Gemm), run a
// few times as a WASM runtime starts, while the model's bytes still come: WebAssembly
// compiles a function with its optimizing tier only once it has run a while, so without it
// a model's first run took 2-3x its later ones.
const WARM_UP = Uint8Array.from(atob("CAgSEnB5am95Lm9ubnggd2FybS11cDqNNQoXCgF4EgFmIgRDYXN0KgkKAnRvGAGgAQIKbwoBZgoACgAKBXNpemVzEgFyIgZSZXNpemUqEAoJYW50aWFsaWFzGAGgAQIqLwoeY29vcmRpbmF0ZV90cmFuc2Zvcm1hdGlvbl9tb2RlIgpoYWxmX3BpeGVsoAEDKhEKBG1vZGUiBmxpbmVhcqABAwoiCgFyEgF0IglUcmFuc3Bvc2UqDwoEcGVybUACQABAAaABBwoWCgF0CgNheDASAXUiCVVuc3F1ZWV6ZQpRCgF1CgJ3MQoCYjESAmMxIgRDb252KhUKDGtlcm5lbF9zaGFwZUADQAOgAQcqEQoEcGFkc0ABQAFAAUABoAEHKhAKB3N0cmlkZXNAAkACoAEHChYKAmMxCgJsbwoCaGkSAmExIgRDbGlwCk4KAmExCgJ3MgoCYjISAmMyIgRDb252KgwKBWdyb3VwGBCgAQIqFQoMa2VybmVsX3NoYXBlQANAA6ABByoRCgRwYWRzQAFAAUABQAGgAQcKTgoCYzIKAnc1CgJiNRICYzUiBENvbnYqDAoFZ3JvdXAYEKABAioVCgxrZXJuZWxfc2hhcGVABUAFoAEHKhEKBHBhZHNAAkACQAJAAqABBwoWCgJjNQoCbG8KAmhpEgJhMiIEQ2xpcAotCgJhMgoCdzMKAmIzEgJjMyIEQ29udioVCgxrZXJuZWxfc2hhcGVAAUABoAEHChAKAmMzCgJhMRIBcyIDQWRkChkKAXMSAWciEUdsb2JhbEF2ZXJhZ2VQb29sChAKAWcSAmZsIgdGbGF0dGVuCiQKAmZsCgJ3ZwoCYmcSAXkiBEdlbW0qDQoGdHJhbnNCGAGgAQISBHdhcm0qJQgDEAdCBXNpemVzShgwAAAAAAAAADAAAAAAAAAAAwAAAAAAAAAqEwgBEAdCA2F4MEoIAAAAAAAAAAAq0Q0IEAgDCAMIAxABQgJ3MUrADRT/TTzMcFi8lyiDPUzeKzwBaVu9/RsUPZSHBT5S9sE9/h+QvUSUAb4QS3+9vmqHO0kVbr7wO7O8nin/veb3lb2x7V69eo4BvZeaKD26gdU9WJdSvAXtCz5cO4i9gfoPPdwHuT2eBxo8xkSYvfXEvL0IfDu9RGK0PBLFzr1MW6u86G+CvMWHXT1I2a88iI8RPXPnhb3mW1S85Y6gPWftGD6m7QC+mgYbPlHRCT44A6A9XqTYPDGVAL0jTRU+/7pIPsd8OD6oqgY+DWISPbJ2971dhum5MXKGPZ/tA76N1yE9ehIwPa+Mjj3igfK9RoSHvY3DMr1Pk++9fBwyPgIgS733vgY9mNLTvMslIj55NAc+67WBPbCjYb4Rfao72QSMPYCczT1AGH2975I6Pk42B74fe4e9jH+/Pf69oDuFC00+V2+aPJutgb1nphq9e3ffvZ7VAr64G4E9pwtuPRWQBD4Ti5q98PYsPpJt67wrOCE+40QxvYKglr3Kn8w82T3TPSjmgzwm1W+9RVcJvgOED74e5k09d7HKPROXhrypB9y9jcyyPcIcA75OCZK9cV5+PRpqZr7KQR49dj1uvToLMzwLD/i7dpKlPJoqjj1qUJu9MYIRPjq0lD3ky6w9bJDuPU5MoT0I3qw9hLT3OwUaEr4FQl28u5idvVKwEb57udM8u+BovWnn0r1Mm9W9JOPbPHvpEj1uawc+4WG2umle1T2Ilw8+zo3rPQY1cr5qovs9vRsLPaaTLT0EDhg9/8YcPQLVAj3KAhO9OrpCviZyMryymqS9rDfdPbqO7LwaxAg80v+tvaYmUb2JKpe6OBoYvj1S9jztyS283tXyvTyUdb5qJVI95cfzvGkXWb03dcG81AE6PhUwo7vB6g08uUYYvgGwKD7L5rs9HYLaPck2nDscu7s9mPAXPYkpez1aWnm8F+0Wvpm10j3OI0a+Xo7EvHmLp7zok9W9nyJ7PS8cpLz38DK9W+1UPe80Q71HOw4+vPQPPWtJQr29F0e+9+kFvjyV3j3E0aW7oe/nvNtEKD7hVwO+rOJvvWmSQb3sKXA9W+SHvYZBe70HXiS+6l6VPesYpT25H0O9386FPPFdBL4yQUG9KBoNPplhXjzLlGw+kjehvTuvbT2LKKC8TcJnPZ4KPbrj3WW9G7CxvSj7nD69cf27jYFOvlrVhL3P3Io9r81MvUhPCz6KSs09dJd5vG5rQb2DyM29aFqPvZDZFr4NqfY9ROMiPuigAL44AvK9ehg1vrhlxb1hC5++UfDpvdzNBD5klg290wSvPR9ISL3WSjQ+CjOjPNh3HL0ir4I+V+cEvUYb+r2ZZ6U8YoJ+ux5i2j0pwLy9WM6kPZSkrj0Lvoi9wLqFPFQjqr3zNXA+MTWQvUyUOb2cSNq9csUNvVkJGrpDPp09Kg56vZ8vmLxrDBG+tXOpvewYjT4iP9U9IAmgvRHzCL6jzMe9OScOu5CXYzvvcZi9x74Dvs2mET6nAjk9TmwZvQLEtLxL5Vi9VlOWvhaAPTxcP9u9iVnNvTEgg72z+ZU9h7nvvdTeEr6tCoM9qH6aPb5jxL2sW2Y9wefuvI3R9jxRHwG+qJOqPWxt9j38eII9MLJkPfcjwb4FgtU8KMImu1vrcLxzJIG9gmu1O6TNKD1jGNi8D8c9vYTa+z0SYeK9zfnSPUPYkDzIuKS9nY3tvClqvL3TQIo9JYAOPVAQZL38u+G9cyr3PJQSxD1tgjq8cFsrPU4FGr0pad07dJ7uvBvh8DzImRq+I+6DPVZcvLzI4hI9GmQLvU44Az0uqdu98InzPWZxLr4L1tS9wg7BPIjLFT5Q1+M8LBbLvOLtEb6gsZy8F0QCuz4dLT6P0n49QZQcvsyKTz7KyyG9BB20vZcFFz4oCqO79HwWvb86szyBCK09bW/LPRvSDL7+pEw+0erBPR1SG71bqae9KXTGvaskSjy3toS9baWcvRglpj2oUxU9zJ0hvbhflj0DBQw+ISfgvb0bd72IDME9MT2TPTK2uTxZEO49o93evbZ2F77xdbG9uMZIPOAJo72HkEe9Fq7HvbYgfr3Kx829oIMWPS/Loj1oykS9ysqpvK79bb26mVk9z+gRPN49Iz5JWuC9JHsUPd/bNT3kohO9/QNvPQJOE74m91g+5GwJvmRgvD0em+W9a7PrPXuaHb2xx4E8/MuuOytu4T2ytAO9eOuXvviom71Ef5Y8cGo0vcmonT1g8M89/RtyvCmKGL4PvQ0+Ms/dPe4Y9byE41c+PuYOvdPh6L0PYn+8h73cPY/9v70yzkc+y5u3vSpKCBAQAUICYjFKQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAq0QQIEAgBCAMIAxABQgJ3MkrABDd3wz0FA189N2h8vAxL3T1TlBm+7gMLPgmu0Lt1Ll69TG6ZPTwR2T1zp509y79MPixV3T1bbgM+1iBdvU+HLjwBmWY9EY3oun4Z9zxTiC49suasPdx5JrwbRw+9mKOpvXWgtr02HvA94noKvI0qoT2d2QS+6ndGvpja1r1H1Oo9Bb7aPcYACD3SSKS9m05WvObs87wUTQ29j0+Avg20r725vJu8P0gbPkOugzxycw8+KUMhvaMAz7yApse+tcc9PSMXYD3jmzQ+nWBHvR5DGjz8fZC9v+XwvWULkr24Tw29/8sKPkHnZzlR56G94HNoPAU8sjwJfoq9XiLqPe9dQb6O7668njSIPTUOCb4z+BM9amQEPuHSOT2HEi2+ZCKVvTBg/D1wZfQ8HDmBujy3ND27q5M9+xeRvVDl7bxUJmo8Gs5evaSlWrzu5gQ+ojXGvU9KRT7jcUA+yXQvvjENZ7zRXQw9j9ObvfbFl72ufcK8OGKXPT1xUb2vDTs+9YvtPDEPKLx5ZxQ+LEOAPYZCFz2Woge9i8A5PtVCpj1zoqa8VIEhvs7CGD3sPOq9frYvvlCu5LzFlOY8elMDPnFi5zyjEqU9jw/7vbmqE7sBgks8iJawPWAnPjzlrKQ9H4VOvUueEj3l7Sk9PvT/vR7NjzxyOAO9hvpCvh1IxD2iNxS9ypGuvYeMGr1pbWI88WgaPrfuh7yEf0E9j6cMPtSKWj2J19o9ri1DvTHpnT3L+b27GArcPW2Hzb1Hp5+9CesBPipKCBAQAUICYjJKQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAq0QwIEAgBCAUIBRABQgJ3NUrADMqhoLzABxO9djD+O4Y1jb0LZAg+GdT/vWG9dryjHA49RyArvPlOpL2b2LG91z0uPdoK0727WYQ9oxIcvjJSY71m7207aTgAviaIhT3v/fK6GjDUvb6IG778UCC+YDqnOzfr7L2Awwu+mGu9vE83aT5vXOM86z6cPUVCrjzRWqA9Q4gJvnRWML0/GdY83NbquuZHnbwVX4i93arTvEOOnr3m/ne+paL0vdPTQj3dcR8+67U5Pp+EHjwI97Y9MfS5PVHGjb153i2+U2xKOwtzNL4NCwO9sxV5PUVqEb6qplM7qfT9PVUTFD1m8VU9ULO5PZZ0MT5yF3g8Qc37PQpF0rv0tV+9X/MAPRUkeL30wGq9Oe54vSsNa76w2Sw8sGoBvu6/L7wQehQ+2GZVvcgBXr0Rqgs+UMRfPSX+xz38hhG9GzWZPf+GjL32cYq9vjh0PfoXdb0bG509k+h0PnqpLL4sDZq97GflPTKybbyMyu09ddzOvfW3Bz3mq3a8wPtlPAigBz142/m9vfvbvVhIDz5fM/A84zwuPI9skLsxChI9YLzsvc6ZzL3nlAU+bdl3PEEkrj15FHi9CPoMPhFtDT1IHkU9ccJgPT06o73BDD++nR7cvS73Jj6mMAU+WBkOvRwi97wBTNQ9HPaJvFELBb50lwE+zXNDPSvWgL5dSAC9p2NrPGMeRT3WSHk8LjOCvd2oPbwcgPE8iIzbvJ5UGL2hNgA+gd3BvecjD72AAFC+0JRdPemgqT0DqWA9ePC7PXSDND1YSww99CBCPaT62rybXvM9bsYOva6+Fb4jCa49EIM9PpKjxL0vgya852CMvQzjG72WCZc7h1L+vTJ047x1HRa+/b5ovTXo8r1I5di9bR4wvky5+T23glA9K1lEvul1dL1LTom9X4GNvS8pFL6Kf5o9VCUivfnAPz1Ywlc9edgMPsrXOb5pCDI+O+0BPlO6aj1xFHQ+IeunPCc9qD0pOpe9/1DoPah7iTzEzzi9SsZYPh+x+bxdS2g6m5yhvOvCmr3zm1k97jmXPacmET0luXG+E3DOPSd1D71gGvm9mBp3PQqLZj0an9W9ay19PkW7972gdTG+01/svWp9ET7UD5C8+WQYva2ty7uBX3S9r12NvSlSg71C/ZA9R/3QPT0V2L2++cM8w2yhPfWK3b3t2U29dZjUvYozBL5i5CY8icKWvVdBgT3M0UC7HQMpPStw77wnDIK9Eo8UvHb4Arooj5C9x7suPRPnmD1ZgIE8I3YvPseAgb1+PFU982onvWA1wDw/+am9lWDkPUIykDzzK/Q98KUBvtIkSr0nzLa9JuJZvbLYjb2IfkW80A/iuplMhrvmimO96YmZPHhTsz06ybi9sVu6OCq38ruL1j89d0DRu1xSzbr2+cq9AD0OO0zNvL2DO1M9KR0pvKqbgjsLhLa9DJykPTDJjT2qcLA9lxVkPnMYrLv3dPY9JeFKvAxrIT1opBU96sDYPJXPhj0U/Pi8fSCGO0lDWz3x+jI+wIOsva/yOL4LSEa9uFYTPFtXjzzxFhc8RDzyPR/lxz3qcKG7llNAvam5Db0z8RG9pM+4vBcKIb6g1zy95gcuvRa7mryUUtC8h6CJPU7iWb01pDO9ZvpdPRrFwLzZUbE8eBSJPbXWLD3e7sw8yOygvOSmiz1+z488pslOvfUVd7wQefm9Ou3EvU7PQL79P4u9hsIIPhbwY73SSaE9Kd+0ue94j70yCgk+tXhuPWdiM754R9U9Bx7cvUK/kbxj1Ig9xKP1vOUo5T0l6Js92XghvlCCQb0mE+c8+4RrvXkssbzDy6M97cABPfSKvL2cCY88IMl6vRTf+L15b+e98BLrPPk+OLtAZA46Xb7qvdOslrx0adS9uLm9vZdFh7zAqA2+4RCJPSSofj4b7zs9KZbVvbkn3rzfRh++86savbnLTz15aXE9CU3TvWQP9TwW1ew9rLgzPtaFj734/LC9V0+yOxDrlb7zglm9kvvdvIAlPL1JMCK+zSfJvKgMn73uIZs9iBq8vRFM57y51L68LXpoPa5Zgr4dhQu9tpGbPcMlFL29Wxy+TcYFPS7oCT29ld28sobtvbawl73BgwC9I0+zvVOgRL7JjJ29kVLKuxqxT70qSggQEAFCAmI1SkAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAKpEICBAIEAgBCAEQAUICdzNKgAgYo/e7sxAJPGGetz3tq2E+Sd6VPaHND74cCYi+TsQavPbs6Tug8+29RtnePLkRnb377iQ9DlUFvfnMIj3RgDK+lpgzva91c7w86BG+XsBAPjSAXb1GVQ4+qQ6IvXJkvLyOdvI9HOX4PLdUnTxi3Nk8AuULvqSPH71M4cO9pbihPFfSXr14X5C7tEX9u2Fbbrv/t2O7Z5uFvRrc171nD4i9eHPbPbZBGT27anA9CE8NPiaM8b1j4FA92CzcvVDxCL06WEY9GE8lPvgvoL1uUBu8HMzsPW2OGL5LUhQ9nYr8vDaStL1tPXA8gK5zPUzMur3RpBs9UgaOPMhS/r3JER8+SjbfPe0csL21SHC9FdudPZnvSr0fYzy+oc/WPSIzZjqMR0M+JWsSPQd2nDynLJM+MsuMvI/uwr1Nwrs8RJroPdqd7r1AA7q9jDo4PT+0o77Vx9+9R+qiPSRUcL1IjSa+ky1FPlVwEL7bXla9u6sYvUk5CDxuWRe9N6cEvPNlvDu7Ag684tEYPByac778qDQ9/dAPvlDdXb41cw0+A6MDvklZkzx5OJ69K/OKveEaRj0trda9u6UYPYDuGz2beu49g7YJvQ1X1j37MjA+7XkiPqAOcD16+jc9YOSRPieTZD7TAJ29tye9PQCQdj1Xzuw71y97PPrLRz2V+L89XjezPPQtCz0gjg4+YiMCPcA9Xz2TzMo9/z4nPklM+z3bgRo9Dz6qPBGY+r30Qe88kWnUvSm50b1nOYU9IckkvMFqQT3tZoC9rwH2PWyOazwsP/M9reuJPTxfhzw8AUS98nxOO5mTqT1c4Y49Etv0vUcP0j2/O6+8TPemPXnYjr39oYI9WySjvTDwUzxhJfS86PDpvPsSaL2+n3u8sj0yvhKHsz0T9MQ9NVw1vXFJDb4xcoS9SBLCPU4bgD21DPa8CsO3PZZL1b2T73q9LWZCPfckHbzLWHG99p6AvhF3iT2xmAQ9qnkyvrbkdT3HRLy65GvkPFiTwT1hh5e9USOSPacNjD1b9Zs9mYUnPq3ohj2YA2a9kic4PhHH4r0WiD29/YXFvQFdKLx1o909ruQEPlPbPT1Jm3m9VMNivbMRd71LJMM9xai5vRMOsT3Hm1W7uvGMPMrMGj5iskK9OCkqPvVTEL5f6ai9laAhvuHwmL2ev249QBaXPXJP+zw/zdo8IEzwvRreB75b8vg89AMKPkwmFb2H5gG+BwIdvsFli73LviE+Iy6qvCCS1L2mo3m9XQ9GvSyX2TzfK4e9d0K2vQUGmryl9z89v9mSPXd/YT0IZDu9bZMtvj6Jo70wuOg8c5AIvhfyzjx2p3G9UXRuvWlG5T2PL7M8clAMPuhbwL1nk+c9KkoIEBABQgJiM0pAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAACoMEAFCAmxvSgQAAAAAKgwQAUICaGlKBAAAwEAqjQUICggQEAFCAndnSoAF/y26PRpYmb5snxC8fewdPp1Ynz3hwzS9r7O+vKRuBb6s/qg87p43vlDvz71yNOU9a8YGu/zbFL1Yhi28jmKMPqoB1D3y2Z692KwqPkx7Ebx5fpc9qUhwvaoSwL1SO6Q9z3edvZIDoL1g4Lc94v3tvddUEb4ZQV89H7FIvhP0mb3GxBW9asIJvnLX5L3rXog92pPvPISuwb2W4Fg9+ZIbPtBRA74Wucg7u2hKPsJUej3OlKY9D/ejvEhso72bKeo9BOKFPcjUqLv9mT69kfcyvtBvfzysqY29sAdYvG9qiT3C76c9XECTPSnrZj7Ene49/MuYvZaWp70TZ24+ZdmHvWmfkLtvrDI++qUvPqsEs7skM8Y8aW8nvqIHur0ynBW9wWAUupxuBL26hHk8W4hgPqsxPj2X5Pw83oE/OaPTjLzOgfw9pgLLvd+/TbxJauC92cAOPFMNQzwNhbw99kf1PavLhz2OHiY+qakiPsErAT1C7Bg9dkZGvu8rAz3XeAW65OYsvhuyML2XFMQ9dLP9vfBlBD5RekI9dBi7vGQwabwV+Kk9JJMSvlr5UD6clqa94rqcvWkD+j1/zaE9WbgHPog31j35Kxo9pbMCvtysQb3Aj6I8JDfhung0Ur7r5NU93EQxPmHsFT4pddC9bpIyPd/AWb7QDi0+tqRGvvckKD2oGO49OTsEPuzjDD2Q/BG+NMQlvHbO27xC4RY9VkrKPQKWhz3oQFk+GmKHPXlCH73w6CY+qNQAvRDn5jzhF5Q8r9NqvlrF4jz1G+08VsqrvA18Z7zehQO+nhsHPErmGT4fOJG82txVvf7seL3AjE4+5cYKvrQLrT1/iTY8JrNEPioyCAoQAUICYmdKKAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABaFwoBeBISChAIAhIMCgIIQAoCCEAKAggDYhMKAXkSDgoMCAESCAoCCAEKAggKQgQKABAS"), (c) => c.charCodeAt(0));

async function warmUp(loaded) {
  const session = await loaded.ort.InferenceSession.create(WARM_UP, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
  const frame = new loaded.ort.Tensor("uint8", new Uint8Array(64 * 64 * 3), [64, 64, 3]);
  for (let run = 0; run < 8; run++) await session.run({ x: frame });
  await session.release();
}

async function startRuntime(appURL, provider, threads) {
  const probe = async (loaded) => {
    const session = await loaded.ort.InferenceSession.create(PROBE, { executionProviders: [provider] });
    await session.run({ a: new loaded.ort.Tensor("float32", new Float32Array(1), [1]) });
    await session.release();
    if (provider === "wasm") await warmUp(loaded);
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

/**
 * Starts loading the runtime that load() with provider "auto" and threads null would take,
 * before any model is asked for: a Python sandbox calls it while Python boots when its
 * plugin imports pyjoy.onnx (python/boot.js), so that the two overlap. Never rejects:
 * a runtime that fails is loaded again by load(), which tells its error.
 */
export async function preload(appURL) {
  const provider = (await webgpuAdapter()).adapter ? "webgpu" : "wasm";
  const key = runtimeKey(provider, null);
  if (!RUNTIMES.has(key)) PRELOADED.add(key);
  await runtime(appURL, provider, null).catch(() => PRELOADED.delete(key));
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
  if (PRELOADED.has(runtimeKey(chosen, threads))) why.push("onnxruntime-web loaded ahead, as the plugin's Python started (it imports pyjoy.onnx)");
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
