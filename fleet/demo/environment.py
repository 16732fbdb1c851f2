"""Bring up the demo fleet: clusters dev, staging and prod, a git:// server holding the
example fleet repository (``clusters/`` of this project), a hub with the promoter, and an
agent per cluster following its wave's ref and reporting to the hub.

Every process dies with the command: Ctrl-C (or any failure) tears everything down.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import yaml

from fleet import install
from fleet.install import cluster as installed
from fleet.install import repository
from fleet.kube import KubeClient
from fleet.localkube import kubeconfig, toolchain
from fleet.localkube.cluster import LocalCluster, running_clusters
from fleet.localkube.gitserver import (
    GitDaemon,
    free_port,
    git_daemon,
    git_env,
    port_open,
    seed_repository,
)
from fleet.localkube.process import ManagedProcess, wait_until
from fleet.localkube.prometheus import LocalPrometheus
from fleet.source import GitAuth

CLUSTERS = ("dev", "staging", "prod")
REPOSITORY = "fleet.git"


def example_repository() -> Path:
    """The example fleet repository shipped with fleet (the project's ``clusters/``)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "clusters"
        if (candidate / "fleet.yaml").is_file():
            return candidate
    raise FileNotFoundError("the example fleet repository (clusters/fleet.yaml) was not found")


WAVE_REF = "refs/heads/fleet/wave/"
VERIFIED_WAVE = "staging"
"""The wave whose gate the demo's Prometheus check guards (over dev's clusters)."""
DRIFT_STORM_QUERY = 'sum(increase(fleet_drift_corrections_total{cluster=~"{clusters}"}[10m])) < 20'
"""Promote from dev only while Prometheus scrapes its agents and they are not fighting a
drift storm (fewer than 20 corrections in 10 minutes)."""


def with_verification(example: Path, into: Path, prometheus_url: str) -> Path:
    """A copy of the example repository whose ``staging`` wave is verified by the demo's
    Prometheus: the address is only known once the demo picked its port."""
    shutil.copytree(example, into, symlinks=True)
    fleet_yaml = into / "fleet.yaml"
    config = yaml.safe_load(fleet_yaml.read_text())
    for wave in config["waves"]:
        if wave["name"] == VERIFIED_WAVE:
            wave["verify"] = [
                {
                    "name": "no-drift-storm",
                    "interval": "5s",
                    "prometheus": {"address": prometheus_url, "query": DRIFT_STORM_QUERY},
                }
            ]
    fleet_yaml.write_text(yaml.safe_dump(config, sort_keys=False))
    return into


@dataclasses.dataclass
class DemoFleet:
    """The running demo: what a person (or the walkthrough) needs to reach each part."""

    root: Path
    clusters: dict[str, LocalCluster]
    git: GitDaemon
    agents: dict[str, ManagedProcess]
    metrics_ports: dict[str, int]
    prometheus: LocalPrometheus
    seeded_revision: str
    hub: ManagedProcess
    hub_url: str
    admin_token_file: Path

    @property
    def repo_url(self) -> str:
        return self.git.url(REPOSITORY)

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"


def _fleet(*args: str) -> list[str]:
    return [sys.executable, "-m", "fleet.cli.main", *args]


def _install_options(cluster: str, repo_url: str, hub_url: str) -> install.InstallOptions:
    return install.InstallOptions(
        cluster,
        repo_url,
        ref=f"{WAVE_REF}{cluster}",
        hub_url=hub_url,
        run_locally=True,
        interval="30s",
    )


def _commit_agent_manifests(repo_url: str, names: Sequence[str], hub_url: str, root: Path) -> str:
    """What ``fleet bootstrap`` commits: each agent's manifests in its cluster's folder."""
    tip = ""
    for name in names:
        options = _install_options(name, repo_url, hub_url)
        result = repository.commit_manifests(
            repo_url, "main", GitAuth.none(), options, cache_dir=root / "bootstrap"
        )
        tip = result.commit or tip
    return tip


def _install_agent(cluster: LocalCluster, repo_url: str, hub_url: str, root: Path) -> Path:
    """What ``fleet bootstrap --run-local`` installs: the agent's objects (the Deployment
    without replicas) and its hub token; returns a kubeconfig of the agent's ServiceAccount,
    so the demo's agent runs with the installed RBAC."""
    options = _install_options(cluster.name, repo_url, hub_url)
    token = (root / "tokens" / cluster.name).read_text().strip()

    async def apply() -> dict[str, Any]:
        async with await KubeClient.from_kubeconfig(str(cluster.kubeconfig_path)) as client:
            objects = install.manifests(options)
            await installed.apply_all(client, [objects[0], install.hub_secret(token), *objects[1:]])
            return await installed.service_account_kubeconfig(client, cluster.kubeconfig_path)

    return kubeconfig.write(root / "agent-kubeconfigs" / cluster.name, anyio.run(apply))


def _agent(
    cluster: LocalCluster, repo_url: str, root: Path, metrics_port: int, hub_url: str
) -> ManagedProcess:
    agent_kubeconfig = _install_agent(cluster, repo_url, hub_url, root)
    args = _fleet(
        "agent",
        "run",
        f"--cluster={cluster.name}",
        f"--repo={repo_url}",
        f"--ref={WAVE_REF}{cluster.name}",
        f"--kubeconfig={agent_kubeconfig}",
        "--interval=30s",
        f"--work-dir={root / 'agents'}",
        f"--metrics-address=127.0.0.1:{metrics_port}",
        f"--hub-url={hub_url}",
        f"--hub-token-file={root / 'tokens' / cluster.name}",
        f"--label=env={cluster.name}",
        "--heartbeat=10s",
    )
    return ManagedProcess(f"agent-{cluster.name}", args, root / "agents" / cluster.name)


def _hub_config(root: Path, repo_url: str, port: int) -> Path:
    config = {
        "listen": f"127.0.0.1:{port}",
        "database": f"sqlite:///{root / 'hub' / 'hub.db'}",
        "staleAfter": "35s",
        "promotion": {"repo": repo_url, "interval": "2s", "cacheDir": str(root / "hub" / "git")},
    }
    path = root / "hub" / "hub.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _token(config: Path, *args: str) -> str:
    """A hub token made the way an operator makes one: ``fleet hub token create``."""
    created = subprocess.run(
        _fleet("hub", "token", "create", f"--config={config}", *args),
        capture_output=True,
        text=True,
        check=True,
    )
    return created.stdout.strip().splitlines()[-1].strip()


def _push_wave_refs(bare: Path, revision: str, waves: Sequence[str]) -> None:
    """Every wave starts at the seeded revision; the promoter moves them from there."""
    for wave in waves:
        subprocess.run(
            ["git", "update-ref", f"{WAVE_REF}{wave}", revision],
            cwd=bare,
            check=True,
            env=git_env(),
        )


@contextlib.contextmanager
def demo_fleet(
    root: Path, names: Sequence[str] = CLUSTERS, *, progress: bool = True
) -> Iterator[DemoFleet]:
    """Start the demo under ``root`` (wiped first) and stop all of it on exit."""
    say = print if progress else (lambda *_: None)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for tool in (
        toolchain.KUBERNETES,
        toolchain.ETCD,
        toolchain.KWOK,
        toolchain.KUSTOMIZE,
        toolchain.PROMETHEUS,
    ):
        toolchain.build(tool)
    # The demo's agents find kustomize and helm on PATH, as production does.
    toolchain.put_on_path()

    say(f"► starting clusters {', '.join(names)}")
    started = time.monotonic()
    with running_clusters(names, root / "clusters", progress=progress) as clusters:
        say(f"✔ clusters ready in {time.monotonic() - started:.1f}s")
        served = root / "git"
        served.mkdir()
        ports = {name: free_port() for name in names}
        prometheus = LocalPrometheus(
            root / "prometheus", {name: f"127.0.0.1:{port}" for name, port in ports.items()}
        )
        content = with_verification(example_repository(), root / "example", prometheus.url)
        revision = seed_repository(content, served / REPOSITORY, message="Example fleet repository")
        with git_daemon(served, root / "git-daemon") as daemon:
            hub_port = free_port()
            hub_url = f"http://127.0.0.1:{hub_port}"
            revision = _commit_agent_manifests(daemon.url(REPOSITORY), names, hub_url, root)
            _push_wave_refs(served / REPOSITORY, revision, names)
            say(f"✔ fleet repository at {daemon.url(REPOSITORY)} (main@{revision[:7]})")
            say("✔ each agent's manifests committed to clusters/<name>/fleet-system/")
            config = _hub_config(root, daemon.url(REPOSITORY), hub_port)
            tokens = root / "tokens"
            tokens.mkdir()
            for name in names:
                (tokens / name).write_text(_token(config, name, f"--label=env={name}"))
            admin = tokens / "admin"
            admin.write_text(_token(config, "--user=demo", "--role=admin"))
            hub = ManagedProcess(
                "hub",
                _fleet("hub", "serve", f"--config={config}", "--log-level=warning"),
                root / "hub",
            )
            agents = {
                c.name: _agent(c, daemon.url(REPOSITORY), root, ports[c.name], hub_url)
                for c in clusters
            }
            try:
                prometheus.start()
                say(f"✔ Prometheus at {prometheus.url} scraping the agents")
                hub.start()
                wait_until(lambda: port_open(hub_port), timeout=60, what="the hub", processes=[hub])
                say(f"✔ hub at {hub_url} (admin token in {admin})")
                for agent in agents.values():
                    agent.start()
                say(f"✔ agents started: {', '.join(agents)}")
                yield DemoFleet(
                    root,
                    {c.name: c for c in clusters},
                    daemon,
                    agents,
                    ports,
                    prometheus,
                    revision,
                    hub,
                    hub_url,
                    admin,
                )
            finally:
                for agent in agents.values():
                    agent.stop()
                hub.stop()
                prometheus.stop()
