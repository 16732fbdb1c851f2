"""Push webhooks into a real hub: signatures, replay protection, commands to the followers."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from fleet import sse
from hub.config import HubConfig
from hub.webhooks import signature_of
from tests.hubserver import RunningHub, body_of, create_token, report, running_hub

pytestmark = pytest.mark.timeout(60)

GITHUB_SECRET = "gh-secret"
GITLAB_TOKEN = "gl-token"
GENERIC_SECRET = "generic-secret"
REPO = "https://git.example.com/org/fleet.git"


@dataclass
class WebhookHub:
    """A hub with four clusters that follow different refs and repositories."""

    hub: RunningHub
    tokens: dict[str, str]

    @property
    def url(self) -> str:
        return self.hub.url


@pytest.fixture
def hub(database: str) -> Iterator[WebhookHub]:
    config = HubConfig.model_validate(
        {
            "database": database,
            "streamKeepalive": "300ms",
            "webhooks": {
                "github": {"secret": GITHUB_SECRET},
                "gitlab": {"token": GITLAB_TOKEN},
                "generic": {"secret": GENERIC_SECRET},
            },
        }
    )
    with running_hub(config) as running:
        tokens = {
            name: create_token(database, name)
            for name in ("main-follower", "other-branch", "other-repo", "tag-follower")
        }
        sources = {
            "main-follower": ("refs/heads/main", "git@git.example.com:org/fleet.git"),
            "other-branch": ("refs/heads/release", REPO),
            "other-repo": ("refs/heads/main", "https://git.example.com/org/other.git"),
            "tag-follower": ("semver '^1.0'", REPO),
        }
        for name, (ref, url) in sources.items():
            httpx.put(
                f"{running.url}/api/v1/clusters/{name}/report",
                content=body_of(report(name, ref=ref, url=url)),
                headers={"Authorization": f"Bearer {tokens[name]}"},
            ).raise_for_status()
        yield WebhookHub(running, tokens)


def queued_commands(hub: WebhookHub, cluster: str) -> list[dict[str, object]]:
    """Every command queued for ``cluster``, read from its command stream from the start."""
    token = hub.tokens[cluster]
    parser = sse.EventStreamParser()
    commands: list[dict[str, object]] = []
    with httpx.stream(
        "GET",
        f"{hub.url}/api/v1/clusters/{cluster}/commands?after=0",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ) as stream:
        for line in stream.iter_lines():
            event = parser.feed(line)
            if event is None:
                if line.startswith(":"):
                    return commands  # the first keepalive: everything queued was sent
                continue
            if event.event == "command":
                commands.append(json.loads(event.data))
    return commands


def github_push(ref: str = "refs/heads/main") -> bytes:
    return json.dumps(
        {
            "ref": ref,
            "after": "a" * 40,
            "repository": {
                "clone_url": REPO,
                "ssh_url": "git@git.example.com:org/fleet.git",
                "html_url": "https://git.example.com/org/fleet",
            },
        }
    ).encode()


def post_github(
    hub: WebhookHub, body: bytes, signature: str | None, event: str = "push"
) -> httpx.Response:
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": str(uuid.uuid4())}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return httpx.post(f"{hub.url}/api/v1/webhooks/github", content=body, headers=headers)


def metrics(hub: WebhookHub) -> str:
    token = create_token(hub.hub.config.database, "metrics-reader", role="read-only")
    return httpx.get(f"{hub.url}/metrics", headers={"Authorization": f"Bearer {token}"}).text


def test_signed_github_push_queues_reconcile_on_clusters_following_that_ref(
    hub: WebhookHub,
) -> None:
    body = github_push()

    accepted = post_github(hub, body, signature_of(GITHUB_SECRET, body))

    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["queued"] == ["main-follower"]
    commands = queued_commands(hub, "main-follower")
    assert len(commands) == 1
    assert commands[0]["command"] == "reconcile" and commands[0]["source"] is True
    assert commands[0]["reason"] == "github push refs/heads/main"
    assert queued_commands(hub, "other-branch") == []
    assert queued_commands(hub, "other-repo") == []


def test_tag_push_reaches_clusters_following_a_semver_range(hub: WebhookHub) -> None:
    body = github_push("refs/tags/v1.4.0")

    accepted = post_github(hub, body, signature_of(GITHUB_SECRET, body))

    assert accepted.json()["queued"] == ["tag-follower"]


def test_bad_or_missing_github_signature_is_refused_and_counted(hub: WebhookHub) -> None:
    body = github_push()

    forged = post_github(hub, body, signature_of("wrong-secret", body))
    unsigned = post_github(hub, body, None)
    tampered = post_github(hub, body + b" ", signature_of(GITHUB_SECRET, body))

    assert (forged.status_code, unsigned.status_code, tampered.status_code) == (401, 401, 401)
    assert queued_commands(hub, "main-follower") == []
    text = metrics(hub)
    assert 'fleet_hub_webhooks_total{provider="github",result="bad_signature"} 2.0' in text
    assert 'fleet_hub_webhooks_total{provider="github",result="unsigned"} 1.0' in text


def test_github_ping_is_accepted_and_ignored(hub: WebhookHub) -> None:
    body = b'{"zen": "Keep it logically awesome."}'

    answered = post_github(hub, body, signature_of(GITHUB_SECRET, body), event="ping")

    assert answered.status_code == 202
    assert answered.json()["ignored"] == "not a push event"


def test_gitlab_push_with_the_right_token_only(hub: WebhookHub) -> None:
    body = json.dumps(
        {
            "object_kind": "push",
            "ref": "refs/heads/main",
            "project": {"git_http_url": REPO, "git_ssh_url": "git@git.example.com:org/fleet.git"},
        }
    ).encode()
    url = f"{hub.url}/api/v1/webhooks/gitlab"

    wrong = httpx.post(
        url, content=body, headers={"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "nope"}
    )
    right = httpx.post(
        url, content=body, headers={"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": GITLAB_TOKEN}
    )

    assert wrong.status_code == 401
    assert right.status_code == 202
    assert right.json()["queued"] == ["main-follower"]


def generic_headers(
    body: bytes, timestamp: float, delivery: str, secret: str = GENERIC_SECRET
) -> dict[str, str]:
    stamp = str(int(timestamp))
    return {
        "X-Fleet-Timestamp": stamp,
        "X-Fleet-Signature": signature_of(secret, stamp.encode() + b"." + body),
        "X-Fleet-Delivery": delivery,
    }


def test_generic_webhook_rejects_replays_by_age_and_by_delivery_id(hub: WebhookHub) -> None:
    body = json.dumps({"ref": "refs/heads/release", "repository": REPO}).encode()
    url = f"{hub.url}/api/v1/webhooks/generic"
    delivery = str(uuid.uuid4())

    fresh = httpx.post(url, content=body, headers=generic_headers(body, time.time(), delivery))
    repeated = httpx.post(url, content=body, headers=generic_headers(body, time.time(), delivery))
    old = httpx.post(
        url, content=body, headers=generic_headers(body, time.time() - 600, str(uuid.uuid4()))
    )
    forged = httpx.post(
        url, content=body, headers=generic_headers(body, time.time(), str(uuid.uuid4()), "guess")
    )

    assert fresh.status_code == 202 and fresh.json()["queued"] == ["other-branch"]
    assert repeated.status_code == 409
    assert old.status_code == 401 and "within 300s" in old.json()["error"]
    assert forged.status_code == 401
    assert len(queued_commands(hub, "other-branch")) == 1
    text = metrics(hub)
    assert 'fleet_hub_webhooks_total{provider="generic",result="replayed"} 2.0' in text


def test_unconfigured_or_unknown_provider_is_404(database: str) -> None:
    with running_hub(HubConfig(database=database)) as bare:
        assert httpx.post(f"{bare.url}/api/v1/webhooks/github", content=b"{}").status_code == 404
        assert httpx.post(f"{bare.url}/api/v1/webhooks/bitbucket", content=b"{}").status_code == 404
