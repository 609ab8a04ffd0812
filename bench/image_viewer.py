"""Image viewer benchmark: ImJoy's `imjoy/image` window (app/windows/image.js; its pixels
drawn by a worker on the viewer's canvas, app/windows/pixels.js) at microscopy sizes, a
4096x4096 uint16 image and a 64x1024x1024 uint16 stack (128 MiB), in real Chromium, in the
app as served from dist/, in one run.

Run from the repository root after `python build.py`:

    python bench/image_viewer.py [--json PATH] [--runs N]

bench/plugins/image_viewer.imjoy.html (a web-worker plugin) makes the values, then opens
each in a viewer window (`api.createWindow({type: "imjoy/image", data: {image}})`). Measured:

1. Opening. A PerformanceObserver for 'longtask' entries is attached at the start of every
   document (a Playwright init script: the page, the plugin's frame, the window's frame
   before its script runs); the longest task of the page's main thread and of the viewer
   frame's, from the call to createWindow resolving and 0.5 s after (the worker's last
   work), and the time to first pixels: from the call until createWindow resolves, which
   for imjoy/image is once the first slice is on screen. Floor: the same bytes, by the
   same route, to a bare window plugin that draws nothing.
2. Panning and zooming the 4096x4096 image: the mouse dragged across the view (Playwright
   input, one move per round trip) and wheel steps over it, for PAN_S each; the frame's
   requestAnimationFrame timestamps meanwhile give frames per second and how many frames
   showed a new transform (the view moved); with the frame's longest task meanwhile.
   Floors in the same frame: an empty rAF loop with no input (the display rate under this
   load), and the same input over a plain canvas of the same size holding an ImageBitmap,
   moved by the same CSS transform.
3. Slicing the stack: the slider set to the next slice each animation frame (its input
   event) for SLICE_S; frames per second, slices shown per second (the viewer's
   data-shown-slice changes) and the frame's longest task. Floor: the same frame drawing
   a ready 1024x1024 ImageBitmap on a canvas each frame.
4. Redraw: a new contrast limit on the 4096x4096 image (its "min" box's change event) to
   the new pixels on screen, with the frame thread's longest block meanwhile (a ping loop),
   beside a bare putImageData of ready pixels of that size on that thread.

Medians over --runs (default 3; the redraw 3 times that). Prints a markdown table and
writes every number, with the machine and its load average, to
bench/results/image_viewer.json. About a minute and a half on 2 CPUs.
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
PAN_S = 1.5
SLICE_S = 2.0
SETTLE_S = 0.5  # after createWindow resolves: the worker's last answers
CASES = {"image": ("4096x4096 uint16", 4096), "stack": ("64x1024x1024 uint16", 1024)}

# Every document records its long tasks from its start (epoch ms, comparable across frames).
LONGTASKS = """
window.__longtasks = [];
try {
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) window.__longtasks.push({ at: performance.timeOrigin + entry.startTime, ms: entry.duration });
  }).observe({ type: "longtask" });
} catch {}
"""

# Defines window.bench in a viewer's frame.
HARNESS = """() => {
  const frame = () => new Promise((resolve) => requestAnimationFrame(resolve));
  const view = document.querySelector(".view");
  const stage = document.querySelector(".stage");
  const canvas = () => document.querySelector("canvas.image");
  // rAF timestamps until stop(); with each frame, whether `moved()` changed since the last.
  let recording = null;
  function record(changed) {
    const state = { times: [], changes: 0, on: true, last: changed() };
    const step = (t) => {
      if (!state.on) return;
      state.times.push(t);
      const now = changed();
      if (now !== state.last) state.changes++;
      state.last = now;
      requestAnimationFrame(step);
    };
    requestAnimationFrame(step);
    recording = state;
  }
  function stop() {
    const { times, changes } = recording;
    recording.on = false;
    const seconds = (times.at(-1) - times[0]) / 1000;
    const gaps = times.slice(1).map((t, i) => t - times[i]).sort((a, b) => a - b);
    return { frames: times.length, fps: (times.length - 1) / seconds, changed_per_s: changes / seconds,
             worst_frame_ms: gaps.at(-1) ?? 0, seconds };
  }
  // A plain canvas of the same size holding an ImageBitmap, over the viewer, moved by the same
  // CSS transform on the same input: the floor for panning and zooming.
  let plain = null;
  async function showPlain(side) {
    const box = document.createElement("div");
    box.style.cssText = "position:fixed;inset:0;overflow:hidden;background:#222;z-index:10;touch-action:none";
    const inner = document.createElement("canvas");
    Object.assign(inner, { width: side, height: side });
    inner.style.cssText = "position:absolute;left:0;top:0;transform-origin:0 0;image-rendering:pixelated";
    const data = new ImageData(side, side);
    for (let i = 0; i < data.data.length; i += 4) { data.data[i] = data.data[i + 1] = data.data[i + 2] = (i >> 6) & 255; data.data[i + 3] = 255; }
    const bitmap = await createImageBitmap(data);
    inner.getContext("2d").drawImage(bitmap, 0, 0);
    box.append(inner);
    document.body.append(box);
    const t = { scale: Math.min(box.clientWidth / side, box.clientHeight / side), x: 0, y: 0 };
    const apply = () => { inner.style.transform = `translate(${t.x}px, ${t.y}px) scale(${t.scale})`; };
    apply();
    let last = null;
    box.addEventListener("pointerdown", (e) => { last = { x: e.clientX, y: e.clientY }; });
    box.addEventListener("pointerup", () => { last = null; });
    box.addEventListener("pointermove", (e) => {
      if (!last) return;
      t.x += e.clientX - last.x; t.y += e.clientY - last.y; last = { x: e.clientX, y: e.clientY }; apply();
    });
    box.addEventListener("wheel", (e) => {
      e.preventDefault();
      const k = Math.exp(-e.deltaY / 500);
      t.x = e.clientX - (e.clientX - t.x) * k; t.y = e.clientY - (e.clientY - t.y) * k; t.scale *= k; apply();
    }, { passive: false });
    plain = { box, inner };
    await frame(); await frame();
  }
  // The stack's slider moved to the next slice each frame (as a drag fires input events).
  let sliding = null;
  function slide() {
    const slider = document.querySelector(".slider");
    const depth = Number(slider.max) + 1;
    sliding = { on: true };
    let i = Number(slider.value);
    const step = () => {
      if (!sliding.on) return;
      i = (i + 1) % depth;
      slider.value = String(i);
      slider.dispatchEvent(new Event("input"));
      requestAnimationFrame(step);
    };
    requestAnimationFrame(step);
  }
  // The floor for slicing: a ready 1024x1024 ImageBitmap drawn on a canvas each frame.
  let flipping = null;
  async function flipBitmaps(side) {
    const target = document.createElement("canvas");
    Object.assign(target, { width: side, height: side });
    target.style.cssText = "position:fixed;left:0;top:0;width:300px;height:300px;z-index:10";
    document.body.append(target);
    const context = target.getContext("2d");
    const bitmaps = [];
    for (let k = 0; k < 4; k++) {
      const data = new ImageData(side, side);
      new Uint32Array(data.data.buffer).fill((0xff000000 | (k * 60 * 0x010101)) >>> 0);
      bitmaps.push(await createImageBitmap(data));
    }
    await frame();
    let k = 0;
    flipping = { on: true, target };
    const step = () => {
      if (!flipping.on) return;
      context.drawImage(bitmaps[k++ % bitmaps.length], 0, 0);
      requestAnimationFrame(step);
    };
    requestAnimationFrame(step);
  }
  // The frame thread's longest block while `work` runs to the new pixels on screen.
  const channel = new MessageChannel();
  const probe = { on: false, last: 0, max: 0 };
  channel.port1.onmessage = () => {
    if (!probe.on) return;
    const now = performance.now();
    probe.max = Math.max(probe.max, now - probe.last);
    probe.last = now;
    channel.port2.postMessage(0);
  };
  async function watch(work) {
    Object.assign(probe, { on: true, last: performance.now(), max: 0 });
    channel.port2.postMessage(0);
    await new Promise((resolve) => setTimeout(resolve, 30));
    probe.max = 0;
    const start = performance.now();
    await work();
    const ms = performance.now() - start;
    await frame();
    probe.on = false;
    return { ms, blocked: probe.max };
  }
  const drawn = () => new Promise((resolve) => {
    const target = canvas();
    if (!target.hasAttribute("data-drawing")) return resolve();
    const observer = new MutationObserver(() => {
      if (!target.hasAttribute("data-drawing")) { observer.disconnect(); resolve(); }
    });
    observer.observe(target, { attributes: true, attributeFilter: ["data-drawing"] });
  });
  let ready = null;
  window.bench = {
    recordView: () => record(() => stage.style.transform),
    recordPlain: () => record(() => plain.inner.style.transform),
    recordEmpty: () => record(() => 0),
    recordSlices: () => record(() => canvas().dataset.shownSlice),
    stop,
    showPlain,
    hidePlain: () => { plain?.box.remove(); plain = null; },
    slide,
    stopSliding: () => { sliding.on = false; },
    flipBitmaps,
    stopFlipping: () => { flipping.on = false; flipping.target.remove(); },
    shownSlices: () => canvas().dataset.shownSlice,
    contrast: (lo) => watch(async () => {
      const input = document.querySelector(".lo");
      input.value = String(lo);
      input.dispatchEvent(new Event("change"));
      await new Promise((resolve) => setTimeout(resolve, 0));
      await drawn();
    }),
    putImageData: (side) => watch(async () => {
      ready ??= new ImageData(side, side);
      const target = document.createElement("canvas");
      Object.assign(target, { width: side, height: side });
      target.style.cssText = "position:fixed;left:0;top:0;width:200px;height:200px";
      document.body.append(target);
      target.getContext("2d").putImageData(ready, 0, 0);
      await frame();
      target.remove();
    }),
  };
  return true;
}"""


def new_frames(page: Page, before: set[Frame]) -> list[Frame]:
    return [frame for frame in page.frames[1:] if frame not in before]


def viewer_frame(page: Page, before: set[Frame], side: int) -> Frame:
    for frame in new_frames(page, before):
        try:
            if frame.evaluate(f"document.querySelector('canvas.image')?.width === {side}"):
                return frame
        except Exception:  # a frame still loading, or gone
            continue
    raise RuntimeError(f"no new image window of width {side}")


def longest(frames: list[Frame], start: float, end: float) -> float:
    """The longest long task (ms) of these documents that began in [start, end] (epoch ms); 0 if none."""
    worst = 0.0
    for frame in frames:
        try:
            tasks = frame.evaluate("window.__longtasks ?? []")
        except Exception:  # a frame gone
            continue
        worst = max([worst] + [task["ms"] for task in tasks if start <= task["at"] <= end])
    return round(worst, 1)


def open_one(page: Page, kind: str, side: int, bare: bool) -> tuple[dict, Frame | None]:
    """Opens `kind` (viewer or bare window) and measures it; returns the numbers and the viewer's frame."""
    page.evaluate("async (kind) => (await pyjoy.getPlugin('Image Viewer Bench')).prepare(kind)", kind)
    wait_until_idle()
    before = set(page.frames)
    start = page.evaluate("performance.timeOrigin + performance.now()")
    ms = page.evaluate("async ([kind, bare]) => (await pyjoy.getPlugin('Image Viewer Bench')).open(kind, bare)", [kind, bare])
    time.sleep(SETTLE_S)
    end = page.evaluate("performance.timeOrigin + performance.now()")
    frames = new_frames(page, before)
    viewer = None if bare else viewer_frame(page, before, side)
    others = [frame for frame in page.frames[1:] if frame not in frames]  # the plugin's own frame, among others
    result = {"first_pixels_ms": round(ms, 1), "page_longest_task_ms": longest([page.main_frame], start, end),
              "window_longest_task_ms": longest(frames, start, end), "other_frames_longest_task_ms": longest(others, start, end)}
    return result, viewer


def close(page: Page, kind: str) -> None:
    page.evaluate("async (kind) => (await pyjoy.getPlugin('Image Viewer Bench')).close(kind)", kind)
    page.wait_for_timeout(300)


def drag(page: Page, frame: Frame, seconds: float) -> int:
    """The mouse dragged back and forth across the view for `seconds`; returns the moves sent."""
    box = frame.locator(".view").bounding_box() if frame.locator(".view").count() else None
    box = box or {"x": 0, "y": 0, "width": 400, "height": 300}
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    moves = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        dx = 60 * ((moves // 30) % 2 * 2 - 1) * ((moves % 30) / 30)
        page.mouse.move(cx + dx, cy + dx / 2)
        moves += 1
    page.mouse.up()
    return moves


def wheel(page: Page, frame: Frame, seconds: float) -> int:
    box = frame.locator(".view").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    steps = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        page.mouse.wheel(0, -40 if (steps // 20) % 2 == 0 else 40)
        steps += 1
    return steps


def now(frame: Frame) -> float:
    return frame.evaluate("performance.timeOrigin + performance.now()")


def interact(page: Page, frame: Frame, side: int) -> dict[str, dict]:
    """Panning and zooming the viewer, beside the floors, in one frame."""
    out: dict[str, dict] = {}
    frame.evaluate("bench.recordEmpty()")
    time.sleep(PAN_S)
    out["empty_raf"] = frame.evaluate("bench.stop()")
    start = now(frame)
    frame.evaluate("bench.recordView()")
    moves = drag(page, frame, PAN_S)
    out["pan"] = {**frame.evaluate("bench.stop()"), "input_events": moves, "window_longest_task_ms": longest([frame], start, now(frame))}
    start = now(frame)
    frame.evaluate("bench.recordView()")
    steps = wheel(page, frame, PAN_S)
    out["zoom"] = {**frame.evaluate("bench.stop()"), "input_events": steps, "window_longest_task_ms": longest([frame], start, now(frame))}
    frame.evaluate("(side) => bench.showPlain(side)", side)
    frame.evaluate("bench.recordPlain()")
    moves = drag(page, frame, PAN_S)
    out["pan_plain"] = {**frame.evaluate("bench.stop()"), "input_events": moves}
    frame.evaluate("bench.recordPlain()")
    steps = wheel(page, frame, PAN_S)
    out["zoom_plain"] = {**frame.evaluate("bench.stop()"), "input_events": steps}
    frame.evaluate("bench.hidePlain()")
    return out


def slicing(frame: Frame, side: int) -> dict[str, dict]:
    out: dict[str, dict] = {}
    frame.evaluate("bench.recordEmpty()")
    time.sleep(SLICE_S / 2)
    out["empty_raf"] = frame.evaluate("bench.stop()")
    start = now(frame)
    frame.evaluate("bench.recordSlices()")
    frame.evaluate("bench.slide()")
    time.sleep(SLICE_S)
    out["slice"] = {**frame.evaluate("bench.stop()"), "window_longest_task_ms": longest([frame], start, now(frame))}
    frame.evaluate("bench.stopSliding()")
    frame.evaluate("(side) => bench.flipBitmaps(side)", side)
    frame.evaluate("bench.recordEmpty()")
    time.sleep(SLICE_S)
    out["bitmap_each_frame"] = frame.evaluate("bench.stop()")
    frame.evaluate("bench.stopFlipping()")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "image_viewer.json")
    parser.add_argument("--runs", type=int, default=3, help="runs of each (default 3)")
    args = parser.parse_args(argv)
    build = json.loads((ROOT / "dist" / ".build-stamp").read_text())["build"]
    load_before = os.getloadavg()[0]
    began = time.perf_counter()
    opens: dict[str, dict[str, list[dict]]] = {case: {"viewer": [], "bare": []} for case in CASES}
    moving: list[dict] = []
    sliced: list[dict] = []
    redraw: dict[str, list[dict]] = {"viewer": [], "putImageData": []}
    with served(ROOT / "dist") as url, sync_playwright() as p:
        browser = p.chromium.launch(**launch_options())
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.add_init_script(LONGTASKS)
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url)
            page.evaluate("pyjoy.ready")
            page.evaluate("async (text) => { await pyjoy.loadPlugin(text); }", PLUGIN.read_text())
            for run in range(args.runs):
                for case, (_, side) in CASES.items():
                    bare, _ = open_one(page, case, side, bare=True)
                    opens[case]["bare"].append(bare)
                    close(page, case)
                    result, frame = open_one(page, case, side, bare=False)
                    opens[case]["viewer"].append(result)
                    frame.evaluate(HARNESS)
                    if case == "image":
                        moving.append(interact(page, frame, side))
                        for k in range(3):
                            redraw["viewer"].append(frame.evaluate("(lo) => bench.contrast(lo)", 1000 + 97 * (3 * run + k)))
                            redraw["putImageData"].append(frame.evaluate("(side) => bench.putImageData(side)", side))
                    else:
                        sliced.append(slicing(frame, side))
                    close(page, case)
            chromium = browser.version
        finally:
            browser.close()

    def med(rows: list[dict], key: str) -> float:
        return round(summary([row[key] for row in rows])["median"], 1)

    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "build": build,
        "machine": machine_facts(chromium, load_before),
        "seconds": round(time.perf_counter() - began, 1),
        "runs": args.runs,
        "cases": {case: label for case, (label, _) in CASES.items()},
        "open": {case: {kind: {key: med(rows, key) for key in rows[0]} for kind, rows in kinds.items()} for case, kinds in opens.items()},
        "pan_zoom_4096": {kind: {key: med([row[kind] for row in moving], key) for key in moving[0][kind]} for kind in moving[0]},
        "slicing_stack": {kind: {key: med([row[kind] for row in sliced], key) for key in sliced[0][kind]} for kind in sliced[0]},
        "redraw_4096_contrast": {kind: {"ms": med(rows, "ms"), "blocked_ms": med(rows, "blocked")} for kind, rows in redraw.items()},
        "samples": {"open": opens, "pan_zoom_4096": moving, "slicing_stack": sliced, "redraw_4096_contrast": redraw},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))

    o, m, s, r = results["open"], results["pan_zoom_4096"], results["slicing_stack"], results["redraw_4096_contrast"]
    print(f"# Image viewer, {results['date']}, Chromium {chromium}, {results['machine']['nproc']} CPUs "
          f"(load average {results['machine']['loadavg_1min_before']} before), medians of {args.runs}\n")
    print("| opening | first pixels, ms | page's longest task, ms | window's longest task, ms | floor: bare window, ms (page's, window's longest task) |")
    print("|---|---|---|---|---|")
    for case, (label, _) in CASES.items():
        v, b = o[case]["viewer"], o[case]["bare"]
        print(f"| {label} | {v['first_pixels_ms']:.0f} | {v['page_longest_task_ms']:.0f} | {v['window_longest_task_ms']:.0f} | "
              f"{b['first_pixels_ms']:.0f} ({b['page_longest_task_ms']:.0f}, {b['window_longest_task_ms']:.0f}) |")
    print("\n| frames per second | viewer | view moved, per s | window's longest task, ms | floor: plain canvas (moved per s) | floor: empty rAF |")
    print("|---|---|---|---|---|---|")
    for kind, label in (("pan", "panning 4096x4096 (mouse drag)"), ("zoom", "zooming 4096x4096 (wheel)")):
        print(f"| {label} | {m[kind]['fps']:.0f} | {m[kind]['changed_per_s']:.0f} | {m[kind]['window_longest_task_ms']:.0f} | "
              f"{m[kind + '_plain']['fps']:.0f} ({m[kind + '_plain']['changed_per_s']:.0f}) | {m['empty_raf']['fps']:.0f} |")
    print(f"| slicing 64x1024x1024 (slider, a slice a frame) | {s['slice']['fps']:.0f} | {s['slice']['changed_per_s']:.0f} slices | "
          f"{s['slice']['window_longest_task_ms']:.0f} | {s['bitmap_each_frame']['fps']:.0f} (a ready ImageBitmap a frame) | {s['empty_raf']['fps']:.0f} |")
    print(f"\nRedraw, 4096x4096 new contrast: {r['viewer']['ms']:.0f} ms to shown, frame blocked {r['viewer']['blocked_ms']:.0f} ms; "
          f"putImageData of ready pixels: {r['putImageData']['ms']:.0f} ms, blocked {r['putImageData']['blocked_ms']:.0f} ms")
    print(f"\nAll numbers: {args.json} ({results['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
