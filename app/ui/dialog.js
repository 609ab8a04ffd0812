// Modal dialogs for plugins' alert, confirm and prompt, on a <dialog> element: they never
// block the page's thread as window.alert does, and they say which plugin asks.

function open({ title, message, input = null, buttons }) {
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
  return new Promise((resolve) => {
    for (const { label, value, primary } of buttons) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = label;
      if (!primary) button.className = "secondary";
      button.addEventListener("click", () => {
        dialog.close();
        resolve(typeof value === "function" ? value(field) : value);
      });
      row.append(button);
    }
    dialog.addEventListener("cancel", () => resolve(buttons.find((b) => !b.primary)?.value ?? undefined));
    dialog.addEventListener("close", () => dialog.remove());
    dialog.showModal();
    (field ?? row.querySelector("button:last-child")).focus();
  });
}

export const dialogs = {
  alert: (title, message) => open({ title, message, buttons: [{ label: "OK", value: undefined, primary: true }] }),
  confirm: (title, message) =>
    open({ title, message, buttons: [{ label: "Cancel", value: false }, { label: "OK", value: true, primary: true }] }),
  prompt: (title, message, initial = "") =>
    open({
      title, message, input: String(initial ?? ""),
      buttons: [{ label: "Cancel", value: null }, { label: "OK", value: (field) => field.value, primary: true }],
    }),
};
