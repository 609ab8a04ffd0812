// Files in and out of the page for plugins: showFileDialog and exportFile. Both need the
// person's gesture in a normal page: call them inside a click handler (a plugin's call
// goes through dialogs.act, whose button click is that gesture: host-api.js).

/** Asks the person for files; resolves to File objects (one, or a list with multiple). */
export function chooseFiles({ multiple = false, accept = "" } = {}) {
  return new Promise((resolve) => {
    const input = document.createElement("input");
    input.type = "file";
    input.multiple = Boolean(multiple);
    if (accept) input.accept = accept;
    input.addEventListener("change", () => resolve(multiple ? [...input.files] : input.files[0] ?? null));
    input.addEventListener("cancel", () => resolve(multiple ? [] : null));
    input.click();
  });
}

/** Saves a Blob, File, ArrayBuffer or string as a download named filename. */
export function download(content, filename) {
  const blob = content instanceof Blob ? content : new Blob([content]);
  const url = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = url;
  link.download = filename ?? content?.name ?? "download";
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
