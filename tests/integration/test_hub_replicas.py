"""Two hub replicas on one PostgreSQL database: what one receives, the other serves."""

from __future__ import annotations

import json
from collections.abc import Iterator

import anyio
import httpx
import pytest

from agent.reporters import HubReporter
from fleet import sse
from fleet.report import HubCommand
from hub.config import HubConfig
from tests.hubserver import RunningHub, body_of, create_token, report, running_hub
from tests.pgserver import PostgresServer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def replicas(postgres: PostgresServer) -> Iterator[tuple[RunningHub, RunningHub]]:
    config = HubConfig.model_validate(
        {"database": postgres.create_schema(), "streamPoll": "200ms", "streamKeepalive": "1s"}
    )
    with running_hub(config) as first, running_hub(config) as second:
        yield first, second


def test_a_report_to_one_replica_is_listed_and_streamed_by_the_other(
    replicas: tuple[RunningHub, RunningHub],
) -> None:
    first, second = replicas
    database = first.config.database
    agent = create_token(database, "dev")
    reader = {"Authorization": f"Bearer {create_token(database, 'alice', role='read-only')}"}
    parser = sse.EventStreamParser()
    with httpx.stream("GET", f"{second.url}/api/v1/stream", headers=reader, timeout=10) as stream:
        lines = stream.iter_lines()
        kinds = []
        for line in lines:
            event = parser.feed(line)
            if event is None:
                continue
            kinds.append(event.event)
            if event.event == "ready":
                httpx.put(
                    f"{first.url}/api/v1/clusters/dev/report",
                    content=body_of(report("dev")),
                    headers={"Authorization": f"Bearer {agent}"},
                ).raise_for_status()
            if event.event == "cluster-updated":
                assert json.loads(event.data)["cluster"]["name"] == "dev"
                break
    assert kinds == ["ready", "cluster-updated"]
    listed = httpx.get(f"{second.url}/api/v1/clusters", headers=reader).json()["items"]
    assert [(item["name"], item["health"]) for item in listed] == [("dev", "Ready")]


@pytest.mark.anyio
async def test_reconcile_queued_on_one_replica_reaches_an_agent_streaming_from_the_other(
    replicas: tuple[RunningHub, RunningHub],
) -> None:
    first, second = replicas
    database = first.config.database
    admin = create_token(database, "alice", role="admin")
    token = create_token(database, "dev")
    received: list[HubCommand] = []

    async def on_command(command: HubCommand) -> None:
        received.append(command)

    async with HubReporter(
        second.url, token, "dev", on_command=on_command, retry_min_seconds=0.05
    ) as agent:
        with anyio.fail_after(10):
            while not agent.stream_connected:
                await anyio.sleep(0.05)
        queued = await anyio.to_thread.run_sync(
            lambda: httpx.post(
                f"{first.url}/api/v1/clusters/dev/reconcile",
                json={"unit": "flux-system/apps"},
                headers={"Authorization": f"Bearer {admin}"},
            )
        )
        assert queued.status_code == 202
        with anyio.fail_after(10):
            while not received:
                await anyio.sleep(0.05)
    assert received[0].unit == "flux-system/apps"
    assert received[0].id == queued.json()["command"]["id"]
