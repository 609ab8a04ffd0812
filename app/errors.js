// The errors of the embedding API (window.pyjoy) and of the plugin host, one family with
// stable codes, so that a caller can tell what went wrong without reading the message:
//
//   try { await pyjoy.getPlugin("Stats"); }
//   catch (e) { if (e.code === "plugin-not-found") ...; }   // e.name "PluginError"
//
// PluginError: a plugin could not be found, parsed, loaded or reached, or the person said
//   no (its `code` says which: CODES below); parse errors carry `block` and `line`.
// RemoteError: a plugin's own function threw (app/rpc/codec.js; code "remote-error").
// PythonError: the console's Python raised (pyjoy.runPython, pyjoy.loadPackage).
import { RemoteError } from "./rpc/codec.js";

export { RemoteError };

export const CODES = Object.freeze({
  notFound: "plugin-not-found", // no plugin by that name is installed or loaded
  nameTaken: "plugin-name-taken", // a plugin tried to load one under another plugin's name
  parseError: "plugin-parse-error", // the file is malformed: `block` and `line` say where
  loadFailed: "plugin-load-failed", // fetching, starting or its setup() failed
  crashed: "plugin-crashed", // it crashed (or failed to load) and has not been started again
  consentDenied: "consent-denied", // the person answered no to the plugin's request
  storage: "storage-error", // the workspace could not be saved (StorageError: full or denied)
  remote: "remote-error", // RemoteError
  python: "python-error", // PythonError
});

/** A plugin that could not be found, parsed, loaded or reached: says which, and why. */
export class PluginError extends Error {
  constructor(message, { code = CODES.loadFailed, traceback, block, line } = {}) {
    super(message);
    this.name = "PluginError";
    this.code = code;
    Object.assign(this, { traceback, block, line });
  }
}

/** A Python exception from the console's Python, with its type and traceback. */
export class PythonError extends Error {
  constructor({ type, message, traceback }) {
    super(message);
    this.name = "PythonError";
    this.code = CODES.python;
    this.pythonType = type; // e.g. "ZeroDivisionError"
    this.traceback = traceback; // Python's own traceback text
  }
}

/**
 * Any error as one of the family: a PluginError, RemoteError or PythonError, or any error
 * that has its code already (a StorageError), passes as it is; a malformed file (PluginFormatError) becomes a PluginError "plugin-parse-error"; any
 * other error a PluginError with `code` (default "plugin-load-failed"), its message kept.
 */
export function asPluginError(error, { code = CODES.loadFailed, prefix = "" } = {}) {
  if (error instanceof PluginError || error instanceof RemoteError || error instanceof PythonError) return error;
  if (Object.values(CODES).includes(error?.code)) return error;
  const message = `${prefix}${error?.message ?? error}`;
  if (error?.name === "PluginFormatError") return new PluginError(message, { code: CODES.parseError, block: error.block, line: error.line });
  return new PluginError(message, { code, traceback: error?.traceback });
}
