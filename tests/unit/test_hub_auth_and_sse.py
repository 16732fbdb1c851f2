"""Hub tokens (issue, verify, revoke) and the server-sent events format. Plain data."""

from __future__ import annotations

import dataclasses

import pytest

from fleet import sse
from hub import auth


def test_token_verifies_only_with_its_own_secret_and_stores_no_secret() -> None:
    text, record = auth.issue_token("cluster", "dev", "cluster", 1.0, {"env": "dev"})

    parts = auth.split_token(text)

    assert parts is not None and parts[0] == record.id
    assert auth.verify(parts[1], record)
    assert not auth.verify(parts[1][:-1] + "x", record)
    assert parts[1] not in repr(record) and parts[1] not in record.hash
    revoked = dataclasses.replace(record, revoked_at=2.0)
    assert not auth.verify(parts[1], revoked)


def test_same_secret_hashes_differently_under_another_salt() -> None:
    _, first = auth.issue_token("user", "a", "admin", 1.0)
    _, second = auth.issue_token("user", "a", "admin", 1.0)

    assert first.salt != second.salt and first.hash != second.hash


@pytest.mark.parametrize(
    "text", ["", "fleet_", "fleet_xyz_abc", "Bearer fleet_0123456789ab_" + "a" * 43, "token"]
)
def test_malformed_tokens_do_not_parse(text: str) -> None:
    assert auth.split_token(text) is None


def test_roles_and_kinds_must_agree() -> None:
    with pytest.raises(ValueError, match="cluster tokens"):
        auth.issue_token("user", "alice", "cluster", 1.0)
    _, record = auth.issue_token("user", "bob", "read-only", 1.0)
    principal = auth.principal_of(record)
    assert principal is not None and principal.may_read() and not principal.is_admin()
    assert auth.principal_of(dataclasses.replace(record, role="root")) is None


def test_bearer_header() -> None:
    assert auth.bearer_token("Bearer abc") == "abc"
    assert auth.bearer_token("bearer  abc ") == "abc"
    assert auth.bearer_token("Basic abc") is None
    assert auth.bearer_token(None) is None


def test_sse_round_trip_with_multiline_data_and_ids() -> None:
    stream = (
        sse.format_event("{}", event="ready", id=0, retry_ms=2000)
        + sse.format_comment("keepalive")
        + sse.format_event("line one\nline two", event="command", id=7)
        + sse.format_event("plain")
    )
    parser = sse.EventStreamParser()

    events = list(parser.feed_lines(stream.decode().split("\n")))

    assert [(e.event, e.data, e.id) for e in events] == [
        ("ready", "{}", "0"),
        ("command", "line one\nline two", "7"),
        ("message", "plain", None),
    ]
    assert parser.last_event_id == "7"
    assert parser.retry_ms == 2000


def test_sse_parser_accepts_fields_without_a_space() -> None:
    parser = sse.EventStreamParser()

    events = list(parser.feed_lines(["event:x", "data:1", "id:3", ""]))

    assert events == [sse.ServerSentEvent("x", "1", "3")]
