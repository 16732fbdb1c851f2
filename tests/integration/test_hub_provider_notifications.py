"""A real hub whose hub.yaml names Flux provider types (msteams, pagerduty, generic-hmac,
github): a failing unit and the promotion waves' events reach a recording receiver on
loopback in each service's format, through the same library the agent will use."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fleet.report import UnitReport
from hub.config import HubConfig
from tests.gitservers import git_daemon, served_repo
from tests.hubserver import RunningHub, body_of, create_token, event, report, running_hub
from tests.integration.test_promotion_hub import FLEET, WAVE, commit_fleet
from tests.notifyreceiver import Recorded, RecordingReceiver, recording_receiver
from tests.support import eventually

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def receiver() -> Iterator[RecordingReceiver]:
    with recording_receiver() as running:
        yield running


def put_report(hub: RunningHub, token: str, cluster: str, **fields: Any) -> None:
    httpx.put(
        f"{hub.url}/api/v1/clusters/{cluster}/report",
        content=body_of(report(cluster, **fields)),
        headers={"Authorization": f"Bearer {token}"},
    ).raise_for_status()


def wait_for(receiver: RecordingReceiver, path: str, what: str) -> Recorded:
    return eventually(lambda: receiver.to(path) and receiver.to(path)[0], 15, what)


def test_a_failure_reaches_teams_pagerduty_and_a_signed_webhook(
    database: str, receiver: RecordingReceiver
) -> None:
    config = HubConfig.model_validate(
        {
            "database": database,
            "notifications": [
                {"name": "teams", "type": "msteams", "url": f"{receiver.url}/teams"},
                {
                    "name": "oncall",
                    "type": "pagerduty",
                    "url": receiver.url,
                    "channel": "R0UTING",
                    "severity": "error",
                    "summary": "fleet prod",
                },
                {
                    "name": "signed",
                    "type": "generic-hmac",
                    "url": f"{receiver.url}/hmac",
                    "token": "shared-key",
                },
            ],
        }
    )
    with running_hub(config) as hub:
        token = create_token(database, "prod-eu", labels={"env": "prod"})
        failing = UnitReport(
            namespace="flux-system", name="apps", ready="False", message="apply failed: quota"
        )
        put_report(
            hub,
            token,
            "prod-eu",
            units=[failing],
            events=[event("ReconcileFailed", "apply failed: quota")],
        )

        teams = wait_for(receiver, "/teams", "the Teams card").json()
        pager = wait_for(receiver, "/v2/enqueue", "the PagerDuty event").json()
        signed = wait_for(receiver, "/hmac", "the signed webhook")

    card = teams["attachments"][0]["content"]
    assert teams["type"] == "message" and card["type"] == "AdaptiveCard"
    title, message, facts = card["body"][0]["items"]
    assert title["text"] == "kustomization/apps.flux-system"
    assert message == {
        "type": "TextBlock",
        "text": "apply failed: quota",
        "color": "attention",
        "wrap": True,
    }
    assert {"title": "cluster", "value": "prod-eu"} in facts["facts"]
    assert {"title": "labels", "value": "env=prod"} in facts["facts"]

    uid = str(uuid.uuid5(uuid.NAMESPACE_URL, "fleet:prod-eu/Kustomization/flux-system/apps"))
    assert pager["routing_key"] == "R0UTING"
    assert (pager["event_action"], pager["dedup_key"]) == ("trigger", uid)
    assert pager["payload"]["summary"] == "reconcile failed: kustomization/apps"
    assert pager["payload"]["source"] == "Flux fleet-hub"
    assert pager["payload"]["custom_details"]["metadata"]["summary"] == "fleet prod"

    expected = hmac.new(b"shared-key", signed.body, hashlib.sha256).hexdigest()
    assert signed.headers["x-signature"] == f"sha256={expected}"
    assert signed.headers["gotk-component"] == "fleet-hub"
    body = signed.json()
    assert body["involvedObject"]["kind"] == "Kustomization"
    assert (body["severity"], body["reason"]) == ("error", "ReconcileFailed")


def test_promotion_events_reach_teams_pagerduty_and_the_commit_status(
    tmp_path: Path, database: str, receiver: RecordingReceiver
) -> None:
    served = tmp_path / "served"
    served.mkdir()
    repo = served_repo(served, "fleet.git")
    receiver.answer("/api/v3/repos/acme/fleet/commits/", body=[])
    with git_daemon(served) as daemon:
        config = HubConfig.model_validate(
            {
                "database": database,
                "staleAfter": "30s",
                "notifications": [
                    {
                        "name": "teams",
                        "type": "msteams",
                        "url": f"{receiver.url}/teams",
                        "reasons": ["PromotionStarted"],
                    },
                    {
                        "name": "approvers",
                        "type": "pagerduty",
                        "url": receiver.url,
                        "channel": "APPROVERS",
                        "reasons": ["ApprovalRequired"],
                    },
                    {
                        "name": "status",
                        "type": "github",
                        "url": f"{receiver.url}/acme/fleet",
                        "token": "ghp_x",
                        "reasons": ["PromotionStarted"],
                    },
                ],
                "promotion": {
                    "repo": daemon.url("fleet.git"),
                    "interval": "300ms",
                    "cacheDir": str(tmp_path / "hub-cache"),
                },
            }
        )
        with running_hub(config) as hub:
            first = commit_fleet(repo, FLEET, "first")
            tokens = {
                name: create_token(database, name, labels={"env": name})
                for name in ("dev", "staging")
            }
            eventually(
                lambda: repo.git("ls-remote", "origin", f"{WAVE}dev").startswith(first),
                20,
                "dev promoted",
            )
            put_report(hub, tokens["dev"], "dev", revision_sha=first)
            eventually(
                lambda: repo.git("ls-remote", "origin", f"{WAVE}staging").startswith(first),
                20,
                "staging promoted",
            )
            put_report(hub, tokens["staging"], "staging", revision_sha=first)
            approval = wait_for(receiver, "/v2/enqueue", "the approval request").json()
            eventually(lambda: len(receiver.to("/teams")) >= 2, 15, "two promotion cards")
            eventually(
                lambda: len(receiver.to("/api/v3/repos/acme/fleet/statuses/")) >= 2,
                15,
                "two commit statuses",
            )

    titles = [
        r.json()["attachments"][0]["content"]["body"][0]["items"][0]["text"]
        for r in receiver.to("/teams")
    ]
    assert titles == ["wave/dev.", "wave/staging."]
    assert approval["routing_key"] == "APPROVERS"
    assert approval["event_action"] == "trigger"
    assert approval["payload"]["summary"] == "approval required: wave/prod"
    assert approval["payload"]["group"] == "Wave"
    assert "fleet promote approve prod" in approval["payload"]["custom_details"]["message"]
    statuses = receiver.to("/api/v3/repos/acme/fleet/statuses/")
    assert {s.path for s in statuses} == {f"/api/v3/repos/acme/fleet/statuses/{first}"}
    assert statuses[0].headers["authorization"] == "Bearer ghp_x"
    contexts = sorted(s.json()["context"] for s in statuses)
    assert [c.rsplit("/", 1)[0] for c in contexts] == ["wave/dev", "wave/staging"]
    assert {s.json()["state"] for s in statuses} == {"success"}
    assert statuses[0].json()["description"] == "promotion started"
