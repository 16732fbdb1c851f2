"""``fleet agent``: run the per-cluster pull agent."""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

import pydantic

from fleet.cli import install
from fleet.models import parse_duration
from fleet.source import GitAuth, GitRef, SourceConfigError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    agent = subparsers.add_parser(
        "agent",
        help="the per-cluster pull agent",
        description="The agent reconciles clusters/<name>/ of the fleet repository into one "
        "cluster and heals drift. It runs in the cluster or next to it.",
    )
    sub = agent.add_subparsers(dest="agent_command", required=True, metavar="COMMAND")
    run = sub.add_parser(
        "run",
        help="run the agent for one cluster",
        description="Run the agent in the foreground until SIGINT/SIGTERM.",
    )
    run.add_argument("--cluster", required=True, help="this cluster's name in the fleet")
    run.add_argument("--repo", required=True, help="fleet repository: Git URL or local path")
    run.add_argument(
        "--ref",
        default="branch:main",
        help="what to follow: branch:NAME, tag:NAME, semver:RANGE, commit:SHA or refs/... "
        "(default: branch:main)",
    )
    run.add_argument("--path", default="clusters/{cluster}", help="cluster path template")
    run.add_argument("--interval", default="1m", help="fetch interval, Go duration (default: 1m)")
    run.add_argument(
        "--kubeconfig", help="kubeconfig file (default: in-cluster, then ~/.kube/config)"
    )
    run.add_argument("--context", help="kubeconfig context")
    run.add_argument("--namespace", default="fleet-system", help="the agent's own namespace")
    run.add_argument("--work-dir", type=Path, help="Git mirrors and checkouts")
    run.add_argument(
        "--git-secret-dir", type=Path, help="folder with Flux Git secret keys as files"
    )
    run.add_argument("--token-file", type=Path, help="HTTPS token for the repository")
    run.add_argument("--ssh-key", type=Path, help="SSH private key (deploy key)")
    run.add_argument("--known-hosts", type=Path, help="known_hosts holding the server's host key")
    run.add_argument("--workers", type=int, default=8, help="units reconciled at once (default: 8)")
    run.add_argument(
        "--kustomize", type=Path, help="the kustomize binary (default: kustomize on PATH)"
    )
    run.add_argument("--helm", type=Path, help="the helm binary (default: helm on PATH)")
    run.add_argument(
        "--metrics-address",
        default="127.0.0.1:9797",
        help="host:port for Prometheus /metrics; empty to disable (default: 127.0.0.1:9797)",
    )
    run.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a label of this cluster, sent with its reports (repeatable)",
    )
    run.add_argument("--hub-url", help="report to this hub (https://hub.example:8443)")
    run.add_argument("--hub-token-file", type=Path, help="this cluster's hub token")
    run.add_argument("--hub-ca-file", type=Path, help="CA bundle for the hub's certificate")
    run.add_argument(
        "--heartbeat",
        default="30s",
        help="re-send an unchanged report this often, Go duration; keep it well below the "
        "hub's staleAfter (default: 30s)",
    )
    run.add_argument(
        "--status-branch",
        help="also write this cluster's status to this branch of the fleet repository "
        "(e.g. fleet-status)",
    )
    run.add_argument("--log-format", choices=("text", "json"), default="text")
    run.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    run.set_defaults(func=_run)
    install.register(sub)


def parse_ref(text: str) -> GitRef:
    """``branch:main``, ``tag:v1``, ``semver:>=1.0``, ``commit:<sha>``, ``refs/...`` or a branch."""
    kind, sep, value = text.partition(":")
    if text.startswith("refs/"):
        return GitRef(name=text)
    if not sep:
        return GitRef(branch=text)
    if kind not in ("branch", "tag", "semver", "commit"):
        raise ValueError(
            f"unknown ref kind {kind!r} in {text!r}: use branch, tag, semver or commit"
        )
    return GitRef(**{kind: value})


def _labels(pairs: list[str]) -> dict[str, str]:
    labels = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--label {pair!r} is not KEY=VALUE")
        labels[key] = value
    return labels


def _auth(args: argparse.Namespace) -> GitAuth:
    if args.git_secret_dir:
        return GitAuth.from_directory(args.git_secret_dir)
    if args.token_file:
        return GitAuth.token(args.token_file.read_text().strip())
    if args.ssh_key:
        if not args.known_hosts:
            raise ValueError(
                "--ssh-key needs --known-hosts: the server's host key is always verified"
            )
        return GitAuth.ssh(args.ssh_key, args.known_hosts)
    return GitAuth.none()


def _run(args: argparse.Namespace) -> int:
    import anyio

    from agent import logs
    from agent.main import run
    from agent.settings import AgentSettings

    logs.configure(args.log_format, args.log_level)
    try:
        interval: datetime.timedelta = parse_duration(args.interval)
        heartbeat = max(1, round(parse_duration(args.heartbeat).total_seconds()))
        settings = AgentSettings(
            kustomize_binary=args.kustomize,
            helm_binary=args.helm,
            cluster=args.cluster,
            repo=args.repo,
            ref=parse_ref(args.ref),
            auth=_auth(args),
            path_template=args.path,
            interval=interval,
            namespace=args.namespace,
            kubeconfig=args.kubeconfig,
            context=args.context,
            workers=args.workers,
            metrics_address=args.metrics_address or None,
            labels=_labels(args.label),
            hub_url=args.hub_url,
            hub_token=args.hub_token_file.read_text().strip() if args.hub_token_file else None,
            hub_ca_file=args.hub_ca_file,
            status_branch=args.status_branch,
            heartbeat_seconds=heartbeat,
            **({"work_dir": args.work_dir} if args.work_dir else {}),
        )
    except pydantic.ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) + ': ' if e['loc'] else ''}"
            f"{e['msg'].removeprefix('Value error, ')}"
            for e in error.errors()
        )
        print(f"error: {problems}", file=sys.stderr)
        return 2
    except (ValueError, SourceConfigError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from agent.mirror import FluxControllersRunning
    from fleet import tools

    try:
        anyio.run(run, settings)
    except (tools.ToolNotFound, FluxControllersRunning) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
