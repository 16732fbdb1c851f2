"""``Verifier``: evaluates the waves' verification checks on their interval, in the hub.

Each check of a wave's ``verify`` (fleet.yaml) is a PromQL expression sent to a Prometheus
HTTP API, or an HTTP URL fetched per cluster of the waves it depends on. The results fold
into one hold clock per check (``fleet.core.verification``), which the promoter hands to
the gate. The clocks live in memory: a restarted hub starts them again, which can only
delay a promotion, never let one through early.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import anyio.abc
import httpx

from fleet.core import verification
from fleet.core.verification import CheckResult, CheckState
from fleet.models.fleetconfig import FleetConfig, Verification
from fleet.redact import redact_url

log = logging.getLogger(__name__)

CheckKey = tuple[str, str]
"""``(wave, check name)``."""
MAX_ANSWER_BYTES = 1 << 20
"""A Prometheus answer larger than this is refused rather than parsed."""


@dataclasses.dataclass(frozen=True)
class ScheduledCheck:
    """A check with what it runs over, as the current fleet.yaml defines it."""

    wave: str
    check: Verification
    clusters: tuple[str, ...]
    """The clusters of the waves it depends on."""

    @property
    def key(self) -> CheckKey:
        return (self.wave, self.check.name)

    @property
    def kind(self) -> str:
        return "prometheus" if self.check.prometheus is not None else "http"


def scheduled_checks(config: FleetConfig) -> dict[CheckKey, ScheduledCheck]:
    checks = {}
    for wave in config.waves:
        upstream = tuple(
            cluster for name in wave.depends_on for cluster in config.members(config.wave(name))
        )
        for check in wave.verify:
            entry = ScheduledCheck(wave.name, check, upstream)
            checks[entry.key] = entry
    return checks


class Verifier:
    def __init__(
        self,
        clock: Callable[[], float],
        on_change: Callable[[], None],
    ) -> None:
        self._clock = clock
        self._on_change = on_change
        self._checks: dict[CheckKey, ScheduledCheck] = {}
        self._states: dict[CheckKey, CheckState] = {}
        self._due: dict[CheckKey, float] = {}
        self._reconfigured = anyio.Event()

    def configure(self, config: FleetConfig) -> None:
        """Take the checks of the current fleet.yaml; a changed check starts afresh."""
        checks = scheduled_checks(config)
        if checks == self._checks:
            return
        for key in list(self._states):
            if checks.get(key) != self._checks.get(key):
                self._states.pop(key, None)
                self._due.pop(key, None)
        self._checks = checks
        self._reconfigured.set()

    def states(self) -> Mapping[CheckKey, CheckState]:
        return dict(self._states)

    def checks(self) -> Mapping[CheckKey, ScheduledCheck]:
        return dict(self._checks)

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        async with httpx.AsyncClient(follow_redirects=False) as http:
            task_status.started()
            while True:
                self._reconfigured = anyio.Event()
                now = self._clock()
                due = [c for k, c in self._checks.items() if self._due.get(k, 0.0) <= now]
                if due:
                    async with anyio.create_task_group() as group:
                        for check in due:
                            group.start_soon(self._evaluate, http, check)
                upcoming = [self._due.get(key, 0.0) for key in self._checks]
                wait = max(0.0, min(upcoming, default=math.inf) - self._clock())
                with anyio.move_on_after(min(wait, 60.0)):
                    await self._reconfigured.wait()

    async def _evaluate(self, http: httpx.AsyncClient, scheduled: ScheduledCheck) -> None:
        check = scheduled.check
        timeout = check.timeout.total_seconds()
        result = CheckResult(False, f"no answer within {timeout:g}s")
        with anyio.move_on_after(timeout):
            try:
                result = await _run(http, scheduled, timeout)
            except Exception as error:  # a bug here must not stop the promoter
                log.exception("verification %s/%s failed", scheduled.wave, check.name)
                result = CheckResult(False, f"internal error: {error}")
        if self._checks.get(scheduled.key) != scheduled:
            return  # fleet.yaml changed meanwhile: this result belongs to an old check
        at = self._clock()
        previous = self._states.get(scheduled.key)
        state = verification.fold(previous, result, _utc(at))
        self._states[scheduled.key] = state
        self._due[scheduled.key] = at + check.interval.total_seconds()
        if previous is None or (previous.holding_since is None) != (state.holding_since is None):
            log.info(
                "verification %s/%s %s: %s",
                scheduled.wave,
                check.name,
                "holds" if result.ok else "does not hold",
                result.detail,
            )
            self._on_change()


async def _run(http: httpx.AsyncClient, scheduled: ScheduledCheck, timeout: float) -> CheckResult:
    check = scheduled.check
    if check.prometheus is not None:
        query = verification.expand(
            check.prometheus.query, clusters=scheduled.clusters, wave=scheduled.wave
        )
        return await _prometheus(http, check.prometheus.address, query, timeout)
    assert check.http is not None
    urls = verification.check_urls(check.http.url, scheduled.clusters)
    return verification.combine([await _http(http, url, timeout) for url in urls])


async def _prometheus(
    http: httpx.AsyncClient, address: str, query: str, timeout: float
) -> CheckResult:
    where = f"prometheus at {redact_url(address)}"
    url = address.rstrip("/") + "/api/v1/query"
    try:
        response = await http.get(url, params={"query": query}, timeout=timeout)
    except httpx.HTTPError as error:
        return CheckResult(False, f"{where}: {_describe(error)}")
    if len(response.content) > MAX_ANSWER_BYTES:
        return CheckResult(False, f"{where}: answer larger than {MAX_ANSWER_BYTES} bytes")
    body: Any
    try:
        body = response.json()
    except ValueError:
        return CheckResult(False, f"{where} answered {response.status_code}, not JSON")
    if not isinstance(body, dict):
        return CheckResult(False, f"{where} answered {response.status_code}, not an API answer")
    return verification.prometheus_result(body)


async def _http(http: httpx.AsyncClient, url: str, timeout: float) -> CheckResult:
    shown = redact_url(url)
    try:
        response = await http.get(url, timeout=timeout)
    except httpx.HTTPError as error:
        return CheckResult(False, f"{shown}: {_describe(error)}")
    return verification.http_result(shown, response.status_code)


def _describe(error: httpx.HTTPError) -> str:
    return str(error) or type(error).__name__


def _utc(timestamp: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
