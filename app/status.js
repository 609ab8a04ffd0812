// The status bar (one line and a progress bar) and the toasts above it.

export function createStatus(document) {
  const line = document.getElementById("status-line");
  const progress = document.getElementById("progress");
  const bar = progress.querySelector(".progress-bar");
  const toasts = document.getElementById("toasts");

  return {
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

    /** A message that stays a few seconds (or duration s); kind "error" stays until dismissed. */
    toast(text, kind = "info", duration = 6) {
      const toast = document.createElement("div");
      toast.className = `toast toast-${kind}`;
      toast.setAttribute("role", kind === "error" ? "alert" : "status");
      toast.textContent = text;
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
}
