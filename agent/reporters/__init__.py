"""Where the agent's ``ClusterReport`` goes after each change: the hub, the Git status branch.

Both reporters take ``submit(report)`` from the reconcile loop and return at once; their
own background task (running while the reporter is entered with ``async with``) delivers
the latest report, so a slow hub or Git server never holds up reconciling::

    async with HubReporter(url, token, "dev", on_command=handle) as hub, \\
            GitStatusReporter(repo_url, "dev", auth, cache_dir=cache) as git:
        for reporter in (hub, git):
            reporter.submit(report)
"""

from __future__ import annotations

from typing import Protocol

from agent.reporters.gitstatus import GitStatusReporter, read_status_branch
from agent.reporters.hub import HubReporter
from fleet.report import ClusterReport


class Reporter(Protocol):
    """What the reconcile loop needs of any reporter."""

    def submit(self, report: ClusterReport) -> None:
        """Make ``report`` the latest to deliver; never blocks, never raises for I/O."""
        ...


__all__ = ["GitStatusReporter", "HubReporter", "Reporter", "read_status_branch"]
