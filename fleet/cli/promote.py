"""``fleet promote``: where each promotion wave stands, and the hub's wave actions.

``status`` lists every wave with its revision, the candidate that would enter it next, the
gate's state and why it waits; ``approve``, ``rollback``, ``pause`` and ``resume`` ask the
hub (an admin token) and are recorded there and on the records branch under the token's
name. All of them talk to the hub: ``--hub URL --token-file F`` (or ``$FLEET_HUB_URL``,
``$FLEET_HUB_TOKEN_FILE``, ``$FLEET_HUB_TOKEN``).
"""

from __future__ import annotations

import argparse
import os
import ssl
import sys
from pathlib import Path
from typing import Any

from fleet import untrusted
from fleet.cli import output
from fleet.cli.get import HUB_TOKEN_ENV, HUB_TOKEN_FILE_ENV, HUB_URL_ENV, CommandError

STATUS_COLUMNS = ["WAVE", "REVISION", "CANDIDATE", "STATE", "APPROVAL", "CLUSTERS", "WHY"]
CHECK_COLUMNS = ["WAVE", "CHECK", "KIND", "HOLDS", "SINCE", "LAST RESULT"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    promote = subparsers.add_parser(
        "promote",
        help="promotion waves: status, approve, rollback, pause, resume",
        description="Promotion waves (fleet.yaml) as the hub's promoter runs them.",
    )
    sub = promote.add_subparsers(dest="promote_command", required=True, metavar="COMMAND")

    status = sub.add_parser(
        "status",
        help="every wave: revision, candidate, gate state and why it waits",
        description="List the waves, dependencies first.",
    )
    _hub_flags(status)
    output.add_output_flag(status)
    status.set_defaults(func=_status)

    approve = sub.add_parser(
        "approve",
        help="approve a revision (default: the candidate) for a wave",
        description="Approve a revision for a wave with approval: required. Approving a "
        "revision that failed in the wave also lets the gate promote it again.",
    )
    approve.add_argument("wave", metavar="WAVE")
    approve.add_argument("--revision", help="commit SHA (abbreviated is fine)")
    _hub_flags(approve)
    approve.set_defaults(func=_action, action="approve")

    rollback = sub.add_parser(
        "rollback",
        help="move a wave back (default: to its last good revision)",
        description="Point the wave's ref(s) at an earlier revision at once; the agents are "
        "asked to fetch it. The revision left is not promoted again without a new commit "
        "or an approval of it.",
    )
    rollback.add_argument("wave", metavar="WAVE")
    rollback.add_argument("--to", help="commit SHA (default: the wave's last good revision)")
    _hub_flags(rollback)
    rollback.set_defaults(func=_action, action="rollback")

    for name, text in (
        ("pause", "stop promotions into a wave"),
        ("resume", "let promotions into a paused wave again"),
    ):
        parser = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        parser.add_argument("wave", metavar="WAVE")
        _hub_flags(parser)
        parser.set_defaults(func=_action, action=name)


def _hub_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hub", help=f"hub URL (default: ${HUB_URL_ENV})")
    parser.add_argument(
        "--token-file",
        type=Path,
        help=f"file holding a hub user token (default: ${HUB_TOKEN_FILE_ENV} or ${HUB_TOKEN_ENV})",
    )
    parser.add_argument("--ca-file", type=Path, help="CA bundle to verify the hub's TLS")


def _call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    import httpx

    url = args.hub or os.environ.get(HUB_URL_ENV)
    if not url:
        raise CommandError(f"give --hub URL (or ${HUB_URL_ENV})")
    token_file = args.token_file or (
        Path(os.environ[HUB_TOKEN_FILE_ENV]) if os.environ.get(HUB_TOKEN_FILE_ENV) else None
    )
    token = token_file.read_text().strip() if token_file else os.environ.get(HUB_TOKEN_ENV)
    if not token:
        raise CommandError(f"a hub token is needed: --token-file or ${HUB_TOKEN_ENV}")
    verify: bool | ssl.SSLContext = (
        ssl.create_default_context(cafile=str(args.ca_file)) if args.ca_file else True
    )
    try:
        response = httpx.request(
            method,
            f"{url.rstrip('/')}/api/v1{path}",
            headers={"Authorization": f"Bearer {token}"},
            json=body,
            verify=verify,
            timeout=60,
        )
    except httpx.HTTPError as error:
        raise CommandError(f"cannot reach the hub at {url}: {error}") from None
    if response.status_code == 404 and path == "/promotions":
        raise CommandError("promotion is not configured on this hub")
    if response.status_code >= 400:
        try:
            message = response.json().get("error", response.text)
        except ValueError:
            message = response.text
        raise CommandError(f"the hub answered {response.status_code}: {message}")
    return response.json()


def _short(revision: str | None) -> str:
    return revision[:7] if revision else "-"


def status_rows(waves: list[dict[str, Any]]) -> list[list[str]]:
    rows = []
    for wave in waves:
        state = wave["action"] + (
            " (paused)" if wave["paused"] and wave["action"] != "wait" else ""
        )
        approval = "-"
        if wave["approvalRequired"]:
            approval = "approved" if wave["approved"] else "required"
        rows.append(
            [
                wave["name"],
                _short(wave["revision"]),
                _short(wave["candidate"]),
                state,
                approval,
                str(len(wave["clusters"])),
                wave["reason"],
            ]
        )
    return rows


def check_rows(waves: list[dict[str, Any]]) -> list[list[str]]:
    """The waves' verification checks, one row each (none: the table is left out)."""
    rows = []
    for wave in waves:
        for check in wave.get("checks", []):
            holds = {True: "yes", False: "no", None: "not yet"}[check["holds"]]
            rows.append(
                [
                    wave["name"],
                    check["name"],
                    check["kind"],
                    holds,
                    check.get("holdingSince") or "-",
                    check.get("detail") or "-",
                ]
            )
    return rows


def _status(args: argparse.Namespace) -> int:
    try:
        body = _call(args, "GET", "/promotions")
    except CommandError as error:
        print(f"fleet promote status: {error}", file=sys.stderr)
        return 1
    if args.output != "table":
        output.print_structured(body, args.output)
        return 0
    if body.get("error"):
        print(f"promotion halted: {body['error']}", file=sys.stderr)
    if not body["waves"]:
        print("No waves.", file=sys.stderr)
        return 0
    output.print_table(STATUS_COLUMNS, status_rows(body["waves"]))
    if checks := check_rows(body["waves"]):
        print()
        output.print_table(CHECK_COLUMNS, checks)
    return 0


def _action(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {}
    if args.action == "approve" and args.revision:
        body["revision"] = args.revision
    if args.action == "rollback" and args.to:
        body["to"] = args.to
    try:
        record = _call(args, "POST", f"/promotions/{args.wave}/{args.action}", body)
    except CommandError as error:
        print(f"fleet promote {args.action}: {error}", file=sys.stderr)
        return 1
    print(untrusted.printable(_describe(record)))
    return 0


def _describe(record: dict[str, Any]) -> str:
    wave, action = record["wave"], record["action"]
    if action == "approve":
        text = f"approved {_short(record['revision'])} for wave {wave}"
    elif action == "rollback":
        text = (
            f"rolled wave {wave} back from {_short(record.get('from'))} "
            f"to {_short(record['revision'])}"
        )
    else:
        text = f"wave {wave} {action}d"
    return f"{text} (record {record['id']}, by {record['who']})"
