// A small Python console: type code, run it in the worker, see the value or the error.

export function mountConsole(document, runtime) {
  const form = document.getElementById("console-form");
  const input = document.getElementById("console-input");
  const output = document.getElementById("console-output");
  const button = document.getElementById("console-run");

  function append(text, kind) {
    const entry = document.createElement("pre");
    entry.className = `console-${kind}`;
    entry.textContent = text;
    output.append(entry);
    output.scrollTop = output.scrollHeight;
  }

  runtime.subscribe((message) => {
    if (message.type === "stdout" || message.type === "stderr") append(message.text, message.type);
  });

  async function run() {
    const code = input.value;
    if (!code.trim()) return;
    append(code, "input");
    button.disabled = true;
    try {
      const value = await runtime.runPython(code);
      if (value !== undefined) append(typeof value === "string" ? value : JSON.stringify(value), "value");
    } catch (error) {
      append(error.traceback || error.message, "error");
    } finally {
      button.disabled = false;
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    run();
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      run();
    }
  });
}
