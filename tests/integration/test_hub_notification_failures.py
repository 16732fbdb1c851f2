"""Notification targets that fail, from a real hub to real loopback endpoints: one that
answers 500, one whose port refuses connections, one that accepts and never answers.

Each failure is counted and logged for its own target; none stops the hub, the targets
after it, or the alerts after it.
"""

from __future__ import annotations

import datetime
import socket
from collections.abc import Iterator

import httpx
import pytest

from fleet.localkube.gitserver import HOST, free_port
from fleet.report import UnitReport
from hub.config import HubConfig
from tests.hubserver import (
    Receiver,
    RunningHub,
    body_of,
    create_token,
    event,
    receiver,
    report,
    running_hub,
)
from tests.support import eventually

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def hung_url() -> Iterator[str]:
    """A listening socket nobody reads from: connections open, requests never answered."""
    listener = socket.create_server((HOST, 0))
    listener.listen(16)
    try:
        yield f"http://{HOST}:{listener.getsockname()[1]}/hook"
    finally:
        listener.close()


@pytest.fixture
def broken() -> Iterator[Receiver]:
    with receiver() as running:
        running.status = 500
        yield running


@pytest.fixture
def healthy() -> Iterator[Receiver]:
    with receiver() as running:
        yield running


@pytest.fixture
def hub(database: str, broken: Receiver, healthy: Receiver, hung_url: str) -> Iterator[RunningHub]:
    # Each target has its own delivery queue: a failing or hung one delays no other.
    targets = [
        ("answers-500", broken.url),
        ("refused", f"http://{HOST}:{free_port()}/hook"),
        ("hung", hung_url),
        ("healthy", healthy.url),
    ]
    config = HubConfig.model_validate(
        {
            "database": database,
            "notifications": [
                {"name": name, "type": "webhook", "url": url, "timeout": "1s"}
                for name, url in targets
            ],
        }
    )
    with running_hub(config) as running:
        yield running


def send_failure(hub: RunningHub, token: str, message: str, at: datetime.datetime) -> None:
    failing = UnitReport(
        namespace="flux-system", name="apps", ready="False", reason="ReconcileFailed"
    )
    sent = report("prod-eu", units=[failing], events=[event("ReconcileFailed", message, at=at)])
    httpx.put(
        f"{hub.url}/api/v1/clusters/prod-eu/report",
        content=body_of(sent),
        headers={"Authorization": f"Bearer {token}"},
    ).raise_for_status()


def counted(hub: RunningHub, target: str, result: str) -> float:
    token = create_token(hub.config.database, "ops", role="read-only")
    text = httpx.get(f"{hub.url}/metrics", headers={"Authorization": f"Bearer {token}"}).text
    line = f'fleet_hub_notifications_total{{result="{result}",target="{target}"}} '
    found = [row for row in text.splitlines() if row.startswith(line)]
    return float(found[0].removeprefix(line)) if found else 0.0


def test_a_failing_target_is_counted_and_stops_neither_the_others_nor_later_alerts(
    hub: RunningHub, broken: Receiver, healthy: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    token = create_token(hub.config.database, "prod-eu", labels={"env": "prod"})
    start = datetime.datetime.now(datetime.UTC)

    send_failure(hub, token, "apply failed: quota", start)
    eventually(lambda: healthy.bodies, 60, "the alert at the healthy target")
    assert [b["message"] for b in healthy.bodies] == ["apply failed: quota"]
    # The failing targets are retried within their timeout, then counted as failed once.
    for target in ("answers-500", "refused", "hung"):
        eventually(lambda t=target: counted(hub, t, "failed") == 1.0, 60, f"{target} failed")
        assert counted(hub, target, "sent") == 0.0, target
    assert broken.bodies and broken.bodies[0]["message"] == "apply failed: quota"
    assert counted(hub, "healthy", "sent") == 1.0
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for target in ("answers-500", "refused", "hung"):
        assert f"notification to {target} failed" in logged, target

    # The next alert goes out as well: a hung receiver wedged nothing.
    send_failure(hub, token, "apply failed: disk", start + datetime.timedelta(seconds=1))
    eventually(lambda: len(healthy.bodies) == 2, 60, "the second alert at the healthy target")
    assert healthy.bodies[1]["message"] == "apply failed: disk"
    eventually(lambda: counted(hub, "hung", "failed") == 2.0, 60, "the second hung delivery")
    assert httpx.get(f"{hub.url}/healthz").status_code == 200
