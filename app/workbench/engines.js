// Engines in the workbench: each engine's state in the header, the workspace menu's
// "Engines…" (connect by URL), the engines a workspace remembers (connected when it opens),
// and what the page says when an engine drops and comes back.
//
//   const ui = mountEngines(document, { workbench, engines, dialogs, status });
//   await ui.connect(url);     // connects and remembers it in the open workspace; rejects with why
//   await ui.connect(url, { keep: true });   // ?engine=: a failure stays in the header
//   ui.dialog();               // "Engines…": the engines and their states, and a URL to connect
import { engineLabel } from "../engine.js";

const STATE_TEXT = {
  connecting: "connecting…",
  connected: "connected",
  reconnecting: "reconnecting…",
  refused: "refused",
  unreachable: "refused or unreachable",
  disconnected: "disconnected",
};

/**
 * Where an engine plugin runs, in words, from the engine's start() answer's `runs`: "a process
 * (pid 123) on engine HOST", or "Runs on the Ray cluster on engine HOST: 2 actors, replica 1
 * on node 10.0.0.5 1a2b3c4d (1 GPU, 2 CPU), pid 123; replica 2 ..." (each replica's node, the
 * resources Ray gave it, its process).
 */
export function describeRuns(runs, engineUrl = null) {
  let on = "";
  try {
    on = engineUrl ? ` on engine ${new URL(engineUrl).host}` : "";
  } catch {
    on = "";
  }
  if (runs?.where !== "cluster") return `Runs as a local process${runs?.pid ? ` (pid ${runs.pid})` : ""}${on}`;
  const replicas = Array.isArray(runs.replicas) ? runs.replicas : [];
  const each = replicas.map((replica, index) => {
    const held = Object.entries(replica?.resources ?? {}).map(([kind, amount]) => `${amount} ${kind}`).join(", ");
    return `replica ${index + 1} on node ${replica?.ip ?? "?"} ${String(replica?.node ?? "").slice(0, 8)}${held ? ` (${held})` : ""}${replica?.pid ? `, pid ${replica.pid}` : ""}`;
  });
  return `Runs on the Ray cluster${on}: ${replicas.length} actor${replicas.length === 1 ? "" : "s"}, ${each.join("; ")}`;
}

function hostOf(engine) {
  return new URL(engine.label).host;
}

export function mountEngines(doc, { workbench, engines, dialogs, status }) {
  const box = doc.getElementById("engine-status");
  const last = new Map(); // engine -> the state last shown, to say what changed

  const draw = () => {
    box.replaceChildren(...engines.all().map((engine) => {
      const chip = doc.createElement("button");
      chip.type = "button";
      chip.className = "chip engine-chip";
      chip.dataset.state = engine.state;
      chip.dataset.url = engine.label;
      const why = engine.state === "refused" && engine.reason ? engine.reason : STATE_TEXT[engine.state] ?? engine.state;
      // A --ray engine whose cluster is lost serves on without it, trying it again (ENGINE.md, "A lost cluster").
      const lost = engine.state === "connected" && engine.info?.cluster?.state === "lost";
      chip.dataset.cluster = engine.info?.cluster?.state ?? "";
      chip.textContent = `Engine ${hostOf(engine)}: ${why}${lost ? ", Ray cluster lost (reconnecting…)" : ""}`;
      chip.title = `${engine.label}${engine.reason ? `\n${engine.reason}` : ""}${engine.info ? `\nPython ${engine.info.python}, ${engine.info.platform}` : ""}${lost ? `\n${engine.info.cluster.reason}` : ""}${engine.info?.cluster && !lost ? `\nRay ${engine.info.cluster.ray} cluster (${engine.info.cluster.address}): ${engine.info.cluster.nodes} nodes, ${engine.info.cluster.resources?.CPU ?? 0} CPUs, ${engine.info.cluster.resources?.GPU ?? 0} GPUs` : ""}`;
      chip.addEventListener("click", () => forgetDialog(engine));
      return chip;
    }));
    for (const engine of engines.all()) {
      const before = last.get(engine);
      if (before === engine.state) continue;
      last.set(engine, engine.state);
      if (engine.state === "reconnecting" && before === "connected") {
        status.toast(`Engine ${engine.label} dropped (${engine.reason}): reconnecting…`, "info", 10);
      } else if (engine.state === "refused") {
        status.log(`Engine ${engine.label}: ${engine.reason}`, "error");
      }
    }
  };
  engines.onChange(draw);
  engines.onReconnect((engine) => status.toast(`Engine ${engine.label} reconnected`, "info"));
  engines.onResume((engine) => status.toast(`Engine ${engine.label} resumed: its plugins ran on`, "info"));
  draw();

  async function forgetDialog(engine) {
    const message = `${engine.label}: ${engine.reason ?? STATE_TEXT[engine.state] ?? engine.state}. Disconnect it, and stop connecting to it when workspace "${workbench.workspace.name}" opens?`;
    if (!(await dialogs.confirm("Engine", message, { ok: "Disconnect" }))) return;
    // Forgotten first: once its chip is gone, a reload must not connect it again.
    await workbench.workspace.forgetEngine(engine.url);
    engines.remove(engine.url);
  }

  // keep: a failed engine stays in the header, saying why (and unreachable ones are tried
  // again); otherwise it is forgotten and only the rejection says why.
  async function connect(url, { keep = false } = {}) {
    const engine = await engines.connect(url, { keep });
    await workbench.workspace.rememberEngine(engine.url).catch((error) => status.toast(error.message, "error"));
    status.show(`Engine ${engine.label} connected`);
    return engine;
  }

  async function dialog() {
    const known = engines.all().map((engine) => `${engine.label}: ${STATE_TEXT[engine.state] ?? engine.state}`).join("; ");
    const url = await dialogs.prompt("Engines", `${known ? `Engines: ${known}. ` : ""}Connect an engine: paste the URL pyjoy engine printed (ws://HOST:PORT/?token=...).`, "");
    if (!url) return;
    try {
      await connect(url);
    } catch (error) {
      status.toast(error.message, "error");
    }
  }

  // The open workspace's engines: connected when it opens (tried again with backoff while
  // unreachable); another workspace's are disconnected.
  let shown = null;
  const sync = () => {
    const workspace = workbench.workspace;
    if (workspace.name === shown) return;
    shown = workspace.name;
    const wanted = new Set(workspace.engines);
    for (const engine of engines.all()) if (!wanted.has(engine.url)) engines.remove(engine.url);
    for (const url of wanted) engines.connect(url, { keep: true }).catch(() => {}); // the header shows why
  };
  workbench.subscribe(sync);
  sync();

  return { connect, dialog, label: engineLabel };
}
