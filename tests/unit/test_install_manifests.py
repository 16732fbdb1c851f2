"""The agent's install manifests and its health endpoint, as plain data and a local socket."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from agent.health import HealthServer
from agent.metrics import AgentMetrics
from fleet import install
from fleet.cli.main import main
from fleet.install import repository


def _kinds(objects: list[dict[str, object]]) -> list[str]:
    return [str(o["kind"]) for o in objects]


def test_default_install_binds_cluster_admin_and_mounts_no_secrets() -> None:
    objects = install.manifests(install.InstallOptions("dev", "git://git.example/fleet.git"))
    assert _kinds(objects) == [
        "Namespace",
        "ServiceAccount",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
    ]
    binding = objects[2]
    assert binding["roleRef"]["name"] == "cluster-admin"
    container = objects[3]["spec"]["template"]["spec"]["containers"][0]
    assert "--cluster=dev" in container["args"]
    assert not any(a.startswith("--git-secret-dir") for a in container["args"])
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_least_privilege_keeps_secrets_to_the_agent_namespace() -> None:
    objects = install.manifests(
        install.InstallOptions("dev", "ssh://git@h/f.git", least_privilege=True, git_secret=True)
    )
    role = next(o for o in objects if o["kind"] == "ClusterRole")
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    assert "secrets" not in resources
    impersonate = next(rule for rule in role["rules"] if "impersonate" in rule["verbs"])
    assert "serviceaccounts" in impersonate["resources"]
    own = next(o for o in objects if o["kind"] == "Role")
    assert own["metadata"]["namespace"] == "fleet-system"
    assert any("secrets" in rule["resources"] for rule in own["rules"])


def test_run_locally_installs_a_deployment_without_replicas() -> None:
    objects = install.manifests(install.InstallOptions("dev", "/repo", run_locally=True))
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 0
    assert deployment["metadata"]["annotations"] == {install.RUN_LOCALLY_ANNOTATION: "true"}


def test_health_server_serves_metrics_liveness_and_readiness() -> None:
    metrics = AgentMetrics()
    metrics.fetch_errors.labels("flux-system/fleet").inc()
    for index in range(1000):  # more than one write of the streamed body
        metrics.unit(("Kustomization", "apps", f"app-{index}")).observe_reconcile(0.2)
    ready = False
    server = HealthServer("127.0.0.1", 0, metrics.scrape, lambda: ready)
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert urllib.request.urlopen(f"{base}/healthz").status == 200
        try:
            urllib.request.urlopen(f"{base}/readyz")
            raise AssertionError("readyz answered 2xx before the agent started")
        except urllib.error.HTTPError as error:
            assert error.code == 503
        ready = True
        assert urllib.request.urlopen(f"{base}/readyz").status == 200
        text = urllib.request.urlopen(f"{base}/metrics").read().decode()
        assert 'fleet_git_fetch_errors_total{source="flux-system/fleet"} 1.0' in text
        families = {f.name: f for f in text_string_to_metric_families(text)}
        counts = [
            s
            for s in families["fleet_reconcile_duration_seconds"].samples
            if s.name.endswith("_count")
        ]
        assert len(counts) == 1000 and {s.value for s in counts} == {1.0}
    finally:
        server.stop()


def test_agent_install_print_is_yaml_of_the_expected_kinds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(
        [
            "agent",
            "install",
            "--cluster=dev",
            "--repo=git://h/f.git",
            "--print",
            "--least-privilege",
        ]
    )
    assert code == 0
    kinds = [o["kind"] for o in yaml.safe_load_all(capsys.readouterr().out)]
    assert kinds == [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "Service",
    ]


def test_fleet_yaml_gains_the_cluster_once() -> None:
    created = repository.with_cluster(None, "dev")
    assert created is not None
    assert yaml.safe_load(created)["clusters"] == [{"name": "dev"}]
    assert repository.with_cluster(created, "dev") is None
    grown = repository.with_cluster(created, "prod")
    assert grown is not None
    assert [c["name"] for c in yaml.safe_load(grown)["clusters"]] == ["dev", "prod"]


def test_a_cluster_kustomization_gains_the_fleet_system_folder() -> None:
    files = {
        "fleet.yaml": repository.with_cluster(None, "dev"),
        "clusters/dev/kustomization.yaml": b"resources: [apps.yaml]\n",
    }
    options = install.InstallOptions("dev", "git://h/f.git")
    first = repository.changes(files.get, options)
    assert set(first) == {
        "clusters/dev/kustomization.yaml",
        "clusters/dev/fleet-system/kustomization.yaml",
        "clusters/dev/fleet-system/fleet-agent.yaml",
    }
    listing = first["clusters/dev/kustomization.yaml"]
    assert listing is not None
    assert yaml.safe_load(listing)["resources"] == ["apps.yaml", "fleet-system"]
    assert repository.changes({**files, **first}.get, options) == {}
