"""The hub's HTTP API against a real uvicorn server and a real SQLite file or PostgreSQL."""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Iterator

import httpx
import pytest

from fleet import sse
from fleet.report import UnitReport
from hub.app import ENDPOINTS
from hub.config import HubConfig
from hub.store import Store
from tests.hubserver import (
    RunningHub,
    body_of,
    create_token,
    event,
    report,
    revoke_tokens,
    running_hub,
)
from tests.support import eventually

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def hub(database: str) -> Iterator[RunningHub]:
    config = HubConfig.model_validate(
        {
            "database": database,
            # Long: no test here can see a cluster go Stale because the machine is slow;
            # the Stale test moves the hub's clock instead.
            "staleAfter": "1h",
            "streamKeepalive": "1s",
            "tokenCacheTtl": "500ms",
        }
    )
    with running_hub(config) as running:
        yield running


@pytest.fixture
def admin(hub: RunningHub) -> httpx.Client:
    token = create_token(hub.config.database, "alice", role="admin")
    return httpx.Client(base_url=hub.url, headers={"Authorization": f"Bearer {token}"})


def agent_client(
    hub: RunningHub, cluster: str, labels: dict[str, str] | None = None
) -> httpx.Client:
    token = create_token(hub.config.database, cluster, labels=labels)
    return httpx.Client(base_url=hub.url, headers={"Authorization": f"Bearer {token}"})


def put(client: httpx.Client, cluster: str, body: str) -> httpx.Response:
    return client.put(
        f"/api/v1/clusters/{cluster}/report",
        content=body,
        headers={"Content-Type": "application/json"},
    )


def clusters(client: httpx.Client) -> dict[str, dict[str, object]]:
    response = client.get("/api/v1/clusters")
    assert response.status_code == 200, response.text
    return {item["name"]: item for item in response.json()["items"]}


def test_ingest_lists_cluster_ready_and_heartbeat_is_not_a_change(
    hub: RunningHub, admin: httpx.Client
) -> None:
    agent = agent_client(hub, "dev", labels={"env": "dev"})
    sent = report("dev", url="https://bot:s3cret@git.example.com/fleet.git")

    first = put(agent, "dev", body_of(sent))
    again = put(
        agent,
        "dev",
        body_of(
            sent.model_copy(
                update={"reported_at": sent.reported_at + datetime.timedelta(seconds=30)}
            )
        ),
    )

    assert first.status_code == 200, first.text
    assert first.json()["changed"] is True and first.json()["health"] == "Ready"
    assert again.json()["changed"] is False
    listed = clusters(admin)["dev"]
    assert listed["health"] == "Ready"
    assert listed["labels"] == {"env": "dev"}
    assert listed["unitsReady"] == 1 and listed["unitsTotal"] == 1
    assert listed["revision"] == sent.source.revision
    detail = admin.get("/api/v1/clusters/dev").json()
    assert detail["report"]["source"]["url"] == "https://bot:***@git.example.com/fleet.git"
    assert detail["report"]["units"][0]["name"] == "apps"
    history = admin.get("/api/v1/clusters/dev/history").json()["items"]
    assert len(history) == 1, "a heartbeat is not history"
    assert history[0]["digest"] == first.json()["digest"]


def test_unit_not_ready_makes_cluster_degraded_with_its_message(
    hub: RunningHub, admin: httpx.Client
) -> None:
    agent = agent_client(hub, "staging")
    broken = UnitReport(
        namespace="flux-system",
        name="infra",
        ready="False",
        reason="HealthCheckFailed",
        message="Deployment/ingress/nginx: 0/2 replicas available",
    )
    healthy = report("staging").units[0]

    put(agent, "staging", body_of(report("staging", units=[healthy, broken])))

    listed = clusters(admin)["staging"]
    assert listed["health"] == "Degraded"
    assert listed["unitsReady"] == 1 and listed["unitsTotal"] == 2
    assert (
        listed["message"] == "flux-system/infra: Deployment/ingress/nginx: 0/2 replicas available"
    )


def test_cluster_turns_stale_when_reports_stop_and_recovers(
    hub: RunningHub, admin: httpx.Client
) -> None:
    agent = agent_client(hub, "prod")
    put(agent, "prod", body_of(report("prod")))
    assert clusters(admin)["prod"]["health"] == "Ready"

    service = hub.server.hub
    real_clock = service.clock
    service.clock = lambda: real_clock() + 3601  # staleAfter (1h) later, nothing heard since
    try:
        eventually(lambda: clusters(admin)["prod"]["health"] == "Stale", 30, "prod to turn Stale")
        assert admin.get("/api/v1/summary").json()["health"]["Stale"] == 1
    finally:
        service.clock = real_clock

    put(agent, "prod", body_of(report("prod")))
    assert clusters(admin)["prod"]["health"] == "Ready"


def test_cluster_known_from_its_token_is_unknown_until_it_reports(
    hub: RunningHub, admin: httpx.Client
) -> None:
    agent_client(hub, "edge", labels={"env": "prod"})

    listed = clusters(admin)["edge"]

    assert listed["health"] == "Unknown"
    assert listed["lastReportAt"] is None


def test_every_kind_of_unauthorised_request_is_refused(
    hub: RunningHub, admin: httpx.Client
) -> None:
    body = body_of(report("dev"))
    dev = agent_client(hub, "dev")
    agent_client(hub, "prod")
    reader_token = create_token(hub.config.database, "bob", role="read-only")
    reader = httpx.Client(base_url=hub.url, headers={"Authorization": f"Bearer {reader_token}"})
    anonymous = httpx.Client(base_url=hub.url)
    forged = httpx.Client(
        base_url=hub.url, headers={"Authorization": "Bearer fleet_0123456789ab_" + "x" * 43}
    )

    assert put(anonymous, "dev", body).status_code == 401
    assert anonymous.get("/api/v1/clusters").status_code == 401
    assert put(forged, "dev", body).status_code == 401
    assert put(dev, "prod", body_of(report("prod"))).status_code == 403
    assert dev.get("/api/v1/clusters").status_code == 403
    assert reader.get("/api/v1/clusters").status_code == 200
    assert reader.post("/api/v1/clusters/dev/reconcile", json={}).status_code == 403
    assert put(reader, "dev", body).status_code == 403
    assert reader.get("/api/v1/clusters/dev/commands").status_code == 403
    assert put(dev, "dev", body).status_code == 200

    revoke_tokens(hub.config.database, "dev")

    # Checked tokens are trusted for tokenCacheTtl (500 ms here), then looked up again.
    eventually(lambda: put(dev, "dev", body).status_code == 401, 5, "the revocation")
    assert "revoked" in put(dev, "dev", body).json()["error"]
    assert anonymous.get("/healthz").status_code == 200
    metrics = admin.get("/metrics").text
    assert 'fleet_hub_auth_failures_total{reason="forbidden"}' in metrics


def test_report_body_over_the_limit_is_413(hub: RunningHub) -> None:
    agent = agent_client(hub, "dev")
    oversized = b"{" + b" " * (hub.config.max_report_bytes + 1) + b"}"

    declared = agent.put("/api/v1/clusters/dev/report", content=oversized)
    chunked = agent.put(
        "/api/v1/clusters/dev/report", content=iter([oversized[:1000], oversized[1000:]])
    )

    assert declared.status_code == 413
    assert chunked.status_code == 413
    assert "limit" in declared.json()["error"]


def test_invalid_report_is_422_naming_the_field(hub: RunningHub) -> None:
    agent = agent_client(hub, "dev")
    document = json.loads(body_of(report("dev")))
    document["units"][0]["message"] = "x" * 5000
    document["source"]["revision"] = "main@abc"

    refused = put(agent, "dev", json.dumps(document))

    assert refused.status_code == 422
    problems = {item["loc"]: item["msg"] for item in refused.json()["detail"]}
    assert "limit is 1024" in problems["units.0.message"]
    assert "Flux's form" in problems["source.revision"]


def test_summary_counts_health_per_label(hub: RunningHub, admin: httpx.Client) -> None:
    failing = UnitReport(namespace="a", name="b", ready="False", message="boom")
    for name, env, units in (
        ("dev-1", "dev", None),
        ("dev-2", "dev", [failing]),
        ("prod-1", "prod", None),
    ):
        put(agent_client(hub, name, labels={"env": env}), name, body_of(report(name, units=units)))

    summary = admin.get("/api/v1/summary").json()

    assert summary["clusters"] == 3
    assert summary["health"]["Ready"] == 2 and summary["health"]["Degraded"] == 1
    assert summary["unitsNotReady"] == 1
    assert summary["byLabel"]["env"]["dev"] == {
        "clusters": 2,
        "health": {"Ready": 1, "Degraded": 1},
    }
    assert summary["byLabel"]["env"]["prod"]["clusters"] == 1


def test_events_are_stored_once_and_listed_newest_first(
    hub: RunningHub, admin: httpx.Client
) -> None:
    agent = agent_client(hub, "dev")
    base = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)
    first = event("DriftCorrected", "Deployment/web: spec.replicas 5 -> 2", at=base)
    second = event("ReconcileFailed", "apply failed", at=base + datetime.timedelta(seconds=1))

    put(agent, "dev", body_of(report("dev", events=[first])))
    put(agent, "dev", body_of(report("dev", events=[first, second])))

    items = admin.get("/api/v1/clusters/dev/events").json()["items"]
    assert [item["reason"] for item in items] == ["ReconcileFailed", "DriftCorrected"]
    older = admin.get(f"/api/v1/clusters/dev/events?limit=1&before={items[0]['id']}").json()
    assert [item["reason"] for item in older["items"]] == ["DriftCorrected"]
    assert clusters(admin)["dev"]["drift24h"] == 1
    assert "fleet_hub_drift_events_total 1.0" in admin.get("/metrics").text
    assert admin.get("/api/v1/clusters/nope/events").status_code == 404


def test_stream_delivers_changes_and_resumes_from_last_event_id(
    hub: RunningHub, admin: httpx.Client
) -> None:
    agent = agent_client(hub, "dev")
    parser = sse.EventStreamParser()
    received: list[sse.ServerSentEvent] = []
    with admin.stream("GET", "/api/v1/stream", timeout=10) as stream:
        lines = stream.iter_lines()
        received += _until(parser, lines, "ready")
        put(agent, "dev", body_of(report("dev", events=[event("DriftCorrected", "fixed")])))
        received += _until(parser, lines, "event")
    kinds = [item.event for item in received]
    assert kinds == ["ready", "cluster-updated", "event"]
    updated = json.loads(received[1].data)["cluster"]
    assert updated["name"] == "dev" and updated["health"] == "Ready"
    assert json.loads(received[2].data)["event"]["reason"] == "DriftCorrected"

    put(agent, "dev", body_of(report("dev", revision_sha="f" * 40)))
    resumed_parser = sse.EventStreamParser()
    with admin.stream(
        "GET", "/api/v1/stream", headers={"Last-Event-ID": str(received[2].id)}, timeout=10
    ) as stream:
        missed = _until(resumed_parser, stream.iter_lines(), "cluster-updated")
    assert json.loads(missed[-1].data)["cluster"]["revision"] == f"main@sha1:{'f' * 40}"


def _until(
    parser: sse.EventStreamParser, lines: Iterator[str], kind: str
) -> list[sse.ServerSentEvent]:
    events = []
    for line in lines:
        parsed = parser.feed(line)
        if parsed is not None:
            events.append(parsed)
            if parsed.event == kind:
                return events
    raise AssertionError(f"stream ended before a {kind!r} event: {events}")


def test_openapi_documents_exactly_the_served_routes(hub: RunningHub, admin: httpx.Client) -> None:
    document = admin.get("/api/v1/openapi.json").json()

    documented = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    # What the running server routes, asked over HTTP without credentials: a served route
    # answers (401, or its own reply when public), a route it lacks is Starlette's bare
    # "Not Found" / "Method Not Allowed". Bodies are never sent, so nothing changes.
    anonymous = httpx.Client(base_url=hub.url, timeout=30)
    for method, template in sorted(documented):
        path = re.sub(r"\{[^}]+\}", "dev", template)
        answer = _routing_answer(anonymous, method, path)
        assert answer not in {"Not Found", "Method Not Allowed"}, f"{method} {path} is not served"
        for other in {"GET", "PUT", "POST", "DELETE", "PATCH"} - {
            m for m, t in documented if t == template
        }:
            refused = _routing_answer(anonymous, other, path)
            assert refused == "Method Not Allowed", f"{other} {path} is served, undocumented"
    for undocumented in ("/api/v1/clusters/dev/secrets", "/api/v1/debug", "/api/v2/clusters"):
        assert _routing_answer(anonymous, "GET", undocumented) == "Not Found", undocumented
    assert {path for _, path in documented} == {endpoint.path for endpoint in ENDPOINTS}
    schemas = document["components"]["schemas"]
    assert {"ClusterReport", "ClusterList", "FleetSummary", "HubCommand"} <= set(schemas)
    put_report = document["paths"]["/api/v1/clusters/{name}/report"]["put"]
    assert put_report["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ClusterReport"
    }
    assert set(put_report["responses"]) >= {"200", "401", "403", "413", "422"}
    assert "reportedAt" in schemas["ClusterReport"]["properties"]


def _routing_answer(client: httpx.Client, method: str, path: str) -> str:
    """The error the server answers with (its ``error`` field), or the status code."""
    with client.stream(method, path) as response:
        if response.status_code in (404, 405):
            response.read()
            return str(response.json()["error"])
        return str(response.status_code)


def test_admin_reconcile_of_unknown_cluster_is_404(hub: RunningHub, admin: httpx.Client) -> None:
    assert admin.post("/api/v1/clusters/ghost/reconcile", json={}).status_code == 404
    agent_client(hub, "dev")
    queued = admin.post("/api/v1/clusters/dev/reconcile", json={"unit": "flux-system/apps"})
    assert queued.status_code == 202
    assert queued.json()["command"]["unit"] == "flux-system/apps"
    assert admin.post("/api/v1/clusters/dev/reconcile", json={"bogus": 1}).status_code == 422


def test_metrics_report_fleet_gauges(hub: RunningHub, admin: httpx.Client) -> None:
    put(agent_client(hub, "dev"), "dev", body_of(report("dev")))

    text = admin.get("/metrics").text

    assert 'fleet_hub_clusters{health="Ready"} 1.0' in text
    assert "fleet_hub_units_not_ready 0.0" in text
    assert "fleet_hub_clusters_stale 0.0" in text
    assert "fleet_hub_ingest_duration_seconds_count 1.0" in text


def test_stream_says_reset_when_the_client_is_further_behind_than_the_feed_reaches(
    hub: RunningHub, admin: httpx.Client
) -> None:
    agent = agent_client(hub, "dev")
    for sha in ("a", "b", "c"):
        put(agent, "dev", body_of(report("dev", revision_sha=sha * 40)))
    store = Store.open(hub.config.database)
    try:
        # What the hub's pruning does to a feed longer than it keeps.
        store.database.run_sync(lambda c: c.execute("DELETE FROM changes WHERE id <= 2"))
    finally:
        store.close()

    parser = sse.EventStreamParser()
    with admin.stream("GET", "/api/v1/stream", headers={"Last-Event-ID": "0"}, timeout=10) as s:
        events = _until(parser, s.iter_lines(), "cluster-updated")

    assert [e.event for e in events] == ["reset", "ready", "cluster-updated"]
    assert json.loads(events[2].data)["cluster"]["revision"] == f"main@sha1:{'c' * 40}"


def _client(hub: RunningHub, token: str) -> httpx.Client:
    return httpx.Client(base_url=hub.url, headers={"Authorization": f"Bearer {token}"})


def test_an_admin_creates_a_cluster_token_that_reports_only_as_that_cluster(
    hub: RunningHub, admin: httpx.Client
) -> None:
    created = admin.post(
        "/api/v1/tokens", json={"kind": "cluster", "cluster": "edge", "labels": {"env": "prod"}}
    )

    assert created.status_code == 201, created.text
    answer = created.json()
    assert answer["token"].startswith(f"fleet_{answer['id']}_")
    assert {k: answer[k] for k in ("kind", "cluster", "name", "role", "labels")} == {
        "kind": "cluster",
        "cluster": "edge",
        "name": None,
        "role": "cluster",
        "labels": {"env": "prod"},
    }
    assert not {"salt", "hash"} & set(answer)
    agent = _client(hub, answer["token"])
    assert put(agent, "edge", body_of(report("edge"))).status_code == 200
    assert put(agent, "dev", body_of(report("dev"))).status_code == 403
    assert agent.get("/api/v1/clusters").status_code == 403
    assert clusters(admin)["edge"]["labels"] == {"env": "prod"}

    # A second token for the cluster, without labels, keeps the labels it has.
    again = admin.post("/api/v1/tokens", json={"kind": "cluster", "cluster": "edge"})
    assert again.status_code == 201 and again.json()["labels"] == {"env": "prod"}
    assert again.json()["token"] != answer["token"]
    assert clusters(admin)["edge"]["labels"] == {"env": "prod"}


def test_an_admin_creates_user_tokens_with_their_role(hub: RunningHub, admin: httpx.Client) -> None:
    reader = admin.post("/api/v1/tokens", json={"kind": "user", "name": "bob"})
    operator = admin.post("/api/v1/tokens", json={"kind": "user", "name": "carol", "role": "admin"})

    assert reader.status_code == 201 and operator.status_code == 201
    assert (reader.json()["name"], reader.json()["role"]) == ("bob", "read-only")
    assert (operator.json()["name"], operator.json()["role"]) == ("carol", "admin")
    bob = _client(hub, reader.json()["token"])
    carol = _client(hub, operator.json()["token"])
    assert bob.get("/api/v1/clusters").status_code == 200
    assert bob.post("/api/v1/tokens", json={"kind": "user", "name": "x"}).status_code == 403
    made_by_carol = carol.post("/api/v1/tokens", json={"kind": "cluster", "cluster": "dev"})
    assert made_by_carol.status_code == 201


def test_read_only_and_cluster_tokens_may_not_create_list_or_revoke_tokens(
    hub: RunningHub, admin: httpx.Client
) -> None:
    reader = _client(hub, create_token(hub.config.database, "bob", role="read-only"))
    agent = agent_client(hub, "dev")
    own_id = admin.get("/api/v1/tokens").json()["items"][-1]["id"]

    for client in (reader, agent):
        created = client.post("/api/v1/tokens", json={"kind": "cluster", "cluster": "dev"})
        assert created.status_code == 403, created.text
        assert "admin" in created.json()["error"]
        assert client.get("/api/v1/tokens").status_code == 403
        assert client.delete(f"/api/v1/tokens/{own_id}").status_code == 403
    assert [t["cluster"] for t in admin.get("/api/v1/tokens").json()["items"]].count("dev") == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "kind"),
        ({"kind": "robot", "name": "r2"}, "kind"),
        ({"kind": "cluster"}, "cluster"),
        ({"kind": "cluster", "cluster": "Not A DNS Label"}, "cluster"),
        ({"kind": "cluster", "cluster": "dev", "labels": {"env": "a b"}}, "labels"),
        ({"kind": "cluster", "cluster": "dev", "role": "admin"}, "role"),
        ({"kind": "user"}, "name"),
        ({"kind": "user", "name": "bob", "role": "root"}, "role"),
        ({"kind": "user", "name": "bob", "cluster": "dev"}, "cluster"),
        ({"kind": "user", "name": "bob", "expires": "never"}, "expires"),
    ],
)
def test_a_bad_token_request_is_422_naming_the_field(
    hub: RunningHub, admin: httpx.Client, body: dict[str, object], field: str
) -> None:
    before = len(admin.get("/api/v1/tokens").json()["items"])

    refused = admin.post("/api/v1/tokens", json=body)

    assert refused.status_code == 422, refused.text
    assert refused.json()["error"].startswith("invalid token request: ")
    assert field in refused.json()["error"]
    assert len(admin.get("/api/v1/tokens").json()["items"]) == before


def test_a_token_request_that_is_not_json_is_422(hub: RunningHub, admin: httpx.Client) -> None:
    refused = admin.post("/api/v1/tokens", content=b"{kind: cluster")

    assert refused.status_code == 422
    assert "invalid token request" in refused.json()["error"]


def test_the_token_list_holds_no_secret(hub: RunningHub, admin: httpx.Client) -> None:
    made = admin.post("/api/v1/tokens", json={"kind": "cluster", "cluster": "dev"}).json()
    store = Store.open(hub.config.database)
    try:
        stored = {record.id: record for record in store.list_tokens_sync()}
    finally:
        store.close()

    listed = admin.get("/api/v1/tokens")

    assert listed.status_code == 200
    items = {item["id"]: item for item in listed.json()["items"]}
    assert set(items) == set(stored)
    assert items[made["id"]]["cluster"] == "dev" and items[made["id"]]["revokedAt"] is None
    secret = made["token"].split("_", 2)[2]
    for record in stored.values():
        for value in (record.salt, record.hash):
            assert value not in listed.text
    assert secret not in listed.text
    assert not {"token", "salt", "hash"} & {key for item in items.values() for key in item}


def test_a_token_revoked_through_the_api_is_refused_with_401(
    hub: RunningHub, admin: httpx.Client
) -> None:
    made = admin.post("/api/v1/tokens", json={"kind": "cluster", "cluster": "dev"}).json()
    agent = _client(hub, made["token"])
    assert put(agent, "dev", body_of(report("dev"))).status_code == 200

    revoked = admin.delete(f"/api/v1/tokens/{made['id']}")

    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revokedAt"] is not None and "token" not in revoked.json()
    refused = put(agent, "dev", body_of(report("dev")))
    assert refused.status_code == 401
    assert "revoked" in refused.json()["error"]
    listed = {item["id"]: item for item in admin.get("/api/v1/tokens").json()["items"]}
    assert listed[made["id"]]["revokedAt"] == revoked.json()["revokedAt"]
    again = admin.delete(f"/api/v1/tokens/{made['id']}")
    assert again.status_code == 200 and again.json()["revokedAt"] == revoked.json()["revokedAt"]
    missing = admin.delete("/api/v1/tokens/0123456789ab")
    assert missing.status_code == 404 and "0123456789ab" in missing.json()["error"]
