"""A unit's status as a typed value, and the one pure fold that moves it on.

Every reconcile ends in an :class:`~agent.reconciler.Outcome`; ``fold(previous,
outcome)`` is the only place that turns an outcome into status (conditions, revisions,
inventory, warnings), so the rules read in one screen and are tested with plain data
(tests/unit/test_status_fold.py). The conditions follow Flux's: ``Ready`` always;
``Stalled=True`` only while a terminal failure holds the unit; ``Reconciling=True``
(``ProgressingWithRetry``) while a failure is being retried. The status writer
(``agent/store.py``) writes the folded value once; what a kind adds of its own (a
HelmRelease's release) comes in beside it, never mixed into the fold.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

from fleet.core.inventory import InventoryEntry, inventory_from_status, inventory_to_status

ConditionStatus = Literal["True", "False", "Unknown"]

READY = "Ready"
STALLED = "Stalled"
RECONCILING = "Reconciling"
PROGRESSING = "Progressing"
PROGRESSING_WITH_RETRY = "ProgressingWithRetry"
"""Flux's Reconciling reason while a failed reconcile is retried."""


class FoldedOutcome(Protocol):
    """What the fold reads of an outcome (``agent.reconciler.Outcome`` has it all)."""

    @property
    def ready(self) -> bool: ...
    @property
    def reason(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def revision(self) -> str: ...
    @property
    def applied(self) -> bool: ...
    @property
    def stalled(self) -> bool: ...
    @property
    def inventory(self) -> list[InventoryEntry] | None: ...
    @property
    def warnings(self) -> list[str]: ...
    @property
    def applied_revision(self) -> str | None: ...
    @property
    def pending(self) -> bool: ...


def now() -> str:
    """The current time as Kubernetes writes it (RFC 3339, seconds, UTC)."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass(frozen=True)
class Condition:
    """One status condition, as metav1.Condition."""

    type: str
    status: ConditionStatus
    reason: str
    message: str
    last_transition_time: str

    def to_status(self) -> dict[str, str]:
        return {
            "type": self.type,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": self.last_transition_time,
        }

    @classmethod
    def from_status(cls, found: Mapping[str, Any]) -> Condition | None:
        """A stored condition; None when it is malformed (never guessed)."""
        status = found.get("status")
        if not found.get("type") or status not in ("True", "False", "Unknown"):
            return None
        return cls(
            str(found["type"]),
            status,
            str(found.get("reason") or ""),
            str(found.get("message") or ""),
            str(found.get("lastTransitionTime") or ""),
        )


def set_condition(
    conditions: Sequence[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    *,
    at: str,
) -> tuple[Condition, ...]:
    """``conditions`` with one set; lastTransitionTime moves only when the status does.
    Ready stays first, as Flux orders them (``kubectl get`` columns read the first)."""
    previous = next((c for c in conditions if c.type == type_), None)
    kept = previous.last_transition_time if previous and previous.status == status else ""
    condition = Condition(type_, status, reason, message, kept or at)
    others = tuple(c for c in conditions if c.type != type_)
    return (condition, *others) if type_ == READY else (*others, condition)


def remove_condition(conditions: Sequence[Condition], type_: str) -> tuple[Condition, ...]:
    return tuple(c for c in conditions if c.type != type_)


@dataclasses.dataclass(frozen=True)
class UnitStatus:
    """What a unit's status says; immutable, replaced by each fold."""

    conditions: tuple[Condition, ...] = ()
    last_applied_revision: str | None = None
    last_attempted_revision: str | None = None
    inventory: tuple[InventoryEntry, ...] = ()
    warnings: tuple[str, ...] = ()
    drift_count: int = 0
    last_drift_at: str | None = None
    last_handled_reconcile_at: str | None = None

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    @property
    def ready(self) -> bool:
        found = self.condition(READY)
        return found is not None and found.status == "True"

    @property
    def stalled(self) -> bool:
        found = self.condition(STALLED)
        return found is not None and found.status == "True"

    @property
    def ready_at_its_revision(self) -> bool:
        """Flux's test for a dependency: Ready, and not half way to a newer revision."""
        return self.ready and self.last_applied_revision == self.last_attempted_revision

    def to_status(self) -> dict[str, Any]:
        """The fields of the status subresource (absent ones left out)."""
        status: dict[str, Any] = {
            "conditions": [c.to_status() for c in self.conditions],
            "lastAppliedRevision": self.last_applied_revision,
            "lastAttemptedRevision": self.last_attempted_revision,
            "inventory": inventory_to_status(self.inventory),
            "inventorySize": len(self.inventory),
            "driftCount": self.drift_count,
            "lastDriftAt": self.last_drift_at,
            "warnings": list(self.warnings),
            "lastHandledReconcileAt": self.last_handled_reconcile_at,
        }
        return {k: v for k, v in status.items() if v is not None}

    @classmethod
    def from_status(cls, status: Mapping[str, Any] | None) -> UnitStatus:
        """What a previous agent wrote; malformed parts are dropped, never guessed."""
        found = status or {}
        conditions = (Condition.from_status(c) for c in found.get("conditions") or [])
        return cls(
            conditions=tuple(c for c in conditions if c is not None),
            last_applied_revision=found.get("lastAppliedRevision"),
            last_attempted_revision=found.get("lastAttemptedRevision"),
            inventory=tuple(inventory_from_status(found)),
            warnings=tuple(str(w) for w in found.get("warnings") or []),
            drift_count=int(found.get("driftCount") or 0),
            last_drift_at=found.get("lastDriftAt"),
            last_handled_reconcile_at=found.get("lastHandledReconcileAt"),
        )


def fold(previous: UnitStatus, outcome: FoldedOutcome, *, at: str | None = None) -> UnitStatus:
    """The status after ``outcome``: the only place an outcome becomes status.

    - lastAttemptedRevision moves to the outcome's revision (an outcome that never got as
      far as a revision keeps the previous one);
    - lastAppliedRevision moves when the revision was applied in full, or to what now runs
      when that differs (a HelmRelease rolled back);
    - the inventory is replaced only when the outcome carries one (a failed render keeps
      what is owned, so nothing is orphaned);
    - Ready mirrors the outcome; Stalled is True while the failure is terminal and gone
      otherwise; Reconciling is True (ProgressingWithRetry) while a failure is retried.
    """
    at = at or now()
    if outcome.pending:
        return _pending(previous, outcome, at)
    applied = previous.last_applied_revision
    if outcome.applied_revision is not None:
        applied = outcome.applied_revision
    elif outcome.applied:
        applied = outcome.revision
    conditions = set_condition(
        previous.conditions,
        READY,
        "True" if outcome.ready else "False",
        outcome.reason,
        outcome.message,
        at=at,
    )
    if outcome.stalled and not outcome.ready:
        conditions = set_condition(
            conditions, STALLED, "True", outcome.reason, outcome.message, at=at
        )
    else:
        conditions = remove_condition(conditions, STALLED)
    if not outcome.ready and not outcome.stalled:
        conditions = set_condition(
            conditions, RECONCILING, "True", PROGRESSING_WITH_RETRY, outcome.message, at=at
        )
    else:
        conditions = remove_condition(conditions, RECONCILING)
    return dataclasses.replace(
        previous,
        conditions=conditions,
        last_attempted_revision=outcome.revision or previous.last_attempted_revision,
        last_applied_revision=applied,
        inventory=(previous.inventory if outcome.inventory is None else tuple(outcome.inventory)),
        warnings=tuple(outcome.warnings),
    )


Health = Literal["current", "failed", "pending"]


def health(found: UnitStatus) -> Health:
    """A Flux object's health as ``wait``/``healthChecks`` judge it: Current when Ready at
    the revision it attempted, Failed when Stalled, else still in progress."""
    if found.ready_at_its_revision:
        return "current"
    if found.stalled:
        return "failed"
    return "pending"


def _pending(previous: UnitStatus, outcome: FoldedOutcome, at: str) -> UnitStatus:
    """Applied, health not known yet: Ready=Unknown and Reconciling=True (``Progressing``),
    as Flux's during health checks; the revision is attempted, not yet applied."""
    conditions = set_condition(
        previous.conditions, READY, "Unknown", PROGRESSING, outcome.message, at=at
    )
    conditions = set_condition(
        remove_condition(conditions, STALLED),
        RECONCILING,
        "True",
        PROGRESSING,
        outcome.message,
        at=at,
    )
    return dataclasses.replace(
        previous,
        conditions=conditions,
        last_attempted_revision=outcome.revision or previous.last_attempted_revision,
        inventory=(previous.inventory if outcome.inventory is None else tuple(outcome.inventory)),
        warnings=tuple(outcome.warnings),
    )


def waiting(
    previous: UnitStatus, reason: str, message: str, *, at: str | None = None
) -> UnitStatus:
    """Ready=False while the unit waits for something else (a dependency): nothing was
    attempted, so revisions, inventory and Stalled stay as they were."""
    return dataclasses.replace(
        previous,
        conditions=set_condition(
            previous.conditions, READY, "False", reason, message, at=at or now()
        ),
    )


def drifted(previous: UnitStatus, *, at: str | None = None) -> UnitStatus:
    """One more drift correction counted."""
    return dataclasses.replace(
        previous, drift_count=previous.drift_count + 1, last_drift_at=at or now()
    )


def handled(previous: UnitStatus, requested_at: str) -> UnitStatus:
    """A reconcile request (``requestedAt``) was picked up: answer it, as Flux does."""
    return dataclasses.replace(previous, last_handled_reconcile_at=requested_at)
