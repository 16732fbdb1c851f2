"""``Store``: everything the hub keeps, as operations that each run in one transaction.

The hub's state is small and relational: clusters with a summary of their latest report,
that report itself, a bounded history of changed reports, the events of every cluster
(deduplicated, since each report repeats its recent ones), a feed of changes that SSE
clients resume from by id, the command queue of each agent's outbound stream, hashed
tokens, webhook delivery ids (replay protection) and, for promotion waves, promotions.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hub.store import schema
from hub.store.database import Connection, Database, Row, StoreError, open_database
from hub.store.events import StoredEvent, stored_event
from hub.store.promotions import PromotionStore

DEFAULT_HISTORY_PER_CLUSTER = 10
"""Changed reports kept per cluster: enough to see what a cluster went through lately,
without a 10,000-cluster fleet's store growing past a few hundred MB."""
EVENTS_PER_CLUSTER = 1000
CHANGES_KEPT = 10_000
"""SSE clients further behind than this re-read the cluster list instead of resuming."""


@dataclass(frozen=True)
class TokenRecord:
    id: str
    kind: str
    """``cluster`` or ``user``."""
    subject: str
    """The cluster name or the user name."""
    role: str
    """``cluster``, ``read-only`` or ``admin``."""
    labels: dict[str, str]
    salt: str
    hash: str
    created_at: float
    revoked_at: float | None = None


@dataclass(frozen=True)
class ClusterRecord:
    """A cluster's row: who it is and the summary of its latest report."""

    name: str
    token_labels: dict[str, str]
    report_labels: dict[str, str]
    created_at: float
    last_seen: float | None
    reported_at: float | None
    agent_version: str
    source_url: str | None
    source_ref: str | None
    revision: str | None
    source_ready: bool
    units_total: int
    units_ready: int
    units_not_ready: int
    health: str
    """Health computed from the latest report at ingest; staleness is decided on reading."""
    message: str
    digest: str | None
    heartbeat_seconds: int
    stale: bool
    drift_24h: int = 0

    @property
    def labels(self) -> dict[str, str]:
        """Report labels overlaid by the token's: an admin's labels win over an agent's."""
        return {**self.report_labels, **self.token_labels}


@dataclass(frozen=True)
class FeedItem:
    """One entry of the change feed or of a cluster's command queue."""

    id: int
    type: str
    cluster: str
    payload: dict[str, Any]
    created_at: float


@dataclass(frozen=True)
class EventInput:
    fingerprint: str
    time: float
    type: str
    reason: str
    unit: str
    object: str
    message: str


@dataclass(frozen=True)
class ReportContent:
    """What is stored of a report whose content changed; the hub computes it only then."""

    body: str
    agent_version: str
    report_labels: dict[str, str]
    source_url: str
    source_ref: str
    revision: str | None
    source_ready: bool
    units_total: int
    units_ready: int
    units_not_ready: int
    health: str
    message: str
    events: Sequence[EventInput]


@dataclass(frozen=True)
class Ingest:
    """One received report, validated by the hub. Most reports are heartbeats, which
    touch one row; ``content`` is called only when the digest differs."""

    cluster: str
    received_at: float
    reported_at: float
    digest: str
    heartbeat_seconds: int
    content: Callable[[], ReportContent]


@dataclass
class IngestOutcome:
    changed: bool
    """The content differs from the stored report (or there was none)."""
    previous_body: str | None
    was_stale: bool
    new_events: list[StoredEvent] = field(default_factory=list)
    record: ClusterRecord | None = None
    """The cluster after the report, when feed entries were written (a change, a return)."""


FeedBuilder = Callable[[ClusterRecord, list[StoredEvent]], list[tuple[str, str, dict[str, Any]]]]
"""Builds (type, cluster, payload) feed entries for a stored change; runs in the DB thread."""


def _labels(text: str) -> dict[str, str]:
    value: dict[str, str] = json.loads(text or "{}")
    return value


def _token(row: Row) -> TokenRecord:
    return TokenRecord(
        id=row["id"],
        kind=row["kind"],
        subject=row["subject"],
        role=row["role"],
        labels=_labels(row["labels"]),
        salt=row["salt"],
        hash=row["hash"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


def _list_tokens(connection: Connection) -> list[TokenRecord]:
    rows = connection.execute("SELECT * FROM tokens ORDER BY created_at, id")
    return [_token(row) for row in rows]


def _cluster(row: Row, drift: int = 0) -> ClusterRecord:
    return ClusterRecord(
        name=row["name"],
        token_labels=_labels(row["token_labels"]),
        report_labels=_labels(row["report_labels"]),
        created_at=row["created_at"],
        last_seen=row["last_seen"],
        reported_at=row["reported_at"],
        agent_version=row["agent_version"],
        source_url=row["source_url"],
        source_ref=row["source_ref"],
        revision=row["revision"],
        source_ready=bool(row["source_ready"]),
        units_total=row["units_total"],
        units_ready=row["units_ready"],
        units_not_ready=row["units_not_ready"],
        health=row["health"],
        message=row["message"],
        digest=row["digest"],
        heartbeat_seconds=row["heartbeat_seconds"],
        stale=bool(row["stale"]),
        drift_24h=drift,
    )


def _feed(row: Row) -> FeedItem:
    return FeedItem(
        id=row["id"],
        type=row["type"],
        cluster=row["cluster"],
        payload=json.loads(row["payload"]),
        created_at=row["created_at"],
    )


class Store:
    """The hub's persistent state over SQLite or PostgreSQL (see ``hub.store.database``)."""

    def __init__(
        self, database: Database, *, history_per_cluster: int = DEFAULT_HISTORY_PER_CLUSTER
    ) -> None:
        self.database = database
        self.history_per_cluster = history_per_cluster
        self.promotions = PromotionStore(database)
        """The promoter's state and the history of promotions."""

    @classmethod
    def open(cls, url: str, *, history_per_cluster: int = DEFAULT_HISTORY_PER_CLUSTER) -> Store:
        return cls(open_database(url), history_per_cluster=history_per_cluster)

    @property
    def url(self) -> str:
        return self.database.url

    def close(self) -> None:
        self.database.close()

    async def migrate(self) -> int:
        """Bring the schema to the latest version; returns the version found before."""
        return await self.database.run(self._migrate)

    def migrate_sync(self) -> int:
        """For the CLI, which has no event loop: the same as ``migrate``."""
        return self.database.run_sync(self._migrate)

    def _migrate(self, connection: Connection) -> int:
        dialect = self.database.dialect
        if dialect is schema.POSTGRES:
            # Replicas starting together: one migrates, the others wait and find it done.
            connection.execute("SELECT pg_advisory_xact_lock(7466743)")
        connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        rows = connection.execute("SELECT version FROM schema_version")
        found = int(rows[0]["version"]) if rows else 0
        if found > schema.LATEST_VERSION:
            raise StoreError(
                f"the database is at schema version {found}, newer than this hub knows "
                f"({schema.LATEST_VERSION}); upgrade the hub"
            )
        for version in range(found + 1, schema.LATEST_VERSION + 1):
            for statement in schema.MIGRATIONS[version - 1](dialect):
                connection.execute(statement)
        if not rows:
            connection.execute("INSERT INTO schema_version (version) VALUES (?)", (0,))
        connection.execute("UPDATE schema_version SET version = ?", (schema.LATEST_VERSION,))
        return found

    async def add_token(self, token: TokenRecord) -> None:
        await self.database.run(lambda connection: self._add_token(connection, token))

    def add_token_sync(self, token: TokenRecord) -> None:
        self.add_tokens_sync([token])

    def add_tokens_sync(self, tokens: Sequence[TokenRecord]) -> None:
        """Several tokens in one transaction (a fleet's worth at once)."""

        def add(connection: Connection) -> None:
            for token in tokens:
                self._add_token(connection, token)

        self.database.run_sync(add)

    def _add_token(self, connection: Connection, token: TokenRecord) -> None:
        connection.execute(
            "INSERT INTO tokens (id, kind, subject, role, labels, salt, hash, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                token.id,
                token.kind,
                token.subject,
                token.role,
                json.dumps(token.labels, sort_keys=True),
                token.salt,
                token.hash,
                token.created_at,
            ),
        )
        if token.kind == "cluster":
            # The cluster exists from now on (Unknown until it reports), with the labels
            # an admin gave it, so waves and summaries see it before its agent runs.
            labels = json.dumps(token.labels, sort_keys=True)
            connection.execute(
                "INSERT INTO clusters (name, token_labels, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET token_labels = excluded.token_labels",
                (token.subject, labels, token.created_at),
            )

    async def get_token(self, token_id: str) -> TokenRecord | None:
        rows = await self.database.run(
            lambda c: c.execute("SELECT * FROM tokens WHERE id = ?", (token_id,)), write=False
        )
        return _token(rows[0]) if rows else None

    async def list_tokens(self) -> list[TokenRecord]:
        return await self.database.run(_list_tokens, write=False)

    def list_tokens_sync(self) -> list[TokenRecord]:
        return self.database.run_sync(_list_tokens)

    async def revoke_token(self, token_id: str, now: float) -> TokenRecord | None:
        """Revoke the token with this id if it is live; its record as it is now (None:
        there is no such token)."""

        def revoke(connection: Connection) -> TokenRecord | None:
            connection.execute(
                "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (now, token_id),
            )
            rows = connection.execute("SELECT * FROM tokens WHERE id = ?", (token_id,))
            return _token(rows[0]) if rows else None

        return await self.database.run(revoke)

    def revoke_tokens_sync(self, selector: str, now: float) -> list[str]:
        """Revoke the token with this id, or every live token of this cluster or user."""

        def revoke(connection: Connection) -> list[str]:
            rows = connection.execute(
                "UPDATE tokens SET revoked_at = ? WHERE (id = ? OR subject = ?)"
                " AND revoked_at IS NULL RETURNING id",
                (now, selector, selector),
            )
            return sorted(row["id"] for row in rows)

        return self.database.run_sync(revoke)

    async def ingest(self, ingest: Ingest, feed: FeedBuilder) -> IngestOutcome:
        """Store a report; when it changed something, append ``feed``'s entries to the change
        feed in the same transaction, so a change and its announcement commit together."""
        # The common case in one statement: same content, cluster not flagged stale.
        if await self.database.run_statement(
            "UPDATE clusters SET last_seen = ?, reported_at = ?, heartbeat_seconds = ?"
            " WHERE name = ? AND digest = ? AND stale = 0",
            (
                ingest.received_at,
                ingest.reported_at,
                ingest.heartbeat_seconds,
                ingest.cluster,
                ingest.digest,
            ),
        ):
            return IngestOutcome(False, None, False)
        return await self.database.run(lambda connection: self._ingest(connection, ingest, feed))

    def _ingest(self, connection: Connection, ingest: Ingest, feed: FeedBuilder) -> IngestOutcome:
        heartbeat = (ingest.received_at, ingest.reported_at, ingest.heartbeat_seconds)
        for_update = self.database.dialect.for_update
        rows = connection.execute(
            f"SELECT digest, stale FROM clusters WHERE name = ?{for_update}", (ingest.cluster,)
        )
        if not rows:
            connection.execute(
                "INSERT INTO clusters (name, created_at) VALUES (?, ?)",
                (ingest.cluster, ingest.received_at),
            )
        was_stale = bool(rows[0]["stale"]) if rows else False
        if rows and rows[0]["digest"] == ingest.digest:
            connection.execute(
                "UPDATE clusters SET last_seen = ?, reported_at = ?, heartbeat_seconds = ?,"
                " stale = 0 WHERE name = ?",
                (*heartbeat, ingest.cluster),
            )
            outcome = IngestOutcome(False, None, was_stale)
            if was_stale:
                outcome.record = _feed_changes(connection, ingest, feed, [])
            return outcome
        content = ingest.content()
        previous = connection.execute(
            "SELECT body FROM latest_reports WHERE cluster = ?", (ingest.cluster,)
        )
        connection.execute(
            "UPDATE clusters SET last_seen = ?, reported_at = ?, stale = 0, agent_version = ?,"
            " report_labels = ?, source_url = ?, source_ref = ?, revision = ?, source_ready = ?,"
            " units_total = ?, units_ready = ?, units_not_ready = ?, health = ?, message = ?,"
            " digest = ?, heartbeat_seconds = ? WHERE name = ?",
            (
                ingest.received_at,
                ingest.reported_at,
                content.agent_version,
                json.dumps(content.report_labels, sort_keys=True),
                content.source_url,
                content.source_ref,
                content.revision,
                int(content.source_ready),
                content.units_total,
                content.units_ready,
                content.units_not_ready,
                content.health,
                content.message,
                ingest.digest,
                ingest.heartbeat_seconds,
                ingest.cluster,
            ),
        )
        connection.execute(
            "INSERT INTO latest_reports (cluster, received_at, digest, body) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (cluster) DO UPDATE SET received_at = excluded.received_at,"
            " digest = excluded.digest, body = excluded.body",
            (ingest.cluster, ingest.received_at, ingest.digest, content.body),
        )
        connection.execute(
            "INSERT INTO report_history (cluster, received_at, digest, body) VALUES (?, ?, ?, ?)",
            (ingest.cluster, ingest.received_at, ingest.digest, content.body),
        )
        _keep_newest(connection, "report_history", ingest.cluster, self.history_per_cluster)
        new_events = [
            stored_event(row)
            for event in content.events
            for row in connection.execute(
                "INSERT INTO events (cluster, fingerprint, time, type, reason, unit, object,"
                " message, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (cluster, fingerprint) DO NOTHING RETURNING *",
                (
                    ingest.cluster,
                    event.fingerprint,
                    event.time,
                    event.type,
                    event.reason,
                    event.unit,
                    event.object,
                    event.message,
                    ingest.received_at,
                ),
            )
        ]
        if new_events:
            _keep_newest(connection, "events", ingest.cluster, EVENTS_PER_CLUSTER)
        outcome = IngestOutcome(
            True, previous[0]["body"] if previous else None, was_stale, new_events
        )
        outcome.record = _feed_changes(connection, ingest, feed, new_events)
        return outcome

    async def list_clusters(self, drift_since: float) -> list[ClusterRecord]:
        def query(connection: Connection) -> list[ClusterRecord]:
            drift = {
                row["cluster"]: int(row["n"])
                for row in connection.execute(
                    "SELECT cluster, COUNT(*) AS n FROM events WHERE reason = 'DriftCorrected'"
                    " AND time >= ? GROUP BY cluster",
                    (drift_since,),
                )
            }
            rows = connection.execute("SELECT * FROM clusters ORDER BY name")
            return [_cluster(row, drift.get(row["name"], 0)) for row in rows]

        return await self.database.run(query, write=False)

    async def get_cluster(self, name: str, drift_since: float) -> ClusterRecord | None:
        def query(connection: Connection) -> ClusterRecord | None:
            rows = connection.execute("SELECT * FROM clusters WHERE name = ?", (name,))
            if not rows:
                return None
            drift = connection.execute(
                "SELECT COUNT(*) AS n FROM events WHERE cluster = ? AND reason = 'DriftCorrected'"
                " AND time >= ?",
                (name, drift_since),
            )
            return _cluster(rows[0], int(drift[0]["n"]))

        return await self.database.run(query, write=False)

    async def latest_report(self, name: str) -> str | None:
        rows = await self.database.run(
            lambda c: c.execute("SELECT body FROM latest_reports WHERE cluster = ?", (name,)),
            write=False,
        )
        return str(rows[0]["body"]) if rows else None

    async def report_history(self, name: str, limit: int) -> list[tuple[float, str, str]]:
        rows = await self.database.run(
            lambda c: c.execute(
                "SELECT received_at, digest, body FROM report_history WHERE cluster = ?"
                " ORDER BY id DESC LIMIT ?",
                (name, limit),
            ),
            write=False,
        )
        return [(row["received_at"], row["digest"], row["body"]) for row in rows]

    async def events(
        self, name: str | None, limit: int, before_id: int | None = None
    ) -> list[StoredEvent]:
        """Newest first; ``before_id`` pages back through older events."""
        clauses: list[str] = []
        params: list[Any] = []
        if name is not None:
            clauses.append("cluster = ?")
            params.append(name)
        if before_id is not None:
            clauses.append("id < ?")
            params.append(before_id)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self.database.run(
            lambda c: c.execute(
                f"SELECT * FROM events{where} ORDER BY id DESC LIMIT ?", (*params, limit)
            ),
            write=False,
        )
        return [stored_event(row) for row in rows]

    async def append_changes(
        self, items: Sequence[tuple[str, str, dict[str, Any]]], now: float
    ) -> int:
        """Append (type, cluster, payload) items to the feed; returns the last id."""

        def append(connection: Connection) -> int:
            last = 0
            for kind, cluster, payload in items:
                rows = connection.execute(
                    "INSERT INTO changes (type, cluster, payload, created_at) VALUES (?, ?, ?, ?)"
                    " RETURNING id",
                    (kind, cluster, json.dumps(payload), now),
                )
                last = int(rows[0]["id"])
            return last

        return await self.database.run(append)

    async def changes_after(self, after_id: int, limit: int) -> list[FeedItem]:
        rows = await self.database.run(
            lambda c: c.execute(
                "SELECT * FROM changes WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
            ),
            write=False,
        )
        return [_feed(row) for row in rows]

    async def oldest_change_id(self) -> int | None:
        rows = await self.database.run(
            lambda c: c.execute("SELECT MIN(id) AS id FROM changes"), write=False
        )
        oldest = rows[0]["id"]
        return int(oldest) if oldest is not None else None

    async def last_change_id(self) -> int:
        rows = await self.database.run(
            lambda c: c.execute("SELECT MAX(id) AS id FROM changes"), write=False
        )
        return int(rows[0]["id"] or 0)

    async def queue_command(self, cluster: str, payload: dict[str, Any], now: float) -> int:
        rows = await self.database.run(
            lambda c: c.execute(
                "INSERT INTO commands (cluster, payload, created_at) VALUES (?, ?, ?) RETURNING id",
                (cluster, json.dumps(payload), now),
            )
        )
        return int(rows[0]["id"])

    async def commands_after(self, cluster: str, after_id: int, limit: int = 100) -> list[FeedItem]:
        rows = await self.database.run(
            lambda c: c.execute(
                "SELECT id, 'command' AS type, cluster, payload, created_at FROM commands"
                " WHERE cluster = ? AND id > ? ORDER BY id LIMIT ?",
                (cluster, after_id, limit),
            ),
            write=False,
        )
        return [_feed(row) for row in rows]

    async def last_command_id(self) -> int:
        rows = await self.database.run(
            lambda c: c.execute("SELECT MAX(id) AS id FROM commands"), write=False
        )
        return int(rows[0]["id"] or 0)

    async def remember_delivery(self, provider: str, delivery_id: str, now: float) -> bool:
        """Record a webhook delivery id; False if it was seen before (a replay)."""
        changed = await self.database.run(
            lambda c: c.rowcount(
                "INSERT INTO webhook_deliveries (provider, delivery_id, received_at)"
                " VALUES (?, ?, ?) ON CONFLICT (provider, delivery_id) DO NOTHING",
                (provider, delivery_id, now),
            )
        )
        return changed == 1

    async def mark_stale(self, seen_before: float) -> list[str]:
        """Flag clusters unseen since ``seen_before`` as stale; returns those this call
        flagged, so that with several replicas exactly one announces each."""
        rows = await self.database.run(
            lambda c: c.execute(
                "UPDATE clusters SET stale = 1 WHERE stale = 0 AND last_seen < ? RETURNING name",
                (seen_before,),
            )
        )
        return sorted(row["name"] for row in rows)

    async def prune(
        self, *, events_before: float, commands_before: float, deliveries_before: float
    ) -> None:
        """Drop what aged out: old events, delivered commands, replay-window delivery ids."""

        def prune(connection: Connection) -> None:
            connection.execute("DELETE FROM events WHERE time < ?", (events_before,))
            connection.execute("DELETE FROM commands WHERE created_at < ?", (commands_before,))
            connection.execute(
                "DELETE FROM webhook_deliveries WHERE received_at < ?", (deliveries_before,)
            )
            rows = connection.execute("SELECT MAX(id) AS id FROM changes")
            newest = int(rows[0]["id"] or 0)
            connection.execute("DELETE FROM changes WHERE id <= ?", (newest - CHANGES_KEPT,))

        await self.database.run(prune)


def _feed_changes(
    connection: Connection, ingest: Ingest, feed: FeedBuilder, new_events: list[StoredEvent]
) -> ClusterRecord:
    rows = connection.execute("SELECT * FROM clusters WHERE name = ?", (ingest.cluster,))
    drift = connection.execute(
        "SELECT COUNT(*) AS n FROM events WHERE cluster = ? AND reason = 'DriftCorrected'"
        " AND time >= ?",
        (ingest.cluster, ingest.received_at - 86_400),
    )
    record = _cluster(rows[0], int(drift[0]["n"]))
    for kind, cluster, payload in feed(record, new_events):
        connection.execute(
            "INSERT INTO changes (type, cluster, payload, created_at) VALUES (?, ?, ?, ?)",
            (kind, cluster, json.dumps(payload), ingest.received_at),
        )
    return record


def _keep_newest(connection: Connection, table: str, cluster: str, keep: int) -> None:
    connection.execute(
        f"DELETE FROM {table} WHERE cluster = ? AND id <= ("
        f"SELECT id FROM {table} WHERE cluster = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
        (cluster, cluster, keep),
    )
