"""Events as the hub stores them: one row per event and cluster, from reports or the promoter."""

from __future__ import annotations

from dataclasses import dataclass

from hub.store.database import Row


@dataclass(frozen=True)
class StoredEvent:
    id: int
    cluster: str
    fingerprint: str
    time: float
    type: str
    reason: str
    unit: str
    object: str
    message: str


def stored_event(row: Row) -> StoredEvent:
    return StoredEvent(
        id=row["id"],
        cluster=row["cluster"],
        fingerprint=row["fingerprint"],
        time=row["time"],
        type=row["type"],
        reason=row["reason"],
        unit=row["unit"],
        object=row["object"],
        message=row["message"],
    )
