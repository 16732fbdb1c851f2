"""An agent as a real process (``fleet agent run``), for tests where killing it matters
or where everything it emits (its log, reports, status branch) is under test."""

from __future__ import annotations

import sys
from pathlib import Path

from fleet.localkube.cluster import LocalCluster
from fleet.localkube.process import ManagedProcess


def agent_process(
    cluster: LocalCluster,
    repo_url: str,
    work: Path,
    namespace: str,
    *,
    name: str = "dev",
    interval: str = "2s",
    hub_url: str | None = None,
    hub_token_file: Path | None = None,
    status_branch: str | None = None,
) -> ManagedProcess:
    """The agent for ``clusters/<name>``, logging JSON at debug level to its log file."""
    args = [
        sys.executable,
        "-m",
        "fleet.cli.main",
        "agent",
        "run",
        f"--cluster={name}",
        f"--repo={repo_url}",
        f"--kubeconfig={cluster.kubeconfig_path}",
        f"--interval={interval}",
        f"--namespace={namespace}",
        f"--work-dir={work / 'work'}",
        "--metrics-address=",
        "--heartbeat=1s",
        "--log-format=json",
        "--log-level=debug",
    ]
    if hub_url and hub_token_file:
        args += [f"--hub-url={hub_url}", f"--hub-token-file={hub_token_file}"]
    if status_branch:
        args.append(f"--status-branch={status_branch}")
    return ManagedProcess(f"agent-{name}", args, work)
