"""Entry point of the ``fleet`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from fleet import __version__
from fleet.cli import agent, bootstrap, demo, dev, get, hub, promote, tui, units


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fleet",
        description="GitOps fleet manager: a pull agent per cluster reconciles "
        "clusters/<name>/ from Git; a hub aggregates health and promotes revisions "
        "through waves (dev -> staging -> prod).",
    )
    parser.add_argument("--version", action="version", version=f"fleet {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    agent.register(subparsers)
    bootstrap.register(subparsers)
    demo.register(subparsers)
    dev.register(subparsers)
    get.register(subparsers)
    hub.register(subparsers)
    promote.register(subparsers)
    tui.register(subparsers)
    units.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
