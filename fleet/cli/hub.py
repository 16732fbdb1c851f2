"""``fleet hub``: run the hub server and manage its tokens.

Token commands work on the hub's database directly (``--db`` or the config file's
``database``), so the first admin token can be made before any hub runs.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path
from typing import Any

from fleet.cli import output

DB_ENV = "FLEET_HUB_DB"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    hub = subparsers.add_parser(
        "hub",
        help="the hub: fleet health, webhooks, notifications, command streams",
        description="The hub aggregates the reports of every cluster's agent, serves them "
        "over a JSON API (/api/v1) and server-sent event streams, receives push webhooks "
        "and sends notifications. Agents connect to it; it never connects into a cluster.",
    )
    hub_sub = hub.add_subparsers(dest="hub_command", required=True, metavar="COMMAND")

    serve = hub_sub.add_parser(
        "serve",
        help="run the hub server",
        description="Run the hub. Flags override the config file. Stop with Ctrl-C or SIGTERM.",
    )
    serve.add_argument("--config", type=Path, help="hub config file (YAML)")
    serve.add_argument("--listen", help="host:port to listen on (default: 127.0.0.1:8080)")
    _add_db_flag(serve)
    serve.add_argument("--tls-cert", type=Path, help="serve HTTPS with this certificate (PEM)")
    serve.add_argument("--tls-key", type=Path, help="private key of --tls-cert (PEM)")
    serve.add_argument(
        "--stale-after",
        help="a cluster silent this long is Stale (Go duration, default: 90s)",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=("critical", "error", "warning", "info", "debug"),
        help="server log level (default: info; debug also logs every request)",
    )
    serve.set_defaults(func=_serve)

    token = hub_sub.add_parser(
        "token",
        help="create, revoke and list hub tokens",
        description="Tokens are shown once at creation and stored only as salted hashes. "
        "These commands work on the hub's database; a running hub does the same for an admin "
        "token over its API (/api/v1/tokens), which `fleet bootstrap --hub-admin-token-file` "
        "uses.",
    )
    token_sub = token.add_subparsers(dest="token_command", required=True, metavar="COMMAND")

    create = token_sub.add_parser(
        "create",
        help="create a cluster token (CLUSTER) or a user token (--user NAME --role ROLE)",
        description="Print a new token once. A cluster token lets that cluster's agent report "
        "and open its command stream, and nothing else. A user token reads the fleet "
        "(role read-only) or also queues reconciles (role admin).",
    )
    create.add_argument("cluster", nargs="?", metavar="CLUSTER", help="cluster name")
    create.add_argument("--user", help="user name, for a user token")
    create.add_argument(
        "--role", choices=("read-only", "admin"), help="role of a user token (default: read-only)"
    )
    create.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="label of the cluster (env=dev, wave=canary); repeatable",
    )
    create.add_argument("--config", type=Path, help="hub config file, for its database")
    _add_db_flag(create)
    create.set_defaults(func=_token_create)

    revoke = token_sub.add_parser(
        "revoke",
        help="revoke a token by id, or every token of a cluster or user",
        description="Revoked tokens are refused at once by every hub on this database.",
    )
    revoke.add_argument("selector", metavar="ID|NAME", help="token id, cluster name or user name")
    revoke.add_argument("--config", type=Path, help="hub config file, for its database")
    _add_db_flag(revoke)
    revoke.set_defaults(func=_token_revoke)

    listing = token_sub.add_parser("list", help="list tokens (never their secrets)")
    listing.add_argument("--config", type=Path, help="hub config file, for its database")
    _add_db_flag(listing)
    output.add_output_flag(listing)
    listing.set_defaults(func=_token_list)


def _add_db_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        help=f"database URL: sqlite:///path/hub.db (default) or postgresql://... (also ${DB_ENV})",
    )


def _database_url(args: argparse.Namespace) -> str:
    from hub.config import HubConfig, load_config

    if args.db:
        return str(args.db)
    if os.environ.get(DB_ENV):
        return os.environ[DB_ENV]
    config = load_config(args.config) if args.config else HubConfig()
    return config.database


def _serve(args: argparse.Namespace) -> int:
    import pydantic

    from hub.config import ConfigError, HubConfig, load_config
    from hub.server import serve
    from hub.store import StoreError

    try:
        config = load_config(args.config) if args.config else HubConfig()
        overrides: dict[str, Any] = {}
        if args.listen:
            overrides["listen"] = args.listen
        if args.db or os.environ.get(DB_ENV):
            overrides["database"] = _database_url(args)
        if args.tls_cert:
            overrides["tls_cert"] = args.tls_cert
        if args.tls_key:
            overrides["tls_key"] = args.tls_key
        if args.stale_after:
            overrides["stale_after"] = args.stale_after
        config = HubConfig.model_validate({**config.model_dump(), **overrides})
        config.listen_host_port  # noqa: B018 - validates host:port before binding
        serve(config, log_level=args.log_level)
    except (ConfigError, StoreError) as error:
        print(f"fleet hub serve: {error}", file=sys.stderr)
        return 2
    except pydantic.ValidationError as error:
        print(f"fleet hub serve: {error}", file=sys.stderr)
        return 2
    return 0


def _parse_labels(pairs: list[str]) -> dict[str, str]:
    from fleet.report import validate_labels

    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"label {pair!r} is not KEY=VALUE")
        labels[key] = value
    return validate_labels(labels)


def _token_create(args: argparse.Namespace) -> int:
    from hub.auth import issue_token
    from hub.store import Store

    if bool(args.cluster) == bool(args.user):
        print("fleet hub token create: give either CLUSTER or --user NAME", file=sys.stderr)
        return 2
    try:
        labels = _parse_labels(args.label)
    except ValueError as error:
        print(f"fleet hub token create: {error}", file=sys.stderr)
        return 2
    if args.user:
        if labels:
            print("fleet hub token create: --label is for cluster tokens", file=sys.stderr)
            return 2
        text, record = issue_token("user", args.user, args.role or "read-only", time.time())
    else:
        if args.role:
            print("fleet hub token create: --role is for user tokens", file=sys.stderr)
            return 2
        from fleet.report import validate_cluster_name

        try:
            validate_cluster_name(args.cluster)
        except ValueError as error:
            print(f"fleet hub token create: {error}", file=sys.stderr)
            return 2
        text, record = issue_token("cluster", args.cluster, "cluster", time.time(), labels)
    store = Store.open(_database_url(args))
    try:
        store.migrate_sync()
        store.add_token_sync(record)
    finally:
        store.close()
    print(
        f"token {record.id} for {record.kind} {record.subject} (role {record.role}); "
        "it is shown only now:",
        file=sys.stderr,
    )
    print(text)
    return 0


def _token_revoke(args: argparse.Namespace) -> int:
    from hub.store import Store

    store = Store.open(_database_url(args))
    try:
        store.migrate_sync()
        revoked = store.revoke_tokens_sync(args.selector, time.time())
    finally:
        store.close()
    if not revoked:
        print(f"fleet hub token revoke: no live token matches {args.selector!r}", file=sys.stderr)
        return 1
    for token_id in revoked:
        print(f"revoked {token_id}")
    return 0


def _token_list(args: argparse.Namespace) -> int:
    from hub.store import Store

    store = Store.open(_database_url(args))
    try:
        store.migrate_sync()
        tokens = store.list_tokens_sync()
    finally:
        store.close()
    rows: list[dict[str, Any]] = [
        {
            "id": token.id,
            "kind": token.kind,
            "subject": token.subject,
            "role": token.role,
            "labels": token.labels,
            "createdAt": _iso(token.created_at),
            "revokedAt": _iso(token.revoked_at) if token.revoked_at else None,
        }
        for token in tokens
    ]
    if args.output != "table":
        output.print_structured(rows, args.output)
        return 0
    output.print_table(
        ["ID", "KIND", "SUBJECT", "ROLE", "LABELS", "CREATED", "REVOKED"],
        [
            [
                token.id,
                token.kind,
                token.subject,
                token.role,
                ",".join(f"{k}={v}" for k, v in sorted(token.labels.items())) or "<none>",
                _iso(token.created_at),
                _iso(token.revoked_at) if token.revoked_at else "",
            ]
            for token in tokens
        ],
    )
    return 0


def _iso(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")
