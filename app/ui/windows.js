// The window manager: plugin windows in the workbench's window area.
// - Desktop: windows float; drag one by its title bar, resize it by its corner grip, click it
//   to bring it to the front, maximise it to fill the area.
// - Phone (narrow screens, coarse pointers): the area is a row of full-screen cards, one
//   swipe apart (CSS scroll snapping), so each window gets the whole screen.
// The layout (position, size, maximised) of windows opened with a `key` is reported to
// onLayout, so the workspace can keep it and open them again where they were.
//
//   const area = createWindowArea(element, { onLayout: (windows) => ..., onOpen: (win) => ... });
//   const win = area.open({ title, key, layout, onClose });  // win.body holds the content
//   win.maximize(true); win.focus();
//   await win.close();  // hidden at once; removed once onClose's promise settles
//
// Closing hides a window at once but keeps its element (and the plugin frame inside it)
// until the promise onClose returns settles: a plugin's close handlers run in that frame,
// and a frame taken out of the page is ended at once. The host bounds that wait
// (plugins/host.js, CLOSE_GRACE_MS), as ImJoy waits for its windows' close handlers
// (imjoy-core windowManager.js close(): emit "close", remove the window 800 ms later).
//   area.layout();  // [{key, x, y, width, height, maximized}] in stacking order

const MIN_WIDTH = 240; // as in style.css: a title bar and its buttons still fit
const MIN_HEIGHT = 160;

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
    const grip = document.createElement("div");
    grip.className = "window-resize";
    grip.setAttribute("aria-hidden", "true");
    element.append(bar, body, grip);

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
      closed: null, // settles once the window's element is gone
      close() {
        if (!windows.delete(win)) return win.closed ?? Promise.resolve();
        element.style.display = "none"; // not element.hidden: the class's display wins over it
        showEmpty();
        reportLayout();
        let ending;
        try {
          ending = onClose?.();
        } catch (error) {
          ending = Promise.reject(error);
        }
        win.closed = Promise.resolve(ending)
          .catch((error) => console.error("closing a window failed:", error))
          .finally(() => element.remove());
        return win.closed;
      },
    };
    maximize.addEventListener("click", () => win.maximize());
    close.addEventListener("click", () => win.close());
    bar.addEventListener("dblclick", (event) => event.target === bar || event.target === heading ? win.maximize() : null);
    element.addEventListener("pointerdown", () => win.focus(), { capture: true });
    draggable(win, bar, container, reportLayout);
    resizable(win, grip, container, reportLayout);

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

// Follows a pointer pressed on `handle` (mouse, pen and touch alike) until it is let go:
// move(dx, dy, from) with the distance moved and the window's geometry at the start.
// On a phone windows are cards that neither move nor resize: swiping scrolls between them.
function onPointerDrag(win, handle, { ignore = () => false, move, done }) {
  handle.addEventListener("pointerdown", (event) => {
    if (isPhone() || win.maximized || event.button !== 0 || ignore(event)) return;
    event.preventDefault();
    handle.setPointerCapture(event.pointerId);
    const pointer = { x: event.clientX, y: event.clientY };
    const from = win.geometry();
    const follow = (moved) => move(moved.clientX - pointer.x, moved.clientY - pointer.y, from);
    const stop = () => {
      handle.removeEventListener("pointermove", follow);
      handle.removeEventListener("pointerup", stop);
      handle.removeEventListener("pointercancel", stop);
      done();
    };
    handle.addEventListener("pointermove", follow);
    handle.addEventListener("pointerup", stop);
    handle.addEventListener("pointercancel", stop);
  });
}

// Drags a window by its bar, kept whole inside the area (which clips), so that its
// corner grip stays in reach.
function draggable(win, bar, container, done) {
  onPointerDrag(win, bar, {
    ignore: (event) => event.target.closest("button"),
    move: (dx, dy, from) => {
      win.element.style.left = `${clamp(from.x + dx, 0, Math.max(0, container.clientWidth - from.width))}px`;
      win.element.style.top = `${clamp(from.y + dy, 0, Math.max(0, container.clientHeight - from.height))}px`;
    },
    done,
  });
}

// Resizes a window from its corner grip. A grip of our own, not CSS `resize`: the
// browser's handle sits over the plugin's frame, which takes the pointer, and it has no
// touch support.
function resizable(win, grip, container, done) {
  onPointerDrag(win, grip, {
    move: (dx, dy, from) => {
      win.element.style.width = `${clamp(from.width + dx, MIN_WIDTH, container.clientWidth - from.x)}px`;
      win.element.style.height = `${clamp(from.height + dy, MIN_HEIGHT, container.clientHeight - from.y)}px`;
    },
    done,
  });
}

function clamp(value, low, high) {
  return Math.min(high, Math.max(low, value));
}
