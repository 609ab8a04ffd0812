// The two DOM helpers the workbench's panels build their elements with.

/** A new element with its class and its text (null: none). */
export function el(tag, className = "", text = null) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== null) element.textContent = text;
  return element;
}

/** A `type="button"` button that calls `onClick`. */
export function button(label, onClick, className = "") {
  const element = el("button", className, label);
  element.type = "button";
  element.addEventListener("click", onClick);
  return element;
}
