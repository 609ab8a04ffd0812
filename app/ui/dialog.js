// Modal dialogs for plugins' alert, confirm and prompt, on a <dialog> element: they never
// block the page's thread as window.alert does, and they say which plugin asks.
//
//   await dialogs.confirm(title, message, { ok: "Install", cautious: true }); // true or false
//   await dialogs.act(title, message, "Save", () => download(...));  // {value} or null
//   await dialogs.alert("Stats", "Done", { owner: plugin });           // one of a plugin's dialogs
//   await dialogs.form("Sigma", "Pick one", fieldsBox, () => values);  // read() on OK, undefined on Cancel
//   dialogs.forget(plugin);                                            // its dialogs go (it was ended)
//
// act() runs its action inside the click on its button, so that what needs a user gesture
// (a download, a file chooser, a new tab) gets the person's own.
//
// An owner (a plugin) has one dialog open at a time; up to DIALOGS_WAITING more wait for
// it, in order, and any beyond those are refused with an error: a plugin that calls alert
// in a loop cannot stack up modal dialogs the person must click through.

export const DIALOGS_WAITING = 3;

const owners = new Map(); // owner -> {open: {close()} | null, waiting: [{options, resolve, reject}]}

function open({ title, message, input = null, content = null, buttons, cautious = false }, opened = () => {}) {
  const dialog = document.createElement("dialog");
  dialog.className = "dialog";
  const heading = document.createElement("h2");
  heading.textContent = title;
  const text = document.createElement("p");
  text.textContent = message;
  dialog.append(heading, text);
  if (content) dialog.append(content); // a form's fields (forms.js)
  let field = null;
  if (input !== null) {
    field = document.createElement("input");
    field.type = "text";
    field.value = input;
    dialog.append(field);
  }
  const row = document.createElement("div");
  row.className = "dialog-buttons";
  dialog.append(row);
  document.body.append(dialog);
  const cancelValue = buttons.find((b) => !b.primary)?.value ?? undefined;
  return new Promise((resolve, reject) => {
    for (const { label, value, primary } of buttons) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = label;
      if (!primary) button.className = "secondary";
      button.addEventListener("click", () => {
        // Settled before the close event (a later task) could settle it as cancelled.
        try {
          resolve(typeof value === "function" ? value(field) : value);
        } catch (error) {
          reject(error);
        }
        dialog.close();
      });
      row.append(button);
    }
    dialog.addEventListener("cancel", () => resolve(cancelValue));
    dialog.addEventListener("close", () => {
      resolve(cancelValue); // closed some other way (forget): as if cancelled
      dialog.remove();
    });
    dialog.showModal();
    // A question a plugin asks starts on Cancel: an Enter typed for something else says no.
    (field ?? row.querySelector(cautious ? "button" : "button:last-child")).focus();
    opened({ close: () => dialog.close() });
  });
}

// Shows the dialog now, or once the owner's open one is answered; refuses past the queue.
function ask(options, owner) {
  if (owner === undefined || owner === null) return open(options);
  let queue = owners.get(owner);
  if (!queue) owners.set(owner, (queue = { open: null, waiting: [] }));
  if (queue.open && queue.waiting.length >= DIALOGS_WAITING) {
    return Promise.reject(new Error(
      `${options.title}: too many dialogs: one is open and ${DIALOGS_WAITING} more wait to be answered; this ${options.kind} was refused`,
    ));
  }
  return new Promise((resolve, reject) => {
    queue.waiting.push({ options, resolve, reject });
    if (!queue.open) next(owner, queue);
  });
}

function next(owner, queue) {
  const entry = queue.waiting.shift();
  if (!entry) {
    queue.open = null;
    if (owners.get(owner) === queue) owners.delete(owner);
    return;
  }
  queue.open = { close: () => {} };
  open(entry.options, (handle) => (queue.open = handle)).then(entry.resolve, entry.reject).finally(() => next(owner, queue));
}

export const dialogs = {
  alert: (title, message, { owner } = {}) =>
    ask({ kind: "alert", title, message, buttons: [{ label: "OK", value: undefined, primary: true }] }, owner),
  confirm: (title, message, { ok = "OK", cautious = false, owner } = {}) =>
    ask({ kind: "confirm", title, message, cautious, buttons: [{ label: "Cancel", value: false }, { label: ok, value: true, primary: true }] }, owner),
  act: (title, message, label, action, { owner } = {}) =>
    ask({ kind: "question", title, message, cautious: true, buttons: [{ label: "Cancel", value: null }, { label, value: () => ({ value: action() }), primary: true }] }, owner),
  prompt: (title, message, initial = "", { owner } = {}) =>
    ask({
      kind: "prompt", title, message, input: String(initial ?? ""),
      buttons: [{ label: "Cancel", value: null }, { label: "OK", value: (field) => field.value, primary: true }],
    }, owner),
  // A form (ImJoy's showDialog({ui})): OK answers read(), Cancel undefined as in ImJoy.
  form: (title, message, content, read, { owner } = {}) =>
    ask({ kind: "form", title, message, content, buttons: [{ label: "Cancel", value: undefined }, { label: "OK", value: () => read(), primary: true }] }, owner),

  /** Closes owner's open dialog (as cancelled) and refuses those waiting: it was ended. */
  forget(owner) {
    const queue = owners.get(owner);
    if (!queue) return;
    owners.delete(owner);
    const waiting = queue.waiting.splice(0);
    for (const entry of waiting) entry.reject(new Error(`${entry.options.title}: the dialog was not shown: its plugin was ended`));
    queue.open?.close();
  },
};
