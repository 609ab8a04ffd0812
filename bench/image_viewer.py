"""Image viewer benchmark: ImJoy's `imjoy/image` window (app/windows/image.js, its pixels
made in a worker by app/windows/pixels.js) with a 4096x4096 uint16 image and a
64x1024x1024 uint16 stack, in real Chromium, in the app as served from dist/, in one run.

Run from the repository root after `python build.py`:

    python bench/image_viewer.py [--json PATH] [--runs N]

bench/plugins/image_viewer.imjoy.html opens both windows (api.showImage, createWindow). In
each window's frame, driving its own controls as a person would:

1. 4096x4096: a new contrast limit typed in the "min" box (its change event), and
2. the stack: the slice slider moved to another slice (its input event),

each timed from the event to the new pixels on the canvas (its data-drawing attribute
gone) and two animation frames more (painted), with the frame's longest block meanwhile:
the longest gap in a MessageChannel ping loop running on the frame's thread (how long a
click, a pan or the readout could have waited). Beside them, in the same frame and run,
on the same canvas, timed the same way:

- floor: a bare putImageData of ready RGBA pixels of the same size, and
- before: what the viewer did before pixels.js (the same mapping, one division a pixel,
  then putImageData, all on the frame's thread), on the same values.

Medians of --runs (default 10). Prints a markdown table and writes every number, with the
machine, to bench/results/image_viewer.json. About a minute on 2 CPUs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from pathlib import Path

from playwright.sync_api import Frame, Page, sync_playwright

from pyjoy.devtools import launch_options, machine_facts, served

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rpc import summary, wait_until_idle  # noqa: E402  (bench/rpc.py: the same statistics)

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "bench" / "plugins" / "image_viewer.imjoy.html"
TIMEOUT_MS = 180_000
CASES = {"image": ("4096x4096 uint16, new contrast limit", 4096), "stack": ("64x1024x1024 uint16, another slice", 1024)}

# Defines window.bench in a viewer's frame.
HARNESS = """() => {
  const channel = new MessageChannel();
  const probe = { on: false, last: 0, max: 0 };
  channel.port1.onmessage = () => {
    if (!probe.on) return;
    const now = performance.now();
    probe.max = Math.max(probe.max, now - probe.last);
    probe.last = now;
    channel.port2.postMessage(0);
  };
  const frame = () => new Promise((resolve) => requestAnimationFrame(resolve));
  // {ms: from start to the second animation frame after done (the new pixels painted),
  //  blocked: the frame thread's longest gap meanwhile}
  async function watch(work) {
    Object.assign(probe, { on: true, last: performance.now(), max: 0 });
    channel.port2.postMessage(0);
    await new Promise((resolve) => setTimeout(resolve, 30));
    probe.max = 0;
    const start = performance.now();
    await work();
    await frame();
    await frame();
    const ms = performance.now() - start;
    probe.on = false;
    return { ms, blocked: probe.max };
  }
  const canvas = document.querySelector("canvas.image");
  const drawn = () => new Promise((resolve) => {
    if (!canvas.hasAttribute("data-drawing")) return resolve();
    const observer = new MutationObserver(() => {
      if (!canvas.hasAttribute("data-drawing")) { observer.disconnect(); resolve(); }
    });
    observer.observe(canvas, { attributes: true, attributeFilter: ["data-drawing"] });
  });
  // The plugin's values (bench/plugins/image_viewer.imjoy.html), for the floors.
  const values = (count) => {
    const out = new Uint16Array(count);
    for (let i = 0; i < count; i++) out[i] = ((i * 2654435761) >>> 7) % 60000;
    return out;
  };
  const side = canvas.width;
  const mine = values(side * side);
  const ready = new ImageData(side, side);
  ready.data.fill(200);
  const context = canvas.getContext("2d"); // the viewer's own canvas: the same paint follows each
  window.bench = {
    viewerContrast: (lo) => watch(async () => {
      const input = document.querySelector(".lo");
      input.value = String(lo);
      input.dispatchEvent(new Event("change"));
      await drawn();
    }),
    viewerSlice: (index) => watch(async () => {
      const slider = document.querySelector(".slider");
      slider.value = String(index);
      slider.dispatchEvent(new Event("input"));
      await drawn();
    }),
    floor: () => watch(async () => context.putImageData(ready, 0, 0)),
    // The viewer's draw() before pixels.js, as it was: map each value, then putImageData.
    before: (lo, hi) => watch(async () => {
      const pixels = new ImageData(side, side);
      const out = pixels.data;
      const span = hi - lo;
      const map = (v) => {
        if (!(span > 0)) return v > lo ? 255 : 0;
        const t = Math.floor(((v - lo) * 255) / span + 0.5);
        return t < 0 ? 0 : t > 255 ? 255 : t;
      };
      for (let p = 0, n = side * side; p < n; p++) {
        const o = p * 4;
        out[o] = out[o + 1] = out[o + 2] = map(mine[p]);
        out[o + 3] = 255;
      }
      context.putImageData(pixels, 0, 0);
    }),
  };
  return side;
}"""


def viewer_frame(page: Page, side: int) -> Frame:
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        for frame in page.frames[1:]:
            try:
                if frame.evaluate(f"document.querySelector('canvas.image')?.width === {side} && !document.querySelector('canvas.image').hasAttribute('data-drawing')"):
                    return frame
            except Exception:  # a frame still loading, or gone
                continue
        page.wait_for_timeout(100)
    raise RuntimeError(f"no image window of width {side}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "image_viewer.json")
    parser.add_argument("--runs", type=int, default=10, help="timed runs of each (default 10)")
    args = parser.parse_args(argv)
    build = json.loads((ROOT / "dist" / ".build-stamp").read_text())["build"]
    load_before = os.getloadavg()[0]
    began = time.perf_counter()
    samples: dict[str, dict[str, dict[str, list[float]]]] = {case: {"viewer": {}, "floor": {}, "before": {}} for case in CASES}
    with served(ROOT / "dist") as url, sync_playwright() as p:
        browser = p.chromium.launch(**launch_options())
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url)
            page.evaluate("pyjoy.ready")
            opened = time.perf_counter()
            page.evaluate("async (text) => (await pyjoy.loadPlugin(text)).open()", PLUGIN.read_text())
            open_s = time.perf_counter() - opened
            frames = {case: viewer_frame(page, side) for case, (_, side) in CASES.items()}
            for frame in frames.values():
                frame.evaluate(HARNESS)
            wait_until_idle()
            for run in range(-2, args.runs):  # two warm-up runs
                for case, frame in frames.items():
                    viewer = (frame.evaluate("(lo) => bench.viewerContrast(lo)", 1000 + 97 * (run + 2)) if case == "image"
                              else frame.evaluate("(i) => bench.viewerSlice(i)", (7 * (run + 3)) % 64))
                    measured = {"viewer": viewer, "floor": frame.evaluate("bench.floor()"),
                                "before": frame.evaluate("([lo, hi]) => bench.before(lo, hi)", [1000 + run, 59000])}
                    if run >= 0:
                        for kind, result in measured.items():
                            for key, value in result.items():
                                samples[case][kind].setdefault(key, []).append(value)
            chromium = browser.version
        finally:
            browser.close()

    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "build": build,
        "machine": machine_facts(chromium, load_before),
        "seconds": round(time.perf_counter() - began, 1),
        "open_both_windows_s": round(open_s, 2),
        "cases": {case: label for case, (label, _) in CASES.items()},
        "kinds": {"viewer": "PyJoy's viewer: the event to the new pixels on its canvas (pixels.js worker)",
                  "floor": "a bare putImageData of ready RGBA pixels of the same size, on the frame's thread",
                  "before": "the viewer before pixels.js: the mapping and putImageData on the frame's thread"},
        "ms": {case: {kind: summary(values["ms"]) for kind, values in kinds.items()} for case, kinds in samples.items()},
        "frame_blocked_ms": {case: {kind: summary(values["blocked"]) for kind, values in kinds.items()} for case, kinds in samples.items()},
        "samples": samples,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))

    print(f"# Image viewer, {results['date']}, Chromium {chromium}, {results['machine']['nproc']} CPUs "
          f"(load average {results['machine']['loadavg_1min_before']} before)\n")
    print("| medians of " + str(args.runs) + " | viewer: to shown, ms | viewer: frame blocked, ms | floor putImageData: ms (blocked) | before: ms (blocked) |")
    print("|---|---|---|---|---|")
    for case, (label, _) in CASES.items():
        ms, blocked = results["ms"][case], results["frame_blocked_ms"][case]
        print(f"| {label} | {ms['viewer']['median']:.0f} | {blocked['viewer']['median']:.0f} | "
              f"{ms['floor']['median']:.0f} ({blocked['floor']['median']:.0f}) | {ms['before']['median']:.0f} ({blocked['before']['median']:.0f}) |")
    print(f"\nAll numbers: {args.json} ({results['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
