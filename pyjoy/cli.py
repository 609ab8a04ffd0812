"""The `pyjoy` command: `pyjoy build` makes dist/, `pyjoy serve` serves it, `pyjoy engine` runs
native-python plugins for the app (pyjoy/engine/ENGINE.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pyjoy import build, server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pyjoy", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    build.add_arguments(commands.add_parser("build", help="build the static site into dist/"))

    serve = commands.add_parser("serve", help="serve the built site")
    serve.add_argument("--dist", type=Path, default=Path("dist"), help="the built site (default: dist)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")

    engine = commands.add_parser("engine", help="run native-python plugins for the app, over a WebSocket")
    engine.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1; another "
                                                            "prints a warning)")
    engine.add_argument("--port", type=int, default=9527, help="port to listen on (default: 9527)")
    engine.add_argument("--workdir", type=Path, default=Path("~/pyjoy-engine"),
                        help="where plugins' environments and files go (default: ~/pyjoy-engine)")
    engine.add_argument("--app", default="http://127.0.0.1:8000/",
                        help="the app's URL: its origin may connect, and the printed link opens it "
                             "(default: http://127.0.0.1:8000/, what pyjoy serve serves)")
    engine.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                        help="another origin whose pages may connect (repeatable)")
    engine.add_argument("--grace", type=float, default=30.0, metavar="SECONDS",
                        help="how long a page whose connection dropped may resume it, its plugins kept "
                             "(default: 30; 0: they end at once)")
    engine.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                        help="run each plugin as a Ray actor: on the cluster at ADDRESS (auto, ray://host:port), "
                             "or without one on a local Ray started here (needs the cluster extra)")
    engine.add_argument("--ray-init", type=json.loads, default=None, metavar="JSON",
                        help='keyword arguments for ray.init, e.g. \'{"num_cpus": 2, "object_store_memory": 500000000}\'')

    args = parser.parse_args(argv)
    if args.command == "build":
        return build.run(args)
    if args.command == "engine":
        from pyjoy.engine import server as engine_server

        return engine_server.run(args.host, args.port, args.workdir, args.app, args.allow_origin, args.grace,
                                 args.ray, args.ray_init)
    return server.run(args.dist, args.host, args.port)


if __name__ == "__main__":
    sys.exit(main())
