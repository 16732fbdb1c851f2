"""Bring up the demo fleet: clusters dev, staging and prod, a git:// server holding the
example fleet repository (``clusters/`` of this project), and an agent per cluster.

Every process dies with the command: Ctrl-C (or any failure) tears everything down.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from fleet.localkube import toolchain
from fleet.localkube.cluster import LocalCluster, running_clusters
from fleet.localkube.gitserver import GitDaemon, free_port, git_daemon, seed_repository
from fleet.localkube.process import ManagedProcess

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


@dataclasses.dataclass
class DemoFleet:
    """The running demo: what a person (or the walkthrough) needs to reach each part."""

    root: Path
    clusters: dict[str, LocalCluster]
    git: GitDaemon
    agents: dict[str, ManagedProcess]
    metrics_ports: dict[str, int]
    seeded_revision: str

    @property
    def repo_url(self) -> str:
        return self.git.url(REPOSITORY)

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"


def _agent(cluster: LocalCluster, repo_url: str, root: Path, metrics_port: int) -> ManagedProcess:
    args = [
        sys.executable,
        "-m",
        "fleet.cli.main",
        "agent",
        "run",
        f"--cluster={cluster.name}",
        f"--repo={repo_url}",
        f"--kubeconfig={cluster.kubeconfig_path}",
        "--interval=5s",
        f"--work-dir={root / 'agents'}",
        f"--metrics-address=127.0.0.1:{metrics_port}",
    ]
    return ManagedProcess(f"agent-{cluster.name}", args, root / "agents" / cluster.name)


@contextlib.contextmanager
def demo_fleet(
    root: Path, names: Sequence[str] = CLUSTERS, *, progress: bool = True
) -> Iterator[DemoFleet]:
    """Start the demo under ``root`` (wiped first) and stop all of it on exit."""
    say = print if progress else (lambda *_: None)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for tool in (toolchain.KUBERNETES, toolchain.ETCD, toolchain.KWOK, toolchain.KUSTOMIZE):
        toolchain.build(tool)

    say(f"► starting clusters {', '.join(names)}")
    started = time.monotonic()
    with running_clusters(names, root / "clusters", progress=progress) as clusters:
        say(f"✔ clusters ready in {time.monotonic() - started:.1f}s")
        served = root / "git"
        served.mkdir()
        revision = seed_repository(
            example_repository(), served / REPOSITORY, message="Example fleet repository"
        )
        with git_daemon(served, root / "git-daemon") as daemon:
            say(f"✔ fleet repository at {daemon.url(REPOSITORY)} (main@{revision[:7]})")
            ports = {c.name: free_port() for c in clusters}
            agents = {
                c.name: _agent(c, daemon.url(REPOSITORY), root, ports[c.name]) for c in clusters
            }
            try:
                for agent in agents.values():
                    agent.start()
                say(f"✔ agents started: {', '.join(agents)}")
                yield DemoFleet(
                    root,
                    {c.name: c for c in clusters},
                    daemon,
                    agents,
                    ports,
                    revision,
                )
            finally:
                for agent in agents.values():
                    agent.stop()
