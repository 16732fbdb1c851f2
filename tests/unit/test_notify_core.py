"""The provider library's pure parts and the hub's use of them, with plain data: type registry,
Flux's naming rules (revision SHA, repository, status id, camel case), event identity, spec
checks, retry waits, hub config and the alert-to-event mapping."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

import pytest

from fleet.notify import (
    FLUX_TYPES,
    NOT_SUPPORTED,
    SUPPORTED,
    Event,
    EventNotApplicable,
    InvalidProvider,
    InvolvedObject,
    ProviderSpec,
    Response,
    RetryPolicy,
    UnsupportedProvider,
    event_key,
    provider,
)
from fleet.notify.providers import commitstatus, names
from hub.config import ConfigError, NotificationTarget, load_config
from hub.notify import Alert
from hub.notify.flux import event_of

SHA = "5394cb7f48332b2de7c17dd8b8384bbc84b7e738"
EVENT = Event(
    InvolvedObject("Kustomization", "apps", "flux-system"),
    "error",
    datetime.datetime(2026, 5, 1, 12, tzinfo=datetime.UTC),
    "boom",
    "HealthCheckFailed",
    "kustomize-controller",
    {"revision": f"main@sha1:{SHA}"},
)


def test_every_flux_type_is_either_supported_or_says_why_not() -> None:
    assert len(FLUX_TYPES) == 27
    assert set(SUPPORTED).isdisjoint(NOT_SUPPORTED)
    assert set(SUPPORTED) | set(NOT_SUPPORTED) == set(FLUX_TYPES)
    with pytest.raises(UnsupportedProvider, match="'sentry' is not supported by fleet: needs"):
        provider("sentry")
    with pytest.raises(UnsupportedProvider, match=r"unknown provider type 'slak'.*slack"):
        provider("slak")


@pytest.mark.parametrize(
    "revision",
    [
        f"main@sha1:{SHA}",
        f"feature/x@sha1:{SHA}",
        f"sha1:{SHA}",
        f"main/{SHA}",
        f"feature/branch/{SHA}",
        SHA,
    ],
)
def test_commit_sha_from_every_revision_form(revision: str) -> None:
    event = dataclasses.replace(EVENT, metadata={"revision": revision})
    assert commitstatus.commit_sha(event) == SHA


def test_origin_revision_wins_and_a_bad_revision_is_not_applicable() -> None:
    other = "b" * 40
    event = dataclasses.replace(
        EVENT, metadata={"revision": f"main@sha1:{SHA}", "originRevision": f"main@sha1:{other}"}
    )
    assert commitstatus.commit_sha(event) == other
    with pytest.raises(EventNotApplicable, match="failed to extract commit hash"):
        commitstatus.commit_sha(dataclasses.replace(EVENT, metadata={"revision": "main@sha1:xyz"}))


@pytest.mark.parametrize(
    ("address", "host", "repo"),
    [
        ("https://github.com/acme/fleet", "https://github.com", "acme/fleet"),
        ("https://github.com/acme/fleet.git", "https://github.com", "acme/fleet"),
        ("ssh://git@github.com/acme/fleet.git", "https://github.com", "acme/fleet"),
        ("git@gitlab.example.com:group/fleet.git", "https://gitlab.example.com", "group/fleet"),
        ("http://127.0.0.1:3000/acme/fleet", "http://127.0.0.1:3000", "acme/fleet"),
    ],
)
def test_repository_from_the_address(address: str, host: str, repo: str) -> None:
    assert commitstatus.parse_git_address(address) == (host, repo)


def test_status_id_and_wording_as_flux() -> None:
    assert names.commit_status_id(EVENT, "0c9c2e41-aaaa-bbbb") == "kustomization/apps/0c9c2e41"
    assert names.split_camelcase("PDFLoader") == ["PDF", "Loader"]
    assert names.name_and_description(EVENT) == ("kustomization/apps", "health check failed")
    assert names.title_case("ReconciliationSucceeded") == "Reconciliationsucceeded"


def test_event_key_is_the_object_message_and_revision() -> None:
    later = dataclasses.replace(EVENT, timestamp=EVENT.timestamp + datetime.timedelta(hours=1))
    assert event_key(later) == event_key(EVENT), "the time is not part of it"
    assert event_key(dataclasses.replace(EVENT, message="other")) != event_key(EVENT)
    moved = dataclasses.replace(EVENT, metadata={"revision": "main@sha1:" + "c" * 40})
    assert event_key(moved) != event_key(EVENT)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (ProviderSpec("slack"), "slack: address is required"),
        (ProviderSpec("msteams", "teams.example.com/hook"), "is not an http\\(s\\) URL"),
        (ProviderSpec("telegram", token="t"), "telegram: channel"),
        (ProviderSpec("generic-hmac", "https://h/x"), "generic-hmac: token"),
        (ProviderSpec("github", "https://github.com/acme", token="t"), "must be <owner>/<repo>"),
        (ProviderSpec("bitbucket", "https://bitbucket.org/a/b", token="t"), "<user>:<password>"),
        (ProviderSpec("pagerduty", "https://events.pagerduty.com"), "channel"),
    ],
)
def test_a_spec_that_cannot_work_is_refused_naming_the_field(
    spec: ProviderSpec, message: str
) -> None:
    with pytest.raises(InvalidProvider, match=message):
        provider(spec.type).check(spec)


def test_retry_waits_double_up_to_the_cap_and_honour_retry_after() -> None:
    policy = RetryPolicy(retries=4, wait_min=2, wait_max=30)
    assert [policy.wait(n, None) for n in (1, 2, 3, 4, 5)] == [2, 4, 8, 16, 30]
    assert policy.wait(1, Response(429, headers={"Retry-After": "7"})) == 7
    assert policy.wait(1, Response(503, headers={"retry-after": "600"})) == 30


def test_hub_config_refuses_an_unsupported_type_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "hub.yaml"
    path.write_text("notifications: [{name: eh, type: azureeventhub, url: 'https://x'}]\n")
    with pytest.raises(ConfigError, match=r"notifications\.0\.type: .*'azureeventhub' is not"):
        load_config(path)


def test_hub_target_provider_fields_and_secret_dir(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "address").write_text("https://events.pagerduty.com\n")
    (secret / "headers").write_text("X-Team: platform\n")
    target = NotificationTarget.model_validate(
        {"name": "oncall", "type": "pagerduty", "channel": "KEY", "secretDir": str(secret)}
    )
    spec = target.provider_spec()
    assert (spec.address, spec.channel) == ("https://events.pagerduty.com", "KEY")
    assert spec.headers == {"X-Team": "platform"}
    assert spec.provider_uid, "a stable uid for commit-status contexts"

    missing = NotificationTarget.model_validate(
        {"name": "pd", "type": "pagerduty", "url": "https://e"}
    )
    with pytest.raises(ConfigError, match="notification 'pd': pagerduty: channel"):
        missing.provider_spec()


def test_alerts_become_flux_events() -> None:
    unit = Alert(
        "prod-eu", "ReconcileFailed", "warning", "x", 0.0, unit="ns/apps", kind="HelmRelease"
    )
    wave = Alert("wave/prod", "ApprovalRequired", "warning", "y", 0.0, kind="Wave", revision=SHA)
    cluster = Alert("prod-eu", "ClusterStale", "error", "z", 0.0, labels={"env": "prod"})

    as_unit, as_wave, as_cluster = event_of(unit), event_of(wave), event_of(cluster)

    assert as_unit.involved_object.kind == "HelmRelease"
    assert as_unit.involved_object.api_version == "helm.toolkit.fluxcd.io/v2"
    assert (as_unit.severity, as_unit.metadata["fleetSeverity"]) == ("error", "warning")
    assert as_unit.involved_object.uid == event_of(unit).involved_object.uid, "stable"
    assert (as_wave.involved_object.kind, as_wave.involved_object.name) == ("Wave", "prod")
    assert as_wave.metadata == {"wave": "prod", "revision": SHA, "fleetSeverity": "warning"}
    assert (as_cluster.involved_object.kind, as_cluster.involved_object.name) == (
        "Cluster",
        "prod-eu",
    )
    assert as_cluster.metadata == {"cluster": "prod-eu", "labels": "env=prod"}


def test_hub_slack_keeps_its_own_message_unless_format_flux() -> None:
    from hub.notify.delivery import _route

    alert = Alert("prod-eu", "ReconcileFailed", "error", "boom", 0.0, unit="flux-system/apps")
    base = {"name": "chat", "type": "slack", "url": "https://hooks.slack.com/services/x"}
    fleet_format = _route(NotificationTarget.model_validate(base)).build(alert, 0)
    flux_format = _route(NotificationTarget.model_validate({**base, "format": "flux"})).build(
        alert, 0
    )

    (fleet_request,) = fleet_format.requests
    (flux_request,) = flux_format.requests
    assert fleet_request.body is not None and flux_request.body is not None
    assert b'"footer":"fleet hub"' in fleet_request.body
    assert b'"author_name":"kustomization/apps.flux-system"' in flux_request.body
    with pytest.raises(ValueError, match="format is only for type slack"):
        NotificationTarget.model_validate({**base, "type": "msteams", "format": "flux"})
