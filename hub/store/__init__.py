"""The hub's persistent state: ``Store`` over SQLite (default) or PostgreSQL (replicas)."""

from hub.store.database import Database, StoreError, open_database
from hub.store.events import StoredEvent
from hub.store.store import (
    ClusterRecord,
    EventInput,
    FeedItem,
    Ingest,
    IngestOutcome,
    ReportContent,
    Store,
    TokenRecord,
)

__all__ = [
    "ClusterRecord",
    "Database",
    "EventInput",
    "FeedItem",
    "Ingest",
    "IngestOutcome",
    "ReportContent",
    "Store",
    "StoreError",
    "StoredEvent",
    "TokenRecord",
    "open_database",
]
