"""Run one agent: connect, serve metrics, reconcile until told to stop."""

from __future__ import annotations

import logging
import signal

import anyio
from prometheus_client import start_http_server

from agent.loop import Agent
from agent.settings import AgentSettings
from fleet.kube import KubeClient

log = logging.getLogger(__name__)


async def run(settings: AgentSettings) -> None:
    """Run the agent until SIGINT/SIGTERM; then stop cleanly."""
    client = await KubeClient.from_kubeconfig(
        settings.kubeconfig, settings.context, max_concurrency=settings.apply_concurrency
    )
    agent = Agent(settings, client)
    agent.metrics.count_requests_of(client)
    if settings.metrics_address:
        host, _, port = settings.metrics_address.rpartition(":")
        start_http_server(int(port), host or "0.0.0.0", registry=agent.metrics.registry)
    log.info(
        "agent for cluster %s following %s (%s), path %s",
        settings.cluster,
        settings.repo,
        settings.ref.describe(),
        settings.cluster_path,
    )
    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_stop_on_signal, tasks.cancel_scope)
            await agent.run()
    finally:
        with anyio.CancelScope(shield=True):
            await client.close()
        log.info("agent stopped")


async def _stop_on_signal(scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for received in signals:
            log.info("received %s, stopping", signal.Signals(received).name)
            scope.cancel()
            return
