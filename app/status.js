// The status bar (one line and a progress bar), the toasts above it, and the message log
// that keeps every toast and plugin message (toasts go; the log stays for this visit).
// createOfflineStatus: the status bar's own part that says what is saved for offline use.

export function createStatus(document) {
  const line = document.getElementById("status-line");
  const progress = document.getElementById("progress");
  const bar = progress.querySelector(".progress-bar");
  const toasts = document.getElementById("toasts");
  const log = document.getElementById("message-log");
  const count = document.getElementById("message-count");
  let logged = 0;

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

    /** Adds a line to the message log (kind "info" or "error"). */
    log(text, kind = "info") {
      if (!log) return;
      const item = document.createElement("li");
      item.dataset.kind = kind;
      const time = document.createElement("time");
      time.textContent = new Date().toLocaleTimeString();
      item.append(time, document.createTextNode(text));
      log.append(item);
      while (log.children.length > 500) log.firstElementChild.remove();
      count.textContent = String(++logged);
      item.scrollIntoView?.({ block: "nearest" });
    },

    /**
     * A message that stays a few seconds (or duration s); kind "error" stays until
     * dismissed. action: {label, run} adds a button (e.g. Undo). Every toast is logged.
     */
    toast(text, kind = "info", duration = 6, action = null) {
      status.log(text, kind);
      const toast = document.createElement("div");
      toast.className = `toast toast-${kind}`;
      toast.setAttribute("role", kind === "error" ? "alert" : "status");
      const words = document.createElement("span");
      words.textContent = text;
      toast.append(words);
      if (action) {
        const act = document.createElement("button");
        act.type = "button";
        act.className = "toast-action";
        act.textContent = action.label;
        act.addEventListener("click", () => {
          toast.remove();
          action.run();
        });
        toast.append(act);
      }
      const close = document.createElement("button");
      close.type = "button";
      close.className = "toast-close";
      close.setAttribute("aria-label", "Dismiss");
      close.textContent = "×";
      close.addEventListener("click", () => toast.remove());
      toast.append(close);
      toasts.append(toast);
      if (kind !== "error") setTimeout(() => toast.remove(), (Number(duration) || 6) * 1000);
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
