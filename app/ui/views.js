// On a phone the workbench shows one view at a time (plugins, windows, the Python console),
// chosen from the tab bar. Wired with the shell, before the workbench loads, so the tabs
// answer at once. On wider screens every view shows and the tab bar is hidden (style.css).

export function mountViews(document) {
  const shell = document.getElementById("workbench");
  const tabs = [...document.querySelectorAll(".tabbar button")];
  const show = (view) => {
    shell.dataset.view = view;
    for (const tab of tabs) tab.setAttribute("aria-pressed", String(tab.dataset.view === view));
  };
  for (const tab of tabs) tab.addEventListener("click", () => show(tab.dataset.view));
  return show;
}
