"""What decoding's bounds cost: the RPC codecs' decode, this tree's against a git revision's.

Run from the repository root (Node on PATH):

    python bench/rpc_codec.py [--rev 2fc3de0] [--json PATH]

Both halves' `decode` (pyjoy/rpc/codec.py under CPython, app/rpc/codec.js under Node) are
timed on the values of a hot path, each as a session meets them: a call's arguments (a
string, numbers, a small options object), an interface of 20 methods (a plugin's API), a
list of 10,000 numbers, and 1,000 small objects. The revision's codec files are taken with
`git show` into a temporary folder and timed in the same process, alternating rounds, so
that load on the machine falls on both alike. Prints a table (median microseconds per
decode, and new/old) and writes every number, with the machine, to
bench/results/rpc_codec.json. About 20 seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def values() -> dict[str, Any]:
    method = lambda i: {"_rtype": "method", "_rtarget": f"f{i}", "_rname": f"m{i}"}  # noqa: E731
    return {
        "call args": [["image.png", 3, 0.5, {"threshold": 0.2, "mode": "fast", "labels": ["a", "b"]}]],
        "interface of 20 methods": {**{f"m{i}": method(i) for i in range(20)}, "_rintf": True, "name": "plugin"},
        "10,000 numbers": [list(range(10_000))],
        "1,000 small objects": [[{"x": i, "y": i * 0.5, "label": "cell"} for i in range(1000)]],
    }


def load_python_codec(folder: Path) -> types.ModuleType:
    """The package pyjoy.rpc from `folder`, under a name of its own."""
    import importlib.util

    name = f"rpc_{abs(hash(str(folder)))}"
    spec = importlib.util.spec_from_file_location(name, folder / "__init__.py", submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return sys.modules[f"{name}.codec"]


def time_python(codecs: dict[str, Any], rounds: int) -> dict[str, dict[str, list[float]]]:
    samples: dict[str, dict[str, list[float]]] = {label: {} for label in codecs}
    for name, value in values().items():
        repeat = max(1, 20_000 // (len(json.dumps(value)) // 20 + 1))
        for _ in range(rounds):
            for label, codec in codecs.items():
                proxy = lambda target, name: (lambda: None)  # noqa: E731
                start = time.perf_counter()
                for _ in range(repeat):
                    codec.Decoder(proxy).decode(value)
                samples[label].setdefault(name, []).append((time.perf_counter() - start) / repeat * 1e6)
    return samples


NODE = """
const [rounds, ...paths] = process.argv.slice(2);
const codecs = {};
for (const path of paths) codecs[path] = await import(path);
const method = (i) => ({ _rtype: "method", _rtarget: `f${i}`, _rname: `m${i}` });
const values = {
  "call args": [["image.png", 3, 0.5, { threshold: 0.2, mode: "fast", labels: ["a", "b"] }]],
  "interface of 20 methods": { ...Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`m${i}`, method(i)])), _rintf: true, name: "plugin" },
  "10,000 numbers": [Array.from({ length: 10000 }, (_, i) => i)],
  "1,000 small objects": [Array.from({ length: 1000 }, (_, i) => ({ x: i, y: i * 0.5, label: "cell" }))],
};
const context = { codecs: new Map(), proxy: () => () => {} };
const samples = Object.fromEntries(paths.map((path) => [path, {}]));
for (const [name, value] of Object.entries(values)) {
  const repeat = Math.max(1, Math.floor(200000 / (JSON.stringify(value).length / 20 + 1)));
  for (let w = 0; w < repeat; w++) for (const path of paths) codecs[path].decode(value, context); // warm-up
  for (let r = 0; r < Number(rounds); r++) {
    for (const path of paths) {
      const start = performance.now();
      for (let i = 0; i < repeat; i++) codecs[path].decode(value, context);
      (samples[path][name] ??= []).push(((performance.now() - start) / repeat) * 1000);
    }
  }
}
process.stdout.write(JSON.stringify(samples));
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="2fc3de0", help="the revision to compare with (default: before the bounds)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "rpc_codec.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp)
        for part in ("pyjoy/rpc", "app/rpc"):
            (old / part).mkdir(parents=True)
            names = subprocess.run(["git", "ls-tree", "--name-only", args.rev, part + "/"], cwd=ROOT, check=True,
                                   capture_output=True, text=True).stdout.split()
            for path in names:
                if path.endswith((".py", ".js")):
                    (old / path).write_bytes(subprocess.run(["git", "show", f"{args.rev}:{path}"], cwd=ROOT,
                                                            check=True, capture_output=True).stdout)
        python = time_python({"old": load_python_codec(old / "pyjoy/rpc"),
                              "new": load_python_codec(ROOT / "pyjoy/rpc")}, args.rounds)
        script = old / "bench.mjs"
        script.write_text(NODE)
        paths = {"old": (old / "app/rpc/codec.js").as_uri(), "new": (ROOT / "app/rpc/codec.js").as_uri()}
        done = subprocess.run(["node", "--no-warnings", str(script), str(args.rounds), *paths.values()],
                              check=True, capture_output=True, text=True)
        node = json.loads(done.stdout)
        js = {label: node[path] for label, path in paths.items()}

    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rev": args.rev,
                               "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                           "node": subprocess.run(["node", "--version"], capture_output=True,
                                                                  text=True).stdout.strip(),
                                           "load": os.getloadavg()},
                               "unit": "microseconds per decode", "python": python, "js": js}
    print(f"decode, median us (old = {args.rev}, new = this tree)\n")
    print("| value | Python old | Python new | new/old | JS old | JS new | new/old |")
    print("|---|---|---|---|---|---|---|")
    for name in values():
        row = [name]
        for half in (python, js):
            old_us, new_us = statistics.median(half["old"][name]), statistics.median(half["new"][name])
            row += [f"{old_us:.2f}", f"{new_us:.2f}", f"{new_us / old_us:.2f}"]
        print("| " + " | ".join(row) + " |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nwritten to {args.json.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
