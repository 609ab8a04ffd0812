// The window manager: plugin windows in the workbench's window area.
// - Desktop: windows float; drag one by its title bar, resize it from its corner, click it
//   to bring it to the front, maximise it to fill the area.
// - Phone (narrow screens, coarse pointers): the area is a row of full-screen cards, one
//   swipe apart (CSS scroll snapping), so each window gets the whole screen.
// The layout (position, size, maximised) of windows opened with a `key` is reported to
// onLayout, so the workspace can keep it and open them again where they were.
//
//   const area = createWindowArea(element, { onLayout: (windows) => ..., onOpen: (win) => ... });
//   const win = area.open({ title, key, layout, onClose });  // win.body holds the content
//   win.maximize(true); win.focus(); win.close();
//   area.layout();  // [{key, x, y, width, height, maximized}] in stacking order

export function createWindowArea(container, { onLayout = () => {}, onOpen = () => {} } = {}) {
  const windows = new Set();
  let top = 10;
  let cascade = 0;

  const layout = () => [...windows]
    .filter((win) => win.key)
    .sort((a, b) => Number(a.element.style.zIndex) - Number(b.element.style.zIndex))
    .map((win) => ({ key: win.key, ...win.geometry(), maximized: win.maximized }));
  let pending = null;
  const reportLayout = () => {
    clearTimeout(pending);
    pending = setTimeout(() => onLayout(layout()), 300); // one save after a drag, not one per move
  };
  const empty = container.querySelector(".windows-empty");
  const showEmpty = () => {
    if (empty) empty.hidden = windows.size > 0;
  };

  function open({ title, key = null, layout: saved = null, onClose }) {
    const element = document.createElement("section");
    element.className = "plugin-window";
    element.setAttribute("role", "dialog");
    element.setAttribute("aria-label", title);
    const bar = document.createElement("header");
    bar.className = "window-bar";
    const heading = document.createElement("h2");
    heading.textContent = title;
    const buttons = document.createElement("div");
    buttons.className = "window-buttons";
    const maximize = button("window-maximize", `Maximise ${title}`, "□");
    const close = button("window-close", `Close ${title}`, "×");
    buttons.append(maximize, close);
    const body = document.createElement("div");
    body.className = "window-body";
    bar.append(heading, buttons);
    element.append(bar, body);

    const start = saved ?? { x: 16 + (cascade % 6) * 28, y: 16 + (cascade % 6) * 28, width: 520, height: 400 };
    cascade += 1;
    Object.assign(element.style, { left: `${start.x}px`, top: `${start.y}px`, width: `${start.width}px`, height: `${start.height}px` });

    const win = {
      key,
      body,
      element,
      maximized: false,
      geometry: () => ({
        x: parseFloat(element.style.left) || 0, y: parseFloat(element.style.top) || 0,
        width: parseFloat(element.style.width) || element.offsetWidth, height: parseFloat(element.style.height) || element.offsetHeight,
      }),
      focus() {
        element.style.zIndex = String(++top);
        for (const other of windows) other.element.classList.toggle("focused", other === win);
        // On a phone, bring the card into view (it may be a swipe away).
        if (isPhone()) element.scrollIntoView({ behavior: "smooth", inline: "start", block: "nearest" });
      },
      maximize(on = !win.maximized) {
        win.maximized = on;
        element.classList.toggle("maximized", on);
        maximize.setAttribute("aria-pressed", String(on));
        reportLayout();
      },
      close() {
        if (!windows.delete(win)) return;
        element.remove();
        showEmpty();
        reportLayout();
        onClose?.();
      },
    };
    maximize.addEventListener("click", () => win.maximize());
    close.addEventListener("click", () => win.close());
    bar.addEventListener("dblclick", (event) => event.target === bar || event.target === heading ? win.maximize() : null);
    element.addEventListener("pointerdown", () => win.focus(), { capture: true });
    draggable(win, bar, container, reportLayout);
    // The CSS resize handle changes the size; keep it when it settles.
    new ResizeObserver(() => windows.has(win) && !win.maximized && reportLayout()).observe(element);

    windows.add(win);
    container.hidden = false;
    container.append(element);
    if (saved?.maximized) win.maximize(true);
    win.focus();
    showEmpty();
    reportLayout();
    onOpen(win);
    return win;
  }

  return { open, layout, windows: () => [...windows] };
}

function button(className, label, text) {
  const element = document.createElement("button");
  element.type = "button";
  element.className = className;
  element.setAttribute("aria-label", label);
  element.title = label;
  element.textContent = text;
  return element;
}

function isPhone() {
  return matchMedia("(max-width: 720px)").matches;
}

// Drags a window by its bar with pointer events (mouse, pen and touch alike), kept
// within the area. On a phone the cards do not move: swiping scrolls between them.
function draggable(win, handle, container, done) {
  handle.addEventListener("pointerdown", (event) => {
    if (isPhone() || win.maximized || event.button !== 0 || event.target.closest("button")) return;
    event.preventDefault();
    handle.setPointerCapture(event.pointerId);
    const pointer = { x: event.clientX, y: event.clientY };
    const from = win.geometry();
    const move = (moved) => {
      const maxX = Math.max(0, container.clientWidth - 80);
      const maxY = Math.max(0, container.clientHeight - 40);
      win.element.style.left = `${clamp(from.x + moved.clientX - pointer.x, 0, maxX)}px`;
      win.element.style.top = `${clamp(from.y + moved.clientY - pointer.y, 0, maxY)}px`;
    };
    const stop = () => {
      handle.removeEventListener("pointermove", move);
      handle.removeEventListener("pointerup", stop);
      handle.removeEventListener("pointercancel", stop);
      done();
    };
    handle.addEventListener("pointermove", move);
    handle.addEventListener("pointerup", stop);
    handle.addEventListener("pointercancel", stop);
  });
}

function clamp(value, low, high) {
  return Math.min(high, Math.max(low, value));
}
