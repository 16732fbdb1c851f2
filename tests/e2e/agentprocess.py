"""An agent as a real process (``fleet agent run``), for tests where killing it matters
or where everything it emits (its log, reports, status branch) is under test."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from fleet.localkube.cluster import LocalCluster
from fleet.localkube.process import ManagedProcess
from tests.hubserver import RunningHub, create_token


def agent_process(
    cluster: LocalCluster,
    repo_url: str,
    work: Path,
    namespace: str,
    *,
    name: str = "dev",
    interval: str = "2s",
    ref: str | None = None,
    heartbeat: str | None = "1s",
    labels: Mapping[str, str] | None = None,
    hub_url: str | None = None,
    hub_token_file: Path | None = None,
    status_branch: str | None = None,
    work_dir: Path | None = None,
    debug_log: bool = True,
    metrics_address: str = "",
) -> ManagedProcess:
    """The agent for ``clusters/<name>``, its process files in ``work``; by default it
    checks out into ``work/work`` and logs JSON at debug level to its log file."""
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
        f"--work-dir={work_dir or work / 'work'}",
        f"--metrics-address={metrics_address}",
    ]
    if ref:
        args.append(f"--ref={ref}")
    if heartbeat:
        args.append(f"--heartbeat={heartbeat}")
    if debug_log:
        args += ["--log-format=json", "--log-level=debug"]
    if hub_url and hub_token_file:
        args += [f"--hub-url={hub_url}", f"--hub-token-file={hub_token_file}"]
    if status_branch:
        args.append(f"--status-branch={status_branch}")
    args += [f"--label={key}={value}" for key, value in (labels or {}).items()]
    return ManagedProcess(f"agent-{name}", args, work)


def hub_agent(
    hub: RunningHub,
    cluster: LocalCluster,
    repo_url: str,
    tmp_path: Path,
    namespace: str,
    *,
    status_branch: str | None = None,
) -> ManagedProcess:
    """The dev agent (not yet started) in ``tmp_path/agent``, reporting to the hub with a
    cluster token of its own in ``tmp_path/dev.token``."""
    token_file = tmp_path / "dev.token"
    token_file.write_text(create_token(hub.config.database, "dev"))
    return agent_process(
        cluster,
        repo_url,
        tmp_path / "agent",
        namespace,
        hub_url=hub.url,
        hub_token_file=token_file,
        status_branch=status_branch,
    )


@contextlib.contextmanager
def hub_agents(
    clusters: Mapping[str, LocalCluster],
    names: Sequence[str],
    repo_url: str,
    hub_url: str,
    database: str,
    tmp_path: Path,
    namespace: str,
    *,
    ref_prefix: str | None = None,
    heartbeat: str | None = None,
    status_branch: str | None = None,
    metrics_addresses: Mapping[str, str] | None = None,
) -> Iterator[dict[str, ManagedProcess]]:
    """One started agent process per cluster, each with its own hub token and the label
    ``env=<name>`` that waves select on, fetching only every 10 minutes so that whatever
    reaches them comes from the hub; all stopped on exit. ``metrics_addresses`` turns on
    the metrics endpoint of the agents it names."""
    agents: dict[str, ManagedProcess] = {}
    started: list[ManagedProcess] = []
    try:
        for name in names:
            token_file = tmp_path / f"{name}.token"
            token_file.write_text(create_token(database, name, labels={"env": name}))
            agents[name] = agent_process(
                clusters[name],
                repo_url,
                tmp_path / "agents" / name,
                namespace,
                name=name,
                interval="10m",
                ref=f"{ref_prefix}{name}" if ref_prefix else None,
                heartbeat=heartbeat,
                labels={"env": name},
                hub_url=hub_url,
                hub_token_file=token_file,
                status_branch=status_branch,
                work_dir=tmp_path / "agents",
                debug_log=False,
                metrics_address=(metrics_addresses or {}).get(name, ""),
            )
            agents[name].start()
            started.append(agents[name])
        yield agents
    finally:
        for agent in started:
            agent.stop()
