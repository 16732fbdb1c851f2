"""A hostile cluster and a hostile webhook sender against a real hub over HTTP.

The attacker holds one cluster token (``evil``) and tries to harm the operators and the
hub through what it reports: markup and terminal escapes in every string, oversized
fields, timestamps that overflow or lie, numbers that are not numbers, credentials in
URLs; then, without any token, webhook deliveries with malformed headers and replays,
and streams resumed from nonsense ids. After every case the hub must still answer, the
fleet's listings must still parse, and what was stored must be safe to show.

The flood and connection tests at the end use their own hub with small limits.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from agent.reporters import GitStatusReporter
from agent.reporters.gitstatus import CHANGED_AT
from fleet import sse, untrusted
from fleet.cli.main import main as cli_main
from fleet.localkube.gitserver import HOST, git_daemon
from hub import api
from hub.config import HubConfig
from hub.webhooks import signature_of
from tests.gitservers import served_repo
from tests.hubserver import RunningHub, body_of, create_token, report, running_hub

pytestmark = pytest.mark.timeout(180)

GITHUB_SECRET = "gh-secret"
GITLAB_TOKEN = "gl-token"
GENERIC_SECRET = "generic-secret"
TITLE = "\x1b]0;owned\x07"
CLEAR = "\x1b[2J"
MARKUP = ("[/oops]", "[@click=app.quit]x[/]", "[bold red]", "[link=file:///etc/passwd]y[/link]")

Wire = dict[str, Any]


@dataclasses.dataclass
class HostileHub:
    hub: RunningHub
    tokens: dict[str, str]

    def put(self, cluster: str, body: bytes, token: str | None = None) -> httpx.Response:
        return httpx.put(
            f"{self.hub.url}/api/v1/clusters/{cluster}/report",
            content=body,
            headers={"Authorization": f"Bearer {token or self.tokens[cluster]}"},
            timeout=30,
        )

    def read(self, path: str, **headers: str) -> httpx.Response:
        return httpx.get(
            f"{self.hub.url}{path}",
            headers={"Authorization": f"Bearer {self.tokens['reader']}", **headers},
            timeout=30,
        )


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileHub]:
    database = f"sqlite:///{tmp_path_factory.mktemp('hub') / 'hub.db'}"
    config = HubConfig.model_validate(
        {
            "database": database,
            "maxReportBytes": 2 * 1024 * 1024,
            "streamKeepalive": "300ms",
            "limits": {"ingestBurst": 10_000, "ingestPerSecond": 1000},
            "webhooks": {
                "github": {"secret": GITHUB_SECRET},
                "gitlab": {"token": GITLAB_TOKEN},
                "generic": {"secret": GENERIC_SECRET},
            },
        }
    )
    with running_hub(config) as running:
        tokens = {
            "evil": create_token(database, "evil"),
            "good": create_token(database, "good"),
            "reader": create_token(database, "reader", role="read-only"),
        }
        seeded = HostileHub(running, tokens)
        assert seeded.put("good", body_of(report("good")).encode()).status_code == 200
        yield seeded


def base() -> Wire:
    """A valid report of ``evil`` with one unit and one event, in its wire form."""
    made = report("evil").model_dump(mode="json", by_alias=True)
    made["events"] = [
        {
            "time": datetime.datetime.now(datetime.UTC).isoformat(),
            "type": "Warning",
            "reason": "DriftCorrected",
            "unit": "flux-system/apps",
            "object": "apps/v1/Deployment/default/web",
            "message": "replicas restored",
        }
    ]
    return made


def at(path: str, value: Any) -> Callable[[Wire], Wire]:
    """A mutation setting ``path`` (``units.0.name``) of the base report to ``value``."""

    def mutate(wire: Wire) -> Wire:
        target: Any = wire
        parts = path.split(".")
        for part in parts[:-1]:
            target = target[int(part)] if part.isdigit() else target[part]
        last = parts[-1]
        if last.isdigit():
            target[int(last)] = value
        else:
            target[last] = value
        return wire

    return mutate


def iso(delta: datetime.timedelta) -> str:
    return (datetime.datetime.now(datetime.UTC) + delta).isoformat()


@dataclasses.dataclass(frozen=True)
class ReportCase:
    name: str
    body: Callable[[Wire], Wire] | bytes
    status: int
    expect: tuple[str, ...] = ()
    """Texts the error (refused) or the stored report (accepted) must contain."""
    absent: tuple[str, ...] = ()
    """Texts the stored report must not contain (accepted cases)."""


def _cases() -> list[ReportCase]:
    cases: list[ReportCase] = []
    # Markup is text: accepted, stored and served literally (the TUI test shows it).
    for index, markup in enumerate(MARKUP):
        cases += [
            ReportCase(f"markup {index} in a unit name", at("units.0.name", markup), 200),
            ReportCase(f"markup {index} in a message", at("units.0.message", markup), 200),
        ]
    for field in ("units.0.namespace", "units.0.reason", "events.0.unit", "events.0.reason"):
        cases.append(ReportCase(f"markup in {field}", at(field, MARKUP[1]), 200))
    for field in ("events.0.object", "events.0.message", "agentVersion", "source.ref"):
        cases.append(ReportCase(f"markup in {field}", at(field, MARKUP[0]), 200))
    cases.append(ReportCase("markup in dependsOn", at("units.0.dependsOn", [MARKUP[1]]), 200))
    # Escapes: refused in names, versions, refs and URLs, naming the field ...
    for field, camel in (
        ("agentVersion", "agentVersion"),
        ("units.0.name", "name"),
        ("units.0.namespace", "namespace"),
        ("units.0.reason", "reason"),
        ("source.ref", "ref"),
        ("source.url", "url"),
        ("events.0.unit", "unit"),
        ("events.0.object", "object"),
        ("events.0.reason", "reason"),
        ("units.0.lastAppliedRevision", "lastAppliedRevision"),
    ):
        cases.append(
            ReportCase(
                f"title escape in {field}",
                at(field, f"x{TITLE}y"),
                422,
                (camel, "control characters"),
            )
        )
    cases += [
        ReportCase("clear screen in dependsOn", at("units.0.dependsOn", [CLEAR]), 422),
        ReportCase("NUL in a unit name", at("units.0.name", "a\x00b"), 422, ("\\x00",)),
        ReportCase("DEL in a reason", at("units.0.reason", "a\x7fb"), 422, ("\\x7f",)),
        ReportCase("C1 CSI in a version", at("agentVersion", "1\x9b2J"), 422, ("\\x9b",)),
        ReportCase("bidi override in a version", at("agentVersion", "1\u202e0"), 422),
        ReportCase("newline in a unit name", at("units.0.name", "a\nb"), 422, ("\\x0a",)),
    ]
    # ... and replaced in free text, where tool output may carry colours.
    for field in ("units.0.message", "events.0.message", "source.message"):
        cases.append(
            ReportCase(
                f"escapes in {field} are replaced",
                at(field, f"a{TITLE}b{CLEAR}c\x9bd\u202ee"),
                200,
                ("a\ufffd]0;owned\ufffdb",),
                ("\\u001b", "\\u0007", "\\u009b", "\\u202e"),
            )
        )
    cases.append(
        ReportCase(
            "multi-line message keeps its lines",
            at("units.0.message", "line one\n\tline two"),
            200,
            ("line one\\n\\tline two",),
        )
    )
    # Every string has a length limit.
    for field, size, camel in (
        ("agentVersion", 65, "agentVersion"),
        ("units.0.name", 254, "name"),
        ("units.0.namespace", 254, "namespace"),
        ("units.0.reason", 257, "reason"),
        ("source.url", 2049, "url"),
        ("source.ref", 513, "ref"),
        ("units.0.message", 1025, "message"),
        ("source.message", 1025, "message"),
        ("events.0.object", 1025, "object"),
        ("events.0.unit", 508, "unit"),
        ("events.0.message", 1025, "message"),
        ("units.0.lastAttemptedRevision", 513, "lastAttemptedRevision"),
    ):
        cases.append(ReportCase(f"{field} of {size} chars", at(field, "a" * size), 422, (camel,)))
    cases += [
        ReportCase(
            "101 dependencies", at("units.0.dependsOn", [f"ns/u{i}" for i in range(101)]), 422
        ),
        ReportCase(
            "one megabyte of dependencies",
            at("units.0.dependsOn", ["x" * 10_000] * 100),
            422,
            ("dependsOn",),
        ),
        ReportCase("33 labels", at("labels", {f"k{i}": "v" for i in range(33)}), 422),
        ReportCase("label value with an escape", at("labels", {"env": f"a{CLEAR}"}), 422),
        ReportCase("101 events", lambda w: {**w, "events": w["events"] * 101}, 422, ("events",)),
        ReportCase(
            "501 units",
            lambda w: {
                **w,
                "units": [{**w["units"][0], "name": f"u{i}"} for i in range(501)],
            },
            422,
            ("units",),
        ),
        ReportCase(
            "a unit listed twice",
            lambda w: {**w, "units": w["units"] * 2},
            422,
            ("listed twice",),
        ),
    ]
    # Timestamps: bounded, never an overflow.
    cases += [
        ReportCase(
            "reportedAt overflows when converted to UTC",
            at("reportedAt", "9999-12-31T23:59:59-23:59"),
            422,
            ("reportedAt", "UTC"),
        ),
        ReportCase(
            "reportedAt underflows when converted to UTC",
            at("reportedAt", "0001-01-01T00:00:00+23:59"),
            422,
            ("reportedAt",),
        ),
        ReportCase("event time overflows", at("events.0.time", "9999-12-31T23:59:59-12:00"), 422),
        ReportCase(
            "lastReconcileAt overflows",
            at("units.0.lastReconcileAt", "9999-12-31T23:59:59-01:00"),
            422,
            ("lastReconcileAt",),
        ),
        ReportCase(
            "lastFetchedAt overflows",
            at("source.lastFetchedAt", "9999-12-31T23:59:59-01:00"),
            422,
        ),
        ReportCase(
            "reportedAt before the epoch", at("reportedAt", "1969-12-31T23:59:59Z"), 422, ("1970",)
        ),
        ReportCase("reportedAt in the far future", at("reportedAt", "2999-01-01T00:00:00Z"), 422),
        ReportCase(
            "event in the far future pinning drift 24h",
            at("events.0.time", "2999-01-01T00:00:00Z"),
            422,
            ("time", "ahead"),
        ),
        ReportCase("timestamp without a zone", at("reportedAt", "2026-01-01T00:00:00"), 422),
        ReportCase("timestamp as a huge number", at("reportedAt", 10**20), 422),
        ReportCase("timestamp not a date", at("reportedAt", "yesterday"), 422),
    ]
    # Numbers that are not numbers, or absurd ones.
    unset = '"lastReconcileSeconds": null'
    assert unset in json.dumps(base())
    nan = json.dumps(base()).replace(unset, '"lastReconcileSeconds": NaN')
    inf = json.dumps(base()).replace(unset, '"lastReconcileSeconds": Infinity')
    cases += [
        ReportCase("NaN reconcile seconds", nan.encode(), 422),
        ReportCase("Infinity reconcile seconds", inf.encode(), 422),
        ReportCase("inventory of 10^30", at("units.0.inventorySize", 10**30), 422),
        ReportCase("negative drift count", at("units.0.driftCount", -1), 422),
        ReportCase("heartbeat of zero", at("heartbeatSeconds", 0), 422),
        ReportCase("heartbeat of a year", at("heartbeatSeconds", 31_536_000), 422),
    ]
    # Bodies the parser must refuse without a 500.
    cases += [
        ReportCase("deeply nested JSON", b'{"units": ' + b"[" * 100_000, 422),
        ReportCase("invalid UTF-8", b'{"cluster": "evil\xff\xfe"}', 422),
        ReportCase(
            "lone surrogate in a message",
            json.dumps(base()).replace('"replicas restored"', '"\\ud800"').encode(),
            422,
        ),
        ReportCase("a JSON array", b"[1, 2, 3]", 422),
        ReportCase("two megabytes", b"{" + b" " * (2 * 1024 * 1024 + 1) + b"}", 413),
    ]
    # Credentials in the source URL never reach the store.
    for name, url, hidden in (
        ("password", "https://bot:s3cret-pw@git.example.com/f.git", "s3cret-pw"),
        ("token as user name", "https://ghp_s3cretToken@github.com/o/f.git", "ghp_s3cretToken"),
        ("query token", "https://git.example.com/f.git?private_token=s3cretQ", "s3cretQ"),
        ("fragment", "https://git.example.com/f.git#s3cretFragment", "s3cretFragment"),
    ):
        cases.append(
            ReportCase(f"{name} in the source URL", at("source.url", url), 200, ("***",), (hidden,))
        )
    return cases


REPORT_CASES = _cases()


def _still_serving(hostile: HostileHub) -> None:
    """The hub answers, and every listing still parses into the typed models."""
    assert httpx.get(f"{hostile.hub.url}/healthz", timeout=30).status_code == 200
    clusters = hostile.read("/api/v1/clusters")
    assert clusters.status_code == 200, clusters.text
    api.ClusterList.model_validate(clusters.json())
    detail = hostile.read("/api/v1/clusters/evil")
    if detail.status_code == 200:
        api.ClusterDetail.model_validate(detail.json())
    events = hostile.read("/api/v1/events")
    assert events.status_code == 200, events.text
    api.EventList.model_validate(events.json())
    good = hostile.put("good", body_of(report("good")).encode())
    assert good.status_code == 200, good.text


def test_the_corpus_is_at_least_sixty_cases() -> None:
    assert len(REPORT_CASES) + len(WEBHOOK_CASES) + len(RESUME_IDS) >= 60


@pytest.mark.parametrize("case", REPORT_CASES, ids=[case.name for case in REPORT_CASES])
def test_a_hostile_report_is_refused_or_stored_safely(
    hostile: HostileHub, case: ReportCase
) -> None:
    body = case.body if isinstance(case.body, bytes) else json.dumps(case.body(base())).encode()
    answer = hostile.put("evil", body)
    assert answer.status_code == case.status, answer.text[:2000]
    if case.status == 200:
        stored = hostile.read("/api/v1/clusters/evil").text
        for text in case.expect:
            assert text in stored, f"{text!r} not in the stored report"
        for text in case.absent:
            assert text not in stored, f"{text!r} reached the store"
        # Nothing stored anywhere carries a control character to a terminal.
        for path in ("/api/v1/clusters/evil", "/api/v1/clusters", "/api/v1/events"):
            assert not untrusted.control_characters(json.dumps(hostile.read(path).json())), path
    else:
        error = answer.json()
        text = json.dumps(error)
        for expected in case.expect:
            assert expected in text, f"{expected!r} not in {text[:2000]}"
        assert len(answer.content) < 64 * 1024, "the error echoes the attacker's input"
    _still_serving(hostile)


def test_a_future_dated_event_is_stored_at_the_hubs_time(hostile: HostileHub) -> None:
    ahead = base()
    ahead["events"][0]["time"] = iso(datetime.timedelta(hours=20))
    ahead["events"][0]["message"] = "from the future"
    before = time.time()
    assert hostile.put("evil", json.dumps(ahead).encode()).status_code == 200
    events = hostile.read("/api/v1/clusters/evil/events").json()["items"]
    stored = next(event for event in events if event["message"] == "from the future")
    moment = datetime.datetime.fromisoformat(stored["time"].replace("Z", "+00:00"))
    # Clamped to when the hub received it, so it leaves "drift 24h" a day from now.
    assert before - 5 <= moment.timestamp() <= time.time() + 1


def _signed_generic(body: bytes, timestamp: str, delivery: str | None) -> dict[str, str]:
    headers = {
        "X-Fleet-Timestamp": timestamp,
        "X-Fleet-Signature": signature_of(GENERIC_SECRET, timestamp.encode() + b"." + body),
    }
    if delivery is not None:
        headers["X-Fleet-Delivery"] = delivery
    return headers


@dataclasses.dataclass(frozen=True)
class WebhookCase:
    name: str
    provider: str
    headers: Callable[[bytes], dict[str, Any]]
    status: int


def _now() -> str:
    return str(int(time.time()))


WEBHOOK_CASES = [
    WebhookCase(
        "non-ASCII byte in the GitHub signature",
        "github",
        lambda body: {"X-GitHub-Event": "push", "X-Hub-Signature-256": b"sha256=\xff\xfe"},
        401,
    ),
    WebhookCase(
        "non-ASCII byte in the generic signature",
        "generic",
        lambda body: {
            **_signed_generic(body, _now(), str(uuid.uuid4())),
            "X-Fleet-Signature": b"sha256=\xe9",
        },
        401,
    ),
    WebhookCase(
        "non-ASCII byte in the GitLab token",
        "gitlab",
        lambda body: {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": b"gl-token\xff"},
        401,
    ),
    WebhookCase(
        "a signature of 10 kB",
        "github",
        lambda body: {"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + "0" * 10_000},
        401,
    ),
    *[
        WebhookCase(
            f"timestamp {stamp!r}",
            "generic",
            lambda body, stamp=stamp: {
                **_signed_generic(body, stamp, str(uuid.uuid4())),
                "X-Fleet-Timestamp": stamp.encode(),
            },
            401,
        )
        for stamp in (
            "nan",
            "NaN",
            "inf",
            "-inf",
            "1e9",
            "-1",
            "1 2",
            "\uff11\uff12\uff13",
            "0x10",
            "",
        )
    ],
    WebhookCase(
        "non-ASCII byte in the timestamp",
        "generic",
        lambda body: {**_signed_generic(body, _now(), "d"), "X-Fleet-Timestamp": b"17\xff"},
        401,
    ),
    WebhookCase(
        "non-ASCII byte in the delivery id",
        "generic",
        lambda body: {**_signed_generic(body, _now(), None), "X-Fleet-Delivery": b"id-\xff"},
        400,
    ),
    WebhookCase(
        "a delivery id of 300 characters",
        "generic",
        lambda body: _signed_generic(body, _now(), "d" * 300),
        400,
    ),
    WebhookCase(
        "non-ASCII byte in the GitHub delivery id",
        "github",
        lambda body: {
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": b"\xff",
            "X-Hub-Signature-256": signature_of(GITHUB_SECRET, body),
        },
        400,
    ),
]


@pytest.mark.parametrize("case", WEBHOOK_CASES, ids=[case.name for case in WEBHOOK_CASES])
def test_a_malformed_webhook_header_is_a_client_error(
    hostile: HostileHub, case: WebhookCase
) -> None:
    body = json.dumps({"ref": "refs/heads/main", "after": uuid.uuid4().hex}).encode()
    answer = httpx.post(
        f"{hostile.hub.url}/api/v1/webhooks/{case.provider}",
        content=body,
        headers=case.headers(body),
        timeout=30,
    )
    assert answer.status_code == case.status, answer.text
    assert "error" in answer.json()
    _still_serving(hostile)


def _post(hostile: HostileHub, provider: str, body: bytes, headers: dict[str, str]) -> int:
    url = f"{hostile.hub.url}/api/v1/webhooks/{provider}"
    return httpx.post(url, content=body, headers=headers, timeout=30).status_code


def test_a_generic_replay_with_a_new_or_no_delivery_id_is_refused(hostile: HostileHub) -> None:
    body = json.dumps({"ref": "refs/heads/main", "after": uuid.uuid4().hex}).encode()
    stamp = _now()
    assert _post(hostile, "generic", body, _signed_generic(body, stamp, "first")) == 202
    assert _post(hostile, "generic", body, _signed_generic(body, stamp, "second")) == 409
    assert _post(hostile, "generic", body, _signed_generic(body, stamp, None)) == 400


def test_a_github_replay_with_a_changed_or_dropped_delivery_id_is_refused(
    hostile: HostileHub,
) -> None:
    body = json.dumps({"ref": "refs/heads/main", "after": uuid.uuid4().hex}).encode()
    signed = {"X-GitHub-Event": "push", "X-Hub-Signature-256": signature_of(GITHUB_SECRET, body)}
    assert _post(hostile, "github", body, {**signed, "X-GitHub-Delivery": "a"}) == 202
    assert _post(hostile, "github", body, {**signed, "X-GitHub-Delivery": "b"}) == 409
    assert _post(hostile, "github", body, signed) == 409
    other = json.dumps({"ref": "refs/heads/main", "after": uuid.uuid4().hex}).encode()
    fresh = {"X-GitHub-Event": "push", "X-Hub-Signature-256": signature_of(GITHUB_SECRET, other)}
    assert _post(hostile, "github", other, fresh) == 202


RESUME_IDS = ("²", "1" * 5000, "99999999999999999999", "-1", "1.5", "0x10", "\uff11", "1 2")


@pytest.mark.parametrize("resume", RESUME_IDS, ids=[repr(value) for value in RESUME_IDS])
def test_a_nonsense_last_event_id_is_a_400_before_the_stream(
    hostile: HostileHub, resume: str
) -> None:
    for path, token in (
        ("/api/v1/stream", hostile.tokens["reader"]),
        ("/api/v1/clusters/evil/commands", hostile.tokens["evil"]),
    ):
        answer = httpx.get(
            f"{hostile.hub.url}{path}",
            headers={"Authorization": f"Bearer {token}", "Last-Event-ID": resume.encode()},
            timeout=30,
        )
        assert answer.status_code == 400, answer.text
        assert "Last-Event-ID" in answer.json()["error"]
    _still_serving(hostile)


def test_a_changed_report_streams_a_bounded_summary(hostile: HostileHub) -> None:
    big = base()
    big["units"] = [
        {**big["units"][0], "name": f"u{i}", "ready": "False", "message": "m" * 1024}
        for i in range(400)
    ]
    big["events"] = [{**big["events"][0], "message": f"{i}" + "e" * 1000} for i in range(100)]
    start = hostile.read("/api/v1/events?limit=1").json()["items"]
    del start
    sizes: dict[str, list[int]] = {}
    with httpx.stream(
        "GET",
        f"{hostile.hub.url}/api/v1/stream",
        headers={"Authorization": f"Bearer {hostile.tokens['reader']}"},
        timeout=30,
    ) as stream:
        parser = sse.EventStreamParser()
        lines = stream.iter_lines()
        for line in lines:
            if (event := parser.feed(line)) is not None and event.event == "ready":
                break
        body = json.dumps(big).encode()
        assert len(body) > 400_000
        assert hostile.put("evil", body).status_code == 200
        for line in lines:
            event = parser.feed(line)
            if event is None:
                if line.startswith(":") and "cluster-updated" in sizes:
                    break
                continue
            sizes.setdefault(event.event, []).append(len(event.data))
            if len(sizes.get("event", [])) >= 100 and "cluster-updated" in sizes:
                break
    # One line for the cluster, one per new event: each a few kB, never the report.
    assert max(sizes["cluster-updated"]) < 1024, sizes["cluster-updated"]
    assert max(sizes["event"]) < 4096


def _limited_config(tmp_path: Path, **limits: Any) -> HubConfig:
    return HubConfig.model_validate(
        {
            "database": f"sqlite:///{tmp_path / 'hub.db'}",
            "streamKeepalive": "300ms",
            "limits": limits,
        }
    )


def test_a_flooding_token_gets_429_while_other_clusters_are_answered(tmp_path: Path) -> None:
    config = _limited_config(tmp_path, ingestPerSecond=2, ingestBurst=5)
    with running_hub(config) as hub:
        database = config.database
        normal = {f"normal-{i}": create_token(database, f"normal-{i}") for i in range(4)}
        flooder = create_token(database, "flood")
        flood_answers: list[httpx.Response] = []
        normal_statuses: list[int] = []
        stop = threading.Event()

        def flood() -> None:
            body = body_of(report("flood")).encode()
            with httpx.Client(timeout=30) as client:
                while not stop.is_set() and len(flood_answers) < 2000:
                    flood_answers.append(
                        client.put(
                            f"{hub.url}/api/v1/clusters/flood/report",
                            content=body,
                            headers={"Authorization": f"Bearer {flooder}"},
                        )
                    )

        threads = [threading.Thread(target=flood) for _ in range(3)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        try:
            with httpx.Client(timeout=30) as client:
                # Each normal cluster: a few reports, within its own rate.
                for round_ in range(3):
                    for name, token in normal.items():
                        changed = report(name, revision_sha=f"{round_:040x}")
                        answer = client.put(
                            f"{hub.url}/api/v1/clusters/{name}/report",
                            content=body_of(changed),
                            headers={"Authorization": f"Bearer {token}"},
                        )
                        normal_statuses.append(answer.status_code)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
            elapsed = time.monotonic() - started
        assert normal_statuses == [200] * 12
        limited = [answer for answer in flood_answers if answer.status_code == 429]
        assert limited, "the flood was never limited"
        assert {answer.status_code for answer in flood_answers} <= {200, 429}
        assert int(limited[0].headers["Retry-After"]) >= 1
        assert "faster than 2/s" in limited[0].json()["error"]
        admitted = sum(1 for answer in flood_answers if answer.status_code == 200)
        # The bucket's arithmetic, not a speed: the burst plus the rate over the flood.
        assert admitted <= 5 + 2 * elapsed + 1, (admitted, elapsed)


def test_streams_are_capped_per_token_and_a_closed_one_frees_its_slot(tmp_path: Path) -> None:
    config = _limited_config(tmp_path, streamsPerToken=2, streams=3)
    with running_hub(config) as hub:
        tokens = [create_token(config.database, f"user-{i}", role="read-only") for i in range(3)]

        def open_stream(token: str) -> tuple[httpx.Client, httpx.Response]:
            client = httpx.Client(timeout=30)
            request = client.build_request(
                "GET", f"{hub.url}/api/v1/stream", headers={"Authorization": f"Bearer {token}"}
            )
            return client, client.send(request, stream=True)

        opened = [open_stream(tokens[0]), open_stream(tokens[0])]
        try:
            assert [response.status_code for _, response in opened] == [200, 200]
            client, third = open_stream(tokens[0])
            assert third.status_code == 429 and third.headers["Retry-After"]
            third.read()
            assert "limit per token" in third.json()["error"]
            client.close()
            opened.append(open_stream(tokens[1]))
            assert opened[-1][1].status_code == 200
            client, over = open_stream(tokens[2])
            assert over.status_code == 429
            over.read()
            assert "streams" in over.json()["error"]
            client.close()
            first_client, first = opened.pop(0)
            first.close()
            first_client.close()
            deadline = time.monotonic() + 30
            while True:
                client, again = open_stream(tokens[2])
                if again.status_code == 200 or time.monotonic() > deadline:
                    break
                again.read()
                client.close()
            assert again.status_code == 200, "a closed stream never gave its slot back"
            opened.append((client, again))
        finally:
            for client, response in opened:
                response.close()
                client.close()


def _closed_by_server(connection: socket.socket) -> bool:
    """Blocks until the server closes (True) or sends something (False)."""
    connection.settimeout(60)
    try:
        return connection.recv(1024) == b""
    except ConnectionResetError:
        return True


def test_a_half_sent_request_head_is_closed_after_the_header_timeout(tmp_path: Path) -> None:
    config = _limited_config(tmp_path, headerTimeout="1s", idleTimeout="1s")
    with running_hub(config) as hub:
        with socket.create_connection((HOST, hub.port)) as slow:
            slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            assert _closed_by_server(slow)
        with socket.create_connection((HOST, hub.port)) as silent:
            assert _closed_by_server(silent)
        with socket.create_connection((HOST, hub.port)) as kept:
            kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            kept.settimeout(60)
            assert kept.recv(4096).startswith(b"HTTP/1.1 200")
            # Idle after its answer: closed by the keep-alive timeout.
            assert _closed_by_server(kept)
        with socket.create_connection((HOST, hub.port)) as huge:
            huge.sendall(b"GET /healthz HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 70_000 + b"\r\n")
            huge.settimeout(60)
            answer = huge.recv(4096)
            assert answer == b"" or answer.startswith(b"HTTP/1.1 400")
        assert httpx.get(f"{hub.url}/healthz", timeout=30).status_code == 200


def test_a_trickled_body_gets_408(tmp_path: Path) -> None:
    config = _limited_config(tmp_path, bodyTimeout="1s")
    with running_hub(config) as hub:
        token = create_token(config.database, "slow")
        with socket.create_connection((HOST, hub.port)) as slow:
            slow.sendall(
                b"PUT /api/v1/clusters/slow/report HTTP/1.1\r\nHost: x\r\n"
                b"Authorization: Bearer " + token.encode() + b"\r\n"
                b"Content-Length: 1000\r\n\r\n{"
            )
            slow.settimeout(60)
            answer = slow.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]


def test_the_hub_config_rejects_nonsense_limits() -> None:
    with pytest.raises(ValueError, match="ingestPerSecond"):
        HubConfig.model_validate({"limits": {"ingestPerSecond": 0}})
    copy.deepcopy(HubConfig())


def test_one_bad_status_file_does_not_stop_get_clusters_for_the_fleet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    served = tmp_path / "served"
    served.mkdir()
    clone = served_repo(served, "fleet.git")
    clone.commit({"README.md": "fleet\n"})
    clone.push("main")
    with git_daemon(served) as daemon:
        url = daemon.url("fleet.git")
        GitStatusReporter(url, "dev", cache_dir=tmp_path / "dev").publish(report("dev"))
        clone.git("fetch", "--quiet", "origin", "fleet-status")
        clone.git("switch", "--quiet", "-c", "fleet-status", "FETCH_HEAD")

        def status(cluster: str, **changes: Any) -> str:
            wire = report(cluster).model_dump(mode="json", by_alias=True)
            wire[CHANGED_AT] = wire.pop("reportedAt")
            wire.update(changes)
            return yaml.safe_dump(wire)

        loud = yaml.safe_load(status("loud"))
        loud["units"][0].update(ready="False", message=f"failed {TITLE}{CLEAR}")
        clone.commit(
            {
                "clusters/overflow.yaml": status("overflow", changedAt="9999-12-31T23:59:59-23:59"),
                "clusters/title.yaml": status("title", agentVersion=f"1{TITLE}"),
                "clusters/loud.yaml": yaml.safe_dump(loud),
            }
        )
        clone.push("fleet-status")
        capsys.readouterr()
        with caplog.at_level("WARNING"):
            code = cli_main(["get", "clusters", "--repo", url])
        out = capsys.readouterr().out
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["dev", "loud"]
    assert not untrusted.control_characters(out.replace("\n", ""))
    warnings = " ".join(record.getMessage() for record in caplog.records)
    assert "overflow.yaml" in warnings and "title.yaml" in warnings
    assert "\x1b" not in warnings, "the log quotes the hostile file raw"
