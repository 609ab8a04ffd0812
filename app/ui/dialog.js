// Modal dialogs for plugins' alert, confirm and prompt, on a <dialog> element: they never
// block the page's thread as window.alert does, and they say which plugin asks.
//
//   await dialogs.confirm(title, message, { ok: "Install", cautious: true }); // true or false
//   await dialogs.act(title, message, "Save", () => download(...)); // {value} or null
//
// act() runs its action inside the click on its button, so that what needs a user gesture
// (a download, a file chooser, a new tab) gets the person's own.

function open({ title, message, input = null, buttons, cautious = false }) {
  const dialog = document.createElement("dialog");
  dialog.className = "dialog";
  const heading = document.createElement("h2");
  heading.textContent = title;
  const text = document.createElement("p");
  text.textContent = message;
  dialog.append(heading, text);
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
  return new Promise((resolve, reject) => {
    for (const { label, value, primary } of buttons) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = label;
      if (!primary) button.className = "secondary";
      button.addEventListener("click", () => {
        dialog.close();
        try {
          resolve(typeof value === "function" ? value(field) : value);
        } catch (error) {
          reject(error);
        }
      });
      row.append(button);
    }
    dialog.addEventListener("cancel", () => resolve(buttons.find((b) => !b.primary)?.value ?? undefined));
    dialog.addEventListener("close", () => dialog.remove());
    dialog.showModal();
    // A question a plugin asks starts on Cancel: an Enter typed for something else says no.
    (field ?? row.querySelector(cautious ? "button" : "button:last-child")).focus();
  });
}

export const dialogs = {
  alert: (title, message) => open({ title, message, buttons: [{ label: "OK", value: undefined, primary: true }] }),
  confirm: (title, message, { ok = "OK", cautious = false } = {}) =>
    open({ title, message, cautious, buttons: [{ label: "Cancel", value: false }, { label: ok, value: true, primary: true }] }),
  act: (title, message, label, action) =>
    open({ title, message, cautious: true, buttons: [{ label: "Cancel", value: null }, { label, value: () => ({ value: action() }), primary: true }] }),
  prompt: (title, message, initial = "") =>
    open({
      title, message, input: String(initial ?? ""),
      buttons: [{ label: "Cancel", value: null }, { label: "OK", value: (field) => field.value, primary: true }],
    }),
};
