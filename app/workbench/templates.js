// New-plugin templates for the editor: one complete ImJoy plugin file per type, each
// loading as it is and doing something visible when run. The workbench gives each copy a
// unique name (replace the "name" in the config) before it is saved.
//
//   import { TEMPLATES } from "./workbench/editor.js";   // or ./workbench/templates.js
//   TEMPLATES["web-python"]; TEMPLATES["web-worker"]; TEMPLATES.window;  // file texts
//   TEMPLATES["python-window"];  // a window plugin written in Python (PyScript)
//
// "tags" is empty on purpose: in ImJoy a tag picks a variant of the plugin (blocks with
// tag="..."), it is not a label.

const webPython = `<config lang="json">
{
  "name": "Untitled Python Plugin",
  "type": "web-python",
  "version": "0.1.0",
  "api_version": "0.1.8",
  "description": "A Python plugin that runs in your browser.",
  "tags": [],
  "labels": [],
  "requirements": []
}
</config>

<script lang="python">
from imjoy import api


class Plugin:
    async def setup(self):
        await api.log("Python plugin ready")

    async def run(self, ctx):
        # ctx.data holds what the caller passed; an empty run has none.
        numbers = list(range(1, 11))
        total = sum(n * n for n in numbers)
        await api.showMessage(f"Hello from Python: the squares of 1..10 add up to {total}")


api.export(Plugin())
</script>

<docs>
# Untitled Python Plugin

Runs Python (Pyodide) in a sandboxed worker. Add packages to "requirements" in the
config (for example "numpy"); they load before the script runs.
</docs>
`;

const webWorker = `<config lang="json">
{
  "name": "Untitled Worker Plugin",
  "type": "web-worker",
  "version": "0.1.0",
  "api_version": "0.1.8",
  "description": "A JavaScript plugin that runs in a web worker.",
  "tags": [],
  "labels": [],
  "requirements": []
}
</config>

<script lang="javascript">
class Plugin {
  async setup() {
    await api.log("worker plugin ready");
  }

  async run(ctx) {
    // ctx.data holds what the caller passed; an empty run has none.
    const started = performance.now();
    let primes = 0;
    for (let n = 2; n < 100000; n++) {
      let prime = true;
      for (let d = 2; d * d <= n; d++) if (n % d === 0) { prime = false; break; }
      if (prime) primes++;
    }
    const ms = Math.round(performance.now() - started);
    await api.showMessage(\`Hello from a worker: \${primes} primes below 100000, counted in \${ms} ms\`);
  }
}

api.export(new Plugin());
</script>

<docs>
# Untitled Worker Plugin

Runs JavaScript in a sandboxed web worker, off the page's thread: a good place for
heavy computation. It has no page to draw on; use a window plugin for that.
</docs>
`;

const window = `<config lang="json">
{
  "name": "Untitled Window Plugin",
  "type": "window",
  "version": "0.1.0",
  "api_version": "0.1.8",
  "description": "A plugin with its own window: draws on a canvas.",
  "tags": [],
  "labels": [],
  "requirements": []
}
</config>

<window>
  <div class="plugin">
    <canvas id="canvas" width="320" height="200" aria-label="A drawing made by the plugin"></canvas>
    <button id="redraw" type="button">Draw again</button>
  </div>
</window>

<style>
  body { margin: 0; font-family: system-ui, sans-serif; }
  .plugin { display: grid; gap: 8px; padding: 12px; justify-items: start; }
  canvas { width: 100%; max-width: 320px; height: auto; border-radius: 8px; background: #f6f7f5; }
  button { font: inherit; padding: 6px 14px; border-radius: 8px; border: 1px solid #dfe3e0; background: #fff; }
</style>

<script lang="javascript">
function draw() {
  const canvas = document.getElementById("canvas");
  const context = canvas.getContext("2d");
  context.clearRect(0, 0, canvas.width, canvas.height);
  const colours = ["#1f6f5c", "#f2b950", "#2a5d8f", "#b3261e"];
  for (let i = 0; i < 24; i++) {
    context.globalAlpha = 0.6;
    context.fillStyle = colours[i % colours.length];
    context.beginPath();
    context.arc(Math.random() * canvas.width, Math.random() * canvas.height, 8 + Math.random() * 28, 0, 2 * Math.PI);
    context.fill();
  }
}

class Plugin {
  async setup() {
    document.getElementById("redraw").addEventListener("click", draw);
    await api.log("window plugin ready");
  }

  async run(ctx) {
    // ctx.data holds what the caller passed; an empty run has none.
    draw();
    await api.showMessage("Hello from a window: drew 24 circles");
  }
}

api.export(new Plugin());
</script>

<docs>
# Untitled Window Plugin

Runs in its own sandboxed frame, shown as a window: the window block is its HTML,
the style block its CSS, and the script draws on the page.
</docs>
`;

const pythonWindow = `<config lang="json">
{
  "name": "Untitled Python Window",
  "type": "window",
  "version": "0.1.0",
  "api_version": "0.1.8",
  "description": "A window written in Python: PyScript builds its page.",
  "tags": [],
  "labels": [],
  "requirements": []
}
</config>

<window>
  <div class="plugin">
    <button id="more" type="button">One more</button>
    <ul id="squares"></ul>
  </div>
</window>

<style>
  body { margin: 0; font-family: system-ui, sans-serif; }
  .plugin { display: grid; gap: 8px; padding: 12px; justify-items: start; }
  button { font: inherit; padding: 6px 14px; border-radius: 8px; border: 1px solid #dfe3e0; background: #fff; }
</style>

<script lang="python">
from imjoy import api
from pyscript import web, when

shown = 0


def show_squares(n):
    global shown
    shown = n
    squares = web.page["squares"]
    squares.innerHTML = ""
    for k in range(1, n + 1):
        squares.append(web.li(f"{k} squared is {k * k}"))


@when("click", "#more")
def one_more(event):
    show_squares(shown + 1)


class Plugin:
    async def setup(self):
        await api.log("Python window ready")

    async def run(self, ctx):
        # ctx.data holds what the caller passed; an empty run has none.
        show_squares(5)
        total = sum(k * k for k in range(1, 6))
        await api.showMessage(f"Hello from a Python window: the squares of 1..5 add up to {total}")


api.export(Plugin())
</script>

<docs>
# Untitled Python Window

Runs Python in its own sandboxed frame, shown as a window, with PyScript: \`pyscript.web\`
builds and changes the page, \`when\` handles its events, \`display\` shows values and \`js\`
reaches the browser. \`api\` is a Python plugin's; add packages to "requirements".
</docs>
`;

export const TEMPLATES = Object.freeze({ "web-python": webPython, "web-worker": webWorker, window, "python-window": pythonWindow });
