"""Running a real agent in a test: in-process against a local cluster and a Git daemon."""

from __future__ import annotations

import contextlib
import datetime
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio

from agent.loop import Agent
from agent.settings import AgentSettings
from agent.units import ROOT_SOURCE, UnitKey
from fleet.api import unit as unit_api
from fleet.kube import KubeClient
from fleet.localkube.cluster import LocalCluster


@contextlib.asynccontextmanager
async def running_agent(
    cluster: LocalCluster,
    repo_url: str,
    work_dir: Path,
    *,
    name: str = "dev",
    **overrides: Any,
) -> AsyncIterator[Agent]:
    """An agent for ``clusters/<name>`` of the repository, in its own namespace."""
    defaults: dict[str, Any] = {
        "interval": datetime.timedelta(seconds=1),
        "namespace": f"fleet-{uuid.uuid4().hex[:6]}",
        "metrics_address": None,
    }
    settings = AgentSettings(
        cluster=name,
        repo=repo_url,
        kubeconfig=str(cluster.kubeconfig_path),
        work_dir=work_dir,
        **(defaults | overrides),
    )
    client = await KubeClient.from_kubeconfig(settings.kubeconfig)
    agent = Agent(settings, client)
    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(agent.run)
            with anyio.fail_after(60):
                await agent.started.wait()
            yield agent
            tasks.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await client.close()


async def eventually(check: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    """Await a (possibly async) check until it returns something truthy."""
    deadline = anyio.current_time() + timeout
    last: Any = None
    while True:
        last = check()
        if hasattr(last, "__await__"):
            last = await last
        if last:
            return last
        if anyio.current_time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        await anyio.sleep(0.1)


async def unit_status(
    client: KubeClient, agent: Agent, unit: str = unit_api.ROOT_UNIT
) -> dict[str, Any]:
    found = await client.get(unit_api.API_VERSION, unit_api.KIND, unit, agent.settings.namespace)
    return (found or {}).get("status") or {}


def ready_condition(status: dict[str, Any]) -> dict[str, Any]:
    return next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})


async def source_settled_on(
    agent: Agent, sha: str, *, rounds: int = 2, source: Any = None, timeout: float = 60
) -> None:
    """Wait until the agent fetched ``sha`` and then went round its loop ``rounds`` more
    fetches: whatever it would do with that revision, it had its chance to.

    A test that proves the agent did *nothing* waits for this instead of a fixed sleep,
    which passes whenever the agent is merely slow.
    """
    key = source if source is not None else ROOT_SOURCE

    def fetched_it() -> float | None:
        tracked = agent.sources.get(key)
        revision = tracked.revision if tracked else None
        if tracked and revision and revision.commit.startswith(sha) and tracked.fetched_at:
            return tracked.fetched_at
        return None

    seen = await eventually(fetched_it, timeout, what=f"the agent fetched {sha[:8]}")
    for _ in range(rounds):

        def fetched_again(since: float = seen) -> float | None:
            tracked = agent.sources.get(key)
            at = tracked.fetched_at if tracked else None
            return at if at is not None and at > since else None

        seen = await eventually(fetched_again, timeout, what="another fetch of the source")


async def reconciled_again(
    agent: Agent, key: UnitKey, *, times: int = 2, timeout: float = 60
) -> None:
    """Wait until the agent finished ``times`` more reconciles of the unit than it had now.

    The first of them may have begun before this call; the second began after the first
    ended, so it saw whatever had changed by then. A test that proves a reconcile did
    *nothing* waits for this instead of a fixed sleep.
    """
    labels = (key.kind, key.namespace, key.name)
    wanted = agent.metrics.reconcile_count(labels) + times

    def done() -> int | None:
        count = agent.metrics.reconcile_count(labels)
        return count if count >= wanted else None

    await eventually(done, timeout, what=f"{times} more reconciles of {key}")
