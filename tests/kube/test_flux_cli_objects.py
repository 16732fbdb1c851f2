"""The real flux CLI reads fleet's CRDs and Flux-format status as it reads Flux's own.

Each test installs the CRDs fleet generates (``fleet.api.flux.crds``) into a real local
control plane, creates Flux objects with fleet's client, writes their status through the
status subresource from the typed models (``fleet.api.flux.status``) and runs the real
``flux`` binary against the cluster. No fleet agent runs here: these tests pin the
object and status format the agent must write; the agent's own compatibility tests
build on them.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

import anyio
import pytest
import yaml

from fleet.api.flux import conditions, crds, inventory, status
from fleet.api.flux.base import StatusModel
from fleet.api.flux.conditions import ConditionType, Reason
from fleet.api.unit import FIELD_MANAGER
from fleet.kube import KubeClient
from fleet.localkube import toolchain
from fleet.localkube.cluster import LocalCluster
from tests.fluxcli import run_flux

pytestmark = pytest.mark.anyio

SHA = "0123456789abcdef0123456789abcdef01234567"
REVISION = f"main@sha1:{SHA}"
NOW = datetime.datetime.now(datetime.UTC)
ESTABLISHED_TIMEOUT = 60.0


async def install_crds(kube: KubeClient) -> None:
    """Apply every generated CRD and wait until the API server serves each one."""
    for crd in crds.custom_resource_definitions():
        await kube.apply(crd, field_manager=FIELD_MANAGER, force=True)
    deadline = time.monotonic() + ESTABLISHED_TIMEOUT
    for served in crds.SERVED_KINDS:
        while True:
            crd = await kube.get(
                "apiextensions.k8s.io/v1", "CustomResourceDefinition", served.crd_name
            )
            found = (crd or {}).get("status", {}).get("conditions", [])
            if any(c["type"] == "Established" and c["status"] == "True" for c in found):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"CRD {served.crd_name} not Established: {found}")
            await anyio.sleep(0.2)
        kube.forget_discovery(served.api_version)


@pytest.fixture
async def flux_kube(kube: KubeClient) -> KubeClient:
    await install_crds(kube)
    return kube


def ready(ok: bool, reason: str, message: str, generation: int) -> conditions.Condition:
    return conditions.new_condition(
        ConditionType.READY,
        "True" if ok else "False",
        reason,
        message,
        observed_generation=generation,
        now=NOW,
    )


async def create(
    kube: KubeClient, served: crds.ServedKind, namespace: str, name: str, spec: dict[str, Any]
) -> dict[str, Any]:
    created = await kube.create(
        {
            "apiVersion": served.api_version,
            "kind": served.kind,
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
    )
    return dict(created)


async def write_status(kube: KubeClient, obj: dict[str, Any], model: StatusModel) -> dict[str, Any]:
    """Write ``model`` to ``obj``'s status subresource, as the agent's status writer does."""
    metadata = obj["metadata"]
    info = await kube.resource(obj["apiVersion"], obj["kind"])
    written: dict[str, Any] = await kube.request(
        "PATCH",
        info.path(metadata["namespace"], metadata["name"]) + "/status",
        body={"status": model.to_status()},
        content_type="application/merge-patch+json",
    )
    return written


def git_source_spec() -> dict[str, Any]:
    return {
        "url": "https://127.0.0.1:8443/podinfo.git",
        "interval": "1m",
        "ref": {"branch": "main"},
    }


def kustomization_spec(namespace: str, **extra: Any) -> dict[str, Any]:
    return {
        "interval": "10m",
        "prune": True,
        "path": "./apps",
        "sourceRef": {"kind": "GitRepository", "name": "podinfo", "namespace": namespace},
        **extra,
    }


async def reconciled_kustomization(
    kube: KubeClient,
    namespace: str,
    name: str,
    *,
    ok: bool = True,
    message: str = f"Applied revision: {REVISION}",
    entries: list[inventory.ResourceRef] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    obj = await create(
        kube, crds.KUSTOMIZATION, namespace, name, kustomization_spec(namespace, **spec)
    )
    generation = obj["metadata"]["generation"]
    model = status.KustomizationStatus(
        observed_generation=generation,
        conditions=[
            ready(
                ok,
                Reason.RECONCILIATION_SUCCEEDED if ok else Reason.BUILD_FAILED,
                message,
                generation,
            )
        ],
        last_applied_revision=REVISION if ok else "",
        last_attempted_revision=REVISION,
        inventory=inventory.ResourceInventory(entries=entries or []),
    )
    return await write_status(kube, obj, model)


def rows_in(table: list[dict[str, str]], namespace: str) -> dict[str, dict[str, str]]:
    return {row["NAME"]: row for row in table if row.get("NAMESPACE") == namespace}


async def test_flux_get_kustomizations_shows_ready_revision_suspend_and_message(
    flux_kube: KubeClient, cluster: LocalCluster, namespace: str
) -> None:
    await reconciled_kustomization(flux_kube, namespace, "apps")
    await reconciled_kustomization(
        flux_kube, namespace, "broken", ok=False, message="kustomize build failed: no such path"
    )
    await reconciled_kustomization(flux_kube, namespace, "paused", suspend=True)
    await create(flux_kube, crds.KUSTOMIZATION, namespace, "new", kustomization_spec(namespace))

    table = run_flux(cluster, "get", "kustomizations", "-A").check().table()

    assert list(table[0]) == ["NAMESPACE", "NAME", "REVISION", "SUSPENDED", "READY", "MESSAGE"]
    assert rows_in(table, namespace) == {
        "apps": {
            "NAMESPACE": namespace,
            "NAME": "apps",
            "REVISION": "main@sha1:01234567",
            "SUSPENDED": "False",
            "READY": "True",
            "MESSAGE": "Applied revision: main@sha1:01234567",
        },
        "broken": {
            "NAMESPACE": namespace,
            "NAME": "broken",
            "REVISION": "",
            "SUSPENDED": "False",
            "READY": "False",
            "MESSAGE": "kustomize build failed: no such path",
        },
        "paused": {
            "NAMESPACE": namespace,
            "NAME": "paused",
            "REVISION": "main@sha1:01234567",
            "SUSPENDED": "True",
            "READY": "True",
            "MESSAGE": "Applied revision: main@sha1:01234567",
        },
        "new": {
            "NAMESPACE": namespace,
            "NAME": "new",
            "REVISION": "",
            "SUSPENDED": "False",
            "READY": "False",
            "MESSAGE": "waiting to be reconciled",
        },
    }


def release_snapshot(namespace: str, name: str, chart_version: str) -> status.HelmReleaseSnapshot:
    return status.HelmReleaseSnapshot(
        digest="sha256:" + "d" * 64,
        name=name,
        namespace=namespace,
        version=1,
        status="deployed",
        action="install",
        chart_name="podinfo",
        chart_version=chart_version,
        app_version="6.5.4",
        config_digest="sha256:" + "c" * 64,
        first_deployed=NOW,
        last_deployed=NOW,
    )


def helm_release_spec(namespace: str) -> dict[str, Any]:
    return {
        "interval": "5m",
        "chart": {
            "spec": {
                "chart": "podinfo",
                "version": "6.x",
                "sourceRef": {"kind": "HelmRepository", "name": "charts", "namespace": namespace},
            }
        },
        "values": {"replicaCount": 2, "ingress": {"enabled": False}},
    }


async def test_flux_get_helmreleases_shows_the_deployed_chart_version(
    flux_kube: KubeClient, cluster: LocalCluster, namespace: str
) -> None:
    released = await create(
        flux_kube, crds.HELM_RELEASE, namespace, "podinfo", helm_release_spec(namespace)
    )
    generation = released["metadata"]["generation"]
    await write_status(
        flux_kube,
        released,
        status.HelmReleaseStatus(
            observed_generation=generation,
            conditions=[
                ready(
                    True, Reason.INSTALL_SUCCEEDED, "Helm install succeeded for release", generation
                )
            ],
            history=[release_snapshot(namespace, "podinfo", "6.5.4")],
            storage_namespace=namespace,
            last_attempted_revision="6.5.4",
            last_attempted_release_action="install",
        ),
    )
    failing = await create(
        flux_kube, crds.HELM_RELEASE, namespace, "failing", helm_release_spec(namespace)
    )
    await write_status(
        flux_kube,
        failing,
        status.HelmReleaseStatus(
            observed_generation=1,
            conditions=[ready(False, Reason.INSTALL_FAILED, "Helm install failed: timeout", 1)],
            last_attempted_revision="6.5.3",
            install_failures=1,
            failures=1,
        ),
    )

    table = run_flux(cluster, "get", "helmreleases", "-A").check().table()

    assert list(table[0]) == ["NAMESPACE", "NAME", "REVISION", "SUSPENDED", "READY", "MESSAGE"]
    rows = rows_in(table, namespace)
    assert rows["podinfo"]["REVISION"] == "6.5.4"
    assert rows["podinfo"]["READY"] == "True"
    assert rows["podinfo"]["MESSAGE"] == "Helm install succeeded for release"
    assert rows["failing"]["REVISION"] == "6.5.3"
    assert (rows["failing"]["READY"], rows["failing"]["MESSAGE"]) == (
        "False",
        "Helm install failed: timeout",
    )


def artifact(revision: str) -> status.Artifact:
    return status.Artifact(
        revision=revision,
        digest="sha256:" + "e" * 64,
        last_update_time=NOW,
        path="gitrepository/ns/podinfo/archive.tar.gz",
        url="http://127.0.0.1/archive.tar.gz",
        size=1024,
    )


async def test_flux_get_sources_shows_the_artifact_revision(
    flux_kube: KubeClient, cluster: LocalCluster, namespace: str
) -> None:
    git = await create(flux_kube, crds.GIT_REPOSITORY, namespace, "podinfo", git_source_spec())
    await write_status(
        flux_kube,
        git,
        status.GitRepositoryStatus(
            observed_generation=1,
            conditions=[
                ready(True, Reason.SUCCEEDED, f"stored artifact for revision '{REVISION}'", 1)
            ],
            artifact=artifact(REVISION),
        ),
    )
    index_revision = "sha256:" + "a" * 64
    helm = await create(
        flux_kube,
        crds.HELM_REPOSITORY,
        namespace,
        "charts",
        {"url": "https://127.0.0.1:8443/charts", "interval": "10m"},
    )
    await write_status(
        flux_kube,
        helm,
        status.HelmRepositoryStatus(
            observed_generation=1,
            conditions=[ready(False, Reason.FAILED, "failed to fetch Helm repository index", 1)],
            artifact=artifact(index_revision),
        ),
    )

    git_rows = rows_in(run_flux(cluster, "get", "sources", "git", "-A").check().table(), namespace)
    helm_rows = rows_in(
        run_flux(cluster, "get", "sources", "helm", "-A").check().table(), namespace
    )

    assert git_rows["podinfo"]["REVISION"] == "main@sha1:01234567"
    assert git_rows["podinfo"]["READY"] == "True"
    assert git_rows["podinfo"]["MESSAGE"] == "stored artifact for revision 'main@sha1:01234567'"
    assert helm_rows["charts"]["REVISION"] == "sha256:aaaaaaaa"
    assert (helm_rows["charts"]["READY"], helm_rows["charts"]["MESSAGE"]) == (
        "False",
        "failed to fetch Helm repository index",
    )


def ref(namespace: str, name: str, group: str, kind: str, version: str) -> inventory.ResourceRef:
    return inventory.ResourceRef(
        id=inventory.inventory_id(namespace, name, group, kind), version=version
    )


async def test_flux_tree_walks_the_inventory_into_child_kustomizations(
    flux_kube: KubeClient, cluster: LocalCluster, namespace: str
) -> None:
    await reconciled_kustomization(
        flux_kube, namespace, "apps", entries=[ref(namespace, "settings", "", "ConfigMap", "v1")]
    )
    await create(flux_kube, crds.HELM_RELEASE, namespace, "podinfo", helm_release_spec(namespace))
    await reconciled_kustomization(
        flux_kube,
        namespace,
        "root",
        entries=[
            ref("", namespace, "", "Namespace", "v1"),
            ref(namespace, "apps", crds.KUSTOMIZATION.group, "Kustomization", "v1"),
            ref(namespace, "web", "apps", "Deployment", "v1"),
            ref(namespace, "podinfo", crds.HELM_RELEASE.group, "HelmRelease", "v2"),
        ],
    )

    result = run_flux(cluster, "tree", "kustomization", "root", "-n", namespace).check()

    assert result.stdout.rstrip("\n").splitlines() == [
        f"Kustomization/{namespace}/root",
        f"├── Namespace/{namespace}",
        f"├── Kustomization/{namespace}/apps",
        f"│   └── ConfigMap/{namespace}/settings",
        f"├── Deployment/{namespace}/web",
        f"└── HelmRelease/{namespace}/podinfo",
    ]


async def test_flux_export_prints_the_spec_with_fields_fleet_does_not_model(
    flux_kube: KubeClient, cluster: LocalCluster, namespace: str
) -> None:
    # ignoreMissingComponents is a Flux field fleet's model does not know: the CRD keeps it.
    await reconciled_kustomization(flux_kube, namespace, "apps", ignoreMissingComponents=True)

    result = run_flux(cluster, "export", "kustomization", "apps", "-n", namespace).check()

    exported = yaml.safe_load(result.stdout)
    assert exported["apiVersion"] == "kustomize.toolkit.fluxcd.io/v1"
    assert exported["kind"] == "Kustomization"
    assert exported["metadata"] == {"name": "apps", "namespace": namespace}
    assert exported["spec"] == {
        "interval": "10m0s",
        "path": "./apps",
        "prune": True,
        "ignoreMissingComponents": True,
        "sourceRef": {"kind": "GitRepository", "name": "podinfo", "namespace": namespace},
    }
    assert "status" not in exported


async def test_flux_suspend_sets_spec_suspend(
    flux_kube: KubeClient, cluster: LocalCluster, namespace: str
) -> None:
    await reconciled_kustomization(flux_kube, namespace, "apps")

    result = run_flux(cluster, "suspend", "kustomization", "apps", "-n", namespace).check()

    assert "kustomization suspended" in result.stderr
    stored = await flux_kube.get(crds.KUSTOMIZATION.api_version, "Kustomization", "apps", namespace)
    assert stored is not None and stored["spec"]["suspend"] is True


def event(
    namespace: str, name: str, kind: str, api_version: str, reason: str, message: str
) -> dict[str, Any]:
    stamp = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{name}.{reason.lower()}", "namespace": namespace},
        "involvedObject": {
            "apiVersion": api_version,
            "kind": kind,
            "name": name,
            "namespace": namespace,
        },
        "reason": reason,
        "message": message,
        "type": "Normal",
        "count": 1,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "source": {"component": "fleet-agent"},
    }


async def test_flux_events_lists_events_of_flux_objects_and_their_source(
    flux_kube: KubeClient, cluster: LocalCluster, namespace: str
) -> None:
    await create(flux_kube, crds.GIT_REPOSITORY, namespace, "podinfo", git_source_spec())
    await reconciled_kustomization(flux_kube, namespace, "apps")
    await flux_kube.create(
        event(
            namespace,
            "apps",
            "Kustomization",
            crds.KUSTOMIZATION.api_version,
            Reason.RECONCILIATION_SUCCEEDED,
            f"Reconciliation finished, revision {REVISION}",
        )
    )
    await flux_kube.create(
        event(
            namespace,
            "podinfo",
            "GitRepository",
            crds.GIT_REPOSITORY.api_version,
            "NewArtifact",
            f"stored artifact for commit '{SHA[:7]}'",
        )
    )
    await flux_kube.create(event(namespace, "settings", "ConfigMap", "v1", "Updated", "not Flux's"))

    listed = run_flux(cluster, "events", "-n", namespace).check().table()
    for_apps = run_flux(cluster, "events", "-n", namespace, "--for", "Kustomization/apps").check()

    assert list(listed[0]) == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert sorted((r["OBJECT"], r["REASON"], r["TYPE"]) for r in listed) == [
        ("GitRepository/podinfo", "NewArtifact", "Normal"),
        ("Kustomization/apps", "ReconciliationSucceeded", "Normal"),
    ]
    assert sorted(r["OBJECT"] for r in for_apps.table()) == [
        "GitRepository/podinfo",
        "Kustomization/apps",
    ]


async def test_flux_trace_follows_the_labels_to_the_kustomization_and_its_source(
    flux_kube: KubeClient, cluster: LocalCluster, namespace: str
) -> None:
    git = await create(flux_kube, crds.GIT_REPOSITORY, namespace, "podinfo", git_source_spec())
    await write_status(
        flux_kube,
        git,
        status.GitRepositoryStatus(
            observed_generation=1,
            conditions=[ready(True, Reason.SUCCEEDED, "stored artifact", 1)],
            artifact=artifact(REVISION),
        ),
    )
    await reconciled_kustomization(flux_kube, namespace, "apps")
    await flux_kube.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "settings",
                "namespace": namespace,
                "labels": {
                    "kustomize.toolkit.fluxcd.io/name": "apps",
                    "kustomize.toolkit.fluxcd.io/namespace": namespace,
                },
            },
        }
    )

    result = run_flux(cluster, "trace", "configmap", "settings", "-n", namespace).check()

    sections = [
        [line.strip() for line in section.strip().splitlines()]
        for section in result.stdout.split("---")
    ]
    assert sections[0] == [
        "Object:          ConfigMap/settings",
        f"Namespace:       {namespace}",
        "Status:          Managed by Flux",
    ]
    kustomization, source = sections[1], sections[2]
    assert kustomization[:5] == [
        "Kustomization:   apps",
        f"Namespace:       {namespace}",
        "Path:            ./apps",
        f"Revision:        {REVISION}",
        f"Status:          Last reconciled at {NOW.strftime('%Y-%m-%d %H:%M:%S +0000 UTC')}",
    ]
    assert kustomization[5] == f"Message:         Applied revision: {REVISION}"
    assert source[:5] == [
        "GitRepository:   podinfo",
        f"Namespace:       {namespace}",
        "URL:             https://127.0.0.1:8443/podinfo.git",
        "Branch:          main",
        f"Revision:        {REVISION}",
    ]


def test_built_flux_reports_its_release_version(cluster: LocalCluster) -> None:
    result = run_flux(cluster, "version", "--client").check()
    assert result.stdout.strip() == f"flux: {toolchain.FLUX_CLI_VERSION}"


REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"


async def wait_for_object(
    kube: KubeClient, namespace: str, name: str, check: Any, what: str
) -> dict[str, Any]:
    """Poll the Kustomization until ``check(obj)`` holds; fail naming ``what``."""
    deadline = time.monotonic() + 60.0
    while True:
        obj = await kube.get(crds.KUSTOMIZATION.api_version, "Kustomization", name, namespace)
        if obj is not None and check(obj):
            return obj
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}: {obj}")
        await anyio.sleep(0.1)


async def answer_reconcile_request(
    kube: KubeClient, namespace: str, name: str, *, stalled: bool
) -> None:
    """Act as the agent's side of ``flux reconcile``: answer the requestedAt annotation."""
    obj = await wait_for_object(
        kube,
        namespace,
        name,
        lambda o: REQUESTED_AT in (o["metadata"].get("annotations") or {}),
        "flux reconcile's requestedAt annotation",
    )
    generation = obj["metadata"]["generation"]
    if stalled:
        outcome = [
            ready(False, Reason.BUILD_FAILED, "kustomization path not found", generation),
            conditions.new_condition(
                ConditionType.STALLED,
                "True",
                Reason.BUILD_FAILED,
                "kustomization path not found",
                observed_generation=generation,
                now=NOW,
            ),
        ]
    else:
        outcome = [ready(True, Reason.RECONCILIATION_SUCCEEDED, "Applied", generation)]
    await write_status(
        kube,
        obj,
        status.KustomizationStatus(
            observed_generation=generation,
            conditions=outcome,
            last_applied_revision=REVISION,
            last_handled_reconcile_at=obj["metadata"]["annotations"][REQUESTED_AT],
        ),
    )


@pytest.mark.parametrize("stalled", [False, True], ids=["ready", "stalled"])
async def test_flux_reconcile_waits_for_last_handled_reconcile_at(
    flux_kube: KubeClient, cluster: LocalCluster, namespace: str, stalled: bool
) -> None:
    await reconciled_kustomization(flux_kube, namespace, "apps")
    results = []

    async def reconcile() -> None:
        args = ("reconcile", "kustomization", "apps", "-n", namespace, "--timeout=60s")
        results.append(await anyio.to_thread.run_sync(lambda: run_flux(cluster, *args)))

    async with anyio.create_task_group() as group:
        group.start_soon(reconcile)
        await answer_reconcile_request(flux_kube, namespace, "apps", stalled=stalled)

    [result] = results
    if stalled:
        assert result.returncode == 1, result.describe()
        # kstatus reads Stalled=True as Failed: flux stops waiting and prints its message.
        assert result.stderr.splitlines()[-1] == "✗ kustomization path not found"
    else:
        assert result.returncode == 0, result.describe()
        assert f"applied revision {REVISION}" in result.stderr


async def test_flux_resume_waits_for_ready_at_the_new_generation(
    flux_kube: KubeClient, cluster: LocalCluster, namespace: str
) -> None:
    suspended = await reconciled_kustomization(flux_kube, namespace, "apps", suspend=True)
    results = []

    async def resume() -> None:
        args = ("resume", "kustomization", "apps", "-n", namespace, "--timeout=60s")
        results.append(await anyio.to_thread.run_sync(lambda: run_flux(cluster, *args)))

    async with anyio.create_task_group() as group:
        group.start_soon(resume)
        resumed = await wait_for_object(
            flux_kube,
            namespace,
            "apps",
            lambda o: not o["spec"].get("suspend"),
            "flux resume's patch of spec.suspend",
        )
        generation = resumed["metadata"]["generation"]
        assert generation > suspended["metadata"]["generation"]
        await write_status(
            flux_kube,
            resumed,
            status.KustomizationStatus(
                observed_generation=generation,
                conditions=[ready(True, Reason.RECONCILIATION_SUCCEEDED, "Applied", generation)],
                last_applied_revision=REVISION,
            ),
        )

    [result] = results
    assert result.returncode == 0, result.describe()
    assert f"applied revision {REVISION}" in result.stderr


async def test_flux_get_all_lists_served_kinds_and_passes_over_unserved_ones(
    flux_kube: KubeClient, cluster: LocalCluster, namespace: str
) -> None:
    # OCIRepository, HelmChart, Bucket, Alert... have no CRD here: flux skips them quietly.
    await create(flux_kube, crds.GIT_REPOSITORY, namespace, "podinfo", git_source_spec())
    await reconciled_kustomization(flux_kube, namespace, "apps")

    result = run_flux(cluster, "get", "all", "-n", namespace).check()

    names = [line.split("\t")[0].strip() for line in result.stdout.splitlines()]
    assert "gitrepository/podinfo" in names
    assert "kustomization/apps" in names
    assert "✗" not in result.stderr, result.describe()
