"""Notifications from a real hub to a receiver on loopback: Slack format, filters, limits."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import httpx
import pytest

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

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def slack() -> Iterator[Receiver]:
    with receiver() as running:
        yield running


@pytest.fixture
def pager() -> Iterator[Receiver]:
    with receiver() as running:
        yield running


@pytest.fixture
def hub(database: str, slack: Receiver, pager: Receiver) -> Iterator[RunningHub]:
    config = HubConfig.model_validate(
        {
            "database": database,
            "staleAfter": "500ms",
            "notifications": [
                {
                    "name": "prod-slack",
                    "type": "slack",
                    "url": slack.url,
                    "severity": "warning",
                    "labels": {"env": "prod"},
                    "excludeReasons": ["ClusterStale"],
                    "dedupeWindow": "10m",
                    "rateLimit": {"count": 2, "per": "10m"},
                },
                {
                    "name": "pager",
                    "type": "webhook",
                    "url": pager.url,
                    "reasons": ["ClusterStale"],
                },
            ],
        }
    )
    with running_hub(config) as running:
        yield running


def send(hub: RunningHub, token: str, cluster: str, message: str, at: datetime.datetime) -> None:
    failing = UnitReport(
        namespace="flux-system",
        name="apps",
        ready="False",
        reason="ReconcileFailed",
        message=message,
    )
    sent = report(cluster, units=[failing], events=[event("ReconcileFailed", message, at=at)])
    httpx.put(
        f"{hub.url}/api/v1/clusters/{cluster}/report",
        content=body_of(sent),
        headers={"Authorization": f"Bearer {token}"},
    ).raise_for_status()


def metrics(hub: RunningHub) -> str:
    token = create_token(hub.config.database, "ops", role="read-only")
    return httpx.get(f"{hub.url}/metrics", headers={"Authorization": f"Bearer {token}"}).text


def sample(text: str, name: str) -> float:
    """The value of an unlabelled series in a Prometheus text exposition."""
    for line in text.splitlines():
        series, _, value = line.partition(" ")
        if series == name:
            return float(value)
    raise AssertionError(f"{name} not in /metrics")


def test_failure_reaches_slack_in_its_format_once_and_rate_limited(
    hub: RunningHub, slack: Receiver
) -> None:
    prod = create_token(hub.config.database, "prod-eu", labels={"env": "prod"})
    dev = create_token(hub.config.database, "dev-1", labels={"env": "dev"})
    start = datetime.datetime.now(datetime.UTC)

    send(hub, dev, "dev-1", "apply failed: quota", start)
    send(hub, prod, "prod-eu", "apply failed: quota", start)
    eventually(lambda: slack.bodies, 10, "the first Slack message")
    # The same failure again (a new event with the same message): a duplicate.
    send(hub, prod, "prod-eu", "apply failed: quota", start + datetime.timedelta(seconds=1))
    # A flapping unit: new messages each time; at most 2 per 10m get through.
    for n in range(2, 6):
        send(
            hub,
            prod,
            "prod-eu",
            f"apply failed: attempt {n}",
            start + datetime.timedelta(seconds=n),
        )

    held_back = 'fleet_hub_notifications_total{result="rate_limited",target="prod-slack"} 3.0'
    eventually(lambda: held_back in metrics(hub), 10, "the rate limit to hold back 3")
    assert len(slack.bodies) == 2
    first = slack.bodies[0]
    assert first["text"].startswith(":rotating_light: ReconcileFailed on prod-eu/flux-system/apps")
    attachment = first["attachments"][0]
    assert attachment["color"] == "#e01e5a"
    assert attachment["text"] == "apply failed: quota"
    assert {"title": "Cluster", "value": "prod-eu", "short": True} in attachment["fields"]
    assert {"title": "Labels", "value": "env=prod", "short": False} in attachment["fields"]
    assert "attempt 2" in slack.bodies[1]["attachments"][0]["text"]
    text = metrics(hub)
    assert 'fleet_hub_notifications_total{result="sent",target="prod-slack"} 2.0' in text
    assert 'fleet_hub_notifications_total{result="duplicate",target="prod-slack"} 1.0' in text


def test_stale_cluster_is_announced_once_to_the_targets_that_want_it(
    hub: RunningHub, slack: Receiver, pager: Receiver
) -> None:
    token = create_token(hub.config.database, "prod-us", labels={"env": "prod"})
    httpx.put(
        f"{hub.url}/api/v1/clusters/prod-us/report",
        content=body_of(report("prod-us")),
        headers={"Authorization": f"Bearer {token}"},
    ).raise_for_status()

    eventually(lambda: pager.bodies, 10, "the ClusterStale alert")

    alert = pager.bodies[0]
    assert alert["kind"] == "Alert" and alert["reason"] == "ClusterStale"
    assert alert["cluster"] == "prod-us" and alert["severity"] == "error"
    assert alert["labels"] == {"env": "prod"}
    assert alert["message"].startswith("no report for")
    assert slack.bodies == [], "prod-slack excludes ClusterStale"
    # Several sweeps later, still one alert: the stale flag is set once.
    seen = sample(metrics(hub), "fleet_hub_sweeps_total")
    eventually(
        lambda: sample(metrics(hub), "fleet_hub_sweeps_total") >= seen + 3, 10, "3 more sweeps"
    )
    assert sample(metrics(hub), "fleet_hub_flagged_stale_total") == 1
    assert len(pager.bodies) == 1
