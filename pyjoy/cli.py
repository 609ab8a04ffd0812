"""The `pyjoy` command: `pyjoy build` makes dist/, `pyjoy serve` serves it."""

from __future__ import annotations

import argparse
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

    args = parser.parse_args(argv)
    if args.command == "build":
        return build.run(args)
    return server.run(args.dist, args.host, args.port)


if __name__ == "__main__":
    sys.exit(main())
