// The workspace menu's "Package index…": the Pyodide package index Python workers fetch
// packages from (python/package-index.js), shown and set by the person, app-wide.
//
//   await packageIndexDialog({ build, dialogs, status });
//
// An empty field sets the build's index back. A URL that is not http(s) is refused and the
// dialog opens again with what was typed and why.
import { buildIndex, packageIndex, setPackageIndex } from "../python/package-index.js";

export async function packageIndexDialog({ build, dialogs, status }) {
  let typed = packageIndex(build);
  let problem = "";
  for (;;) {
    const message = `${problem ? `${problem}. ` : ""}Python fetches the packages this PyJoy site does not hold from this index. `
      + `The build's is ${buildIndex(build)}. A mirror must serve the same wheels (they are checked against the build's lock). `
      + "Python started from now on uses it (the console: after a reload); leave it empty for the build's.";
    const answer = await dialogs.prompt("Package index", message, typed);
    if (answer === null || answer === undefined) return null;
    try {
      const index = setPackageIndex(build, answer);
      status.show(index === buildIndex(build) ? `Package index: the build's (${index})` : `Package index: ${index}`);
      return index;
    } catch (error) {
      typed = answer;
      problem = error.message;
    }
  }
}
