"""``fleet get``: list fleet objects, kubectl-style (``-o table|json|yaml``).

``fleet get clusters`` reads the hub (``--hub URL --token-file F``) or, without a hub, the
status branch of the fleet repository (``--repo URL``), where every agent writes its
status. Later subcommands (units, kustomizations) register here too.
"""

from __future__ import annotations

import argparse
import datetime
import os
import ssl
import sys
import tempfile
from pathlib import Path
from typing import Any

from fleet import untrusted
from fleet.cli import output, units
from fleet.report import ClusterSummary, short_revision

HUB_URL_ENV = "FLEET_HUB_URL"
HUB_TOKEN_ENV = "FLEET_HUB_TOKEN"
HUB_TOKEN_FILE_ENV = "FLEET_HUB_TOKEN_FILE"
CLUSTER_COLUMNS = ["NAME", "HEALTH", "REVISION", "UNITS", "DRIFT(24h)", "LAST REPORT", "AGENT"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    get = subparsers.add_parser(
        "get",
        help="list fleet objects (clusters, units)",
        description="List fleet objects in kubectl's table form, or as JSON/YAML.",
    )
    get_sub = get.add_subparsers(dest="get_command", required=True, metavar="KIND")

    clusters = get_sub.add_parser(
        "clusters",
        aliases=["cluster"],
        help="clusters with health, revision, units and drift",
        description="List clusters from the hub or, with --repo, from the status branch of "
        "the fleet repository (no hub needed; health there cannot show Stale, since Git "
        "carries no heartbeats).",
    )
    source = clusters.add_mutually_exclusive_group()
    source.add_argument("--hub", help=f"hub URL (default: ${HUB_URL_ENV})")
    source.add_argument("--repo", help="fleet repository URL: read its status branch instead")
    clusters.add_argument(
        "--token-file",
        type=Path,
        help=f"file holding a hub user token (default: ${HUB_TOKEN_FILE_ENV} or ${HUB_TOKEN_ENV})",
    )
    clusters.add_argument("--ca-file", type=Path, help="CA bundle to verify the hub's TLS")
    clusters.add_argument(
        "--branch", default="fleet-status", help="status branch with --repo (default: fleet-status)"
    )
    output.add_output_flag(clusters)
    clusters.set_defaults(func=_get_clusters)

    units.register_get_units(get_sub)


def age(delta: datetime.timedelta) -> str:
    """kubectl's short age: 45s, 12m, 5h, 3d."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 2 * 3600:
        return f"{seconds // 60}m"
    if seconds < 2 * 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def cluster_rows(clusters: list[ClusterSummary], now: datetime.datetime) -> list[list[str]]:
    return [
        [
            cluster.name,
            cluster.health,
            short_revision(cluster.revision) or "<none>",
            f"{cluster.units_ready}/{cluster.units_total}",
            str(cluster.drift24h),
            age(now - cluster.last_report_at) if cluster.last_report_at else "<never>",
            cluster.agent_version or "<unknown>",
        ]
        for cluster in clusters
    ]


def _token(args: argparse.Namespace) -> str | None:
    path = args.token_file or (
        Path(os.environ[HUB_TOKEN_FILE_ENV]) if os.environ.get(HUB_TOKEN_FILE_ENV) else None
    )
    if path is not None:
        return path.read_text().strip()
    return os.environ.get(HUB_TOKEN_ENV)


def _from_hub(args: argparse.Namespace, url: str) -> list[ClusterSummary]:
    import httpx

    from hub.api import ClusterList

    token = _token(args)
    if not token:
        raise CommandError(f"a hub token is needed: --token-file or ${HUB_TOKEN_ENV}")
    verify: bool | ssl.SSLContext = (
        ssl.create_default_context(cafile=str(args.ca_file)) if args.ca_file else True
    )
    try:
        response = httpx.get(
            f"{url.rstrip('/')}/api/v1/clusters",
            headers={"Authorization": f"Bearer {token}"},
            verify=verify,
            timeout=30,
        )
    except httpx.HTTPError as error:
        raise CommandError(f"cannot reach the hub at {url}: {error}") from None
    if response.status_code != 200:
        try:
            message = response.json().get("error", response.text)
        except ValueError:
            message = response.text
        raise CommandError(f"the hub answered {response.status_code}: {message}")
    return ClusterList.model_validate(response.json()).items


def _from_repo(args: argparse.Namespace, now: datetime.datetime) -> list[ClusterSummary]:
    from agent.reporters.gitstatus import read_status_branch
    from fleet import report as report_schema
    from fleet.source import GitRef, GitSource, SourceError

    with tempfile.TemporaryDirectory(prefix="fleet-get-") as cache:
        try:
            source = GitSource(args.repo, GitRef(branch=args.branch), cache_dir=Path(cache))
            reports = read_status_branch(source)
        except SourceError as error:
            raise CommandError(str(error)) from None
    return [
        report_schema.summarize(report, report_schema.cluster_health(report, now, None), now)
        for report in reports
    ]


class CommandError(Exception):
    """A failure to report on stderr with exit code 1."""


def _get_clusters(args: argparse.Namespace) -> int:
    now = datetime.datetime.now(datetime.UTC)
    try:
        if args.repo:
            clusters = _from_repo(args, now)
        else:
            url = args.hub or os.environ.get(HUB_URL_ENV)
            if not url:
                raise CommandError(f"give --hub URL (or ${HUB_URL_ENV}) or --repo URL")
            clusters = _from_hub(args, url)
    except CommandError as error:
        print(untrusted.printable(f"fleet get clusters: {error}"), file=sys.stderr)
        return 1
    if args.output != "table":
        data: list[dict[str, Any]] = [cluster.wire() for cluster in clusters]
        output.print_structured({"items": data}, args.output)
        return 0
    if not clusters:
        print("No clusters found.", file=sys.stderr)
        return 0
    output.print_table(CLUSTER_COLUMNS, cluster_rows(clusters, now))
    return 0
