"""Run one agent: connect, serve metrics, reconcile until told to stop."""

from __future__ import annotations

import contextlib
import logging
import signal

import anyio

from agent.health import HealthServer
from agent.loop import Agent
from agent.reporters import GitStatusReporter, HubReporter
from agent.reporting import Reporting
from agent.settings import AgentSettings
from fleet import tools
from fleet.kube import KubeClient

log = logging.getLogger(__name__)


async def run(settings: AgentSettings) -> None:
    """Run the agent until SIGINT/SIGTERM; then stop cleanly. Raises ToolNotFound before
    connecting when kustomize or helm is missing."""
    settings = settings.model_copy(
        update={
            "kustomize_binary": tools.find(tools.KUSTOMIZE, settings.kustomize_binary),
            "helm_binary": tools.find(tools.HELM, settings.helm_binary),
        }
    )
    client = await KubeClient.from_kubeconfig(
        settings.kubeconfig, settings.context, max_concurrency=settings.apply_concurrency
    )
    agent = Agent(settings, client)
    try:
        await agent.preflight()
    except BaseException:
        with anyio.CancelScope(shield=True):
            await client.close()
        raise
    agent.metrics.count_requests_of(client)
    http: HealthServer | None = None
    if settings.metrics_address:
        host, _, port = settings.metrics_address.rpartition(":")
        http = HealthServer(
            host or "0.0.0.0", int(port), agent.metrics.scrape, agent.started.is_set
        )
        http.start()
    log.info(
        "agent for cluster %s following %s (%s), path %s",
        settings.cluster,
        settings.repo,
        settings.ref.describe(),
        settings.cluster_path,
    )
    try:
        async with contextlib.AsyncExitStack() as stack:
            reporting = await _reporting(agent, settings, stack)
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(_stop_on_signal, tasks.cancel_scope)
                if reporting is not None:
                    tasks.start_soon(reporting.run)
                await agent.run()
    finally:
        with anyio.CancelScope(shield=True):
            await client.close()
        if http is not None:
            http.stop()
        log.info("agent stopped")


async def _reporting(
    agent: Agent, settings: AgentSettings, stack: contextlib.AsyncExitStack
) -> Reporting | None:
    """The reporters the settings ask for, entered on ``stack``; None when there are none."""
    reporting = Reporting(
        agent, labels=settings.labels, heartbeat_seconds=settings.heartbeat_seconds
    )
    if settings.hub_url and settings.hub_token:
        hub = HubReporter(
            settings.hub_url,
            settings.hub_token,
            settings.cluster,
            heartbeat_seconds=settings.heartbeat_seconds,
            verify=str(settings.hub_ca_file) if settings.hub_ca_file else True,
            on_command=reporting.on_command,
        )
        reporting.add(await stack.enter_async_context(hub))
        log.info("reporting to hub %s", settings.hub_url)
    if settings.status_branch:
        status = GitStatusReporter(
            settings.repo,
            settings.cluster,
            settings.auth,
            branch=settings.status_branch,
            cache_dir=settings.agent_work_dir / "status",
        )
        reporting.add(await stack.enter_async_context(status))
        log.info("writing status to branch %s of %s", settings.status_branch, settings.repo)
    return reporting if reporting.reporters else None


async def _stop_on_signal(scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for received in signals:
            log.info("received %s, stopping", signal.Signals(received).name)
            scope.cancel()
            return
