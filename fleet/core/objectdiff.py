"""What an apply would change, as ``fleet diff`` shows it. Pure functions over plain dicts.

The live object is compared with the server's answer to a dry-run apply of the desired
one: both come from the server, so defaulting and normalisation never show up as
changes. Bookkeeping the server rewrites on every write (resourceVersion, managedFields,
generation...) and status are left out of the comparison.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml

IGNORED_METADATA = frozenset(
    {"managedFields", "resourceVersion", "generation", "uid", "creationTimestamp"}
)
"""Fields the server writes itself: they change on every apply, meaning nothing."""


class Action(enum.Enum):
    CREATE = "new"
    UPDATE = "changed"
    PRUNE = "pruned"
    ADD_UNIT = "new unit"
    REMOVE_UNIT = "unit removed"
    PRUNE_REFUSED = "prune refused"
    """The agent would stop the unit (PruneFailed) instead of pruning: still a change."""
    ERROR = "error"
    """The dry run failed: an apply would fail too."""


_MARK = {
    Action.CREATE: "+",
    Action.UPDATE: "~",
    Action.PRUNE: "-",
    Action.ADD_UNIT: "+",
    Action.REMOVE_UNIT: "-",
    Action.PRUNE_REFUSED: "!",
    Action.ERROR: "!",
}


@dataclasses.dataclass(frozen=True)
class Change:
    """One line of ``fleet diff``: what happens to which object, and the field diff."""

    action: Action
    label: str
    """``Deployment/apps/web``."""
    diff: tuple[str, ...] = ()
    """Unified diff lines (updates only)."""
    note: str = ""
    """Why, for errors and unusual cases (``recreated: immutable field``)."""

    def lines(self) -> list[str]:
        detail = self.note or self.action.value
        return [f"{_MARK[self.action]} {self.label} ({detail})", *self.diff]


def comparable(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object without status and without the metadata the server rewrites itself."""
    trimmed = {k: v for k, v in obj.items() if k != "status"}
    metadata = trimmed.get("metadata")
    if isinstance(metadata, Mapping):
        trimmed["metadata"] = {k: v for k, v in metadata.items() if k not in IGNORED_METADATA}
    return trimmed


def to_yaml(obj: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(obj), sort_keys=True, default_flow_style=False)


def field_diff(live: Mapping[str, Any], merged: Mapping[str, Any], label: str) -> list[str]:
    """Unified diff from the live object to the object an apply would leave; [] when equal."""
    before, after = comparable(live), comparable(merged)
    if before == after:
        return []
    return list(
        difflib.unified_diff(
            to_yaml(before).splitlines(),
            to_yaml(after).splitlines(),
            fromfile=f"live/{label}",
            tofile=f"merged/{label}",
            lineterm="",
        )
    )


def update(live: Mapping[str, Any], merged: Mapping[str, Any], label: str) -> Change | None:
    """The change an apply makes to an existing object, or None when it makes none."""
    lines = field_diff(live, merged, label)
    return Change(Action.UPDATE, label, tuple(lines)) if lines else None


def exit_code(changes: Sequence[Change]) -> int:
    """``kubectl diff``'s convention: 0 nothing to do, 1 changes, 2 something failed."""
    if any(c.action is Action.ERROR for c in changes):
        return 2
    return 1 if changes else 0


def format_changes(changes: Iterable[Change]) -> list[str]:
    return [line for change in changes for line in change.lines()]


def summary(changes: Sequence[Change]) -> str:
    """``2 new, 1 changed, 1 pruned``, or ``no changes``."""
    counts: dict[Action, int] = {}
    for change in changes:
        counts[change.action] = counts.get(change.action, 0) + 1
    parts = [f"{n} {action.value}" for action, n in counts.items() if action is not Action.ERROR]
    if counts.get(Action.ERROR):
        parts.append(f"{counts[Action.ERROR]} failed")
    return ", ".join(parts) or "no changes"
