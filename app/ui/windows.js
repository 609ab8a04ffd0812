// Plugin windows on the page: a card with a title bar around each window plugin's frame.
// (The workbench issue turns this into a full window manager.)

export function createWindowArea(container) {
  return {
    /** A window with a title; returns {body, element, close()}. */
    open({ title, onClose }) {
      const element = document.createElement("section");
      element.className = "card plugin-window";
      const bar = document.createElement("header");
      bar.className = "window-bar";
      const heading = document.createElement("h2");
      heading.textContent = title;
      const close = document.createElement("button");
      close.type = "button";
      close.className = "window-close";
      close.setAttribute("aria-label", `Close ${title}`);
      close.textContent = "×";
      const body = document.createElement("div");
      body.className = "window-body";
      bar.append(heading, close);
      element.append(bar, body);
      container.hidden = false;
      container.append(element);
      const handle = {
        body,
        element,
        close() {
          element.remove();
          onClose?.();
        },
      };
      close.addEventListener("click", () => handle.close());
      return handle;
    },
  };
}
