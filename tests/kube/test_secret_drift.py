"""Drift of a Secret written with ``stringData``, against a real cluster.

The API server folds ``stringData`` into ``data`` and never returns it, so a comparison
of the object as sent with the object as stored saw no difference when someone edited
such a key: the edit stayed. The agent now compares what the server stores.
"""

from __future__ import annotations

import base64
import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet.kube import KubeClient
from fleet.localkube.cluster import LocalCluster
from tests.agentkit import eventually, ready_condition, running_agent, unit_status
from tests.gitservers import GitDaemon, WorkingClone

pytestmark = pytest.mark.anyio


def _secret(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": namespace},
        "type": "Opaque",
        "stringData": {"password": "from-git", "user": "app"},
    }


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def test_an_edit_of_a_secret_written_with_string_data_is_reverted(
    cluster: LocalCluster,
    kube: KubeClient,
    namespace: str,
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    daemon, repo = git
    sha = repo.commit({"clusters/dev/secret.yaml": yaml.safe_dump(_secret(namespace))})
    repo.push("main")
    async with running_agent(
        cluster,
        daemon.url("fleet.git"),
        tmp_path / "agent",
        interval=datetime.timedelta(minutes=10),
    ) as agent:

        async def applied() -> bool:
            status = await unit_status(kube, agent)
            return str(status.get("lastAppliedRevision", "")).endswith(sha) and (
                ready_condition(status).get("status") == "True"
            )

        await eventually(applied, what="the Secret applied")
        live = await kube.get("v1", "Secret", "db", namespace)
        assert live is not None and live["data"]["password"] == _b64("from-git")

        async def password_is(value: str) -> bool:
            current = await kube.get("v1", "Secret", "db", namespace)
            return bool(current and current["data"].get("password") == _b64(value))

        for edit in (
            {"data": {"password": _b64("edited-data")}},
            {"stringData": {"password": "edited-string-data"}},
        ):
            await kube.request(
                "PATCH",
                f"/api/v1/namespaces/{namespace}/secrets/db",
                body=edit,
                content_type="application/merge-patch+json",
                query={"fieldManager": "kubectl-edit"},
            )
            await eventually(
                lambda: password_is("from-git"), timeout=60, what=f"the edit {edit} reverted"
            )

        async def both_counted() -> bool:
            # The drift count reaches the unit's status in the next status write, which may
            # come a moment after the object was reverted.
            return int((await unit_status(kube, agent)).get("driftCount", 0)) >= 2

        await eventually(both_counted, timeout=60, what="both drift corrections counted")
