"""The local control planes are real Kubernetes: workloads run, SSA works, clusters are isolated."""

from __future__ import annotations

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient

from fleet.localkube import toolchain
from fleet.localkube.cluster import LocalCluster
from tests.conftest import api_client_for
from tests.support import eventually


def _deployment(name: str, replicas: int = 2) -> dict[str, object]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            },
        },
    }


def test_api_server_reports_the_release_it_was_built_from(api_client: client.ApiClient) -> None:
    info = client.VersionApi(api_client).get_code()
    assert info.git_version == toolchain.KUBERNETES_VERSION
    assert info.git_tree_state == "clean"


def test_deployment_becomes_available_with_running_pods_on_a_kwok_node(
    api_client: client.ApiClient, namespace: str
) -> None:
    apps = client.AppsV1Api(api_client)
    core = client.CoreV1Api(api_client)
    apps.create_namespaced_deployment(namespace, _deployment("web", replicas=2))

    def available() -> bool:
        status = apps.read_namespaced_deployment_status("web", namespace).status
        conditions = {c.type: c.status for c in status.conditions or []}
        return conditions.get("Available") == "True" and status.ready_replicas == 2

    eventually(available, 90, "Deployment web to become Available")
    pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
    assert len(pods) == 2
    for pod in pods:
        assert pod.status.phase == "Running"
        assert pod.spec.node_name.startswith("kwok-node-")
        ready = {c.type: c.status for c in pod.status.conditions}
        assert ready["Ready"] == "True"


def test_server_side_apply_records_the_field_manager_and_detects_conflicts(
    api_client: client.ApiClient, namespace: str
) -> None:
    dynamic = DynamicClient(api_client)
    configmaps = dynamic.resources.get(api_version="v1", kind="ConfigMap")
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": namespace},
        "data": {"color": "blue"},
    }
    configmaps.server_side_apply(body=body, field_manager="fleet")
    live = configmaps.get(name="settings", namespace=namespace)
    managers = {(m.manager, m.operation) for m in live.metadata.managedFields}
    assert ("fleet", "Apply") in managers

    rival = dict(body, data={"color": "red"})
    with pytest.raises(ApiException) as conflict:
        configmaps.server_side_apply(body=rival, field_manager="someone-else")
    assert conflict.value.status == 409

    configmaps.server_side_apply(body=rival, field_manager="someone-else", force_conflicts=True)
    assert configmaps.get(name="settings", namespace=namespace).data["color"] == "red"


def test_three_clusters_are_isolated(
    local_clusters: dict[str, LocalCluster], namespace: str
) -> None:
    dev = local_clusters["dev"]
    assert len({c.server for c in local_clusters.values()}) == 3
    with api_client_for(dev) as api:
        client.CoreV1Api(api).create_namespaced_config_map(
            namespace, {"metadata": {"name": "only-in-dev"}, "data": {"k": "v"}}
        )
    for name in ("staging", "prod"):
        with api_client_for(local_clusters[name]) as api:
            core = client.CoreV1Api(api)
            names = {n.metadata.name for n in core.list_namespace().items}
            assert namespace not in names
            with pytest.raises(ApiException) as missing:
                core.read_namespaced_config_map("only-in-dev", namespace)
            assert missing.value.status == 404


def test_each_cluster_trusts_only_its_own_certificates(
    local_clusters: dict[str, LocalCluster],
) -> None:
    dev, staging = local_clusters["dev"], local_clusters["staging"]
    config = client.Configuration()
    config.host = staging.server
    config.ssl_ca_cert = str(staging.pki_dir / "ca.crt")
    config.cert_file = str(dev.pki_dir / "admin.crt")
    config.key_file = str(dev.pki_dir / "admin.key")
    with client.ApiClient(config) as api, pytest.raises(ApiException) as denied:
        client.CoreV1Api(api).list_namespace()
    assert denied.value.status == 401


def test_rbac_forbids_a_user_without_bindings(cluster: LocalCluster, namespace: str) -> None:
    kubeconfig = cluster.kubeconfig_for("alice", groups=["developers"])
    with api_client_for(kubeconfig) as api, pytest.raises(ApiException) as forbidden:
        client.CoreV1Api(api).list_namespaced_pod(namespace)
    assert forbidden.value.status == 403
    assert "alice" in forbidden.value.body
