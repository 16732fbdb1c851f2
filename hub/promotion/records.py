"""Promotion records as Git sees them: one YAML file and one commit per action.

The records branch (default ``fleet/promotions``) of the fleet repository gets a commit
for every promotion, approval, pause, resume, halt, rollback and finished rollout, so
``git log fleet/promotions`` reads as the audit trail and each file holds the details:

```yaml
apiVersion: fleet.dev/v1alpha1
kind: PromotionRecord
id: 12
wave: staging
action: promote
from: 1a2b3c4...
revision: 5d6e7f8...
who: hub
why: "promote 5d6e7f8: dev Ready at 5d6e7f8 for 2s"
at: "2026-11-26T12:00:00Z"
```

Files are named by time and the hub's id, so two replicas writing the same record write
the same file, and the second write changes nothing.
"""

from __future__ import annotations

import datetime
from typing import Any

import yaml

from fleet.core.promotion import short
from hub.store.promotions import Entry, NewEntry

RECORDS_DIR = "records"


def iso(timestamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def path_of(entry: Entry) -> str:
    stamp = datetime.datetime.fromtimestamp(entry.at, datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{RECORDS_DIR}/{stamp}-{entry.id:06d}-{entry.wave}-{entry.action}.yaml"


def document(entry: Entry) -> dict[str, Any]:
    data: dict[str, Any] = {
        "apiVersion": "fleet.dev/v1alpha1",
        "kind": "PromotionRecord",
        "id": entry.id,
        "wave": entry.wave,
        "action": entry.action,
    }
    if entry.previous:
        data["from"] = entry.previous
    if entry.revision:
        data["revision"] = entry.revision
    if entry.batch is not None:
        data["batch"] = entry.batch
    if entry.clusters:
        data["clusters"] = list(entry.clusters)
    data.update(who=entry.who, why=entry.why, at=iso(entry.at))
    return data


def render(entry: Entry) -> bytes:
    return yaml.safe_dump(document(entry), sort_keys=False, width=1000).encode()


def subject(entry: NewEntry) -> str:
    """The commit's first line: ``staging: promote 1a2b3c4 -> 5d6e7f8``."""
    where = f"{entry.wave}" + (f" batch {entry.batch}" if entry.batch is not None else "")
    revision = short(entry.revision)
    if entry.action in ("promote", "rollback"):
        verb = "promote" if entry.action == "promote" else "roll back"
        return f"{where}: {verb} {short(entry.previous)} -> {revision}"
    if entry.action == "approve":
        return f"{where}: approve {revision}"
    if entry.action == "halt":
        return f"{where}: halt at {revision}"
    if entry.action == "finish":
        return f"{where}: {revision} Ready on every cluster"
    return f"{where}: {entry.action}"


def message(entry: Entry) -> str:
    """Subject, why, and trailers a script can read (``git log --format=%(trailers)``)."""
    trailers = [f"Promotion-Id: {entry.id}", f"Promotion-By: {entry.who}"]
    return f"{subject(entry)}\n\n{entry.why}\n\n" + "\n".join(trailers) + "\n"
