"""``Promoter``: carries out ``fleet.core.promotion.decide`` in Git, inside the hub.

Every ``interval`` it fetches the fleet repository (source branch, wave and batch refs)
and reads fleet.yaml at the source branch's head; after every changed report it decides
again from what it fetched last. One pass:

1. inputs: ``WaveState`` per wave from the refs and the hub's records, ``ClusterStatus``
   per cluster from the latest reports and the soak clock;
2. ``decide``; the API's view of every wave comes from these decisions;
3. on the replica holding the promoter lease, carry them out: PROMOTE moves the wave's
   (or batch's) ref, ROLLBACK moves it back to the last good revision and marks the
   failed one, HALT is recorded once; a wave Ready everywhere at its revision gets it as
   last good;
4. every action is kept in the store, announced on the change feed (``promotion``),
   notified, and committed to the records branch.

After moving a ref, the wave's agents are asked over their command streams to fetch at
once, so a promotion or rollback does not wait for their fetch interval.
"""

from __future__ import annotations

import datetime
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

import anyio
import anyio.abc
import anyio.to_thread
import pydantic

from fleet.core import promotion
from fleet.core.promotion import Action, ClusterStatus, Decision, Inputs, WaveState
from fleet.models.duration import format_duration
from fleet.models.fleetconfig import Wave
from fleet.report import ClusterReport
from fleet.source import SourceError
from hub import api
from hub.config import PromotionConfig, Severity
from hub.notify import Alert, Dispatcher
from hub.promotion import observe, records
from hub.promotion.observe import Observation
from hub.promotion.repository import FleetRepository, Snapshot
from hub.promotion.verify import Verifier
from hub.store import Store, StoredEvent
from hub.store.promotions import Entry, NewEntry, WaveChange, WaveEvent, WaveRecord

log = logging.getLogger(__name__)

HUB = "hub"
"""Who the promoter's own actions are recorded as."""
MIN_PASS_SECONDS = 0.2
"""A burst of reports leads to one pass, not one each."""

PROMOTION_STARTED = "PromotionStarted"
PROMOTION_HALTED = "PromotionHalted"
PROMOTION_FINISHED = "PromotionFinished"
ROLLED_BACK = "RolledBack"
APPROVAL_REQUIRED = "ApprovalRequired"

WAVE_EVENTS = {
    "promote": (PROMOTION_STARTED, "Normal"),
    "finish": (PROMOTION_FINISHED, "Normal"),
    "halt": (PROMOTION_HALTED, "Warning"),
    "rollback": (ROLLED_BACK, "Warning"),
    "approve": ("PromotionApproved", "Normal"),
    "pause": ("PromotionPaused", "Normal"),
    "resume": ("PromotionResumed", "Normal"),
}
"""Record action -> (reason, type) of the Event it leaves on the wave's clusters."""


class PromotionRefused(Exception):
    """An API action the promoter cannot do; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class PromotionHost(Protocol):
    """What the promoter needs of the hub (``hub.service.Hub``)."""

    store: Store
    dispatcher: Dispatcher

    @property
    def stale_after(self) -> datetime.timedelta: ...

    def clock(self) -> float: ...

    def event_feed(self, event: StoredEvent) -> dict[str, Any]:
        """The ``event`` change-feed payload of a stored event."""
        ...

    def changes_written(self) -> None:
        """Wake the change-feed streams: something was appended."""

    async def reconcile_clusters(self, names: Sequence[str], reason: str) -> list[str]:
        """Queue a reconcile with a source fetch on each known cluster of ``names``."""
        ...


def record_of(entry: Entry) -> api.PromotionRecord:
    return api.PromotionRecord.model_validate(
        {
            "id": entry.id,
            "wave": entry.wave,
            "action": entry.action,
            "revision": entry.revision,
            "from": entry.previous,
            "batch": entry.batch,
            "clusters": list(entry.clusters),
            "who": entry.who,
            "why": entry.why,
            "at": records.iso(entry.at),
            "commit": entry.commit,
        }
    )


class Promoter:
    def __init__(
        self,
        config: PromotionConfig,
        host: PromotionHost,
        *,
        repository: FleetRepository | None = None,
    ) -> None:
        self.config = config
        self.host = host
        self.repository = repository or FleetRepository(config)
        self.interval = config.interval.total_seconds()
        self.holder = uuid.uuid4().hex
        self._lock = anyio.Lock()
        self._wake = anyio.Event()
        self._snapshot: Snapshot | None = None
        self._observed: dict[str, tuple[str, Observation]] = {}
        self._inputs: Inputs | None = None
        self._records: dict[str, WaveRecord] = {}
        self._view = api.PromotionStatus(waves=[], error=None)
        self._viewed = False
        self._actions: dict[str, api.PromotionAction] = {}
        self._approvals_announced: set[tuple[str, str]] = set()
        """(wave, revision) pairs already announced as waiting for approval, per process."""
        self.verifier = Verifier(host.clock, self.poke)
        self.leader = False
        """Whether this replica held the promoter lease at its last pass."""

    @property
    def source_ref(self) -> str:
        return self.repository.source_ref

    def poke(self) -> None:
        """Decide again soon (a report changed, an action was taken)."""
        self._wake.set()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Passes until cancelled: a fetch every ``interval``, a decision on every poke."""
        async with anyio.create_task_group() as group:
            await group.start(self.verifier.run)
            task_status.started()
            await self._passes()

    async def _passes(self) -> None:
        next_fetch = 0.0
        try:
            while True:
                self._wake = anyio.Event()
                fetch = time.monotonic() >= next_fetch
                if fetch:
                    next_fetch = time.monotonic() + self.interval
                try:
                    moved = await self.evaluate(fetch=fetch)
                except Exception:
                    log.exception("promotion pass failed; retrying")
                    moved = False
                await anyio.sleep(MIN_PASS_SECONDS)
                if not moved:
                    with anyio.move_on_after(max(0.0, next_fetch - time.monotonic())):
                        await self._wake.wait()
        finally:
            with anyio.CancelScope(shield=True):
                if self.leader:
                    await self.host.store.promotions.release_lease(self.holder)

    async def status(self) -> api.PromotionStatus:
        if not self._viewed:
            await self.evaluate(fetch=self._snapshot is None)
        return self._view

    async def history(
        self, limit: int, wave: str | None = None, before: int | None = None
    ) -> list[api.PromotionRecord]:
        entries = await self.host.store.promotions.history(limit, wave, before)
        return [record_of(entry) for entry in entries]

    async def evaluate(self, *, fetch: bool) -> bool:
        """One pass (see the module docstring); True if it moved a ref or changed state."""
        async with self._lock:
            return await self._evaluate(fetch)

    async def _evaluate(self, fetch: bool) -> bool:
        store = self.host.store.promotions
        if fetch or self._snapshot is None:
            fetched = await anyio.to_thread.run_sync(self.repository.snapshot)
            if fetched.config is None and fetched.head is None and self._snapshot is not None:
                # Unreachable: keep deciding from what we had, but say why nothing moves.
                self._snapshot.error = fetched.error
            else:
                self._snapshot = fetched
        snapshot = self._snapshot
        assert snapshot is not None
        now = self.host.clock()
        ttl = max(3 * self.interval, 10.0)
        self.leader = await store.acquire_lease(self.holder, now, ttl)
        if snapshot.config is None or snapshot.head is None:
            error = snapshot.error or "no fleet.yaml"
            await self._set_view(observe.halted_view(self._view.waves, error), error)
            if self.leader:
                await self._write_records()
            return False
        self.verifier.configure(snapshot.config)
        inputs = await self._gather(snapshot, now)
        decisions = promotion.decide(inputs)
        await self._set_view(
            [observe.wave_view(inputs, decision) for decision in decisions], snapshot.error
        )
        changed = False
        if self.leader:
            for decision in decisions:
                changed |= await self._carry_out(decision, inputs)
            changed |= await self._mark_settled(inputs)
            await self._write_records()
        return changed

    async def _gather(self, snapshot: Snapshot, now: float) -> Inputs:
        assert snapshot.config is not None and snapshot.head is not None
        store = self.host.store.promotions
        observed = self._observed
        rows = await store.clusters(lambda name, digest: observed.get(name, ("",))[0] != digest)
        for row in rows:
            if row.body is not None and row.digest is not None:
                try:
                    report = ClusterReport.model_validate_json(row.body)
                except pydantic.ValidationError:
                    continue
                observed[row.name] = (row.digest, observe.observe(report))
        readiness = await store.readiness()
        if self.leader:
            changes = observe.readiness_changes(
                readiness,
                {
                    row.name: observation.revision if observation.ready else None
                    for row in rows
                    if (observation := observed.get(row.name, ("", None))[1]) is not None
                },
                now,
            )
            await store.update_readiness(changes)
            readiness = {
                name: value for name, value in readiness.items() if name not in changes.drop
            } | changes.set
        clusters: dict[str, ClusterStatus] = {}
        for row in rows:
            seen = observed.get(row.name)
            if seen is not None:
                clusters[row.name] = observe.cluster_status(
                    row.name, seen[1], readiness.get(row.name), row.last_seen
                )
        self._records = await store.waves()
        waves = observe.wave_states(
            snapshot.config, snapshot.refs, self._records, snapshot.head, self.source_ref
        )
        self._inputs = Inputs(
            config=snapshot.config,
            head=snapshot.head,
            waves=waves,
            clusters=clusters,
            now=datetime.datetime.fromtimestamp(now, datetime.UTC),
            stale_after=self.host.stale_after,
            source_ref=self.source_ref,
            checks=self.verifier.states(),
        )
        return self._inputs

    async def _set_view(self, waves: list[api.WaveStatus], error: str | None) -> None:
        """Keep the API's view; announce on the change feed when a wave's action changed."""
        self._view = api.PromotionStatus(waves=waves, error=error)
        self._viewed = True
        actions = {wave.name: wave.action for wave in waves}
        if actions == self._actions:
            return
        self._actions = actions
        payload = api.StreamPromotionStatus.model_validate({"actions": actions}).wire()
        await self.host.store.append_changes([("promotion-status", "", payload)], self.host.clock())
        self.host.changes_written()

    async def _carry_out(self, decision: Decision, inputs: Inputs) -> bool:
        wave = inputs.config.wave(decision.wave)
        state = inputs.waves[wave.name]
        record = self._records.get(wave.name, WaveRecord(wave.name))
        if decision.action is Action.PROMOTE:
            return await self._promote(wave, state, decision, inputs)
        if decision.action is Action.ROLLBACK:
            return await self._roll_back_failed(wave, state, decision)
        if decision.action is Action.HALT:
            if record.halted == decision.revision:
                return False
            await self._record(
                NewEntry(
                    wave.name,
                    "halt",
                    HUB,
                    decision.reason,
                    revision=decision.revision,
                    clusters=decision.clusters,
                ),
                WaveChange(halted=decision.revision),
            )
            self._alert(wave, PROMOTION_HALTED, "error", decision.reason, decision.revision)
            return True
        if decision.awaiting_approval and decision.revision is not None:
            self._announce_approval(wave, decision.revision, decision.reason)
        if record.halted is not None:
            await self.host.store.promotions.change(
                wave.name, WaveChange(clear_halted=True), self.host.clock()
            )
        return False

    async def _promote(
        self, wave: Wave, state: WaveState, decision: Decision, inputs: Inputs
    ) -> bool:
        assert decision.revision is not None
        refs = observe.wave_refs(inputs.config, wave)
        index = decision.batch or 0
        previous = observe.ref_targets(state)[index]
        if not await self._move(refs[index], decision.revision, previous):
            return False
        batch = decision.batch + 1 if decision.batch is not None else None
        why = f"{decision.reason}: {self._gate_passed(wave, inputs, decision.revision)}"
        await self._record(
            NewEntry(
                wave.name,
                "promote",
                HUB,
                why,
                revision=decision.revision,
                previous=previous,
                batch=batch,
                clusters=decision.clusters,
            ),
            WaveChange(clear_halted=True),
        )
        self._alert(wave, PROMOTION_STARTED, "info", why, decision.revision)
        await self._reconcile(decision.clusters, f"{wave.name} promoted to {decision.revision}")
        return True

    def _gate_passed(self, wave: Wave, inputs: Inputs, revision: str) -> str:
        passed = []
        if wave.depends_on:
            what = ", ".join(wave.depends_on)
            soak = f" for {format_duration(wave.soak)}" if wave.soak else ""
            passed.append(f"{what} Ready at {promotion.short(revision)}{soak}")
        else:
            passed.append(f"new commit on {self.config.branch}")
        if wave.verify:
            passed.append(f"verified by {', '.join(check.name for check in wave.verify)}")
        state = inputs.waves[wave.name]
        if wave.approval == "required" and revision in state.approvals:
            passed.append("approved")
        return "; ".join(passed)

    async def _roll_back_failed(self, wave: Wave, state: WaveState, decision: Decision) -> bool:
        assert decision.revision is not None and state.revision is not None
        failed = state.revision
        record = self._records.get(wave.name, WaveRecord(wave.name))
        if record.halted != failed:
            await self._record(
                NewEntry(
                    wave.name,
                    "halt",
                    HUB,
                    decision.reason,
                    revision=failed,
                    clusters=decision.clusters,
                ),
                WaveChange(halted=failed, fail=failed),
            )
            self._alert(wave, PROMOTION_HALTED, "error", decision.reason, failed)
        if not await self._move_wave(wave, state, decision.revision):
            return True
        await self._record(
            NewEntry(
                wave.name,
                "rollback",
                HUB,
                f"automatic (rollback: auto): {decision.reason}",
                revision=decision.revision,
                previous=failed,
                clusters=tuple(self._members(wave)),
            ),
            WaveChange(clear_halted=True),
        )
        self._alert(wave, ROLLED_BACK, "warning", decision.reason, failed)
        await self._reconcile(
            self._members(wave), f"{wave.name} rolled back to {decision.revision}"
        )
        return True

    async def _mark_settled(self, inputs: Inputs) -> bool:
        changed = False
        for wave in inputs.config.waves:
            revision = observe.settled_at(inputs, wave)
            record = self._records.get(wave.name, WaveRecord(wave.name))
            if revision is None or revision == record.last_good:
                continue
            changed = True
            if record.last_good is None:
                # The first revision the hub sees a wave settle at: nothing was promoted.
                await self.host.store.promotions.change(
                    wave.name, WaveChange(last_good=revision), self.host.clock()
                )
                continue
            why = f"every cluster of {wave.name} Ready at {promotion.short(revision)}"
            await self._record(
                NewEntry(
                    wave.name,
                    "finish",
                    HUB,
                    why,
                    revision=revision,
                    previous=record.last_good,
                    clusters=tuple(self._members(wave)),
                ),
                WaveChange(last_good=revision),
            )
            self._alert(wave, PROMOTION_FINISHED, "info", why, revision)
        return changed

    async def _move(self, ref: str, commit: str, expected: str | None) -> bool:
        try:
            await anyio.to_thread.run_sync(self.repository.move, ref, commit, expected)
        except SourceError as error:
            log.warning("could not move %s to %s: %s", ref, commit, error)
            if self._snapshot is not None:
                self._snapshot.error = f"could not move {ref}: {error}"
            return False
        if self._snapshot is not None:
            self._snapshot.refs[ref] = commit
        return True

    async def _move_wave(self, wave: Wave, state: WaveState, commit: str) -> bool:
        """Every ref of the wave to ``commit`` (a rollback moves all batches)."""
        assert self._inputs is not None
        refs = observe.wave_refs(self._inputs.config, wave)
        ok = True
        for ref, current in zip(refs, observe.ref_targets(state), strict=True):
            if current != commit:
                ok = await self._move(ref, commit, current) and ok
        return ok

    def _wave_event(self, entry: NewEntry) -> WaveEvent | None:
        """The Event each of the wave's clusters gets for this record."""
        config = self._inputs.config if self._inputs else None
        if config is None or entry.wave not in {wave.name for wave in config.waves}:
            return None
        reason, kind = WAVE_EVENTS.get(entry.action, (f"Promotion{entry.action.title()}", "Normal"))
        return WaveEvent(
            config.members(config.wave(entry.wave)),
            kind,
            reason,
            f"{records.subject(entry)}: {entry.why}",
        )

    def _members(self, wave: Wave) -> list[str]:
        assert self._inputs is not None
        return self._inputs.config.members(wave)

    async def _record(self, entry: NewEntry, change: WaveChange) -> Entry:
        stored = await self.host.store.promotions.record(
            entry,
            change,
            self.host.clock(),
            lambda saved: api.StreamPromotion(record=record_of(saved)).wire(),
            self._wave_event(entry),
            self.host.event_feed,
        )
        self.host.changes_written()
        return stored

    async def _write_records(self) -> None:
        """Commit the records not yet in Git, oldest first; the rest wait for the next pass
        if the repository cannot be written now."""
        store = self.host.store.promotions
        for entry in await store.unwritten():
            try:
                commit = await anyio.to_thread.run_sync(self.repository.write, entry)
            except SourceError as error:
                log.warning("could not commit promotion record %d: %s", entry.id, error)
                return
            await store.written(entry.id, commit, self.host.clock())

    async def _reconcile(self, clusters: Sequence[str], reason: str) -> None:
        if self.config.reconcile and clusters:
            await self.host.reconcile_clusters(clusters, reason)

    def _alert(
        self, wave: Wave, reason: str, severity: Severity, message: str, revision: str | None
    ) -> None:
        labels = {**wave.selector, "fleet.dev/wave": wave.name}
        alert = Alert(
            f"wave/{wave.name}",
            reason,
            severity,
            message,
            self.host.clock(),
            labels=labels,
            kind="Wave",
            revision=revision or "",
        )
        self.host.dispatcher.publish([alert])

    def _announce_approval(self, wave: Wave, revision: str, reason: str) -> None:
        """Once per (wave, revision) and process: an approval gate is waiting on someone."""
        key = (wave.name, revision)
        if key in self._approvals_announced:
            return
        self._approvals_announced.add(key)
        message = (
            f"{reason}: approve with `fleet promote approve {wave.name}` "
            f"(or POST /api/v1/promotions/{wave.name}/approve)"
        )
        self._alert(wave, APPROVAL_REQUIRED, "warning", message, revision)

    # API actions: each under the pass lock, recorded with the caller as "who".

    async def approve(self, wave_name: str, revision: str | None, who: str) -> api.PromotionRecord:
        async with self._lock:
            inputs, wave = await self._wave_for_action(wave_name, fetch=False)
            if revision is None:
                commit = promotion.candidate_of(inputs, wave)
                if commit is None:
                    raise PromotionRefused(409, f"wave {wave.name} has no candidate to approve")
            else:
                commit = await self._resolve(revision)
            entry = await self._record(
                NewEntry(wave.name, "approve", who, f"approved by {who}", revision=commit),
                WaveChange(approve=commit),
            )
        self.poke()
        return record_of(entry)

    async def pause(self, wave_name: str, who: str, paused: bool) -> api.PromotionRecord:
        async with self._lock:
            _, wave = await self._wave_for_action(wave_name, fetch=False)
            record = self._records.get(wave.name, WaveRecord(wave.name))
            if record.paused == paused:
                state = "paused" if paused else "not paused"
                raise PromotionRefused(409, f"wave {wave.name} is already {state}")
            action = "pause" if paused else "resume"
            entry = await self._record(
                NewEntry(wave.name, action, who, f"{action}d by {who}"),
                WaveChange(paused=paused),
            )
        self.poke()
        return record_of(entry)

    async def rollback(self, wave_name: str, to: str | None, who: str) -> api.PromotionRecord:
        async with self._lock:
            inputs, wave = await self._wave_for_action(wave_name, fetch=True)
            if observe.follows_source(wave, self.source_ref):
                raise PromotionRefused(
                    409, f"wave {wave.name} follows {self.source_ref}, which the hub does not move"
                )
            state = inputs.waves[wave.name]
            target = await self._resolve(to) if to is not None else state.last_good
            if target is None:
                raise PromotionRefused(
                    409, f"wave {wave.name} has no last good revision; say which (to)"
                )
            if all(current == target for current in observe.ref_targets(state)):
                raise PromotionRefused(409, f"wave {wave.name} is already at {target}")
            if not await self._move_wave(wave, state, target):
                error = self._snapshot.error if self._snapshot else None
                raise PromotionRefused(502, error or "the wave's refs could not be moved")
            failed = state.revision if state.revision != target else None
            entry = await self._record(
                NewEntry(
                    wave.name,
                    "rollback",
                    who,
                    f"rollback requested by {who}",
                    revision=target,
                    previous=state.revision,
                    clusters=tuple(self._members(wave)),
                ),
                WaveChange(fail=failed, clear_halted=True),
            )
            self._alert(
                wave,
                ROLLED_BACK,
                "warning",
                f"{who} rolled {wave.name} back from {promotion.short(state.revision)} to "
                f"{promotion.short(target)}",
                state.revision,
            )
            await self._reconcile(self._members(wave), f"{wave.name} rolled back to {target}")
            await self._write_records()
        self.poke()
        return record_of(entry)

    async def _wave_for_action(self, name: str, *, fetch: bool) -> tuple[Inputs, Wave]:
        if fetch or self._snapshot is None:
            await self._evaluate_locked_fetch()
        snapshot = self._snapshot
        if snapshot is None or snapshot.config is None or snapshot.head is None:
            error = snapshot.error if snapshot else "the fleet repository was not read yet"
            raise PromotionRefused(409, f"promotion is halted: {error}")
        inputs = await self._gather(snapshot, self.host.clock())
        try:
            return inputs, inputs.config.wave(name)
        except KeyError:
            raise PromotionRefused(404, f"no wave {name!r} in fleet.yaml") from None

    async def _evaluate_locked_fetch(self) -> None:
        fetched = await anyio.to_thread.run_sync(self.repository.snapshot)
        if fetched.head is not None or self._snapshot is None:
            self._snapshot = fetched

    async def _resolve(self, revision: str) -> str:
        commit = await anyio.to_thread.run_sync(self.repository.resolve, revision)
        if commit is None:
            raise PromotionRefused(
                422, f"{revision!r} is not a commit of the fleet repository's fetched refs"
            )
        return commit
