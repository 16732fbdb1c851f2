"""What the promoter keeps in the hub's database (``Store.promotions``).

Git holds where each wave's ref points and the audit trail of every action (the records
branch); the database holds what Git cannot say by itself: which waves are paused, which
revisions were approved or failed per wave, the last revision that ran Ready on a whole
wave, since when each cluster has been Ready at its revision (the soak clock), the history
of actions (``promotions`` rows, each marked with its records-branch commit once written)
and the lease that lets one hub replica at a time move refs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hub.store.database import Connection, Database, Row
from hub.store.events import StoredEvent, stored_event

APPROVED = "approved"
FAILED = "failed"
LEASE_NAME = "promoter"


@dataclass(frozen=True)
class WaveEvent:
    """The Event a promotion record leaves on each of the wave's clusters, so the events
    API, the stream and the TUI show promotions, halts and rollbacks beside the clusters'
    own events. Clusters that never reported get none."""

    clusters: Sequence[str]
    type: str
    reason: str
    message: str


@dataclass(frozen=True)
class WaveRecord:
    """The hub's own state of one wave (absent rows read as this default)."""

    wave: str
    paused: bool = False
    last_good: str | None = None
    halted: str | None = None
    """The revision the wave was halted at, so a halt is recorded and notified once."""
    approvals: frozenset[str] = frozenset()
    failed: frozenset[str] = frozenset()


@dataclass(frozen=True)
class WaveChange:
    """Changes to one wave's state, made in the same transaction as a history entry."""

    paused: bool | None = None
    last_good: str | None = None
    halted: str | None = None
    clear_halted: bool = False
    approve: str | None = None
    """Approve this revision; this also lifts a failed mark on it (the override)."""
    fail: str | None = None
    """Mark this revision as failed in the wave: it is not promoted there again."""


@dataclass(frozen=True)
class NewEntry:
    wave: str
    action: str
    """promote, approve, pause, resume, halt, rollback or finish."""
    who: str
    why: str
    revision: str | None = None
    """The revision the action is about (promoted to, approved, rolled back to)."""
    previous: str | None = None
    """Where the wave's ref pointed before (promote, rollback)."""
    batch: int | None = None
    """1-based batch of a wave rolled out in batches."""
    clusters: tuple[str, ...] = ()


@dataclass(frozen=True)
class Entry(NewEntry):
    id: int = 0
    at: float = 0.0
    commit: str | None = None
    """The records-branch commit that holds this entry; None until written to Git."""


@dataclass(frozen=True)
class ClusterInput:
    """A cluster's row as the promoter reads it; ``body`` only when asked for."""

    name: str
    last_seen: float | None
    digest: str | None
    body: str | None = None


@dataclass
class Readiness:
    revision: str
    ready_since: float


@dataclass
class ReadinessChanges:
    set: dict[str, Readiness] = field(default_factory=dict)
    drop: list[str] = field(default_factory=list)


def _entry(row: Row) -> Entry:
    detail: dict[str, Any] = json.loads(row["detail"] or "{}")
    return Entry(
        wave=row["wave"],
        action=row["state"],
        who=detail.get("who", ""),
        why=detail.get("why", ""),
        revision=row["revision"] or None,
        previous=detail.get("from"),
        batch=detail.get("batch"),
        clusters=tuple(detail.get("clusters", ())),
        id=int(row["id"]),
        at=float(row["created_at"]),
        commit=row["git_commit"],
    )


class PromotionStore:
    def __init__(self, database: Database) -> None:
        self.database = database

    async def waves(self) -> dict[str, WaveRecord]:
        def query(connection: Connection) -> dict[str, WaveRecord]:
            marks: dict[tuple[str, str], set[str]] = {}
            for row in connection.execute("SELECT wave, revision, kind FROM promotion_marks"):
                marks.setdefault((row["wave"], row["kind"]), set()).add(row["revision"])
            names = {wave for wave, _ in marks}
            rows = {r["wave"]: r for r in connection.execute("SELECT * FROM promotion_waves")}
            return {
                name: WaveRecord(
                    wave=name,
                    paused=bool(rows[name]["paused"]) if name in rows else False,
                    last_good=rows[name]["last_good"] if name in rows else None,
                    halted=rows[name]["halted"] if name in rows else None,
                    approvals=frozenset(marks.get((name, APPROVED), ())),
                    failed=frozenset(marks.get((name, FAILED), ())),
                )
                for name in sorted(names | set(rows))
            }

        return await self.database.run(query, write=False)

    async def change(self, wave: str, change: WaveChange, now: float) -> None:
        await self.database.run(lambda c: _change(c, wave, change, "hub", now))

    async def record(
        self,
        entry: NewEntry,
        change: WaveChange,
        now: float,
        feed: Callable[[Entry], Mapping[str, Any]],
        event: WaveEvent | None = None,
        event_feed: Callable[[StoredEvent], Mapping[str, Any]] | None = None,
    ) -> Entry:
        """Apply ``change``, append the history entry and its ``promotion`` feed item, and
        ``event`` on each of its clusters with its ``event`` feed item, all in one
        transaction."""

        def write(connection: Connection) -> Entry:
            _change(connection, entry.wave, change, entry.who, now)
            detail = {
                "who": entry.who,
                "why": entry.why,
                "from": entry.previous,
                "batch": entry.batch,
                "clusters": list(entry.clusters),
            }
            rows = connection.execute(
                "INSERT INTO promotions (wave, revision, state, detail, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) RETURNING *",
                (entry.wave, entry.revision or "", entry.action, json.dumps(detail), now, now),
            )
            stored = _entry(rows[0])
            connection.execute(
                "INSERT INTO changes (type, cluster, payload, created_at) VALUES (?, ?, ?, ?)",
                ("promotion", entry.wave, json.dumps(dict(feed(stored))), now),
            )
            if event is not None:
                for added in _wave_events(connection, stored, event, now):
                    payload = dict(event_feed(added)) if event_feed else {}
                    connection.execute(
                        "INSERT INTO changes (type, cluster, payload, created_at)"
                        " VALUES (?, ?, ?, ?)",
                        ("event", added.cluster, json.dumps(payload), now),
                    )
            return stored

        return await self.database.run(write)

    async def history(
        self, limit: int, wave: str | None = None, before: int | None = None
    ) -> list[Entry]:
        """Newest first."""
        clauses: list[str] = []
        params: list[Any] = []
        if wave is not None:
            clauses.append("wave = ?")
            params.append(wave)
        if before is not None:
            clauses.append("id < ?")
            params.append(before)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self.database.run(
            lambda c: c.execute(
                f"SELECT * FROM promotions{where} ORDER BY id DESC LIMIT ?", (*params, limit)
            ),
            write=False,
        )
        return [_entry(row) for row in rows]

    async def unwritten(self, limit: int = 100) -> list[Entry]:
        """Entries not yet committed to the records branch, oldest first."""
        rows = await self.database.run(
            lambda c: c.execute(
                "SELECT * FROM promotions WHERE git_commit IS NULL ORDER BY id LIMIT ?", (limit,)
            ),
            write=False,
        )
        return [_entry(row) for row in rows]

    async def written(self, entry_id: int, commit: str, now: float) -> None:
        await self.database.run(
            lambda c: c.execute(
                "UPDATE promotions SET git_commit = ?, updated_at = ? WHERE id = ?",
                (commit, now, entry_id),
            )
        )

    async def clusters(self, wanted: Callable[[str, str | None], bool]) -> list[ClusterInput]:
        """Every cluster's last-seen time and digest, with the latest report's body for
        those ``wanted(name, digest)`` says (the ones whose report the caller has not
        parsed yet)."""

        def query(connection: Connection) -> list[ClusterInput]:
            rows = connection.execute("SELECT name, last_seen, digest FROM clusters ORDER BY name")
            needed = [r["name"] for r in rows if r["digest"] and wanted(r["name"], r["digest"])]
            bodies: dict[str, str] = {}
            for start in range(0, len(needed), 500):
                chunk = needed[start : start + 500]
                marks = ", ".join("?" for _ in chunk)
                for row in connection.execute(
                    f"SELECT cluster, body FROM latest_reports WHERE cluster IN ({marks})", chunk
                ):
                    bodies[row["cluster"]] = row["body"]
            return [
                ClusterInput(r["name"], r["last_seen"], r["digest"], bodies.get(r["name"]))
                for r in rows
            ]

        return await self.database.run(query, write=False)

    async def readiness(self) -> dict[str, Readiness]:
        rows = await self.database.run(
            lambda c: c.execute("SELECT * FROM promotion_readiness"), write=False
        )
        return {r["cluster"]: Readiness(r["revision"], float(r["ready_since"])) for r in rows}

    async def update_readiness(self, changes: ReadinessChanges) -> None:
        if not changes.set and not changes.drop:
            return

        def write(connection: Connection) -> None:
            for cluster, readiness in changes.set.items():
                connection.execute(
                    "INSERT INTO promotion_readiness (cluster, revision, ready_since)"
                    " VALUES (?, ?, ?) ON CONFLICT (cluster) DO UPDATE SET"
                    " revision = excluded.revision, ready_since = excluded.ready_since",
                    (cluster, readiness.revision, readiness.ready_since),
                )
            for cluster in changes.drop:
                connection.execute("DELETE FROM promotion_readiness WHERE cluster = ?", (cluster,))

        await self.database.run(write)

    async def acquire_lease(self, holder: str, now: float, ttl: float) -> bool:
        """Take or renew the promoter lease; False while another replica holds it."""
        rows = await self.database.run(
            lambda c: c.execute(
                "INSERT INTO promotion_lease (name, holder, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
                " expires_at = excluded.expires_at"
                " WHERE promotion_lease.holder = excluded.holder"
                " OR promotion_lease.expires_at < ? RETURNING holder",
                (LEASE_NAME, holder, now + ttl, now),
            )
        )
        return bool(rows)

    async def release_lease(self, holder: str) -> None:
        await self.database.run(
            lambda c: c.execute(
                "DELETE FROM promotion_lease WHERE name = ? AND holder = ?", (LEASE_NAME, holder)
            )
        )


def _change(connection: Connection, wave: str, change: WaveChange, who: str, now: float) -> None:
    sets: list[str] = []
    params: list[Any] = []
    if change.paused is not None:
        sets.append("paused = ?")
        params.append(int(change.paused))
    if change.last_good is not None:
        sets.append("last_good = ?")
        params.append(change.last_good)
    if change.halted is not None or change.clear_halted:
        sets.append("halted = ?")
        params.append(change.halted)
    if sets:
        connection.execute(
            "INSERT INTO promotion_waves (wave, updated_at) VALUES (?, ?)"
            " ON CONFLICT (wave) DO NOTHING",
            (wave, now),
        )
        connection.execute(
            f"UPDATE promotion_waves SET {', '.join(sets)}, updated_at = ? WHERE wave = ?",
            (*params, now, wave),
        )
    if change.approve is not None:
        _mark(connection, wave, change.approve, APPROVED, who, now)
        connection.execute(
            "DELETE FROM promotion_marks WHERE wave = ? AND revision = ? AND kind = ?",
            (wave, change.approve, FAILED),
        )
    if change.fail is not None:
        _mark(connection, wave, change.fail, FAILED, who, now)


def _mark(
    connection: Connection, wave: str, revision: str, kind: str, who: str, now: float
) -> None:
    connection.execute(
        "INSERT INTO promotion_marks (wave, revision, kind, who, created_at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (wave, revision, kind) DO NOTHING",
        (wave, revision, kind, who, now),
    )


def _wave_events(
    connection: Connection, entry: Entry, event: WaveEvent, now: float
) -> list[StoredEvent]:
    added = []
    for cluster in event.clusters:
        rows = connection.execute(
            "INSERT INTO events (cluster, fingerprint, time, type, reason, unit, object,"
            " message, received_at) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?"
            " WHERE EXISTS (SELECT 1 FROM clusters WHERE name = ?)"
            " ON CONFLICT (cluster, fingerprint) DO NOTHING RETURNING *",
            (
                cluster,
                f"promotion/{entry.id}",
                now,
                event.type,
                event.reason,
                f"wave/{entry.wave}",
                "",
                event.message,
                now,
                cluster,
            ),
        )
        added += [stored_event(row) for row in rows]
    return added
