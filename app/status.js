// The status bar (one line and a progress bar), the toasts above it, and the Messages log
// that keeps every toast and plugin message of this visit (the last LOG_LIMIT entries).
//
//   const status = createStatus(document);
//   status.show("Loading…", 0.4);                     // the status line and its bar
//   status.log("Stats: ready", "info");                // a Messages entry
//   status.toast("Saved", "info", 6, {label: "Undo", run}, plugin);  // plugin: who it is from
//   status.forget(plugin);                             // its toasts go (a plugin was ended)
//
// createOfflineStatus: the status bar's own part that says what is saved for offline use.
//
// A plugin can send thousands of messages a second, so no message touches the page's
// DOM by itself: messages wait in bounded queues and are drawn together, with a frame, at
// most every DRAW_INTERVAL_MS. A message that repeats the one before it is counted
// ("×120"), not drawn again; each source (a plugin, or the app itself) has at most
// TOASTS_PER_SOURCE toasts on screen, and past those its newest toast shows its latest
// message and how many others went to Messages.

export const LOG_LIMIT = 500;
export const TOASTS_PER_SOURCE = 3;
const LONGEST_TOAST_S = 60;
const DRAW_INTERVAL_MS = 100;
const APP = { name: "PyJoy" }; // the source of the app's own toasts

// "12:04:31" in the person's locale; formatting is slow, and a flood logs many a second.
let clockSecond = null;
let clockText = "";
function clock(date) {
  const second = Math.floor(date.getTime() / 1000);
  if (second !== clockSecond) [clockSecond, clockText] = [second, date.toLocaleTimeString()];
  return clockText;
}

// A log entry's count of repeats, after its text.
function showRepeat(item, repeat) {
  let badge = item.querySelector(".repeat");
  if (repeat < 2) return badge?.remove();
  if (!badge) {
    badge = item.ownerDocument.createElement("span");
    badge.className = "repeat";
    item.append(badge);
  }
  badge.textContent = ` ×${repeat}`;
}

export function createStatus(document) {
  const line = document.getElementById("status-line");
  const progress = document.getElementById("progress");
  const bar = progress.querySelector(".progress-bar");
  const toasts = document.getElementById("toasts");
  const log = document.getElementById("message-log");
  const count = document.getElementById("message-count");
  let logged = 0; // messages logged this visit, repeats included
  let waitingLog = []; // entries {text, kind, time, repeat} not yet drawn
  let lastEntry = null; // the newest entry drawn: repeats of it only change its count
  const sources = new Map(); // source -> {waiting: [toast requests], shown: [toasts]}
  let drawing = false;
  let lastDraw = -Infinity;

  // Draws with the next frame, at most every DRAW_INTERVAL_MS: a flood redraws the last
  // LOG_LIMIT entries, which need not happen sixty times a second.
  function scheduleDraw() {
    if (drawing) return;
    drawing = true;
    const wait = Math.max(0, lastDraw + DRAW_INTERVAL_MS - performance.now());
    // A hidden page gets no frames; the second timer draws there.
    setTimeout(() => requestAnimationFrame(draw), wait);
    setTimeout(draw, wait + 250);
  }

  function draw() {
    if (!drawing) return;
    drawing = false;
    lastDraw = performance.now();
    drawLog();
    for (const [source, state] of sources) drawToasts(source, state);
  }

  function addLog(text, kind) {
    logged += 1;
    const last = waitingLog[waitingLog.length - 1] ?? lastEntry;
    if (last && last.text === text && last.kind === kind) last.repeat += 1;
    else waitingLog.push({ text, kind, time: new Date(), repeat: 1, item: null });
    // Only the last LOG_LIMIT can be shown: drop the others now, a batch at a time.
    if (waitingLog.length > 2 * LOG_LIMIT) waitingLog = waitingLog.slice(-LOG_LIMIT);
    scheduleDraw();
  }

  function drawLog() {
    if (!log) return;
    if (lastEntry?.item) showRepeat(lastEntry.item, lastEntry.repeat);
    const fresh = waitingLog.slice(-LOG_LIMIT);
    waitingLog = [];
    if (fresh.length) {
      const items = document.createDocumentFragment();
      for (const entry of fresh) {
        const item = document.createElement("li");
        item.dataset.kind = entry.kind;
        const time = document.createElement("time");
        time.textContent = clock(entry.time);
        item.append(time, document.createTextNode(entry.text));
        showRepeat(item, entry.repeat);
        entry.item = item;
        items.append(item);
      }
      log.append(items);
      for (let extra = log.children.length - LOG_LIMIT; extra > 0; extra -= 1) log.firstElementChild.remove();
      lastEntry = fresh[fresh.length - 1];
      // Keep the newest in view, where the panel is open: reading the scroll height lays
      // the page out, which a closed panel need not pay for each frame.
      if (log.closest("details")?.open !== false) log.scrollTop = log.scrollHeight;
    }
    count.textContent = String(logged);
  }

  function addToast(request, source) {
    let state = sources.get(source);
    if (!state) sources.set(source, (state = { waiting: [], shown: [], skipped: 0 }));
    const last = state.waiting[state.waiting.length - 1];
    if (last && !last.action && !request.action && last.text === request.text && last.kind === request.kind) last.repeat += 1;
    else state.waiting.push(request);
    // At most TOASTS_PER_SOURCE can be drawn at once: keep the newest and those with an
    // action (the app's own, such as Undo), count the others.
    if (state.waiting.length > TOASTS_PER_SOURCE) {
      const oldest = state.waiting.findIndex((waiting) => !waiting.action);
      if (oldest >= 0) state.skipped += state.waiting.splice(oldest, 1)[0].repeat;
    }
    scheduleDraw();
  }

  function drawToasts(source, state) {
    const requests = state.waiting;
    state.waiting = [];
    for (const request of requests) {
      const newest = state.shown[state.shown.length - 1];
      if (newest && !newest.action && !request.action && newest.text === request.text && newest.kind === request.kind) {
        newest.repeat += request.repeat;
        newest.more += state.skipped;
      } else if (state.shown.length < TOASTS_PER_SOURCE || request.action || !newest) {
        state.shown.push(makeToast(request, source, state));
        state.shown[state.shown.length - 1].more += state.skipped;
      } else {
        // Full: the newest toast shows the latest message; the one it showed is in Messages.
        newest.more += 1 + state.skipped;
        Object.assign(newest, { text: request.text, kind: request.kind, repeat: request.repeat, duration: request.duration });
      }
      state.skipped = 0;
    }
    for (const toast of state.shown) renderToast(toast, source, state);
    if (!state.shown.length && !state.waiting.length) sources.delete(source);
  }

  function makeToast({ text, kind, repeat, duration, action }, source, state) {
    const element = document.createElement("div");
    const words = document.createElement("span");
    element.append(words);
    const toast = { element, words, text, kind, repeat, duration, action, more: 0, timer: null, drawn: "" };
    if (action) {
      const act = document.createElement("button");
      act.type = "button";
      act.className = "toast-action";
      act.textContent = action.label;
      act.addEventListener("click", () => {
        removeToast(toast, source, state);
        action.run();
      });
      element.append(act);
    }
    const close = document.createElement("button");
    close.type = "button";
    close.className = "toast-close";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "×";
    close.addEventListener("click", () => removeToast(toast, source, state));
    element.append(close);
    toasts.append(element);
    return toast;
  }

  // Draws a toast whose text, kind or counts changed, and (re)starts its timer.
  function renderToast(toast, source, state) {
    const drawn = `${toast.kind}\n${toast.text}\n${toast.repeat}\n${toast.more}`;
    if (drawn === toast.drawn) return;
    toast.drawn = drawn;
    toast.element.className = `toast toast-${toast.kind}`;
    toast.element.setAttribute("role", toast.kind === "error" ? "alert" : "status");
    const counts = [toast.repeat > 1 ? `×${toast.repeat}` : "", toast.more ? `(${toast.more} more in Messages)` : ""];
    toast.words.textContent = [toast.text, ...counts].filter(Boolean).join(" ");
    clearTimeout(toast.timer);
    if (toast.kind !== "error") {
      const seconds = Math.min(LONGEST_TOAST_S, Math.max(1, Number(toast.duration) || 6));
      toast.timer = setTimeout(() => removeToast(toast, source, state), seconds * 1000);
    }
  }

  function removeToast(toast, source, state) {
    clearTimeout(toast.timer);
    toast.element.remove();
    state.shown = state.shown.filter((shown) => shown !== toast);
    if (!state.shown.length && !state.waiting.length && sources.get(source) === state) sources.delete(source);
  }

  const status = {
    /** Shows text in the status line; fraction in [0, 1] fills the bar, null hides it. */
    show(text, fraction = null) {
      line.textContent = text;
      progress.hidden = fraction === null;
      if (fraction !== null) {
        const percent = Math.round(Math.min(1, Math.max(0, fraction)) * 100);
        bar.style.width = `${percent}%`;
        progress.setAttribute("aria-valuenow", String(percent));
      }
    },

    /** Adds a line to the message log (kind "info" or "error"), drawn with the next frame. */
    log(text, kind = "info") {
      addLog(String(text), kind);
    },

    /**
     * A message that stays a few seconds (duration s, at most a minute); kind "error" stays
     * until dismissed. action: {label, run} adds a button (e.g. Undo). source: who sends it
     * (a plugin; the app when absent), for the per-source limit and forget(). Every toast
     * is logged.
     */
    toast(text, kind = "info", duration = 6, action = null, source = null) {
      text = String(text);
      status.log(text, kind);
      addToast({ text, kind, duration, action, repeat: 1 }, source ?? APP);
    },

    /** Removes every toast of source, shown or waiting (a plugin was ended). */
    forget(source) {
      const state = sources.get(source);
      if (!state) return;
      sources.delete(source);
      state.waiting = [];
      for (const toast of state.shown) {
        clearTimeout(toast.timer);
        toast.element.remove();
      }
      state.shown = [];
    },
  };
  return status;
}

/**
 * The status bar's offline part: how much of the build is saved for offline use, then
 * "Ready offline" (or that it is not). Its own element, so Python's status line and the
 * messages never overwrite it.
 */
export function createOfflineStatus(document) {
  const element = document.getElementById("offline-status");
  const megabytes = (bytes) => Math.round(bytes / 1e6);
  const show = (text, state) => {
    element.textContent = text;
    element.dataset.state = state;
    element.hidden = false;
  };
  return {
    /** Bytes of the build (or of an update) stored so far; "Ready offline" comes from ready(). */
    progress({ done, total, update, complete }) {
      if (update && complete) return show("Ready offline; the update is saved too", "ready");
      const what = update ? "Saving the update for offline use" : "Saving for offline use";
      show(`${what}: ${megabytes(done)} of ${megabytes(total)} MB`, "saving");
    },
    ready: () => show("Ready offline", "ready"),
    failed: () => show("Not available offline", "failed"),
  };
}
