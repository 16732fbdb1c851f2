"""The agent's HubReporter against a real hub: delivery, heartbeats, restarts, commands."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import httpx
import pytest

from agent.reporters import HubReporter
from fleet.report import HubCommand
from hub.config import HubConfig
from tests.hubserver import RunningHub, create_token, report, running_hub

pytestmark = [pytest.mark.timeout(60), pytest.mark.anyio]


@pytest.fixture
def hub(database: str) -> Iterator[RunningHub]:
    config = HubConfig.model_validate(
        {"database": database, "staleAfter": "30s", "streamKeepalive": "1s", "streamPoll": "1s"}
    )
    with running_hub(config) as running:
        yield running


def listed(hub: RunningHub, token: str, cluster: str) -> dict[str, object] | None:
    """The cluster's list entry once it has reported, else None."""
    response = httpx.get(
        f"{hub.url}/api/v1/clusters", headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    if response.status_code != 200:
        return None
    items = {item["name"]: item for item in response.json()["items"]}
    entry = items.get(cluster)
    return entry if entry and entry["lastReportAt"] else None


def reports_counted(hub: RunningHub, token: str, result: str) -> float:
    """The hub's ``fleet_hub_reports_total`` for ``result`` (0 before the first)."""
    response = httpx.get(
        f"{hub.url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=5
    )
    response.raise_for_status()
    series = f'fleet_hub_reports_total{{result="{result}"}}'
    for line in response.text.splitlines():
        name, _, value = line.partition(" ")
        if name == series:
            return float(value)
    return 0.0


async def wait_until(check: object, timeout: float, what: str) -> None:
    assert callable(check)
    with anyio.fail_after(timeout):
        while not await anyio.to_thread.run_sync(check):
            await anyio.sleep(0.05)


def reporter(hub: RunningHub, cluster: str, **options: object) -> HubReporter:
    token = create_token(hub.config.database, cluster)
    defaults: dict[str, object] = {
        "heartbeat_seconds": 0.3,
        "retry_min_seconds": 0.05,
        "retry_max_seconds": 0.3,
        "stream_idle_seconds": 5.0,
    }
    return HubReporter(hub.url, token, cluster, **{**defaults, **options})  # type: ignore[arg-type]


async def test_reporter_delivers_on_change_and_heartbeats_in_between(hub: RunningHub) -> None:
    admin = create_token(hub.config.database, "alice", role="admin")
    async with reporter(hub, "dev", receive_commands=False) as agent:
        agent.submit(report("dev"))
        await wait_until(lambda: listed(hub, admin, "dev") is not None, 10, "first delivery")
        first_seen = listed(hub, admin, "dev")
        assert first_seen is not None and first_seen["health"] == "Ready"

        # Nothing new was submitted: further deliveries are heartbeats, which the hub
        # stores as unchanged reports that still move lastReportAt.
        await wait_until(lambda: agent.deliveries >= 3, 10, "two heartbeats")
        await wait_until(
            lambda: reports_counted(hub, admin, "unchanged") >= 2, 10, "the hub to count them"
        )

        def moved_on() -> bool:
            later = listed(hub, admin, "dev")
            return later is not None and str(later["lastReportAt"]) > str(
                first_seen["lastReportAt"]
            )

        await wait_until(moved_on, 10, "lastReportAt to advance")
        assert reports_counted(hub, admin, "changed") == 1, "one submit, one changed report"
        assert agent.failures == 0


async def test_reporter_survives_hub_restart_and_delivers_the_latest(hub: RunningHub) -> None:
    admin = create_token(hub.config.database, "alice", role="admin")
    commands: list[HubCommand] = []

    async def on_command(command: HubCommand) -> None:
        commands.append(command)

    async with reporter(hub, "dev", on_command=on_command) as agent:
        agent.submit(report("dev", revision_sha="a" * 40))
        await wait_until(lambda: listed(hub, admin, "dev") is not None, 10, "first delivery")
        await wait_until(lambda: agent.stream_connected, 10, "command stream")

        await anyio.to_thread.run_sync(hub.stop)
        agent.submit(report("dev", revision_sha="b" * 40))
        agent.submit(report("dev", revision_sha="c" * 40))
        await wait_until(lambda: agent.failures >= 2, 10, "failed deliveries while down")
        await anyio.to_thread.run_sync(hub.start)

        def caught_up() -> bool:
            cluster = listed(hub, admin, "dev")
            return cluster is not None and cluster["revision"] == f"main@sha1:{'c' * 40}"

        await wait_until(caught_up, 10, "the latest report after the restart")
        await wait_until(lambda: agent.stream_connected, 10, "command stream reconnected")
        queued = await anyio.to_thread.run_sync(
            lambda: httpx.post(
                f"{hub.url}/api/v1/clusters/dev/reconcile",
                json={"source": True},
                headers={"Authorization": f"Bearer {admin}"},
            )
        )
        assert queued.status_code == 202
        await wait_until(lambda: len(commands) == 1, 10, "the reconcile command")
    assert commands[0].command == "reconcile" and commands[0].source is True
    assert commands[0].reason == "requested by alice"
    assert agent.failures == 0


async def test_commands_queued_while_the_stream_is_down_arrive_after_reconnect(
    hub: RunningHub,
) -> None:
    admin = create_token(hub.config.database, "alice", role="admin")
    async with reporter(hub, "dev") as agent:
        agent.submit(report("dev"))
        await wait_until(lambda: agent.stream_connected, 10, "command stream")
        await anyio.to_thread.run_sync(hub.stop)
        await wait_until(lambda: not agent.stream_connected, 10, "stream to notice")
        await anyio.to_thread.run_sync(hub.start)
        # Queued before the agent reconnects: Last-Event-ID makes the hub replay it.
        await anyio.to_thread.run_sync(
            lambda: httpx.post(
                f"{hub.url}/api/v1/clusters/dev/reconcile",
                json={"unit": "flux-system/apps", "source": False},
                headers={"Authorization": f"Bearer {admin}"},
            ).raise_for_status()
        )
        with anyio.fail_after(10):
            async for command in agent.commands():
                assert command.unit == "flux-system/apps" and command.source is False
                break


async def test_rejected_report_is_not_retried_in_a_loop(hub: RunningHub) -> None:
    admin = create_token(hub.config.database, "alice", role="admin")
    async with reporter(hub, "dev", receive_commands=False, heartbeat_seconds=30) as agent:
        bad = report("dev")
        bad.source.revision = "not-a-flux-revision"  # bypasses validation, as a buggy agent might
        agent.submit(bad)
        await wait_until(lambda: agent.last_error is not None, 10, "the rejection")
        assert agent.deliveries == 0
        assert "422" in (agent.last_error or "")
        assert agent.failures == 0, "a rejection is not an outage"
        # The delivery loop is sequential: once the next change is delivered, every
        # attempt at the rejected one has reached the hub. A loop would show up as more.
        agent.submit(report("dev"))
        await wait_until(lambda: agent.deliveries == 1, 10, "the next change")
        assert reports_counted(hub, admin, "rejected") == 1
        assert reports_counted(hub, admin, "changed") == 1
        assert agent.failures == 0 and agent.last_error is None
