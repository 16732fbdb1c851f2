"""Where the TUI's data comes from: a live hub, or the Git status branch (read-only).

Both sources yield the same ``Update`` values from ``updates()``, so the app applies a
stream change, a reconnect's resync and a Git poll through one code path:

- ``HubSource`` keeps ``/api/v1/stream`` open. On every (re)connect it waits for the
  stream's ``ready`` event, then fetches the cluster list (``Resync``): the stream resumes
  from the last event id it saw, so nothing between the list and the stream is lost, and
  the list catches whatever the feed no longer holds (the hub sends ``reset`` before
  ``ready`` then, and the recent events are read again too). Failures back off and say so
  (``Connection``: reconnecting, then unreachable after ``UNREACHABLE_AFTER`` attempts).
- ``StatusBranchSource`` reads ``fleet-status`` every ``interval`` (no heartbeats in
  Git, so no Stale there) and refuses every action.
"""

from __future__ import annotations

import datetime
import itertools
import random
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, TypeVar

import anyio
import anyio.to_thread
import pydantic

from fleet import redact
from fleet import report as report_schema
from fleet.report import ClusterReport, ClusterSummary, HubCommand
from hub import api
from hub.tui.client import (
    HubClient,
    HubClientError,
    HubUnreachable,
    PromotionNotConfigured,
    PromotionRecord,
    Promotions,
)

ConnectionState = Literal[
    "connecting", "connected", "reconnecting", "unreachable", "refused", "read-only"
]
UNREACHABLE_AFTER = 3
"""Failed attempts in a row before 'reconnecting' becomes 'hub unreachable'."""
BACKOFF_SECONDS = (0.25, 0.5, 1.0, 2.0, 4.0)
INITIAL_EVENTS = 200


class ReadOnlySource(HubClientError):
    """An action asked of a source that cannot act (the Git status branch)."""


@dataclass(frozen=True)
class Connection:
    """What the status line shows; ``detail`` says why when it is not connected."""

    state: ConnectionState
    detail: str = ""
    attempt: int = 0


@dataclass(frozen=True)
class Resync:
    """The whole fleet as of now: rows not listed here are gone."""

    clusters: list[ClusterSummary]
    events: list[api.EventRecord] = field(default_factory=list)
    """Recent events, oldest first (only on the first load)."""


@dataclass(frozen=True)
class ClusterChanged:
    cluster: ClusterSummary


@dataclass(frozen=True)
class EventArrived:
    event: api.EventRecord


@dataclass(frozen=True)
class PromotionsChanged:
    """The promotion state may have moved; the app re-reads it."""


Update = Connection | Resync | ClusterChanged | EventArrived | PromotionsChanged


class FleetSource(Protocol):
    label: str
    """Where the data comes from, as the status line names it."""
    read_only: bool

    def updates(self) -> AsyncIterator[Update]: ...
    async def cluster(self, name: str) -> api.ClusterDetail: ...
    async def events(self, cluster: str | None, limit: int) -> list[api.EventRecord]: ...
    async def promotions(self) -> Promotions: ...
    async def promotion_history(self, wave: str) -> list[PromotionRecord]: ...
    async def reconcile(self, cluster: str, unit: str | None) -> HubCommand: ...
    async def approve(self, wave: str, revision: str) -> None: ...
    async def pause(self, wave: str) -> None: ...
    async def resume(self, wave: str) -> None: ...
    async def rollback(self, wave: str, to: str) -> None: ...
    async def aclose(self) -> None: ...


def backoff(attempt: int) -> float:
    """Seconds before retry ``attempt`` (1-based), with jitter so TUIs don't stampede."""
    base = BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS)) - 1]
    return base * random.uniform(0.8, 1.2)


class HubSource:
    """A live hub: actions are its API calls; ``updates()`` follows its change stream."""

    read_only = False

    def __init__(self, client: HubClient, *, label: str | None = None) -> None:
        self.client = client
        self.label = label or client.url.split("://", 1)[-1]

    async def updates(self) -> AsyncIterator[Update]:
        last_id: str | None = None
        failures = 0
        first = True
        missed = False
        yield Connection("connecting", self.label)
        while True:
            try:
                async with self.client.stream(last_id) as events:
                    async for event in events:
                        if event.id is not None:
                            last_id = event.id
                        if event.event == "reset":
                            # The hub no longer holds the changes we missed: the ``ready``
                            # that follows re-reads the recent events too.
                            missed = True
                        elif event.event == "ready":
                            failures = 0
                            history = (
                                await self.client.events(None, INITIAL_EVENTS)
                                if first or missed
                                else []
                            )
                            clusters = await self.client.clusters()
                            first = missed = False
                            yield Resync(clusters, list(reversed(history)))
                            yield PromotionsChanged()
                            yield Connection("connected", self.label)
                        elif event.event == "cluster-updated":
                            change = _parse(api.StreamChange, event.data)
                            if change is not None:
                                yield ClusterChanged(change.cluster)
                        elif event.event == "event":
                            arrived = _parse(api.StreamEvent, event.data)
                            if arrived is not None:
                                yield EventArrived(arrived.event)
                        elif event.event.startswith("promotion"):
                            yield PromotionsChanged()
                failures = max(failures, 1)
                yield Connection("reconnecting", "the hub closed the stream", failures)
            except HubClientError as error:
                failures += 1
                state: ConnectionState = (
                    "unreachable" if failures >= UNREACHABLE_AFTER else "reconnecting"
                )
                if not isinstance(error, HubUnreachable):
                    state = "refused"  # a bad or revoked token: retrying is still right
                yield Connection(state, str(error), failures)
            await anyio.sleep(backoff(failures))

    async def cluster(self, name: str) -> api.ClusterDetail:
        return await self.client.cluster(name)

    async def events(self, cluster: str | None, limit: int) -> list[api.EventRecord]:
        return await self.client.events(cluster, limit)

    async def promotions(self) -> Promotions:
        return await self.client.promotions()

    async def promotion_history(self, wave: str) -> list[PromotionRecord]:
        return await self.client.promotion_history(wave)

    async def reconcile(self, cluster: str, unit: str | None) -> HubCommand:
        return await self.client.reconcile(cluster, unit)

    async def approve(self, wave: str, revision: str) -> None:
        await self.client.approve(wave, revision)

    async def pause(self, wave: str) -> None:
        await self.client.pause(wave)

    async def resume(self, wave: str) -> None:
        await self.client.resume(wave)

    async def rollback(self, wave: str, to: str) -> None:
        await self.client.rollback(wave, to)

    async def aclose(self) -> None:
        await self.client.aclose()


M = TypeVar("M", bound=pydantic.BaseModel)


def _parse(model: type[M], data: str) -> M | None:
    """A stream payload, or None when a newer hub sends something this TUI cannot read."""
    try:
        return model.model_validate_json(data)
    except pydantic.ValidationError:
        return None


ReadReports = Callable[[], list[ClusterReport]]


class StatusBranchSource:
    """The ``fleet-status`` branch of the fleet repository, polled: no hub, no actions."""

    read_only = True

    def __init__(
        self,
        read: ReadReports,
        *,
        label: str,
        interval: float = 30.0,
        clock: Callable[[], datetime.datetime] = report_schema.utc_now,
        cleanup: Callable[[], None] | None = None,
    ) -> None:
        self._read = read
        self.label = label
        self.interval = interval
        self._clock = clock
        self._cleanup = cleanup
        self._reports: dict[str, ClusterReport] = {}
        self._event_ids = itertools.count(1)
        self._seen: dict[str, api.EventRecord] = {}

    @classmethod
    def for_repo(cls, url: str, branch: str, *, interval: float = 30.0) -> StatusBranchSource:
        from agent.reporters.gitstatus import read_status_branch
        from fleet.source import GitRef, GitSource

        cache = Path(tempfile.mkdtemp(prefix="fleet-tui-"))
        source = GitSource(url, GitRef(branch=branch), cache_dir=cache)
        return cls(
            lambda: read_status_branch(source),
            label=f"{redact.redact_url(url)} ({branch}, read-only)",
            interval=interval,
            cleanup=lambda: shutil.rmtree(cache, ignore_errors=True),
        )

    async def updates(self) -> AsyncIterator[Update]:
        from fleet.source import SourceError

        failures = 0
        yield Connection("connecting", self.label)
        while True:
            try:
                reports = await anyio.to_thread.run_sync(self._read)
            except (SourceError, OSError) as error:
                failures += 1
                yield Connection("unreachable", str(error), failures)
                await anyio.sleep(min(self.interval, backoff(failures)))
                continue
            failures = 0
            now = self._clock()
            self._reports = {report.cluster: report for report in reports}
            fresh = [record for report in reports for record in self._new_events(report)]
            summaries = [
                report_schema.summarize(
                    report, report_schema.cluster_health(report, now, None), now
                )
                for report in reports
            ]
            yield Resync(summaries, sorted(fresh, key=lambda record: record.time))
            yield Connection("read-only", self.label)
            await anyio.sleep(self.interval)

    def _new_events(self, report: ClusterReport) -> list[api.EventRecord]:
        records = []
        for event in report.events:
            fingerprint = f"{report.cluster}/{event.fingerprint()}"
            if fingerprint in self._seen:
                continue
            record = api.EventRecord(
                id=next(self._event_ids),
                cluster=report.cluster,
                time=event.time.isoformat().replace("+00:00", "Z"),
                type=event.type,
                reason=event.reason,
                unit=event.unit,
                object=event.object,
                message=event.message,
            )
            self._seen[fingerprint] = record
            records.append(record)
        return records

    async def cluster(self, name: str) -> api.ClusterDetail:
        report = self._reports.get(name)
        if report is None:
            raise ReadOnlySource(f"no cluster {name!r} on the status branch")
        now = self._clock()
        health = report_schema.cluster_health(report, now, None)
        return api.ClusterDetail(
            cluster=report_schema.summarize(report, health, now), report=report
        )

    async def events(self, cluster: str | None, limit: int) -> list[api.EventRecord]:
        records = [r for r in self._seen.values() if cluster is None or r.cluster == cluster]
        return sorted(records, key=lambda record: record.time, reverse=True)[:limit]

    async def promotions(self) -> Promotions:
        raise PromotionNotConfigured(404, "read-only mode (--repo) has no promoter")

    async def promotion_history(self, wave: str) -> list[PromotionRecord]:
        raise PromotionNotConfigured(404, "read-only mode (--repo) has no promoter")

    def _refuse(self) -> ReadOnlySource:
        return ReadOnlySource("read-only mode (--repo): connect to a hub to act")

    async def reconcile(self, cluster: str, unit: str | None) -> HubCommand:
        raise self._refuse()

    async def approve(self, wave: str, revision: str) -> None:
        raise self._refuse()

    async def pause(self, wave: str) -> None:
        raise self._refuse()

    async def resume(self, wave: str) -> None:
        raise self._refuse()

    async def rollback(self, wave: str, to: str) -> None:
        raise self._refuse()

    async def aclose(self) -> None:
        if self._cleanup is not None:
            self._cleanup()
