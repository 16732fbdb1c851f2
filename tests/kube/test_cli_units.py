"""The unit verbs of the ``fleet`` CLI against a real cluster and a real agent.

The agent runs in-process on the test's event loop; the CLI runs as a subprocess,
awaited without blocking that loop, so the agent keeps reconciling while a command
waits for it.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
import yaml

from agent.loop import Agent
from fleet.api import unit as unit_api
from fleet.kube import KubeClient
from fleet.localkube.cluster import LocalCluster
from tests.agentkit import (
    eventually,
    ready_condition,
    running_agent,
    source_settled_on,
    unit_status,
)
from tests.gitservers import GitDaemon, WorkingClone
from tests.objects import configmap, deployment, kustomization, manifest

pytestmark = pytest.mark.anyio

REPO_ROOT = Path(__file__).resolve().parents[2]
APP = "clusters/dev/app.yaml"


class Result:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.code = code
        self.stdout = stdout
        self.stderr = stderr

    def __repr__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.stdout}--- stderr\n{self.stderr}"


async def fleet(cluster: LocalCluster, agent: Agent, *args: str) -> Result:
    """``fleet ARGS --kubeconfig ... -n <agent namespace>`` in a subprocess."""
    command = _command(cluster, agent.settings.namespace, *args)
    with anyio.fail_after(180):
        done = await anyio.run_process(command, check=False, cwd=REPO_ROOT)
    return Result(done.returncode, done.stdout.decode(), done.stderr.decode())


def _command(cluster: LocalCluster, namespace: str, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "fleet.cli.main",
        *args,
        "--kubeconfig",
        str(cluster.kubeconfig_path),
        "-n",
        namespace,
    ]


class LineReader:
    """Lines of a running command's stdout, read as they come."""

    def __init__(self, stream: anyio.abc.ByteReceiveStream) -> None:
        self._stream = stream
        self._buffer = b""
        self.lines: list[str] = []

    async def line_with(self, text: str, timeout: float = 30) -> str:
        """The next line holding ``text``, skipping the ones before it."""
        with anyio.fail_after(timeout):
            while True:
                while b"\n" in self._buffer:
                    raw, self._buffer = self._buffer.split(b"\n", 1)
                    line = raw.decode()
                    self.lines.append(line)
                    if text in line:
                        return line
                self._buffer += await self._stream.receive()


@contextlib.asynccontextmanager
async def streaming(cluster: LocalCluster, agent: Agent, *args: str) -> AsyncIterator[LineReader]:
    """A long-running ``fleet ARGS`` (``--watch``), stopped when the block ends."""
    command = _command(cluster, agent.settings.namespace, *args)
    async with await anyio.open_process(command, cwd=REPO_ROOT) as process:
        assert process.stdout is not None
        try:
            yield LineReader(process.stdout)
        finally:
            process.terminate()
            await process.wait()


async def applied(
    kube: KubeClient, agent: Agent, sha: str, unit: str = unit_api.ROOT_UNIT
) -> dict[str, Any] | None:
    status = await unit_status(kube, agent, unit)
    if (
        str(status.get("lastAppliedRevision", "")).endswith(sha)
        and ready_condition(status).get("status") == "True"
    ):
        return status
    return None


async def test_get_reconcile_tree_and_events_show_what_the_agent_did(
    cluster: LocalCluster,
    kube: KubeClient,
    namespace: str,
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    daemon, repo = git
    first = repo.commit(
        {
            APP: manifest(
                configmap(namespace, "settings", color="blue"), deployment(namespace, "web")
            )
        }
    )
    repo.push("main")
    async with running_agent(
        cluster,
        daemon.url("fleet.git"),
        tmp_path / "agent",
        interval=datetime.timedelta(minutes=10),
    ) as agent:
        await eventually(lambda: applied(kube, agent, first), what="first revision applied")

        table = await fleet(cluster, agent, "get", "units")
        assert table.code == 0, table
        header, row = table.stdout.splitlines()
        assert header.split() == [
            "NAME",
            "READY",
            "REVISION",
            "SUSPENDED",
            "OBJECTS",
            "DRIFT",
            "AGE",
            "MESSAGE",
        ]
        assert row.split()[:6] == ["root", "True", f"main@{first[:7]}", "False", "2", "0"]
        assert "Applied revision" in row

        listed = await fleet(cluster, agent, "get", "ks", "root", "-o", "json")
        assert listed.code == 0, listed
        [root] = json.loads(listed.stdout)
        assert root["name"] == "root" and root["ready"] == "True" and root["objects"] == 2
        assert root["lastAppliedRevision"].endswith(first)
        assert root["path"] == "clusters/dev"

        missing = await fleet(cluster, agent, "get", "units", "apps")
        assert missing.code == 1, missing
        assert (
            f"unit 'apps' not found in namespace {agent.settings.namespace}; "
            "`fleet get units` lists them" in missing.stderr
        )
        assert "Traceback" not in missing.stderr

        # The agent polls every 10 minutes: only --with-source can bring this commit in.
        second = repo.commit(
            {
                APP: manifest(
                    configmap(namespace, "settings", color="green"), deployment(namespace, "web")
                )
            }
        )
        repo.push("main")
        reconciled = await fleet(cluster, agent, "reconcile", "--with-source", "--timeout", "90s")
        assert reconciled.code == 0, reconciled
        lines = reconciled.stderr.splitlines()
        assert lines[0] == f"► annotating Unit root in namespace {agent.settings.namespace}" + (
            " (with source)"
        )
        assert "◎ waiting for reconcile" in lines
        assert f"✔ applied revision main@{second[:7]}" in lines
        live = await kube.get("v1", "ConfigMap", "settings", namespace)
        assert live is not None and live["data"] == {"color": "green"}

        again = await fleet(cluster, agent, "reconcile", "root")
        assert again.code == 0, again
        assert f"✔ applied revision main@{second[:7]}" in again.stderr.splitlines()

        tree = await fleet(cluster, agent, "tree", "root")
        assert tree.code == 0, tree
        assert tree.stdout.splitlines() == [
            "Kustomization/root",
            f"├── ConfigMap/{namespace}/settings",
            f"└── Deployment/{namespace}/web",
        ]
        flat = json.loads((await fleet(cluster, agent, "tree", "root", "-o", "json")).stdout)
        assert [o["name"] for o in flat[0]["objects"]] == ["settings", "web"]

        async with streaming(cluster, agent, "events", "--watch") as watched:
            await watched.line_with("ReconciliationSucceeded")
            await kube.request(
                "PATCH",
                f"/api/v1/namespaces/{namespace}/configmaps/settings",
                body={"data": {"color": "red"}},
                content_type="application/merge-patch+json",
                query={"fieldManager": "kubectl-edit"},
            )
            seen = await watched.line_with("DriftCorrected")
            assert f"ConfigMap/{namespace}/settings changed by kubectl-edit" in seen
        events = await fleet(cluster, agent, "events", "root")
        assert events.code == 0, events
        header, *rows = events.stdout.splitlines()
        assert header.split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
        drift_rows = [r for r in rows if "DriftCorrected" in r]
        assert drift_rows and "Kustomization/root" in drift_rows[-1]
        assert f"ConfigMap/{namespace}/settings changed by kubectl-edit" in drift_rows[-1]
        applied_rows = [i for i, r in enumerate(rows) if "ReconciliationSucceeded" in r]
        assert applied_rows[0] < rows.index(drift_rows[-1])  # oldest first

        warnings = await fleet(cluster, agent, "events", "--types", "Warning")
        assert warnings.code == 0, warnings
        assert "DriftCorrected" not in warnings.stdout
        assert all(r.split()[1] == "Warning" for r in warnings.stdout.splitlines()[1:])


async def test_suspend_holds_back_drift_healing_and_commits_until_resume(
    cluster: LocalCluster,
    kube: KubeClient,
    namespace: str,
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    daemon, repo = git
    first = repo.commit({APP: manifest(configmap(namespace, "settings", color="blue"))})
    repo.push("main")
    async with running_agent(cluster, daemon.url("fleet.git"), tmp_path / "agent") as agent:
        await eventually(lambda: applied(kube, agent, first), what="first revision applied")

        async with streaming(cluster, agent, "get", "units", "--watch") as watched:
            await watched.line_with("root")
            suspended = await fleet(cluster, agent, "suspend", "root")
            assert suspended.code == 0, suspended
            assert suspended.stderr.splitlines() == [
                f"► suspending Unit root in namespace {agent.settings.namespace}",
                "✔ Unit suspended",
            ]
            row = await watched.line_with("root")
            assert row.split()[:4] == ["root", "True", f"main@{first[:7]}", "True"]

        async def agent_suspended() -> bool:
            found = await kube.get(
                unit_api.API_VERSION, unit_api.KIND, "root", agent.settings.namespace
            )
            return bool(found and found["spec"].get("suspend"))

        await eventually(agent_suspended, what="the agent reports the unit suspended")
        listed = await fleet(cluster, agent, "get", "units", "-o", "yaml")
        assert yaml.safe_load(listed.stdout)[0]["suspended"] is True

        await kube.request(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/configmaps/settings",
            body={"data": {"color": "red"}},
            content_type="application/merge-patch+json",
            query={"fieldManager": "kubectl-edit"},
        )
        second = repo.commit({APP: manifest(configmap(namespace, "settings", color="green"))})
        repo.push("main")
        refused = await fleet(cluster, agent, "reconcile", "root")
        assert refused.code == 1, refused
        assert "unit 'root' is suspended; `fleet resume root` resumes it" in refused.stderr

        # The agent fetched the new commit and went round twice more: time to heal or apply.
        await source_settled_on(agent, second)
        live = await kube.get("v1", "ConfigMap", "settings", namespace)
        assert live is not None and live["data"] == {"color": "red"}
        assert str((await unit_status(kube, agent))["lastAppliedRevision"]).endswith(first)

        resumed = await fleet(cluster, agent, "resume", "root", "--timeout", "90s")
        assert resumed.code == 0, resumed
        lines = resumed.stderr.splitlines()
        assert lines[0] == f"► resuming Unit root in namespace {agent.settings.namespace}"
        assert lines[-1] == f"✔ applied revision main@{second[:7]}"
        live = await kube.get("v1", "ConfigMap", "settings", namespace)
        assert live is not None and live["data"] == {"color": "green"}


async def test_diff_shows_uncommitted_changes_per_unit_as_the_agent_would_apply_them(
    cluster: LocalCluster,
    kube: KubeClient,
    namespace: str,
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    daemon, repo = git
    sha = repo.commit(
        {
            APP: manifest(
                deployment(namespace, "web", replicas=1), configmap(namespace, "old", a="1")
            ),
            "clusters/dev/apps.yaml": manifest(kustomization("apps", "./apps")),
            "apps/settings.yaml": manifest(configmap(namespace, "child", color="blue")),
        }
    )
    repo.push("main")
    async with running_agent(
        cluster,
        daemon.url("fleet.git"),
        tmp_path / "agent",
        interval=datetime.timedelta(minutes=10),
    ) as agent:
        await eventually(lambda: applied(kube, agent, sha), what="root applied")
        await eventually(
            lambda: applied(kube, agent, sha, unit="flux-system.apps"), what="child applied"
        )

        tree = await fleet(cluster, agent, "tree")
        assert tree.code == 0, tree
        assert tree.stdout.splitlines() == [
            "Kustomization/root",
            f"├── ConfigMap/{namespace}/old",
            f"├── Deployment/{namespace}/web",
            "└── Kustomization/flux-system/apps",
            f"    └── ConfigMap/{namespace}/child",
        ]
        everything = await fleet(cluster, agent, "reconcile", "--all")
        assert everything.code == 0, everything
        assert everything.stderr.splitlines()[-2:] == [
            f"✔ root: applied revision main@{sha[:7]}",
            f"✔ flux-system/apps: applied revision main@{sha[:7]}",
        ]

        same = await fleet(cluster, agent, "diff", "--path", str(repo.work))
        assert same.code == 0, same
        assert same.stdout == ""
        assert "✔ unit root: no changes" in same.stderr

        (repo.work / APP).write_text(
            manifest(deployment(namespace, "web", replicas=3), configmap(namespace, "extra", b="2"))
        )
        (repo.work / "apps/settings.yaml").write_text(
            manifest(configmap(namespace, "child", color="green"))
        )
        changed = await fleet(
            cluster, agent, "diff", "root", "--path", str(repo.work), "--cluster", "dev"
        )
        assert changed.code == 1, changed
        lines = changed.stdout.splitlines()
        assert f"~ Deployment/{namespace}/web (changed)" in lines
        assert "-  replicas: 1" in lines and "+  replicas: 3" in lines
        assert f"+ ConfigMap/{namespace}/extra (new)" in lines
        assert f"- ConfigMap/{namespace}/old (pruned)" in lines
        assert "child" not in changed.stdout  # the child unit's objects are its own
        assert "1 new, 1 changed, 1 pruned" in changed.stderr

        child = await fleet(cluster, agent, "diff", "apps", "--path", str(repo.work))
        assert child.code == 1, child
        assert child.stdout.splitlines()[0] == f"~ ConfigMap/{namespace}/child (changed)"
        assert "-  color: blue" in child.stdout and "+  color: green" in child.stdout

        # A dry run: the cluster is as it was.
        web = await kube.get("apps/v1", "Deployment", "web", namespace)
        assert web is not None and web["spec"]["replicas"] == 1
        assert await kube.get("v1", "ConfigMap", "extra", namespace) is None
        assert await kube.get("v1", "ConfigMap", "old", namespace) is not None

        broken = await fleet(
            cluster, agent, "diff", "--path", str(repo.work), "--cluster", "nowhere"
        )
        assert broken.code == 2, broken
        assert "path not found in the repository" in broken.stderr
        assert "Traceback" not in broken.stderr


async def test_unreachable_api_is_one_line_not_a_traceback(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    config = yaml.safe_load(cluster.kubeconfig_path.read_text())
    for entry in config["clusters"]:
        entry["cluster"]["server"] = "https://127.0.0.1:1"
    broken = tmp_path / "kubeconfig"
    broken.write_text(yaml.safe_dump(config))
    done = await anyio.run_process(
        [
            sys.executable,
            "-m",
            "fleet.cli.main",
            "tree",
            "--kubeconfig",
            str(broken),
            "-n",
            "fleet-system",
        ],
        check=False,
        cwd=REPO_ROOT,
    )
    stderr = done.stderr.decode()
    assert done.returncode == 1, stderr
    assert stderr.startswith("✗ cannot reach the Kubernetes API (the current context):"), stderr
    assert "Traceback" not in stderr
