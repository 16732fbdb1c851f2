"""Verification gates, the pure half: reading Prometheus answers, the hold clock, the gate."""

from __future__ import annotations

import datetime

import pytest

from fleet.core import verification
from fleet.core.promotion import ClusterStatus, Inputs, WaveState, decide_wave
from fleet.core.verification import CheckResult, CheckState
from fleet.models.errors import ManifestError
from fleet.models.fleetconfig import load_fleet_config

NOW = datetime.datetime(2026, 12, 4, 12, 0, tzinfo=datetime.UTC)
REV = "b" * 40


def minutes_ago(minutes: float) -> datetime.datetime:
    return NOW - datetime.timedelta(minutes=minutes)


def vector(*values: str) -> dict[str, object]:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": {"cluster": f"c{i}"}, "value": [1.7e9, value]}
                for i, value in enumerate(values)
            ],
        },
    }


@pytest.mark.parametrize(
    ("body", "ok", "detail"),
    [
        (vector("1"), True, '1 sample(s), first {cluster="c0"} = 1'),
        # A filter keeps the left-hand value: an error rate of 0 under a threshold holds.
        (vector("0", "0.002"), True, '2 sample(s), first {cluster="c0"} = 0'),
        (vector(), False, "query returned no samples"),
        ({"status": "success", "data": {"resultType": "scalar", "result": [1, "1"]}}, True, ""),
        (
            {"status": "success", "data": {"resultType": "scalar", "result": [1, "0"]}},
            False,
            "scalar = 0",
        ),
        (
            {"status": "success", "data": {"resultType": "scalar", "result": [1, "NaN"]}},
            False,
            "scalar = nan",
        ),
        (
            {"status": "success", "data": {"resultType": "matrix", "result": []}},
            False,
            "unsupported result type 'matrix': use an instant vector",
        ),
        (
            {"status": "error", "errorType": "bad_data", "error": "parse error at char 4"},
            False,
            "query failed (bad_data): parse error at char 4",
        ),
        ({"status": "success"}, False, "answer has no data"),
    ],
)
def test_a_prometheus_answer_holds_as_an_alerting_rule_reads_it(
    body: dict[str, object], ok: bool, detail: str
) -> None:
    result = verification.prometheus_result(body)
    assert result.ok is ok
    if detail:
        assert result.detail == detail


def test_placeholders_become_the_dependency_clusters_and_the_wave() -> None:
    query = 'sum(rate(errors{cluster=~"{clusters}"}[5m])) < 0.01 and on() vector({wave})'
    expanded = verification.expand(query, clusters=["stg-2", "dev"], wave="prod")
    assert expanded == 'sum(rate(errors{cluster=~"dev|stg-2"}[5m])) < 0.01 and on() vector(prod)'
    assert verification.check_urls("http://{cluster}.test/ok", ["a", "b"]) == [
        "http://a.test/ok",
        "http://b.test/ok",
    ]
    assert verification.check_urls("http://one.test/", ["a", "b"]) == ["http://one.test/"]


def test_the_hold_clock_starts_on_success_and_stops_on_any_failure() -> None:
    first = verification.fold(None, CheckResult(True, "ok"), minutes_ago(10))
    assert first.holding_since == minutes_ago(10)
    second = verification.fold(first, CheckResult(True, "ok"), minutes_ago(5))
    assert second.holding_since == minutes_ago(10)
    assert second.checked_at == minutes_ago(5)
    broken = verification.fold(second, CheckResult(False, "down"), minutes_ago(4))
    assert broken.holding_since is None
    assert broken.detail == "down"
    again = verification.fold(broken, CheckResult(True, "ok"), minutes_ago(3))
    assert again.holding_since == minutes_ago(3)


CONFIG_TEXT = """
clusters: [{name: dev}, {name: prod}]
waves:
  - {name: dev, clusters: [dev]}
  - name: prod
    clusters: [prod]
    dependsOn: [dev]
    soak: 10m
    verify:
      - name: errors
        prometheus: {address: "http://127.0.0.1:9090", query: "up"}
      - name: health
        http: {url: "http://{cluster}.test/healthz"}
"""
CONFIG = load_fleet_config(CONFIG_TEXT)


def gate(checks: dict[tuple[str, str], CheckState], ready_minutes: float = 30) -> str:
    dev = ClusterStatus("dev", REV, True, minutes_ago(ready_minutes), reported_at=NOW)
    inputs = Inputs(
        CONFIG,
        REV,
        {"dev": WaveState(REV), "prod": WaveState("a" * 40)},
        {"dev": dev},
        NOW,
        checks=checks,
    )
    decision = decide_wave(inputs, CONFIG.wave("prod"))
    return decision.action.value + ": " + decision.reason


def held(since_minutes: float, checked_minutes: float = 0.5) -> CheckState:
    return CheckState(minutes_ago(since_minutes), minutes_ago(checked_minutes), "ok")


def test_the_gate_waits_for_every_check_to_hold_for_the_soak() -> None:
    both = {("prod", "errors"): held(40), ("prod", "health"): held(40)}
    assert gate(both).startswith("promote")
    assert gate({("prod", "errors"): held(40)}) == (
        "wait: verifying bbbbbbb: health not evaluated yet"
    )
    short = {("prod", "errors"): held(40), ("prod", "health"): held(4)}
    assert gate(short) == "wait: verifying bbbbbbb: health holding, 6m0s remaining"
    down = CheckState(None, minutes_ago(0.5), "prometheus at http://127.0.0.1:9090: refused")
    assert gate({("prod", "errors"): down, ("prod", "health"): held(40)}) == (
        "wait: verification failing: errors does not hold: "
        "prometheus at http://127.0.0.1:9090: refused"
    )


def test_a_failing_check_is_named_even_while_the_dependencies_soak() -> None:
    down = CheckState(None, minutes_ago(0.5), "answered 503")
    reason = gate({("prod", "errors"): down, ("prod", "health"): held(40)}, ready_minutes=2)
    assert reason == "wait: verification failing: errors does not hold: answered 503"


def test_a_hold_measured_before_the_clusters_became_ready_does_not_count() -> None:
    stale = {("prod", "errors"): held(60, checked_minutes=20), ("prod", "health"): held(60)}
    assert gate(stale, ready_minutes=15) == (
        "wait: verifying bbbbbbb: errors not evaluated since the clusters became Ready"
    )


@pytest.mark.parametrize(
    ("wave", "field", "message"),
    [
        (
            "{name: prod, clusters: [prod], dependsOn: [dev], verify: [{name: x}]}",
            "waves[1]",
            "needs exactly one of prometheus or http",
        ),
        (
            "{name: prod, clusters: [prod], dependsOn: [dev], "
            "verify: [{name: x, http: {url: 'ftp://a/'}}]}",
            "waves[1].verify[0].http.url",
            "not an http(s) URL",
        ),
        (
            "{name: prod, clusters: [prod], verify: [{name: x, http: {url: 'http://a/'}}]}",
            "waves[1].verify",
            "has no dependsOn",
        ),
        (
            "{name: prod, clusters: [prod], dependsOn: [dev], verify: ["
            "{name: x, http: {url: 'http://a/'}}, {name: x, http: {url: 'http://b/'}}]}",
            "waves[1].verify[1].name",
            'check "x" is defined twice',
        ),
    ],
)
def test_bad_checks_are_refused_naming_the_field(wave: str, field: str, message: str) -> None:
    text = (
        "clusters: [{name: dev}, {name: prod}]\n"
        f"waves:\n  - {{name: dev, clusters: [dev]}}\n  - {wave}\n"
    )
    with pytest.raises(ManifestError) as raised:
        load_fleet_config(text)
    assert field in str(raised.value)
    assert message in str(raised.value)
