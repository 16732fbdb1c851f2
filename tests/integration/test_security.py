"""The hub's security boundary, tested from outside: authentication on every endpoint,
roles, cluster identity, revocation, size limits, webhook signatures and replays, and the
hostile-request corpus (tests/badinput/hub.yaml). Against a real hub on SQLite."""

from __future__ import annotations

import dataclasses
import hmac
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from hub.app import ENDPOINTS
from hub.config import HubConfig
from hub.webhooks import signature_of
from tests.badinput import generated, hub_cases
from tests.hubserver import RunningHub, body_of, create_token, report, revoke_tokens, running_hub

pytestmark = pytest.mark.timeout(120)

GITHUB_SECRET = "gh-secret"
GITLAB_TOKEN = "gl-token"
GENERIC_SECRET = "generic-secret"
PUBLIC = {"/healthz"}
HUB_CASES = hub_cases()


@dataclasses.dataclass
class SecuredHub:
    hub: RunningHub
    tokens: dict[str, str]

    def request(
        self,
        method: str,
        path: str,
        *,
        as_: str | None = None,
        token: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if as_ or token:
            headers["Authorization"] = f"Bearer {token or self.tokens[str(as_)]}"
        return httpx.request(method, f"{self.hub.url}{path}", headers=headers, timeout=10, **kwargs)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredHub]:
    database = f"sqlite:///{tmp_path_factory.mktemp('hub') / 'hub.db'}"
    config = HubConfig.model_validate(
        {
            "database": database,
            "tokenCacheTtl": "0s",
            "maxReportBytes": 65536,
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
            "dev": create_token(database, "dev"),
            "prod": create_token(database, "prod"),
            "reader": create_token(database, "reader", role="read-only"),
            "admin": create_token(database, "admin", role="admin"),
        }
        for name in ("dev", "prod"):
            httpx.put(
                f"{running.url}/api/v1/clusters/{name}/report",
                content=body_of(report(name)),
                headers={"Authorization": f"Bearer {tokens[name]}"},
            ).raise_for_status()
        yield SecuredHub(running, tokens)


def concrete(path: str) -> str:
    """An endpoint's path with its parameters filled in with things that exist."""
    return re.sub(r"\{(\w+)\}", lambda m: {"provider": "github"}.get(m[1], "dev"), path)


PROTECTED = [e for e in ENDPOINTS if e.access not in ("public", "signature")]
ADMIN = [e for e in ENDPOINTS if e.access == "admin"]
READ = [e for e in ENDPOINTS if e.access == "read"]
CLUSTER = [e for e in ENDPOINTS if e.access == "cluster"]


def _id(endpoint: Any) -> str:
    return f"{endpoint.method} {endpoint.path}"


def test_the_endpoint_table_leaves_only_healthz_and_webhooks_open() -> None:
    open_ = {e.path for e in ENDPOINTS if e.access in ("public", "signature")}
    assert open_ == PUBLIC | {"/api/v1/webhooks/{provider}"}
    assert {e.access for e in ENDPOINTS} <= {"public", "signature", "read", "cluster", "admin"}


@pytest.mark.parametrize("endpoint", PROTECTED, ids=_id)
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer garbage", "Bearer fleet_abc.def", "Basic YWRtaW46YWRtaW4="],
    ids=["none", "empty", "garbage", "unknown", "basic"],
)
def test_every_protected_endpoint_refuses_a_request_without_a_valid_token(
    secured: SecuredHub, endpoint: Any, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = secured.request(
        endpoint.method, concrete(endpoint.path), headers=headers, content=b"{}"
    )
    assert response.status_code == 401, response.text
    assert "token" in response.json()["error"]


def test_healthz_needs_no_token(secured: SecuredHub) -> None:
    assert secured.request("GET", "/healthz").status_code == 200


@pytest.mark.parametrize("endpoint", ADMIN, ids=_id)
@pytest.mark.parametrize("role", ["reader", "dev"])
def test_admin_endpoints_refuse_read_only_and_cluster_tokens(
    secured: SecuredHub, endpoint: Any, role: str
) -> None:
    response = secured.request(endpoint.method, concrete(endpoint.path), as_=role, json={})
    assert response.status_code == 403, response.text
    assert "admin" in response.json()["error"]


@pytest.mark.parametrize("endpoint", READ, ids=_id)
def test_read_endpoints_refuse_cluster_tokens(secured: SecuredHub, endpoint: Any) -> None:
    response = secured.request(endpoint.method, concrete(endpoint.path), as_="dev")
    assert response.status_code == 403, response.text


@pytest.mark.parametrize("endpoint", CLUSTER, ids=_id)
@pytest.mark.parametrize("role", ["prod", "reader", "admin"])
def test_cluster_endpoints_accept_only_that_clusters_token(
    secured: SecuredHub, endpoint: Any, role: str
) -> None:
    response = secured.request(
        endpoint.method, concrete(endpoint.path), as_=role, content=body_of(report("dev"))
    )
    assert response.status_code == 403, response.text
    assert "dev" in response.json()["error"]


def test_a_cluster_token_reports_only_as_itself(secured: SecuredHub) -> None:
    ok = secured.request(
        "PUT", "/api/v1/clusters/dev/report", as_="dev", content=body_of(report("dev"))
    )
    assert ok.status_code == 200, ok.text
    as_other = secured.request(
        "PUT", "/api/v1/clusters/prod/report", as_="dev", content=body_of(report("prod"))
    )
    assert as_other.status_code == 403
    smuggled = secured.request(
        "PUT", "/api/v1/clusters/dev/report", as_="dev", content=body_of(report("prod"))
    )
    assert smuggled.status_code == 400
    # Nothing the dev token sent changed what the hub holds for prod.
    prod = secured.request("GET", "/api/v1/clusters/prod", as_="reader")
    assert prod.status_code == 200 and '"prod"' in prod.text


def test_a_revoked_token_is_refused_at_once(secured: SecuredHub) -> None:
    database = secured.hub.config.database
    token = create_token(database, "doomed")
    body = body_of(report("doomed"))
    path = "/api/v1/clusters/doomed/report"
    assert secured.request("PUT", path, token=token, content=body).status_code == 200
    assert revoke_tokens(database, "doomed")
    refused = secured.request("PUT", path, token=token, content=body)
    assert refused.status_code == 401
    assert "revoked" in refused.json()["error"]


def test_a_token_with_a_wrong_secret_is_refused(secured: SecuredHub) -> None:
    token = secured.tokens["admin"]
    forged = token[:-4] + ("aaaa" if not token.endswith("aaaa") else "bbbb")
    response = secured.request("GET", "/api/v1/clusters", token=forged)
    assert response.status_code == 401


def _sign(case: dict[str, Any], body: bytes, headers: dict[str, str]) -> None:
    provider = case.get("sign")
    signed = body + (b" " if case.get("tamper") else b"")
    if provider == "github":
        headers["X-Hub-Signature-256"] = signature_of(GITHUB_SECRET, signed)
        headers.setdefault("X-GitHub-Delivery", str(uuid.uuid4()))
    elif provider == "generic":
        timestamp = str(int(time.time()) - int(case.get("age", 0)))
        headers["X-Fleet-Timestamp"] = timestamp
        headers["X-Fleet-Delivery"] = str(uuid.uuid4())
        headers["X-Fleet-Signature"] = signature_of(
            GENERIC_SECRET, timestamp.encode() + b"." + signed
        )


@pytest.mark.parametrize("case", HUB_CASES, ids=[c["name"] for c in HUB_CASES])
def test_hostile_requests_are_refused_with_a_clear_error(
    secured: SecuredHub, case: dict[str, Any]
) -> None:
    raw = case.get("body", "")
    if "report_of" in case:
        body = body_of(report(case["report_of"])).encode()
    else:
        body = (raw if isinstance(raw, str) else generated(raw["generate"])).encode()
    headers = {k: str(v) for k, v in case.get("headers", {}).items()}
    _sign(case, body, headers)
    response = secured.request(
        case["method"], case["path"], as_=case.get("as"), headers=headers, content=body
    )
    assert response.status_code == case["status"], response.text
    error = response.text
    for expected in case["expect"]:
        assert expected in error, f"{expected!r} not in {error}"
    # The hub is still up and answering after every hostile request.
    assert secured.request("GET", "/healthz").status_code == 200


def _generic(body: bytes, delivery: str, timestamp: int) -> dict[str, str]:
    return {
        "X-Fleet-Timestamp": str(timestamp),
        "X-Fleet-Delivery": delivery,
        "X-Fleet-Signature": signature_of(GENERIC_SECRET, f"{timestamp}.".encode() + body),
    }


def test_a_replayed_webhook_delivery_is_refused(secured: SecuredHub) -> None:
    body = b'{"ref": "refs/heads/main"}'
    headers = _generic(body, str(uuid.uuid4()), int(time.time()))
    path = "/api/v1/webhooks/generic"
    first = secured.request("POST", path, headers=headers, content=body)
    assert first.status_code == 202, first.text
    again = secured.request("POST", path, headers=headers, content=body)
    assert again.status_code == 409
    assert "already received" in again.json()["error"]
    github_body = b'{"ref": "refs/heads/main"}'
    github = {
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": signature_of(GITHUB_SECRET, github_body),
    }
    path = "/api/v1/webhooks/github"
    assert secured.request("POST", path, headers=github, content=github_body).status_code == 202
    assert secured.request("POST", path, headers=github, content=github_body).status_code == 409


def test_a_bad_signature_does_not_burn_the_delivery_id(secured: SecuredHub) -> None:
    # Not the body of the test above: within one second it would be the same delivery.
    body = b'{"ref": "refs/heads/main", "after": "bad-signature-test"}'
    delivery = str(uuid.uuid4())
    forged = _generic(body, delivery, int(time.time()))
    forged["X-Fleet-Signature"] = "sha256=" + "0" * 64
    path = "/api/v1/webhooks/generic"
    assert secured.request("POST", path, headers=forged, content=body).status_code == 401
    genuine = _generic(body, delivery, int(time.time()))
    assert secured.request("POST", path, headers=genuine, content=body).status_code == 202


def test_signatures_are_compared_in_constant_time(
    secured: SecuredHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A timing test would be flaky on a shared machine; instead, watch every forged
    # delivery reach hmac.compare_digest (the real one) with what was expected and what
    # was sent, and be refused: no code path compares a secret with ``==``.
    compared: list[tuple[bytes, bytes]] = []
    constant_time = hmac.compare_digest

    def recording(a: Any, b: Any) -> bool:
        compared.append((_as_bytes(a), _as_bytes(b)))
        return constant_time(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording)
    body = b'{"ref": "refs/heads/main"}'
    forged_signature = "sha256=" + "0" * 64
    forgeries = {
        "github": (
            {
                "X-GitHub-Event": "push",
                "X-GitHub-Delivery": str(uuid.uuid4()),
                "X-Hub-Signature-256": forged_signature,
            },
            signature_of(GITHUB_SECRET, body),
            forged_signature,
        ),
        "gitlab": (
            {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "gl-guess"},
            GITLAB_TOKEN,
            "gl-guess",
        ),
        "generic": (
            _generic(body, str(uuid.uuid4()), int(time.time()))
            | {"X-Fleet-Signature": forged_signature},
            None,
            forged_signature,
        ),
    }
    for provider, (headers, expected, sent) in forgeries.items():
        compared.clear()
        path = f"/api/v1/webhooks/{provider}"
        response = secured.request("POST", path, headers=headers, content=body)
        assert response.status_code == 401, (provider, response.text)
        sides = [set(pair) for pair in compared]
        assert any(sent.encode() in pair for pair in sides), f"{provider}: not compared in hmac"
        if expected is not None:
            assert {expected.encode(), sent.encode()} in sides, provider


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value
