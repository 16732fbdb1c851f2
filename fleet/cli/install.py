"""``fleet agent install|uninstall|stop-local``: put the agent into a cluster, or take it out."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fleet import install
from fleet.cli import kubeargs
from fleet.cli.kubeargs import progress
from fleet.install.local import LocalAgent, state_root


def add_cluster_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("cluster")
    group.add_argument(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)"
    )
    group.add_argument("--context", help="kubeconfig context (default: the current one)")


def add_install_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cluster", required=True, help="this cluster's name in the fleet")
    parser.add_argument(
        "--ref", default="branch:main", help="what the agent follows (default: branch:main)"
    )
    parser.add_argument(
        "--least-privilege",
        action="store_true",
        help="a ClusterRole of the kinds the agent manages (no Secrets outside fleet-system) "
        "instead of cluster-admin",
    )
    parser.add_argument("--hub-url", help="the hub the agent reports to")
    parser.add_argument(
        "--image",
        default=install.objects.DEFAULT_IMAGE,
        help=f"agent image (default: {install.objects.DEFAULT_IMAGE}, built by make image)",
    )
    parser.add_argument("--status-branch", help="also write status to this branch")
    parser.add_argument("--interval", default="1m", help="fetch interval (default: 1m)")


def add_state_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        type=Path,
        help="where local agents keep their PID, log and credentials "
        "(default: ~/.cache/fleet/local-agents)",
    )


def local_agent(args: argparse.Namespace) -> LocalAgent:
    root = (args.state_dir or state_root()).expanduser().resolve()
    return LocalAgent(args.cluster, root)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    apply = sub.add_parser(
        "install",
        help="install the agent into a cluster (or print its manifests)",
        description="Apply the agent's Namespace, ServiceAccount, RBAC, Secrets, Deployment and "
        "metrics Service with server-side apply (field manager fleet-bootstrap). Prefer "
        "`fleet bootstrap`, which also commits the manifests so the agent manages itself.",
    )
    add_install_flags(apply)
    apply.add_argument("--repo", required=True, help="fleet repository URL the agent follows")
    apply.add_argument("--print", action="store_true", help="print the manifests, apply nothing")
    apply.add_argument(
        "--git-secret-dir",
        type=Path,
        help="folder of Flux Git secret keys (identity, known_hosts, username, password, ...) "
        "to store in the fleet-git-auth Secret",
    )
    apply.add_argument("--hub-token-file", type=Path, help="this cluster's hub token")
    add_cluster_flags(apply)
    apply.set_defaults(func=_install)

    remove = sub.add_parser(
        "uninstall",
        help="remove the agent from a cluster",
        description="Delete the agent's objects, its Units and the Unit CRD. What the agent "
        "applied stays, unless --prune, which deletes every object labelled "
        "fleet.dev/unit-name.",
    )
    remove.add_argument("--cluster", help="also stop this cluster's local agent, if any")
    remove.add_argument("--prune", action="store_true", help="also delete what the agent applied")
    add_state_flag(remove)
    add_cluster_flags(remove)
    remove.set_defaults(func=_uninstall)

    stop = sub.add_parser(
        "stop-local",
        help="stop the agent that `fleet bootstrap --run-local` started",
        description="Stop the local agent process of a cluster by its recorded PID.",
    )
    stop.add_argument("--cluster", required=True)
    add_state_flag(stop)
    stop.set_defaults(func=_stop_local)


def options_from(
    args: argparse.Namespace, *, git_secret: bool, run_locally: bool = False
) -> install.InstallOptions:
    return install.InstallOptions(
        cluster=args.cluster,
        repo=args.repo,
        ref=args.ref,
        image=args.image,
        least_privilege=args.least_privilege,
        hub_url=args.hub_url,
        git_secret=git_secret,
        status_branch=args.status_branch,
        run_locally=run_locally,
        interval=args.interval,
    )


def read_secret_dir(directory: Path | None) -> dict[str, str]:
    if directory is None:
        return {}
    from fleet.source.auth import SECRET_KEYS

    return {k: (directory / k).read_text() for k in SECRET_KEYS if (directory / k).is_file()}


def _install(args: argparse.Namespace) -> int:
    if args.hub_url and not args.hub_token_file and not args.print:
        kubeargs.fail("--hub-url needs --hub-token-file (this cluster's hub token)")
        return 2
    try:
        secret_data = read_secret_dir(args.git_secret_dir)
    except OSError as error:
        kubeargs.fail(str(error))
        return 2
    options = options_from(args, git_secret=bool(secret_data))
    objects = install.manifests(options)
    if args.print:
        sys.stdout.write(install.to_yaml(objects))
        return 0
    secrets = []
    if secret_data:
        secrets.append(install.git_secret(secret_data))
    if args.hub_token_file:
        secrets.append(install.hub_secret(args.hub_token_file.read_text().strip()))

    async def main(args: argparse.Namespace) -> int:
        from fleet.install import cluster

        async with kubeargs.connect(args) as client:
            progress("►", f"installing the agent for cluster {args.cluster}")
            for name in await cluster.apply_all(client, [objects[0], *secrets, *objects[1:]]):
                progress("✔", f"{name} applied")
        return 0

    return kubeargs.run(main, args)


def _uninstall(args: argparse.Namespace) -> int:
    if args.cluster:
        _stop_local(args)

    async def main(args: argparse.Namespace) -> int:
        from fleet.install import cluster

        async with kubeargs.connect(args) as client:
            progress(
                "►", "uninstalling the agent" + (" and pruning its objects" if args.prune else "")
            )
            for name in await cluster.uninstall(client, prune=args.prune):
                progress("✔", f"{name} deleted")
        return 0

    return kubeargs.run(main, args)


def _stop_local(args: argparse.Namespace) -> int:
    pid = local_agent(args).stop()
    if pid is None:
        progress("◎", f"no local agent runs for cluster {args.cluster}")
    else:
        progress("✔", f"local agent of cluster {args.cluster} stopped (pid {pid})")
    return 0
