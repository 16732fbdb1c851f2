"""What a release's history says and what to do next. Pure.

Helm keeps one record per revision (``helm history -o json``); the newest one tells
whether the release is missing, deployed, failed or stuck half way (``pending-*``, left
behind when a helm process died). These functions turn that history and Flux's
remediation settings into the next step, so the decisions are tested without a cluster.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
from collections.abc import Sequence
from typing import Any

PENDING = frozenset({"pending-install", "pending-upgrade", "pending-rollback"})
"""A helm action started and never finished: helm refuses further upgrades until cleared."""
SERVED = frozenset({"deployed", "superseded"})
"""Revisions that were live and complete at some point: safe targets for a rollback."""

MAX_MESSAGE = 900
_LONG_QUOTED = re.compile(r'"(?:[^"\\]|\\.){160,}"')


@dataclasses.dataclass(frozen=True)
class Revision:
    """One entry of ``helm history``."""

    revision: int
    status: str
    chart: str
    """``<name>-<version>``, as helm prints it."""
    app_version: str = ""
    description: str = ""
    updated: str = ""

    def is_chart(self, name: str, version: str) -> bool:
        return self.chart == f"{name}-{version}"


def parse_history(text: str) -> list[Revision]:
    """``helm history -o json`` output, oldest first."""
    loaded: Any = json.loads(text or "[]")
    revisions = [
        Revision(
            revision=int(item["revision"]),
            status=str(item.get("status", "")),
            chart=str(item.get("chart", "")),
            app_version=str(item.get("app_version", "")),
            description=str(item.get("description", "")),
            updated=str(item.get("updated", "")),
        )
        for item in loaded or []
    ]
    return sorted(revisions, key=lambda r: r.revision)


def latest(history: Sequence[Revision]) -> Revision | None:
    return history[-1] if history else None


def last_served(history: Sequence[Revision], before: int | None = None) -> Revision | None:
    """The newest revision that was deployed complete (before revision ``before``)."""
    for entry in reversed(history):
        if before is not None and entry.revision >= before:
            continue
        if entry.status in SERVED:
            return entry
    return None


class Step(enum.Enum):
    """The helm action a release needs next, when it is not in sync with Git."""

    INSTALL = "install"
    """No release, or only an uninstalled one kept in history."""
    REINSTALL = "reinstall"
    """Only failed installs exist: uninstall the leftovers, then install anew."""
    UPGRADE = "upgrade"


def next_step(history: Sequence[Revision]) -> Step:
    """Install, reinstall or upgrade, for a release whose newest revision is not pending."""
    newest = latest(history)
    if newest is None or newest.status == "uninstalled":
        return Step.INSTALL
    if last_served(history) is None:
        return Step.REINSTALL
    return Step.UPGRADE


@dataclasses.dataclass(frozen=True)
class Recovery:
    """How to clear a release stuck in ``pending-*``: roll back to ``target``, or (when
    nothing was ever deployed) uninstall."""

    stuck: Revision
    target: Revision | None

    def describe(self, release: str) -> str:
        if self.target is None:
            return (
                f"release {release} was stuck in {self.stuck.status} (revision "
                f"{self.stuck.revision}) with nothing deployed before; uninstalled it"
            )
        return (
            f"release {release} was stuck in {self.stuck.status} (revision "
            f"{self.stuck.revision}); rolled back to revision {self.target.revision} "
            f"({self.target.chart})"
        )


def recovery(history: Sequence[Revision]) -> Recovery | None:
    """What to do about an interrupted helm run; None when the release is not stuck."""
    newest = latest(history)
    if newest is None or newest.status not in PENDING:
        return None
    return Recovery(newest, last_served(history, before=newest.revision))


def retries_exhausted(retries: int, failures: int) -> bool:
    """Flux's rule: negative retries never run out; otherwise ``failures > retries``."""
    return retries >= 0 and failures > retries


def retries_left(retries: int, failures: int) -> int | None:
    """Attempts still to come after ``failures`` failures; None means unlimited."""
    if retries < 0:
        return None
    return max(retries - failures + 1, 0) if failures else retries + 1


def short_error(text: str) -> str:
    """A helm error as a status line: ``Error:`` dropped, whole objects quoted inside the
    message elided (helm quotes the entire live object on a failed patch), bounded."""
    message = " ".join(text.strip().split())
    message = re.sub(r"^Error:\s*", "", message)
    message = _LONG_QUOTED.sub('"<object elided>"', message)
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 1] + "…"
    return message
