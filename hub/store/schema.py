"""The hub's tables, as numbered migrations applied in order and recorded in ``schema_version``.

Each migration is a list of statements written once for both databases; the few words
that differ (an auto-increment key, a float type) come from the dialect. A hub refuses to
start on a database whose version is newer than it knows, rather than misread it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Dialect:
    """The SQL words that differ between SQLite and PostgreSQL."""

    name: str
    serial_key: str
    """An auto-incrementing integer primary key column type."""
    real: str
    for_update: str
    """Row lock suffix for a SELECT inside a write transaction ('' where writes serialise)."""


SQLITE = Dialect("sqlite", "INTEGER PRIMARY KEY AUTOINCREMENT", "REAL", "")
POSTGRES = Dialect(
    "postgresql",
    "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    "DOUBLE PRECISION",
    " FOR UPDATE",
)


def _v1(d: Dialect) -> list[str]:
    return [
        f"""CREATE TABLE tokens (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            subject TEXT NOT NULL,
            role TEXT NOT NULL,
            labels TEXT NOT NULL DEFAULT '{{}}',
            salt TEXT NOT NULL,
            hash TEXT NOT NULL,
            created_at {d.real} NOT NULL,
            revoked_at {d.real}
        )""",
        "CREATE INDEX tokens_subject ON tokens (subject)",
        f"""CREATE TABLE clusters (
            name TEXT PRIMARY KEY,
            token_labels TEXT NOT NULL DEFAULT '{{}}',
            report_labels TEXT NOT NULL DEFAULT '{{}}',
            created_at {d.real} NOT NULL,
            last_seen {d.real},
            reported_at {d.real},
            agent_version TEXT NOT NULL DEFAULT '',
            source_url TEXT,
            source_ref TEXT,
            revision TEXT,
            source_ready INTEGER NOT NULL DEFAULT 0,
            units_total INTEGER NOT NULL DEFAULT 0,
            units_ready INTEGER NOT NULL DEFAULT 0,
            units_not_ready INTEGER NOT NULL DEFAULT 0,
            health TEXT NOT NULL DEFAULT 'Unknown',
            message TEXT NOT NULL DEFAULT '',
            digest TEXT,
            heartbeat_seconds INTEGER NOT NULL DEFAULT 30,
            stale INTEGER NOT NULL DEFAULT 0
        )""",
        f"""CREATE TABLE latest_reports (
            cluster TEXT PRIMARY KEY REFERENCES clusters (name) ON DELETE CASCADE,
            received_at {d.real} NOT NULL,
            digest TEXT NOT NULL,
            body TEXT NOT NULL
        )""",
        f"""CREATE TABLE report_history (
            id {d.serial_key},
            cluster TEXT NOT NULL REFERENCES clusters (name) ON DELETE CASCADE,
            received_at {d.real} NOT NULL,
            digest TEXT NOT NULL,
            body TEXT NOT NULL
        )""",
        "CREATE INDEX report_history_cluster ON report_history (cluster, id)",
        f"""CREATE TABLE events (
            id {d.serial_key},
            cluster TEXT NOT NULL REFERENCES clusters (name) ON DELETE CASCADE,
            fingerprint TEXT NOT NULL,
            time {d.real} NOT NULL,
            type TEXT NOT NULL,
            reason TEXT NOT NULL,
            unit TEXT NOT NULL,
            object TEXT NOT NULL,
            message TEXT NOT NULL,
            received_at {d.real} NOT NULL,
            UNIQUE (cluster, fingerprint)
        )""",
        "CREATE INDEX events_cluster_time ON events (cluster, time)",
        "CREATE INDEX events_reason_time ON events (reason, time)",
        f"""CREATE TABLE changes (
            id {d.serial_key},
            type TEXT NOT NULL,
            cluster TEXT NOT NULL,
            payload TEXT NOT NULL,
            created_at {d.real} NOT NULL
        )""",
        f"""CREATE TABLE commands (
            id {d.serial_key},
            cluster TEXT NOT NULL,
            payload TEXT NOT NULL,
            created_at {d.real} NOT NULL
        )""",
        "CREATE INDEX commands_cluster ON commands (cluster, id)",
        f"""CREATE TABLE webhook_deliveries (
            provider TEXT NOT NULL,
            delivery_id TEXT NOT NULL,
            received_at {d.real} NOT NULL,
            PRIMARY KEY (provider, delivery_id)
        )""",
        f"""CREATE TABLE promotions (
            id {d.serial_key},
            wave TEXT NOT NULL,
            revision TEXT NOT NULL,
            state TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '{{}}',
            created_at {d.real} NOT NULL,
            updated_at {d.real} NOT NULL
        )""",
        "CREATE INDEX promotions_wave ON promotions (wave, id)",
    ]


def _v2(d: Dialect) -> list[str]:
    """Promotion waves: the hub's side of each wave, the soak clock, the promoter lease;
    ``promotions`` becomes the history, each entry marked once committed to Git."""
    return [
        "ALTER TABLE promotions ADD COLUMN git_commit TEXT",
        f"""CREATE TABLE promotion_waves (
            wave TEXT PRIMARY KEY,
            paused INTEGER NOT NULL DEFAULT 0,
            last_good TEXT,
            halted TEXT,
            updated_at {d.real} NOT NULL
        )""",
        f"""CREATE TABLE promotion_marks (
            wave TEXT NOT NULL,
            revision TEXT NOT NULL,
            kind TEXT NOT NULL,
            who TEXT NOT NULL,
            created_at {d.real} NOT NULL,
            PRIMARY KEY (wave, revision, kind)
        )""",
        f"""CREATE TABLE promotion_readiness (
            cluster TEXT PRIMARY KEY,
            revision TEXT NOT NULL,
            ready_since {d.real} NOT NULL
        )""",
        f"""CREATE TABLE promotion_lease (
            name TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            expires_at {d.real} NOT NULL
        )""",
    ]


MIGRATIONS: list[Callable[[Dialect], list[str]]] = [_v1, _v2]
"""Index + 1 is the schema version a migration brings the database to. Append only."""

LATEST_VERSION = len(MIGRATIONS)
