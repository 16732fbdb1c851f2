"""``fleet bootstrap``: one command from an empty repository to an agent managing itself.

Like ``flux bootstrap``: create the repository layout if missing, commit the agent's install
manifests under ``clusters/<name>/fleet-system/`` (so an upgrade is a commit), install them
and the credentials into the cluster, and wait until the agent reports the root unit Ready
at that commit. Running it again changes nothing when nothing changed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from fleet import install, tools
from fleet.api import unit as unit_api
from fleet.cli import install as install_cli
from fleet.cli import kubeargs
from fleet.cli.kubeargs import CliError, progress
from fleet.kube import KubeClient
from fleet.source import GitAuth
from fleet.source.urls import GitURL, Transport, parse_git_url

if TYPE_CHECKING:
    from fleet.install.hubtoken import ClusterToken


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "bootstrap",
        help="install the agent into a cluster and have it manage itself from Git",
        description="Create the repository layout if missing (fleet.yaml, clusters/NAME/), commit "
        "the agent's manifests to clusters/NAME/fleet-system/, install them and the credentials "
        "into the cluster and wait until the agent reports Ready at that commit. Safe to re-run.",
    )
    install_cli.add_install_flags(parser)
    parser.add_argument("--repo", required=True, help="fleet repository: Git URL or local path")
    parser.add_argument("--branch", default="main", help="branch to commit to and follow")
    credentials = parser.add_argument_group("Git credentials (default for SSH: a new deploy key)")
    credentials.add_argument("--token-file", type=Path, help="HTTPS token (sent as password)")
    credentials.add_argument("--username", default="git", help="HTTPS username for the token")
    credentials.add_argument(
        "--ssh-key", type=Path, help="an existing SSH deploy key instead of a generated one"
    )
    credentials.add_argument(
        "--known-hosts",
        type=Path,
        help="known_hosts with the SSH server's key (default: ask ssh-keyscan)",
    )
    hub = parser.add_argument_group(
        f"hub token (with --hub-url; kept in the Secret fleet-system/{install.HUB_SECRET_NAME})"
    ).add_mutually_exclusive_group()
    hub.add_argument(
        "--hub-admin-token-file",
        type=Path,
        help="an admin user token of the hub: bootstrap creates this cluster's token with it "
        "(POST /api/v1/tokens), or keeps the one the cluster's Secret holds while the hub "
        "accepts it",
    )
    hub.add_argument(
        "--cluster-token-file",
        type=Path,
        help="this cluster's hub token, made beforehand (`fleet hub token create NAME`)",
    )
    parser.add_argument(
        "--run-local",
        action="store_true",
        help="for clusters without a container runtime (local control planes, tests, the "
        "demo): install everything, the Deployment with no replicas, and run the agent as a "
        "local process with a token of its ServiceAccount",
    )
    install_cli.add_state_flag(parser)
    parser.add_argument(
        "--agent-arg",
        action="append",
        default=[],
        help="extra argument of the local `fleet agent run` (repeatable)",
    )
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for Ready")
    install_cli.add_cluster_flags(parser)
    parser.set_defaults(func=_bootstrap)


def _bootstrap(args: argparse.Namespace) -> int:
    try:
        url = _normalise_repo(args.repo)
        auth, secret_data = _credentials(args, parse_git_url(url))
        hub_token, hub_admin_token = _hub_tokens(args)
    except (CliError, ValueError, OSError) as error:
        kubeargs.fail(getattr(error, "message", str(error)))
        return 2
    args.repo = url
    args.ref = args.ref if args.ref != "branch:main" else f"branch:{args.branch}"
    options = install_cli.options_from(
        args, git_secret=bool(secret_data), run_locally=args.run_local
    )
    try:
        commit = _commit(args, url, auth, options)
    except Exception as error:  # the source's errors all read well
        kubeargs.fail(f"cannot write to {args.repo}: {error}")
        if "identity" in secret_data and not args.ssh_key:
            progress("◎", "add the deploy key printed above to the repository (with write access)")
            progress("◎", "and run the same command again: it reuses that key")
        return 1

    async def main(args: argparse.Namespace) -> int:
        from fleet.install import cluster

        objects = install.manifests(options)
        async with kubeargs.connect(args) as client:
            token, replaced = hub_token, False
            if hub_admin_token:
                found = await _cluster_hub_token(args, client, hub_admin_token)
                token, replaced = found.token, found.replaced
            secrets = [install.git_secret(secret_data)] if secret_data else []
            if token:
                secrets.append(install.hub_secret(token))
            progress("►", f"installing the agent into {kubeargs.where(args)}")
            for name in await cluster.apply_all(client, [objects[0], *secrets, *objects[1:]]):
                progress("✔", f"{name} applied")
            if args.run_local:
                await _start_local(args, client, secret_data, token, restart=replaced)
            elif replaced:
                progress(
                    "◎",
                    "the agent reads its hub token when it starts: restart it to use the new "
                    "one (kubectl -n fleet-system rollout restart "
                    f"deployment/{install.DEPLOYMENT_NAME})",
                )
            progress(
                "◎", f"waiting for the agent to apply {commit[:12]} (up to {args.timeout:.0f}s)"
            )
            await _wait_ready(client, commit, args.timeout)
        progress("✔", f"cluster {args.cluster} is reconciled from {args.repo} at {commit[:12]}")
        return 0

    return kubeargs.run(main, args)


def _normalise_repo(repo: str) -> str:
    path = Path(repo).expanduser()
    if "://" not in repo and "@" not in repo.split("/")[0] and path.exists():
        return str(path.resolve())
    return repo


def _credentials(args: argparse.Namespace, url: GitURL) -> tuple[GitAuth, dict[str, str]]:
    """How bootstrap pushes, and what the agent's Secret holds (Flux's keys)."""
    if args.token_file:
        token = args.token_file.read_text().strip()
        return GitAuth.token(token, args.username), {
            "username": args.username,
            "password": token,
        }
    if url.transport is not Transport.SSH:
        return GitAuth.none(), {}
    known_hosts = (
        args.known_hosts.read_text() if args.known_hosts else _keyscan(url.host or "", url)
    )
    if args.ssh_key:
        private = args.ssh_key.read_text()
        public = None
        public_path = Path(f"{args.ssh_key}.pub")
        if public_path.is_file():
            public = public_path.read_text()
    else:
        private, public = deploy_key(key_dir(args))
        progress("►", "deploy key (add it to the repository with write access):")
        print(public.strip(), flush=True)
    data = {"identity": private, "known_hosts": known_hosts}
    if public:
        data["identity.pub"] = public
    return GitAuth.ssh(private, known_hosts), data


def _keyscan(host: str, url: GitURL) -> str:
    scanner = shutil.which("ssh-keyscan")
    if scanner is None:
        raise CliError("no ssh-keyscan on this machine: pass --known-hosts with the host key")
    port = url.effective_port or 22
    found = subprocess.run(
        [scanner, "-p", str(port), "-T", "10", host], capture_output=True, text=True, check=False
    ).stdout
    if not found.strip():
        raise CliError(f"ssh-keyscan found no host key for {host}:{port}: pass --known-hosts")
    import hashlib

    from fleet.source.known_hosts import KnownHosts, fingerprint

    for entry in KnownHosts.parse(found).entries:
        shown = fingerprint(hashlib.sha256(entry.key_blob).digest())
        progress("✔", f"host key of {host}:{port}: {entry.key_type} {shown} (verify it)")
    return found


def key_dir(args: argparse.Namespace) -> Path:
    """Where the generated deploy key of ``args.cluster`` is kept."""
    root: Path = args.state_dir.expanduser() if args.state_dir else tools.cache_dir()
    return root / "bootstrap" / str(args.cluster) / "deploy-key"


def deploy_key(folder: Path) -> tuple[str, str]:
    """An ed25519 key pair (OpenSSH format) in ``folder``, made on first use, so a re-run
    reuses the key already added to the repository."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    private_path, public_path = folder / "identity", folder / "identity.pub"
    if private_path.is_file() and public_path.is_file():
        return private_path.read_text(), public_path.read_text()
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
        + f" fleet-{folder.parent.name}\n"
    )
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    private_path.touch(mode=0o600)
    private_path.write_text(private)
    public_path.write_text(public)
    return private, public


def _hub_tokens(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """(this cluster's hub token, an admin token to create it with), read from their files."""
    given = args.cluster_token_file or args.hub_admin_token_file
    if not args.hub_url:
        if given:
            raise CliError("--cluster-token-file and --hub-admin-token-file need --hub-url")
        return None, None
    if args.cluster_token_file:
        return args.cluster_token_file.read_text().strip(), None
    if args.hub_admin_token_file:
        return None, args.hub_admin_token_file.read_text().strip()
    raise CliError(
        "--hub-url needs --hub-admin-token-file (an admin token: bootstrap creates the "
        "cluster's token) or --cluster-token-file (a token made with "
        f"`fleet hub token create {args.cluster}`)"
    )


async def _cluster_hub_token(
    args: argparse.Namespace, client: KubeClient, admin: str
) -> ClusterToken:
    from fleet.install import hubtoken

    try:
        found = await hubtoken.cluster_token(client, args.hub_url, admin, args.cluster)
    except hubtoken.HubTokenError as error:
        raise CliError(str(error)) from error
    if found.created_id:
        instead = " (the hub refuses the one the Secret held)" if found.replaced else ""
        progress("✔", f"hub token {found.created_id} created for cluster {args.cluster}{instead}")
    else:
        progress(
            "✔",
            f"the hub still accepts the token in Secret fleet-system/{install.HUB_SECRET_NAME}: "
            "kept",
        )
    return found


def _commit(
    args: argparse.Namespace, url: str, auth: GitAuth, options: install.InstallOptions
) -> str:
    from fleet.install import repository

    progress(
        "►",
        f"committing the agent's manifests to {repository.manifest_path(args.cluster)} "
        f"on {args.branch}",
    )
    result = repository.commit_manifests(
        url, args.branch, auth, options, cache_dir=tools.cache_dir() / "bootstrap" / "git"
    )
    if result.commit is None:
        raise RuntimeError("the branch has no commit")
    if result.changed:
        progress("✔", f"committed {result.commit[:12]}")
    else:
        progress("✔", f"manifests are up to date at {result.commit[:12]}")
    return result.commit


async def _start_local(
    args: argparse.Namespace,
    client: KubeClient,
    secret_data: dict[str, str],
    hub_token: str | None,
    *,
    restart: bool = False,
) -> None:
    from fleet.install import cluster

    local = install_cli.local_agent(args)
    pid = local.pid()
    if pid is not None and restart:
        local.stop()
        progress("✔", f"local agent stopped (pid {pid}): it holds the hub token no longer accepted")
    elif pid is not None:
        progress("◎", f"local agent already runs (pid {pid}, log {local.log_file})")
        return
    kubeconfig_path = Path(args.kubeconfig or _default_kubeconfig()).expanduser()
    kubeconfig = await cluster.service_account_kubeconfig(client, kubeconfig_path, args.context)
    local.write_credentials(kubeconfig, secret_data, hub_token)
    agent_args = [
        f"--cluster={args.cluster}",
        f"--repo={args.repo}",
        f"--ref={args.ref}",
        f"--interval={args.interval}",
        f"--work-dir={local.dir / 'work'}",
        *args.agent_arg,
    ]
    if secret_data:
        agent_args.append(f"--git-secret-dir={local.git_secret_dir}")
    if hub_token:
        agent_args += [f"--hub-url={args.hub_url}", f"--hub-token-file={local.hub_token_file}"]
    if args.status_branch:
        agent_args.append(f"--status-branch={args.status_branch}")
    pid = local.start(agent_args)
    progress("✔", f"local agent started as ServiceAccount fleet-system/fleet-agent (pid {pid})")
    progress("◎", f"log: {local.log_file}; stop: fleet agent stop-local --cluster {args.cluster}")


def _default_kubeconfig() -> str:
    import os

    paths = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    return paths[0] if paths else str(Path.home() / ".kube" / "config")


async def _wait_ready(client: KubeClient, commit: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no root Unit yet"
    while time.monotonic() < deadline:
        try:
            unit = await client.get(
                unit_api.API_VERSION, unit_api.KIND, unit_api.ROOT_UNIT, unit_api.AGENT_NAMESPACE
            )
        except Exception as error:  # the CRD appears when the agent starts
            unit, last = None, str(error)
        status = (unit or {}).get("status") or {}
        ready = unit_api.ready_condition(status) or {}
        revision = str(status.get("lastAppliedRevision") or "")
        if revision.endswith(commit) and ready.get("status") == "True":
            return
        if unit is not None:
            last = f"Ready={ready.get('status', 'Unknown')} at {revision or 'no revision'}: " + str(
                ready.get("message", "")
            )
        await anyio.sleep(0.5)
    raise CliError(f"the agent did not report Ready at {commit[:12]} in {timeout:.0f}s ({last})")
