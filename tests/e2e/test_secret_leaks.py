"""No secret value ever leaves the agent: not in Unit status, Events, its log, its hub
reports or the Git status branch. A Secret in the repository, a substituteFrom Secret, a
Secret that fails to apply and a drifted Secret all carry recognizable values; then
everything the agent emitted is searched for them, plain and base64-encoded."""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client as k8s

from fleet.api import unit as unit_api
from fleet.localkube.cluster import LocalCluster
from hub.config import HubConfig
from tests.conftest import api_client_for
from tests.e2e.agentprocess import hub_agent
from tests.gitservers import GitDaemon, WorkingClone
from tests.hubserver import create_token, running_hub
from tests.support import eventually

pytestmark = pytest.mark.timeout(300)


def secret(name: str, namespace: str, **string_data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": string_data,
    }


def forms(value: str) -> list[str]:
    """Fragments that betray the value, plain or base64-encoded (as in Secret data).

    Fragments, not the whole: a message that shortens a long value ("...") still leaks
    its first characters. The values end in 32 random hex digits; base64 is aligned on
    the value's start, so a fragment from its middle is evidence of the value itself.
    """
    encoded = base64.b64encode(value.encode()).decode()
    return [value[-32:], value[-32:-16], encoded[16:40], encoded[24:48]]


def test_no_secret_value_appears_in_anything_the_agent_emits(
    local_clusters: dict[str, LocalCluster],
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    cluster = local_clusters["dev"]
    daemon, repo = git
    run = uuid.uuid4().hex[:6]
    ns = f"fleet-secrets-{run}"
    agent_ns = f"fleet-agent-{run}"
    values = {name: f"{name}-VALUE-{uuid.uuid4().hex}" for name in ("plain", "subst", "drift")}
    kustomization = {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": "apps", "namespace": "flux-system"},
        "spec": {
            "interval": "1m",
            "retryInterval": "1s",
            "path": "./apps",
            "prune": True,
            "postBuild": {"substituteFrom": [{"kind": "Secret", "name": "vars"}]},
        },
    }
    with api_client_for(cluster) as api:
        core = k8s.CoreV1Api(api)
        existing = {n.metadata.name for n in core.list_namespace().items}
        for name in {"flux-system"} - existing:
            core.create_namespace({"metadata": {"name": name}})
        core.create_namespaced_secret(
            "flux-system",
            {"metadata": {"name": "vars"}, "stringData": {"token": values["subst"]}},
        )
    try:
        sha = repo.commit(
            {
                "clusters/dev/ns.yaml": yaml.safe_dump(
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
                ),
                "clusters/dev/secret.yaml": yaml.safe_dump(
                    secret("plain", ns, password=values["plain"])
                ),
                "clusters/dev/drifted.yaml": yaml.safe_dump(
                    {
                        "apiVersion": "v1",
                        "kind": "Secret",
                        "metadata": {"name": "drifted", "namespace": ns},
                        "data": {"key": base64.b64encode(values["drift"].encode()).decode()},
                    }
                ),
                "clusters/dev/apps.yaml": yaml.safe_dump(kustomization),
                "apps/substituted.yaml": yaml.safe_dump(
                    secret("substituted", ns, token="${token}")
                ),
            }
        )
        repo.push("main")
        with running_hub(
            HubConfig.model_validate({"database": f"sqlite:///{tmp_path / 'hub.db'}"})
        ) as hub:
            agent = hub_agent(
                hub,
                cluster,
                daemon.url("fleet.git"),
                tmp_path,
                agent_ns,
                status_branch="fleet-status",
            )
            reader = create_token(hub.config.database, "reader", role="read-only")
            agent.start()
            try:
                core = k8s.CoreV1Api(api_client_for(cluster))
                custom = k8s.CustomObjectsApi(api_client_for(cluster))

                def units() -> list[dict[str, Any]]:
                    group, version = unit_api.API_VERSION.split("/")
                    try:
                        found = custom.list_namespaced_custom_object(
                            group, version, agent_ns, unit_api.PLURAL
                        )
                    except k8s.ApiException:  # the agent has not installed its CRD yet
                        return []
                    items: list[dict[str, Any]] = found["items"]
                    return items

                def all_ready() -> bool:
                    agent.check_running()
                    items = units()
                    return len(items) >= 2 and all(
                        str((u.get("status") or {}).get("lastAppliedRevision", "")).endswith(sha)
                        for u in items
                    )

                eventually(all_ready, timeout=90, what="root and apps applied")
                substituted = core.read_namespaced_secret("substituted", ns)
                decoded = base64.b64decode(substituted.data["token"]).decode()
                assert decoded == values["subst"], "the substitution really happened"

                # Drift on a Secret: the agent reverts it and records what changed.
                core.patch_namespaced_secret(
                    "drifted", ns, {"data": {"key": base64.b64encode(b"tampered").decode()}}
                )
                eventually(
                    lambda: (
                        base64.b64decode(core.read_namespaced_secret("drifted", ns).data["key"])
                        == values["drift"].encode()
                    ),
                    timeout=30,
                    what="drift on the Secret reverted",
                )
                # A Secret the API server refuses, with a value in it.
                broken = repo.commit(
                    {
                        "clusters/dev/broken.yaml": yaml.safe_dump(
                            {
                                "apiVersion": "v1",
                                "kind": "Secret",
                                "metadata": {"name": "Bad_Name", "namespace": ns},
                                "stringData": {"k": values["plain"]},
                                "type": values["plain"],
                            }
                        )
                    }
                )
                repo.push("main")

                def reported_broken() -> bool:
                    root = next(u for u in units() if u["metadata"]["name"] == unit_api.ROOT_UNIT)
                    return str(root["status"].get("lastAttemptedRevision", "")).endswith(broken)

                eventually(reported_broken, timeout=60, what="the broken Secret attempted")

                def hub_has(sha: str) -> bool:
                    detail = httpx.get(
                        f"{hub.url}/api/v1/clusters/dev",
                        headers={"Authorization": f"Bearer {reader}"},
                    )
                    return detail.status_code == 200 and sha in detail.text

                eventually(lambda: hub_has(broken), timeout=60, what="the hub got the report")

                def status_branch() -> str:
                    result = subprocess.run(
                        ["git", "-C", str(repo.bare), "log", "-p", "fleet-status"],
                        capture_output=True,
                        text=True,
                    )
                    return result.stdout if broken in result.stdout else ""

                branch_text = eventually(status_branch, timeout=60, what="status branch written")
            finally:
                agent.stop()
            headers = {"Authorization": f"Bearer {reader}"}
            emitted = {
                "units": json.dumps(units()),
                "events": json.dumps(
                    api_client_for(cluster).sanitize_for_serialization(
                        core.list_namespaced_event(agent_ns).items
                    )
                ),
                "log": agent.log_path.read_text(),
                "hub cluster": httpx.get(f"{hub.url}/api/v1/clusters/dev", headers=headers).text,
                "hub history": httpx.get(
                    f"{hub.url}/api/v1/clusters/dev/history", headers=headers
                ).text,
                "hub events": httpx.get(f"{hub.url}/api/v1/events", headers=headers).text,
                "status branch": branch_text,
            }
        assert "DriftCorrected" in emitted["events"] + emitted["log"], "drift was recorded"
        assert "Bad_Name" in emitted["units"], "the refused Secret was reported"
        leaks = [
            f"{value_name} ({form[:12]}...) in {where}"
            for where, text in emitted.items()
            for value_name, value in values.items()
            for form in forms(value)
            if form in text
        ]
        assert not leaks, leaks
    finally:
        with api_client_for(cluster) as api:
            core = k8s.CoreV1Api(api)
            core.delete_namespaced_secret("vars", "flux-system")
            for name in (ns, agent_ns):
                with contextlib.suppress(k8s.ApiException):
                    core.delete_namespace(name, propagation_policy="Background")
