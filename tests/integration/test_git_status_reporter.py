"""GitStatusReporter and read_status_branch against a repository served by git daemon."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
import yaml

from agent.reporters import GitStatusReporter, read_status_branch
from fleet.localkube.gitserver import GitDaemon, git_daemon
from fleet.report import UnitReport
from fleet.source import GitRef, GitSource
from fleet.source.push import BranchWriter, FileReader
from tests.gitservers import WorkingClone, served_repo
from tests.hubserver import report
from tests.support import eventually

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def served(tmp_path: Path) -> Path:
    root = tmp_path / "served"
    root.mkdir()
    return root


@pytest.fixture
def fleet_repo(served: Path) -> WorkingClone:
    clone = served_repo(served, "fleet.git")
    clone.commit({"clusters/dev/kustomization.yaml": "resources: []\n"}, message="fleet")
    clone.push("main")
    return clone


@pytest.fixture
def daemon(served: Path, fleet_repo: WorkingClone) -> Iterator[GitDaemon]:
    with git_daemon(served) as running:
        yield running


def status_commits(clone: WorkingClone) -> list[str]:
    clone.git(
        "fetch", "--quiet", "origin", "+refs/heads/fleet-status:refs/remotes/origin/fleet-status"
    )
    return clone.git("log", "--format=%s", "origin/fleet-status").splitlines()


def status_file(clone: WorkingClone, cluster: str) -> dict[str, object]:
    text = clone.git("show", f"origin/fleet-status:clusters/{cluster}.yaml")
    document: dict[str, object] = yaml.safe_load(text)
    return document


def test_writes_the_status_file_and_commits_only_on_change(
    daemon: GitDaemon, fleet_repo: WorkingClone, tmp_path: Path
) -> None:
    reporter = GitStatusReporter(daemon.url("fleet.git"), "dev", cache_dir=tmp_path / "agent")
    first = report("dev")

    created = reporter.publish(first)
    heartbeat = reporter.publish(
        first.model_copy(update={"reported_at": first.reported_at + datetime.timedelta(minutes=1)})
    )
    failing = UnitReport(namespace="flux-system", name="apps", ready="False", message="boom")
    changed = reporter.publish(report("dev", units=[failing]))

    assert (created.changed, heartbeat.changed, changed.changed) == (True, False, True)
    commits = status_commits(fleet_repo)
    assert commits == [
        "status: dev Degraded at main@sha1:01234567",
        "status: dev Ready at main@sha1:01234567",
    ]
    document = status_file(fleet_repo, "dev")
    assert document["kind"] == "ClusterReport" and document["cluster"] == "dev"
    assert "reportedAt" not in document and "changedAt" in document
    assert document["units"] == [
        {
            "kind": "Kustomization",
            "namespace": "flux-system",
            "name": "apps",
            "ready": "False",
            "reason": "",
            "message": "boom",
            "suspended": False,
            "lastAppliedRevision": None,
            "lastAttemptedRevision": None,
            "inventorySize": 0,
            "driftCount": 0,
            "dependsOn": [],
            "source": "",
        }
    ]
    assert fleet_repo.git("ls-remote", "origin", "refs/heads/main").split()[0] == fleet_repo.head()


def test_two_agents_racing_on_the_branch_both_land(
    daemon: GitDaemon, fleet_repo: WorkingClone, tmp_path: Path
) -> None:
    url = daemon.url("fleet.git")
    rounds = 4
    errors: list[BaseException] = []

    def agent(cluster: str) -> None:
        reporter = GitStatusReporter(url, cluster, cache_dir=tmp_path / cluster)
        try:
            for n in range(rounds):
                reporter.publish(report(cluster, revision_sha=f"{n:x}" * 40))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=agent, args=(name,)) for name in ("dev", "staging")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=50)

    assert errors == []
    source = GitSource(url, GitRef(branch="fleet-status"), cache_dir=tmp_path / "reader")
    reports = read_status_branch(source)
    assert [r.cluster for r in reports] == ["dev", "staging"]
    assert {r.source.revision for r in reports} == {f"main@sha1:{'3' * 40}"}
    assert len(status_commits(fleet_repo)) == 2 * rounds


def test_background_submit_publishes_the_latest(daemon: GitDaemon, tmp_path: Path) -> None:
    reporter = GitStatusReporter(daemon.url("fleet.git"), "prod", cache_dir=tmp_path / "agent")
    source = GitSource(
        daemon.url("fleet.git"), GitRef(branch="fleet-status"), cache_dir=tmp_path / "r"
    )

    async def main() -> None:
        async with reporter:
            reporter.submit(report("prod", revision_sha="a" * 40))
            reporter.submit(report("prod", revision_sha="b" * 40))
            with anyio.fail_after(20):
                while reporter.published_digest is None or reporter.commits == 0:
                    await anyio.sleep(0.05)
                while read_status_branch(source)[0].source.revision != f"main@sha1:{'b' * 40}":
                    await anyio.sleep(0.05)

    anyio.run(main)
    eventually(lambda: reporter.last_error is None, 1, "no publishing error")


def test_branch_writer_reapplies_its_change_when_another_writer_pushed_first(
    daemon: GitDaemon, fleet_repo: WorkingClone, tmp_path: Path
) -> None:
    url = daemon.url("fleet.git")
    ours = BranchWriter(url, "fleet-status", cache_dir=tmp_path / "ours")
    theirs = BranchWriter(url, "fleet-status", cache_dir=tmp_path / "theirs")
    calls = 0

    def edit(read: FileReader) -> dict[str, bytes | None]:
        nonlocal calls
        calls += 1
        if calls == 1:
            # Between our read of the tip and our push, another agent lands a commit.
            theirs.update(lambda _: {"clusters/staging.yaml": b"theirs\n"}, "theirs")
        return {"clusters/dev.yaml": b"ours\n"}

    result = ours.update(edit, "ours")

    assert result.changed and result.attempts == 2
    assert status_commits(fleet_repo) == ["ours", "theirs"]
    tip, files = ours.read()
    assert tip == result.commit
    assert files == {"clusters/dev.yaml": b"ours\n", "clusters/staging.yaml": b"theirs\n"}
