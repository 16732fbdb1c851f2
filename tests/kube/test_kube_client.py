"""fleet's own async client against a real API server: apply, discovery, watch, errors."""

from __future__ import annotations

import re

import anyio
import pytest

from fleet.kube import Forbidden, Invalid, KubeClient, NotFound

pytestmark = pytest.mark.anyio


def configmap(namespace: str, name: str, **data: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": data,
    }


async def test_apply_get_list_delete_round_trip(kube: KubeClient, namespace: str) -> None:
    applied = await kube.apply(configmap(namespace, "a", k="1"), field_manager="fleet")
    assert applied["metadata"]["managedFields"][0]["manager"] == "fleet"
    dry = await kube.apply(configmap(namespace, "a", k="2"), field_manager="fleet", dry_run=True)
    assert dry["data"] == {"k": "2"}
    live = await kube.get("v1", "ConfigMap", "a", namespace)
    assert live is not None and live["data"] == {"k": "1"}
    items, version = await kube.list("v1", "ConfigMap", namespace)
    assert "a" in {i["metadata"]["name"] for i in items} and version
    assert await kube.delete("v1", "ConfigMap", "a", namespace)
    assert not await kube.delete("v1", "ConfigMap", "a", namespace)
    assert await kube.get("v1", "ConfigMap", "a", namespace) is None


async def test_unknown_kind_names_the_missing_crd(kube: KubeClient, namespace: str) -> None:
    widget = {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": namespace},
    }
    with pytest.raises(
        NotFound, match=re.escape('no matches for kind "Widget" in version "example.com/v1"')
    ):
        await kube.apply(widget, field_manager="fleet")


async def test_invalid_object_is_rejected_with_the_api_message(
    kube: KubeClient, namespace: str
) -> None:
    bad = configmap(namespace, "Not_A_Valid_Name")
    with pytest.raises(Invalid, match="Not_A_Valid_Name"):
        await kube.apply(bad, field_manager="fleet")


async def test_crd_installed_later_is_found_by_discovery(kube: KubeClient, namespace: str) -> None:
    group = f"{namespace}.example.com"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"gadgets.{group}"},
        "spec": {
            "group": group,
            "names": {"kind": "Gadget", "plural": "gadgets", "singular": "gadget"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }
    gadget = {
        "apiVersion": f"{group}/v1",
        "kind": "Gadget",
        "metadata": {"name": "g", "namespace": namespace},
    }
    with pytest.raises(NotFound):
        await kube.apply(gadget, field_manager="fleet")
    await kube.apply(crd, field_manager="fleet")
    try:
        with anyio.fail_after(30):
            while True:
                try:
                    await kube.apply(gadget, field_manager="fleet")
                    break
                except NotFound:
                    await anyio.sleep(0.2)
        assert await kube.get(f"{group}/v1", "Gadget", "g", namespace) is not None
    finally:
        await kube.delete("apiextensions.k8s.io/v1", "CustomResourceDefinition", f"gadgets.{group}")


async def test_watch_streams_changes_from_a_resource_version(
    kube: KubeClient, namespace: str
) -> None:
    _, version = await kube.list("v1", "ConfigMap", namespace)
    seen: list[tuple[str, str]] = []

    async def watch() -> None:
        async for event in kube.watch(
            "v1", "ConfigMap", namespace, resource_version=version, timeout_seconds=10
        ):
            if event.type != "BOOKMARK":
                seen.append((event.type, event.object["metadata"]["name"]))
            if len(seen) == 3:
                return

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(watch)
            await kube.apply(configmap(namespace, "w", k="1"), field_manager="fleet")
            await kube.apply(configmap(namespace, "w", k="2"), field_manager="fleet")
            await kube.delete("v1", "ConfigMap", "w", namespace)
    assert seen == [("ADDED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]


async def test_impersonated_service_account_is_bound_by_rbac(
    kube: KubeClient, namespace: str
) -> None:
    await kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "deployer", "namespace": namespace},
        },
        field_manager="fleet",
    )
    deployer = kube.as_service_account(namespace, "deployer")
    with pytest.raises(Forbidden, match=f"system:serviceaccount:{namespace}:deployer"):
        await deployer.apply(configmap(namespace, "x"), field_manager="fleet")
    await kube.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "deployer-edit", "namespace": namespace},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "edit",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "deployer", "namespace": namespace}],
        },
        field_manager="fleet",
    )
    with anyio.fail_after(10):
        while True:
            try:
                await deployer.apply(configmap(namespace, "x"), field_manager="fleet")
                break
            except Forbidden:
                await anyio.sleep(0.2)
