"""``fleet tui``: the whole fleet on one screen (Textual).

Live from the hub (``--hub URL --token-file F``: a read-only token can look, an admin
token can also reconcile and act on promotion waves), or read-only from the status
branch of the fleet repository (``--repo URL``, polled), as ``fleet get clusters``.
"""

from __future__ import annotations

import argparse
import os
import ssl
import sys
from pathlib import Path

from fleet.cli.get import HUB_TOKEN_ENV, HUB_TOKEN_FILE_ENV, HUB_URL_ENV

DEFAULT_POLL_SECONDS = 30.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tui = subparsers.add_parser(
        "tui",
        help="terminal UI: fleet overview, promotion pipeline, cluster detail, events",
        description="The whole fleet on one screen, updated live from the hub's stream; or, "
        "with --repo, read-only from the status branch of the fleet repository.",
    )
    source = tui.add_mutually_exclusive_group()
    source.add_argument("--hub", help=f"hub URL (default: ${HUB_URL_ENV})")
    source.add_argument("--repo", help="fleet repository URL: read its status branch instead")
    tui.add_argument(
        "--token-file",
        type=Path,
        help=f"file holding a hub user token (default: ${HUB_TOKEN_FILE_ENV} or ${HUB_TOKEN_ENV})",
    )
    tui.add_argument("--ca-file", type=Path, help="CA bundle to verify the hub's TLS")
    tui.add_argument(
        "--branch", default="fleet-status", help="status branch with --repo (default: fleet-status)"
    )
    tui.add_argument(
        "--poll",
        type=float,
        default=DEFAULT_POLL_SECONDS,
        help=f"seconds between reads of the status branch with --repo (default: "
        f"{DEFAULT_POLL_SECONDS:.0f})",
    )
    tui.set_defaults(func=_run)


def _token(path: Path | None) -> str | None:
    path = path or (
        Path(os.environ[HUB_TOKEN_FILE_ENV]) if os.environ.get(HUB_TOKEN_FILE_ENV) else None
    )
    if path is not None:
        return path.read_text().strip()
    return os.environ.get(HUB_TOKEN_ENV)


def _run(args: argparse.Namespace) -> int:
    from hub.tui.app import FleetApp
    from hub.tui.client import HubClient
    from hub.tui.feed import FleetSource, HubSource, StatusBranchSource

    source: FleetSource
    if args.repo:
        source = StatusBranchSource.for_repo(args.repo, args.branch, interval=args.poll)
    else:
        url = args.hub or os.environ.get(HUB_URL_ENV)
        if not url:
            print(f"fleet tui: give --hub URL (or ${HUB_URL_ENV}) or --repo URL", file=sys.stderr)
            return 1
        try:
            token = _token(args.token_file)
        except OSError as error:
            print(f"fleet tui: cannot read the token: {error}", file=sys.stderr)
            return 1
        if not token:
            print(
                f"fleet tui: a hub token is needed: --token-file or ${HUB_TOKEN_ENV}",
                file=sys.stderr,
            )
            return 1
        verify: bool | ssl.SSLContext = (
            ssl.create_default_context(cafile=str(args.ca_file)) if args.ca_file else True
        )
        source = HubSource(HubClient(url, token, verify=verify))
    FleetApp(source).run()
    return 0
