"""Webhook signatures, payload parsing and which clusters a push concerns. Plain data."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from hub import webhooks
from hub.webhooks import PushEvent, WebhookRejected

BODY = b'{"ref": "refs/heads/main"}'
NOW = 1_800_000_000.0


def test_github_signature_is_hmac_sha256_of_the_raw_body() -> None:
    expected = "sha256=" + hmac.new(b"s3cret", BODY, hashlib.sha256).hexdigest()

    webhooks.verify_github("s3cret", BODY, expected)

    with pytest.raises(WebhookRejected) as wrong:
        webhooks.verify_github("other", BODY, expected)
    assert wrong.value.result == "bad_signature" and wrong.value.status == 401
    with pytest.raises(WebhookRejected) as missing:
        webhooks.verify_github("s3cret", BODY, None)
    assert missing.value.result == "unsigned"


def test_gitlab_token_must_match_exactly() -> None:
    webhooks.verify_gitlab("tok", "tok")
    for sent in ("tok ", "to", "TOK"):
        with pytest.raises(WebhookRejected):
            webhooks.verify_gitlab("tok", sent)
    with pytest.raises(WebhookRejected, match="missing"):
        webhooks.verify_gitlab("tok", None)


def generic_signature(secret: str, timestamp: str, body: bytes) -> str:
    return webhooks.signature_of(secret, timestamp.encode() + b"." + body)


def test_generic_signature_covers_the_timestamp_and_the_body() -> None:
    stamp = str(int(NOW))
    signature = generic_signature("k", stamp, BODY)

    webhooks.verify_generic("k", BODY, signature, stamp, NOW + 10)

    with pytest.raises(WebhookRejected, match="does not match"):
        webhooks.verify_generic("k", BODY + b" ", signature, stamp, NOW)
    with pytest.raises(WebhookRejected, match="does not match"):
        webhooks.verify_generic("k", BODY, signature, str(int(NOW) + 1), NOW)


def test_generic_delivery_outside_the_window_is_a_replay() -> None:
    old = str(int(NOW - 301))

    with pytest.raises(WebhookRejected) as rejected:
        webhooks.verify_generic("k", BODY, generic_signature("k", old, BODY), old, NOW)

    assert rejected.value.result == "replayed"
    future = str(int(NOW + 301))
    with pytest.raises(WebhookRejected):
        webhooks.verify_generic("k", BODY, generic_signature("k", future, BODY), future, NOW)
    with pytest.raises(WebhookRejected, match="must be unix seconds"):
        webhooks.verify_generic("k", BODY, "sha256=00", "yesterday", NOW)


def test_github_push_and_ping() -> None:
    payload = {
        "ref": "refs/heads/main",
        "after": "abc",
        "repository": {
            "clone_url": "https://github.com/o/r.git",
            "ssh_url": "git@github.com:o/r.git",
        },
    }

    push = webhooks.parse_github("push", json.dumps(payload).encode())

    assert push == PushEvent(
        "github", "refs/heads/main", ("https://github.com/o/r.git", "git@github.com:o/r.git"), "abc"
    )
    assert webhooks.parse_github("ping", b"{}") is None
    with pytest.raises(WebhookRejected) as invalid:
        webhooks.parse_github("push", b"not json")
    assert invalid.value.status == 400


def test_gitlab_tag_push() -> None:
    payload = {"ref": "refs/tags/v1.2.0", "project": {"git_http_url": "https://gitlab.com/o/r.git"}}

    push = webhooks.parse_gitlab("Tag Push Hook", json.dumps(payload).encode())

    assert push is not None and push.ref == "refs/tags/v1.2.0"
    assert webhooks.parse_gitlab("Merge Request Hook", b"{}") is None


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/Org/Repo.git",
        "https://user:pw@github.com/Org/Repo",
        "ssh://git@github.com:22/Org/Repo.git",
        "git@github.com:Org/Repo.git",
        "git://github.com/Org/Repo/",
    ],
)
def test_repository_key_is_the_same_for_every_url_form(url: str) -> None:
    assert webhooks.repository_key(url) == "github.com/Org/Repo"


@pytest.mark.parametrize(
    ("followed", "pushed", "expected"),
    [
        ("refs/heads/main", "refs/heads/main", True),
        ("refs/heads/main", "refs/heads/mainline", False),
        ("main", "refs/heads/main", True),
        ("branch main", "refs/heads/main", True),
        ("branch main", "refs/tags/main", False),
        ("tag v1.0.0", "refs/tags/v1.0.0", True),
        ("semver '>=1.0 <2'", "refs/tags/v1.5.0", True),
        ("semver '>=1.0 <2'", "refs/heads/main", False),
        ("ref refs/pull/7/head", "refs/pull/7/head", True),
        (f"commit {'a' * 40} on branch main", "refs/heads/main", False),
    ],
)
def test_follows_ref(followed: str, pushed: str, expected: bool) -> None:
    assert webhooks.follows_ref(followed, pushed) is expected


def test_push_concerns_clusters_of_the_same_repository_and_ref() -> None:
    push = PushEvent("github", "refs/heads/main", ("https://github.com/o/fleet.git",))

    assert webhooks.concerns(push, "git@github.com:o/fleet.git", "refs/heads/main")
    assert not webhooks.concerns(push, "https://github.com/o/other.git", "refs/heads/main")
    assert not webhooks.concerns(push, "https://github.com/o/fleet.git", "refs/heads/prod")
    assert not webhooks.concerns(push, "https://github.com/o/fleet.git", None)
    anonymous = PushEvent("generic", "refs/heads/main", ())
    assert webhooks.concerns(anonymous, "https://anywhere/x.git", "main")
