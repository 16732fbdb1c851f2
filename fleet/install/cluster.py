"""Install objects into a cluster, take them out again, and speak as the agent's account.

The I/O half of ``fleet.install``: server-side apply with the ``fleet-bootstrap`` field
manager, uninstall (optionally pruning every object a unit applied), and a kubeconfig for
the agent's ServiceAccount from a TokenRequest, so an agent run beside the cluster has
exactly the installed RBAC.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import anyio
import yaml

from fleet.api import unit as unit_api
from fleet.install import objects as manifests
from fleet.kube import KubeClient, errors

log = logging.getLogger(__name__)

TOKEN_SECONDS = 48 * 3600
"""Lifetime asked of a TokenRequest for a local agent; re-run bootstrap to renew."""


async def apply_all(client: KubeClient, objects: Iterable[Mapping[str, Any]]) -> list[str]:
    """Apply in order (Namespace first); returns ``Kind/name`` of each object applied."""
    applied = []
    for obj in objects:
        await client.apply(obj, field_manager=manifests.BOOTSTRAP_FIELD_MANAGER, force=True)
        applied.append(f"{obj['kind']}/{obj['metadata']['name']}")
    return applied


async def issue_token(
    client: KubeClient,
    service_account: str = manifests.SERVICE_ACCOUNT,
    namespace: str = manifests.NAMESPACE,
    seconds: int = TOKEN_SECONDS,
) -> str:
    """A bound token of the ServiceAccount (TokenRequest API)."""
    answer = await client.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
        body={
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": seconds},
        },
        what=f"token for ServiceAccount {namespace}/{service_account}",
    )
    return str(answer["status"]["token"])


def token_kubeconfig(
    admin_kubeconfig: Path, context: str | None, token: str, user: str = "fleet-agent"
) -> dict[str, Any]:
    """A kubeconfig for the same API server as ``context`` of ``admin_kubeconfig``, with
    ``token`` as the credential."""
    config = yaml.safe_load(admin_kubeconfig.read_text())
    context_name = context or config.get("current-context")
    entry = next((c for c in config.get("contexts", []) if c["name"] == context_name), None)
    if entry is None:
        raise ValueError(f"context {context_name!r} not found in {admin_kubeconfig}")
    cluster_name = entry["context"]["cluster"]
    cluster = dict(next(c for c in config["clusters"] if c["name"] == cluster_name)["cluster"])
    authority = cluster.pop("certificate-authority", None)
    if authority:
        path = Path(authority)
        if not path.is_absolute():
            path = admin_kubeconfig.parent / path
        cluster["certificate-authority-data"] = base64.b64encode(path.read_bytes()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": cluster}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {"cluster": cluster_name, "user": user}}],
        "current-context": user,
    }


async def service_account_kubeconfig(
    client: KubeClient, admin_kubeconfig: Path, context: str | None = None
) -> dict[str, Any]:
    """A kubeconfig for the installed agent's ServiceAccount (a fresh TokenRequest token)."""
    return token_kubeconfig(admin_kubeconfig, context, await issue_token(client))


async def labelled_objects(client: KubeClient, label_selector: str) -> list[dict[str, Any]]:
    """Every object (of every listable kind, preferred versions) matching ``label_selector``."""
    found: list[dict[str, Any]] = []
    versions = ["v1"]
    groups = await client.request("GET", "/apis", what="discovery")
    versions += [g["preferredVersion"]["groupVersion"] for g in groups.get("groups", [])]
    for group_version in versions:
        path = f"/api/{group_version}" if group_version == "v1" else f"/apis/{group_version}"
        try:
            listing = await client.request("GET", path, what=f"discovery of {group_version}")
        except errors.KubeError:
            continue
        for resource in listing.get("resources", []):
            if "/" in resource["name"] or "list" not in resource.get("verbs", []):
                continue
            if resource["kind"] in ("Event",):
                continue
            try:
                items, _ = await client.list(
                    group_version, resource["kind"], label_selector=label_selector
                )
            except errors.KubeError:
                continue
            found += items
    return found


async def uninstall(
    client: KubeClient, *, prune: bool = False, wait_seconds: float = 60
) -> list[str]:
    """Remove the agent: its Deployment first (so nothing re-applies), with ``prune`` every
    object a unit applied, then the install objects, the Units and the Unit CRD.

    Returns ``Kind/name`` of what was deleted.
    """
    deleted: list[str] = []

    async def delete(api_version: str, kind: str, name: str, namespace: str | None) -> None:
        try:
            gone = await client.delete(api_version, kind, name, namespace)
        except errors.NotFound:
            return
        if gone:
            deleted.append(f"{kind}/{namespace + '/' if namespace else ''}{name}")

    await delete("apps/v1", "Deployment", manifests.DEPLOYMENT_NAME, manifests.NAMESPACE)
    if prune:
        for obj in await labelled_objects(client, unit_api.UNIT_NAME_LABEL):
            meta = obj["metadata"]
            if obj["kind"] == "Namespace" and meta["name"] == manifests.NAMESPACE:
                continue  # last, with the rest of the install
            await delete(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
    selector = ",".join(f"{k}={v}" for k, v in manifests.INSTALL_LABELS.items())
    for obj in await labelled_objects(client, selector):
        meta = obj["metadata"]
        if obj["kind"] == "Namespace" or meta.get("ownerReferences"):
            continue  # the namespace goes last; owned objects go with their owner
        await delete(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
    crd = unit_api.unit_crd()
    await delete(crd["apiVersion"], crd["kind"], crd["metadata"]["name"], None)
    await delete("v1", "Namespace", manifests.NAMESPACE, None)
    # Both finish asynchronously (the Units go first); wait, so a re-install right after
    # does not meet a terminating namespace.
    for api_version, kind, name in (
        (crd["apiVersion"], crd["kind"], crd["metadata"]["name"]),
        ("v1", "Namespace", manifests.NAMESPACE),
    ):
        with anyio.move_on_after(wait_seconds):
            while await client.get(api_version, kind, name) is not None:
                await anyio.sleep(0.2)
    return deleted
