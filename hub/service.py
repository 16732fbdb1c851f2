"""``Hub``: what the HTTP routes do, without HTTP: ingest, queries, commands, webhooks.

The routes in ``hub.app`` parse requests and check roles; everything with a meaning lives
here. Background work (finding stale clusters, pruning, delivering notifications) runs in
``Hub.run``, started by the app's lifespan.

Streams: ingest appends to the change feed in the database and pulses the waiters of this
process at once; waiters also poll every ``stream_poll`` to see what other replicas wrote.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Literal

import anyio
import anyio.abc
import pydantic

from fleet import report as report_schema
from fleet.report import ClusterHealth, ClusterReport, ClusterSummary, Event, HubCommand
from hub import api, auth, limits, webhooks
from hub.config import HubConfig
from hub.metrics import HubMetrics
from hub.notify import Alert, Dispatcher, alerts_from_report, stale_alert
from hub.promotion import Promoter, PromotionRefused
from hub.store import (
    ClusterRecord,
    EventInput,
    FeedItem,
    Ingest,
    IngestOutcome,
    ReportContent,
    Store,
    StoredEvent,
    TokenRecord,
)

log = logging.getLogger(__name__)

DAY_SECONDS = 86_400.0
PRUNE_EVERY_SECONDS = 60.0
FEED_BATCH = 500
TOKEN_CACHE_SIZE = 100_000
COMMAND_TTL_SECONDS = 3600.0
"""Queued commands older than this are dropped: a reconcile an hour late is pointless."""


_HEALTH: dict[str, ClusterHealth] = {health: health for health in report_schema.HEALTH_VALUES}


class HubError(Exception):
    """A request the hub refuses; ``status`` is the HTTP status to answer with."""

    def __init__(
        self,
        status: int,
        message: str,
        detail: Any = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


class Pulse:
    """Wakes every waiter at once; a waiter takes ``current()`` before it looks for work,
    so a pulse between looking and waiting is never missed."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def current(self) -> anyio.Event:
        return self._event

    def fire(self) -> None:
        self._event.set()
        self._event = anyio.Event()


async def wait_for(event: anyio.Event, timeout: float) -> bool:
    with anyio.move_on_after(timeout):
        await event.wait()
        return True
    return False


def _utc(timestamp: float | None) -> datetime.datetime | None:
    if timestamp is None:
        return None
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC)


def _iso(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.isoformat().replace("+00:00", "Z")


def event_record(event: StoredEvent) -> api.EventRecord:
    time_text = _iso(event.time)
    kind: Literal["Normal", "Warning"] = "Warning" if event.type == "Warning" else "Normal"
    return api.EventRecord(
        id=event.id,
        cluster=event.cluster,
        time=time_text,
        type=kind,
        reason=event.reason,
        unit=event.unit,
        object=event.object,
        message=event.message,
    )


def token_info(record: TokenRecord) -> api.TokenInfo:
    """What the API shows of a stored token: never its salt or hash."""
    of_cluster = record.kind == "cluster"
    return api.TokenInfo(
        id=record.id,
        kind="cluster" if of_cluster else "user",
        cluster=record.subject if of_cluster else None,
        name=None if of_cluster else record.subject,
        role=record.role,
        labels=record.labels,
        created_at=_iso(record.created_at),
        revoked_at=_iso(record.revoked_at) if record.revoked_at is not None else None,
    )


class Hub:
    def __init__(
        self,
        config: HubConfig,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        metrics: HubMetrics | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.metrics = metrics or HubMetrics()
        self.dispatcher = Dispatcher(config.notifications, self.metrics.count_notification, clock)
        self._webhook_secrets = self._resolve_webhook_secrets()
        self._changes: Pulse | None = None
        self._commands: dict[str, Pulse] = {}
        self._stopping: anyio.Event | None = None
        self._tokens: dict[str, tuple[TokenRecord, float]] = {}
        self.ingest_limiter = limits.IngestLimiter(
            config.limits.ingest_per_second, config.limits.ingest_burst
        )
        self.stream_slots = limits.StreamSlots(
            config.limits.streams_per_token, config.limits.streams
        )
        self.promoter = Promoter(config.promotion, self) if config.promotion else None
        """Runs beside the hub (``hub.app``'s lifespan) when ``promotion`` is configured."""

    def _resolve_webhook_secrets(self) -> dict[str, str]:
        configured = self.config.webhooks
        secrets: dict[str, str] = {}
        if configured.github:
            secrets["github"] = configured.github.resolve("webhooks.github")
        if configured.gitlab:
            secrets["gitlab"] = configured.gitlab.resolve("webhooks.gitlab")
        if configured.generic:
            secrets["generic"] = configured.generic.resolve("webhooks.generic")
        return secrets

    @property
    def stale_after(self) -> datetime.timedelta:
        return self.config.stale_after

    def _changes_pulse(self) -> Pulse:
        if self._changes is None:
            self._changes = Pulse()
        return self._changes

    def _command_pulse(self, cluster: str) -> Pulse:
        pulse = self._commands.get(cluster)
        if pulse is None:
            pulse = self._commands[cluster] = Pulse()
        return pulse

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Background work until cancelled: notifications, the stale sweep, pruning."""
        self._stopping = anyio.Event()
        async with anyio.create_task_group() as group:
            await group.start(self.dispatcher.run)
            group.start_soon(self._sweep_forever)
            task_status.started()

    def stop_streams(self) -> None:
        """End open streams (on shutdown), so the server need not wait for clients."""
        if self._stopping is not None:
            self._stopping.set()
        self._changes_pulse().fire()
        for pulse in self._commands.values():
            pulse.fire()

    def _streams_stopping(self) -> bool:
        return self._stopping is not None and self._stopping.is_set()

    async def authenticate(self, authorization: str | None) -> auth.Principal:
        token = auth.bearer_token(authorization)
        if token is None:
            self.metrics.auth_failures.labels(reason="missing").inc()
            raise HubError(401, "a bearer token is required (Authorization: Bearer <token>)")
        parts = auth.split_token(token)
        record = await self._token_record(parts[0]) if parts else None
        if parts is None or record is None or not auth.verify(parts[1], record):
            reason = "revoked" if record is not None and record.revoked_at else "invalid"
            self.metrics.auth_failures.labels(reason=reason).inc()
            raise HubError(401, "the token is unknown or revoked")
        principal = auth.principal_of(record)
        if principal is None:
            raise HubError(401, "the token's record is not understood by this hub")
        return principal

    async def _token_record(self, token_id: str) -> TokenRecord | None:
        """The stored token, cached for ``tokenCacheTtl``: every agent request carries one,
        and a lookup per request would double the database work of a heartbeat."""
        ttl = self.config.token_cache_ttl.total_seconds()
        now = time.monotonic()
        cached = self._tokens.get(token_id)
        if cached is not None and now - cached[1] < ttl:
            return cached[0]
        record = await self.store.get_token(token_id)
        if record is not None and ttl > 0:
            if len(self._tokens) >= TOKEN_CACHE_SIZE:
                self._tokens.clear()
            self._tokens[token_id] = (record, now)
        return record

    async def create_token(self, wanted: api.TokenRequest, who: str) -> api.TokenCreated:
        """Issue a token and store its hash; the text is in the answer and nowhere else."""
        now = self.clock()
        if wanted.kind == "cluster":
            assert wanted.cluster is not None  # TokenRequest checks it
            labels = wanted.labels
            if labels is None:
                known = await self.store.get_cluster(wanted.cluster, now)
                labels = known.token_labels if known else {}
            text, record = auth.issue_token("cluster", wanted.cluster, "cluster", now, labels)
        else:
            assert wanted.name is not None  # TokenRequest checks it
            text, record = auth.issue_token("user", wanted.name, wanted.role or "read-only", now)
        await self.store.add_token(record)
        log.info("token %s for %s %s created by %s", record.id, record.kind, record.subject, who)
        return api.TokenCreated(token=text, **token_info(record).model_dump())

    async def list_tokens(self) -> api.TokenList:
        return api.TokenList(
            items=[token_info(record) for record in await self.store.list_tokens()]
        )

    async def revoke_token(self, token_id: str, who: str) -> api.TokenInfo:
        record = await self.store.revoke_token(token_id, self.clock())
        if record is None:
            raise HubError(404, f"no token {token_id!r}")
        # Refused at once here; other replicas within tokenCacheTtl.
        self._tokens.pop(token_id, None)
        log.info("token %s of %s %s revoked by %s", record.id, record.kind, record.subject, who)
        return token_info(record)

    def forbid(self, message: str) -> HubError:
        self.metrics.auth_failures.labels(reason="forbidden").inc()
        return HubError(403, message)

    async def ingest(self, cluster: str, body: bytes) -> api.IngestResult:
        started = time.perf_counter()
        try:
            report = ClusterReport.model_validate_json(body)
        except pydantic.ValidationError as error:
            self.metrics.reports.labels(result="rejected").inc()
            raise HubError(
                422,
                f"the report is invalid: {error.error_count()} problem(s)",
                [
                    {"loc": ".".join(str(p) for p in item["loc"]), "msg": item["msg"]}
                    for item in error.errors(include_url=False, include_input=False)
                ],
            ) from None
        if report.cluster != cluster:
            self.metrics.reports.labels(result="rejected").inc()
            raise HubError(400, f"the report is about {report.cluster!r}, not {cluster!r}")
        now = self.clock()
        health = report_schema.cluster_health(report, _utc(now) or report.reported_at, None)
        digest = report_schema.content_digest(report)

        def content() -> ReportContent:
            return ReportContent(
                # Re-serialised, not the body as sent: the model redacted the source URL.
                body=report.model_dump_json(by_alias=True),
                agent_version=report.agent_version,
                report_labels=report.labels,
                source_url=report.source.url,
                source_ref=report.source.ref,
                revision=report.source.revision,
                source_ready=report.source.ready,
                units_total=len(report.units),
                units_ready=sum(1 for unit in report.units if unit.ready == "True"),
                units_not_ready=sum(
                    1 for unit in report.units if unit.ready == "False" and not unit.suspended
                ),
                health=health,
                message=report_schema.health_message(report),
                events=[_event_input(event, now) for event in report.events],
            )

        outcome = await self.store.ingest(
            Ingest(
                cluster=cluster,
                received_at=now,
                reported_at=report.reported_at.timestamp(),
                digest=digest,
                heartbeat_seconds=report.heartbeat_seconds,
                content=content,
            ),
            lambda record, events: self._feed_entries(record, events, now),
        )
        if outcome.record is not None:
            self._changes_pulse().fire()
            if self.promoter is not None:
                self.promoter.poke()
            self.metrics.count_drift(event.reason for event in outcome.new_events)
            if self.dispatcher.has_targets:
                self.dispatcher.publish(self._alerts(report, outcome, outcome.record, now))
        self.metrics.reports.labels(result="changed" if outcome.changed else "unchanged").inc()
        self.metrics.ingest_duration.observe(time.perf_counter() - started)
        return api.IngestResult(
            cluster=cluster, changed=outcome.changed, digest=digest, health=health
        )

    def _feed_entries(
        self, record: ClusterRecord, new_events: Sequence[StoredEvent], now: float
    ) -> list[tuple[str, str, dict[str, Any]]]:
        """Change-feed entries for a stored change: the cluster's new line, its new events."""
        summary = self.summary_of(record, now)
        entries: list[tuple[str, str, dict[str, Any]]] = [
            ("cluster-updated", record.name, api.StreamChange(cluster=summary).wire())
        ]
        entries += [("event", record.name, self.event_feed(event)) for event in new_events]
        return entries

    def event_feed(self, event: StoredEvent) -> dict[str, Any]:
        return api.StreamEvent(event=event_record(event)).wire()

    def _alerts(
        self, report: ClusterReport, outcome: IngestOutcome, record: ClusterRecord, now: float
    ) -> list[Alert]:
        previous = None
        if outcome.previous_body is not None:
            try:
                previous = ClusterReport.model_validate_json(outcome.previous_body)
            except pydantic.ValidationError:
                previous = None
        fresh = {event.fingerprint for event in outcome.new_events}
        new_report_events = [event for event in report.events if event.fingerprint() in fresh]
        return alerts_from_report(
            report, previous, new_report_events, record.labels, was_stale=outcome.was_stale, now=now
        )

    def summary_of(self, record: ClusterRecord, now: float) -> ClusterSummary:
        health: ClusterHealth = self.health_of(record, now)
        return ClusterSummary(
            name=record.name,
            health=health,
            labels=record.labels,
            revision=record.revision,
            source_ref=record.source_ref,
            source_ready=record.source_ready,
            units_ready=record.units_ready,
            units_total=record.units_total,
            drift24h=record.drift_24h,
            last_report_at=_utc(record.last_seen),
            agent_version=record.agent_version,
            message=record.message,
        )

    def health_of(self, record: ClusterRecord, now: float) -> ClusterHealth:
        if record.digest is None or record.last_seen is None:
            return "Unknown"
        if now - record.last_seen > self.stale_after.total_seconds():
            return "Stale"
        return _HEALTH.get(record.health, "Unknown")

    async def list_clusters(self) -> list[ClusterSummary]:
        now = self.clock()
        records = await self.store.list_clusters(now - DAY_SECONDS)
        return [self.summary_of(record, now) for record in records]

    async def cluster_detail(self, name: str) -> api.ClusterDetail:
        now = self.clock()
        record = await self.store.get_cluster(name, now - DAY_SECONDS)
        if record is None:
            raise HubError(404, f"no cluster {name!r}")
        body = await self.store.latest_report(name)
        report = _stored_report(name, body) if body else None
        return api.ClusterDetail(cluster=self.summary_of(record, now), report=report)

    async def history(self, name: str, limit: int) -> api.ReportHistory:
        if await self.store.get_cluster(name, 0) is None:
            raise HubError(404, f"no cluster {name!r}")
        rows = await self.store.report_history(name, limit)
        items = []
        for received_at, digest, body in rows:
            stored = _stored_report(name, body)
            if stored is not None:
                items.append(
                    api.HistoryEntry(received_at=_iso(received_at), digest=digest, report=stored)
                )
        return api.ReportHistory(items=items)

    async def events(self, name: str | None, limit: int, before: int | None) -> api.EventList:
        if name is not None and await self.store.get_cluster(name, 0) is None:
            raise HubError(404, f"no cluster {name!r}")
        stored = await self.store.events(name, limit, before)
        return api.EventList(items=[event_record(event) for event in stored])

    async def summary(self) -> api.FleetSummary:
        now = self.clock()
        records = await self.store.list_clusters(now - DAY_SECONDS)
        health: dict[ClusterHealth, int] = dict.fromkeys(report_schema.HEALTH_VALUES, 0)
        by_label: dict[str, dict[str, api.LabelSummary]] = {}
        for record in records:
            state = self.health_of(record, now)
            health[state] += 1
            for key, value in record.labels.items():
                group = by_label.setdefault(key, {}).setdefault(
                    value, api.LabelSummary(clusters=0, health={})
                )
                group.clusters += 1
                group.health[state] = group.health.get(state, 0) + 1
        return api.FleetSummary(
            clusters=len(records),
            health=health,
            units_not_ready=sum(
                r.units_not_ready for r in records if self.health_of(r, now) != "Stale"
            ),
            by_label=by_label,
        )

    async def refresh_fleet_metrics(self) -> None:
        summary = await self.summary()
        self.metrics.set_fleet(
            {str(k): v for k, v in summary.health.items()}, summary.units_not_ready
        )

    async def queue_reconcile(
        self, cluster: str, unit: str | None, source: bool, reason: str
    ) -> HubCommand:
        if await self.store.get_cluster(cluster, 0) is None:
            raise HubError(404, f"no cluster {cluster!r}")
        return await self._queue(cluster, unit, source, reason)

    async def _queue(self, cluster: str, unit: str | None, source: bool, reason: str) -> HubCommand:
        now = self.clock()
        payload = {"command": "reconcile", "unit": unit, "source": source, "reason": reason}
        command_id = await self.store.queue_command(cluster, payload, now)
        self._command_pulse(cluster).fire()
        return HubCommand(
            id=command_id, unit=unit, source=source, reason=reason, queued_at=_utc(now)
        )

    async def reconcile_clusters(self, names: Sequence[str], reason: str) -> list[str]:
        """Queue a source reconcile on each of ``names`` the hub knows; returns those."""
        known = {record.name for record in await self.store.list_clusters(self.clock())}
        queued = []
        for name in names:
            if name in known:
                await self._queue(name, None, True, reason)
                queued.append(name)
        return queued

    def changes_written(self) -> None:
        """Someone appended to the change feed: wake this process's streams."""
        self._changes_pulse().fire()

    def _promoter(self) -> Promoter:
        if self.promoter is None:
            raise HubError(404, "promotion is not configured on this hub")
        return self.promoter

    async def promotions(self) -> api.PromotionStatus:
        return await self._promoter().status()

    async def promotion_history(
        self, limit: int, wave: str | None, before: int | None
    ) -> api.PromotionHistory:
        items = await self._promoter().history(limit, wave, before)
        return api.PromotionHistory(items=items)

    async def promotion_action(
        self, wave: str, action: str, who: str, revision: str | None = None
    ) -> api.PromotionRecord:
        """approve (``revision``), pause, resume or rollback (to ``revision``) a wave."""
        promoter = self._promoter()
        try:
            if action == "approve":
                return await promoter.approve(wave, revision, who)
            if action in ("pause", "resume"):
                return await promoter.pause(wave, who, paused=action == "pause")
            return await promoter.rollback(wave, revision, who)
        except PromotionRefused as refused:
            raise HubError(refused.status, str(refused)) from None

    async def webhook(
        self, provider: str, headers: dict[str, str], body: bytes
    ) -> api.WebhookResult:
        """Verify a delivery, then queue a source reconcile on every cluster it concerns."""
        try:
            return await self._webhook(provider, headers, body)
        except webhooks.WebhookRejected as rejected:
            self.metrics.webhooks.labels(provider=provider, result=rejected.result).inc()
            raise HubError(rejected.status, str(rejected)) from None

    async def _webhook(
        self, provider: str, headers: dict[str, str], body: bytes
    ) -> api.WebhookResult:
        secret = self._webhook_secrets.get(provider)
        if secret is None:
            raise webhooks.WebhookRejected(
                f"webhook provider {provider!r} is not configured on this hub",
                result="not_configured",
                status=404,
            )
        now = self.clock()
        push: webhooks.PushEvent | None
        # What the provider's signature covers: remembered, so no header change replays it.
        signed: bytes | None = None
        if provider == "github":
            webhooks.verify_github(secret, body, headers.get("x-hub-signature-256"))
            delivery = webhooks.delivery_id(headers.get("x-github-delivery"), "X-GitHub-Delivery")
            push = webhooks.parse_github(headers.get("x-github-event"), body)
            signed = body
        elif provider == "gitlab":
            webhooks.verify_gitlab(secret, headers.get("x-gitlab-token"))
            delivery = webhooks.delivery_id(
                headers.get("x-gitlab-event-uuid"), "X-Gitlab-Event-UUID"
            )
            push = webhooks.parse_gitlab(headers.get("x-gitlab-event"), body)
        else:
            window = self.config.webhooks.replay_window.total_seconds()
            timestamp = headers.get("x-fleet-timestamp")
            webhooks.verify_generic(
                secret, body, headers.get("x-fleet-signature"), timestamp, now, window
            )
            delivery = webhooks.delivery_id(headers.get("x-fleet-delivery"), "X-Fleet-Delivery")
            if not delivery:
                raise webhooks.WebhookRejected(
                    "missing X-Fleet-Delivery header", result="invalid", status=400
                )
            push = webhooks.parse_generic(body)
            assert timestamp is not None  # verify_generic refuses a missing one
            signed = webhooks.generic_signed_bytes(timestamp, body)
        # Checked after the signature, so nobody can burn delivery ids without the secret.
        if signed is not None and not await self.store.remember_delivery(
            f"{provider}#signed", webhooks.replay_key(signed), now
        ):
            raise webhooks.WebhookRejected(
                "this delivery (the same signed content) was already received",
                result="replayed",
                status=409,
            )
        if delivery and not await self.store.remember_delivery(provider, delivery, now):
            raise webhooks.WebhookRejected(
                f"delivery {delivery} was already received", result="replayed", status=409
            )
        if push is None:
            self.metrics.webhooks.labels(provider=provider, result="ignored").inc()
            return api.WebhookResult(provider=provider, ignored="not a push event")
        records = await self.store.list_clusters(now)
        queued = []
        for record in records:
            if webhooks.concerns(push, record.source_url, record.source_ref):
                await self._queue(record.name, None, True, f"{provider} push {push.ref}")
                queued.append(record.name)
        self.metrics.webhooks.labels(provider=provider, result="accepted").inc()
        return api.WebhookResult(provider=provider, ref=push.ref, queued=queued)

    async def change_stream(self, after: int | None) -> AsyncIterator[FeedItem | None]:
        """Feed items after ``after`` (None: only new ones); None items mean 'still alive'."""
        last = await self.store.last_change_id() if after is None else after
        keepalive = self.config.stream_keepalive.total_seconds()
        poll = min(self.config.stream_poll.total_seconds(), keepalive)
        idle = 0.0
        while not self._streams_stopping():
            wake = self._changes_pulse().current()
            items = await self.store.changes_after(last, FEED_BATCH)
            for item in items:
                last = item.id
                yield item
            if items:
                idle = 0.0
                continue
            started = time.monotonic()
            await wait_for(wake, poll)
            idle += time.monotonic() - started
            if idle >= keepalive:
                idle = 0.0
                yield None

    async def command_stream(
        self, cluster: str, after: int | None
    ) -> AsyncIterator[FeedItem | None]:
        """Commands for ``cluster`` after ``after`` (None: only new ones)."""
        last = await self.store.last_command_id() if after is None else after
        keepalive = self.config.stream_keepalive.total_seconds()
        poll = min(self.config.stream_poll.total_seconds(), keepalive)
        pulse = self._command_pulse(cluster)
        idle = 0.0
        while not self._streams_stopping():
            wake = pulse.current()
            items = await self.store.commands_after(cluster, last)
            for item in items:
                last = item.id
                yield item
            if items:
                idle = 0.0
                continue
            started = time.monotonic()
            await wait_for(wake, poll)
            idle += time.monotonic() - started
            if idle >= keepalive:
                idle = 0.0
                yield None

    async def current_command_id(self) -> int:
        return await self.store.last_command_id()

    async def _sweep_forever(self) -> None:
        interval = self.config.effective_sweep_interval
        last_prune = 0.0
        while True:
            try:
                await self.sweep()
                now = self.clock()
                if now - last_prune >= PRUNE_EVERY_SECONDS:
                    last_prune = now
                    await self.store.prune(
                        events_before=now - self.config.event_retention.total_seconds(),
                        commands_before=now - COMMAND_TTL_SECONDS,
                        deliveries_before=now
                        - 2 * self.config.webhooks.replay_window.total_seconds(),
                    )
            except Exception:
                log.exception("hub sweep failed; retrying")
            await anyio.sleep(interval)

    async def sweep(self) -> list[str]:
        """Flag clusters that stopped reporting; feed and alert once per cluster."""
        now = self.clock()
        flagged = await self.store.mark_stale(now - self.stale_after.total_seconds())
        self.metrics.flagged_stale.inc(len(flagged))
        if not flagged:
            self.metrics.sweeps.inc()
            return []
        records = {r.name: r for r in await self.store.list_clusters(now - DAY_SECONDS)}
        items: list[tuple[str, str, dict[str, Any]]] = []
        alerts = []
        for name in flagged:
            record = records.get(name)
            if record is None:
                continue
            items.append(
                (
                    "cluster-updated",
                    name,
                    api.StreamChange(cluster=self.summary_of(record, now)).wire(),
                )
            )
            alerts.append(stale_alert(name, record.labels, record.last_seen, now))
        await self.store.append_changes(items, now)
        self._changes_pulse().fire()
        self.dispatcher.publish(alerts)
        self.metrics.sweeps.inc()
        return flagged


def _stored_report(cluster: str, body: str) -> ClusterReport | None:
    """A stored report, or None when it no longer passes the schema (stored by an older
    hub with laxer limits): the cluster's page still answers, without the report."""
    try:
        return ClusterReport.model_validate_json(body)
    except pydantic.ValidationError as error:
        log.warning(
            "stored report of %s fails the schema (%d problems); not served",
            cluster,
            error.error_count(),
        )
        return None


def _event_input(event: Event, received_at: float) -> EventInput:
    """The event as stored; its time is clamped to the hub's clock, so an agent whose clock
    runs ahead (or lies) cannot keep an event inside windows like "drift 24h"."""
    return EventInput(
        fingerprint=event.fingerprint(),
        time=min(event.time.timestamp(), received_at),
        type=event.type,
        reason=event.reason,
        unit=event.unit,
        object=event.object,
        message=event.message,
    )
