"""``GitStatusReporter``: the agent's status as a file on a branch of the fleet repository.

Each agent writes ``clusters/<name>.yaml`` on branch ``fleet-status``: its report without
the fields that change on every heartbeat (``fleet.report.status_document``), plus
``changedAt``, when that content last changed. A commit is made only when the content
differs from what the branch holds, so the branch history is the fleet's change log.
Many agents push to the one branch; ``fleet.source.push.BranchWriter`` re-applies the
file onto the new tip when another agent pushed first.

``read_status_branch`` reads every cluster's file back, for ``fleet get clusters --repo``
without a hub.
"""

from __future__ import annotations

import logging
import random
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import anyio
import anyio.abc
import anyio.to_thread
import pydantic
import yaml

from fleet import report as report_schema
from fleet.report import ClusterReport
from fleet.source import GitAuth, GitSource, SourceError
from fleet.source.push import DEFAULT_AUTHOR, BranchWriter, FileReader, PushResult
from fleet.untrusted import printable

log = logging.getLogger(__name__)

STATUS_BRANCH = "fleet-status"
STATUS_DIR = "clusters"
CHANGED_AT = "changedAt"


def status_path(cluster: str) -> str:
    return f"{STATUS_DIR}/{cluster}.yaml"


def render_status(report: ClusterReport) -> bytes:
    """The file's YAML: the lasting part of the report and when it last changed."""
    document: dict[str, Any] = report_schema.status_document(report)
    document[CHANGED_AT] = report.reported_at.isoformat().replace("+00:00", "Z")
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False).encode()


def parse_status(content: bytes) -> ClusterReport:
    """A status file back into a report; ``reportedAt`` is when its content last changed."""
    document = yaml.safe_load(content)
    if not isinstance(document, dict):
        raise ValueError("a status file holds a YAML mapping")
    changed_at = document.pop(CHANGED_AT, None)
    document["reportedAt"] = changed_at
    return ClusterReport.model_validate(document)


def _same_content(current: bytes | None, report: ClusterReport) -> bool:
    if current is None:
        return False
    try:
        stored = parse_status(current)
    except (ValueError, yaml.YAMLError, pydantic.ValidationError):
        return False  # unreadable: overwrite it with a good one
    return report_schema.content_digest(stored) == report_schema.content_digest(report)


class GitStatusReporter:
    """Writes one cluster's status file to the status branch; see the module docstring."""

    def __init__(
        self,
        url: str,
        cluster: str,
        auth: GitAuth | None = None,
        *,
        branch: str = STATUS_BRANCH,
        cache_dir: Path,
        retry_min_seconds: float = 1.0,
        retry_max_seconds: float = 300.0,
    ) -> None:
        self.cluster = cluster
        self.path = status_path(cluster)
        self.writer = BranchWriter(
            url,
            branch,
            auth,
            cache_dir=cache_dir,
            author=(f"fleet-agent {cluster}", DEFAULT_AUTHOR[1]),
        )
        self.retry_min_seconds = retry_min_seconds
        self.retry_max_seconds = retry_max_seconds
        self._latest: ClusterReport | None = None
        self._submitted = anyio.Event()
        self._task_group: anyio.abc.TaskGroup | None = None
        self.published_digest: str | None = None
        self.commits = 0
        self.last_error: str | None = None

    def publish(self, report: ClusterReport) -> PushResult:
        """Write the status file now if its content changed (blocking; raises SourceError)."""
        if report.cluster != self.cluster:
            raise ValueError(
                f"report of {report.cluster!r} given to the reporter of {self.cluster!r}"
            )

        def edit(read: FileReader) -> dict[str, bytes | None]:
            if _same_content(read(self.path), report):
                return {}
            return {self.path: render_status(report)}

        health = report_schema.cluster_health(report, report.reported_at, None)
        revision = report_schema.short_revision(report.source.revision) or "no revision"
        result = self.writer.update(edit, f"status: {self.cluster} {health} at {revision}")
        if result.changed:
            self.commits += 1
        self.published_digest = report_schema.content_digest(report)
        return result

    def submit(self, report: ClusterReport) -> None:
        """Make ``report`` the next to publish; returns at once (see ``__aenter__``)."""
        self._latest = report
        self._submitted.set()

    async def __aenter__(self) -> Self:
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._task_group.start_soon(self._publish_forever)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool | None:
        assert self._task_group is not None
        self._task_group.cancel_scope.cancel()
        try:
            return await self._task_group.__aexit__(kind, error, traceback)
        finally:
            self._task_group = None

    async def _publish_forever(self) -> None:
        backoff = self.retry_min_seconds
        while True:
            report = self._latest
            if report is None or report_schema.content_digest(report) == self.published_digest:
                waiting = self._submitted
                await waiting.wait()
                self._submitted = anyio.Event()
                continue
            try:
                # The thread may outlive a cancelled task briefly; the push itself is atomic.
                await anyio.to_thread.run_sync(self.publish, report, abandon_on_cancel=True)
            except SourceError as error:
                self.last_error = str(error)
                log.warning("status branch: %s; retrying in %.0fs", error, backoff)
                await anyio.sleep(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, self.retry_max_seconds)
                continue
            self.last_error = None
            backoff = self.retry_min_seconds


def read_status_branch(source: GitSource) -> list[ClusterReport]:
    """Every cluster's report from the status branch ``source`` follows, sorted by name.

    Files that do not parse are skipped with a warning, so one broken agent cannot hide
    the rest of the fleet.
    """
    result = source.fetch()
    with tempfile.TemporaryDirectory(prefix="fleet-status-") as scratch:
        checkout = Path(scratch) / "tree"
        source.export(result.revision, checkout)
        reports = []
        for path in sorted((checkout / STATUS_DIR).glob("*.yaml")):
            try:
                reports.append(parse_status(path.read_bytes()))
            except pydantic.ValidationError as error:
                # Without the input: the file is a hostile cluster's, the log a terminal.
                problems = "; ".join(
                    ".".join(str(part) for part in item["loc"]) + ": " + item["msg"]
                    for item in error.errors(include_url=False, include_input=False)
                )
                log.warning("skipping %s/%s: %s", STATUS_DIR, path.name, printable(problems))
            except (ValueError, yaml.YAMLError) as error:
                log.warning("skipping %s/%s: %s", STATUS_DIR, path.name, printable(str(error)))
    return sorted(reports, key=lambda report: report.cluster)
