"""An agent process reporting to a hub served over TLS by a private CA (``--hub-ca-file``),
against a real cluster: with the CA it reports; without it, it refuses the hub's
certificate, says so in its log, and keeps reconciling."""

from __future__ import annotations

import contextlib
import ssl
import uuid
from pathlib import Path

import httpx
import pytest
from kubernetes import client as k8s

from fleet.localkube.cluster import LocalCluster
from fleet.localkube.gitserver import HOST
from fleet.localkube.pki import CertificateAuthority
from hub.config import HubConfig
from tests.conftest import api_client_for
from tests.e2e.agentprocess import agent_process
from tests.gitservers import GitDaemon, WorkingClone
from tests.hubserver import RunningHub, create_token, running_hub
from tests.objects import configmap, manifest
from tests.support import eventually

pytestmark = pytest.mark.timeout(300)


def cluster_seen(hub: RunningHub, ca: Path, reader: str, sha: str) -> bool:
    with httpx.Client(verify=ssl.create_default_context(cafile=ca), timeout=10) as client:
        found = client.get(
            f"{hub.url}/api/v1/clusters/dev", headers={"Authorization": f"Bearer {reader}"}
        )
    return found.status_code == 200 and sha in found.text and '"Ready"' in found.text


def test_an_agent_reports_over_tls_with_the_hubs_ca_and_refuses_it_without(
    cluster: LocalCluster,
    git: tuple[GitDaemon, WorkingClone],
    tmp_path: Path,
) -> None:
    daemon, repo = git
    namespace = f"e2e-tls-{uuid.uuid4().hex[:6]}"
    namespace_object = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    sha = repo.commit(
        {"clusters/dev/cm.yaml": manifest(namespace_object, configmap(namespace, "over-tls"))}
    )
    repo.push("main")
    agent_namespaces = [f"fleet-tls-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    try:
        _run(cluster, daemon, tmp_path, sha, agent_namespaces)
    finally:
        with api_client_for(cluster) as api:
            for name in [namespace, *agent_namespaces]:
                with contextlib.suppress(k8s.ApiException):
                    k8s.CoreV1Api(api).delete_namespace(name, propagation_policy="Background")


def _run(
    cluster: LocalCluster, daemon: GitDaemon, tmp_path: Path, sha: str, namespaces: list[str]
) -> None:
    pki = CertificateAuthority(tmp_path / "pki", "fleet-test-hub-ca")
    serving = pki.issue_serving("hub", [HOST])
    config = HubConfig.model_validate(
        {
            "database": f"sqlite:///{tmp_path / 'hub.db'}",
            "tlsCert": str(serving.cert),
            "tlsKey": str(serving.key),
        }
    )
    with running_hub(config) as hub:
        assert hub.url.startswith("https://")
        reader = create_token(config.database, "reader", role="read-only")
        token_file = tmp_path / "dev.token"
        token_file.write_text(create_token(config.database, "dev"))

        # Without the CA: the system trust store does not know the hub's issuer.
        untrusting = agent_process(
            cluster,
            daemon.url("fleet.git"),
            tmp_path / "untrusting",
            namespaces[0],
            # Another cluster path (absent, so it applies nothing): it may not compete with
            # the trusting agent below for the same objects. Its reports never get through.
            name="untrusting",
            hub_url=hub.url,
            hub_token_file=token_file,
        )
        untrusting.start()
        try:
            eventually(
                lambda: "CERTIFICATE_VERIFY_FAILED" in untrusting.log_path.read_text(),
                120,
                "the agent refusing the hub's certificate",
            )
            untrusting.check_running()
        finally:
            untrusting.stop()
        with httpx.Client(
            verify=ssl.create_default_context(cafile=pki.pair.cert), timeout=10
        ) as client:
            unheard = client.get(
                f"{hub.url}/api/v1/clusters/dev", headers={"Authorization": f"Bearer {reader}"}
            )
        assert unheard.status_code == 404 or sha not in unheard.text, unheard.text

        trusting = agent_process(
            cluster,
            daemon.url("fleet.git"),
            tmp_path / "trusting",
            namespaces[1],
            hub_url=hub.url,
            hub_token_file=token_file,
        )
        trusting.args.append(f"--hub-ca-file={pki.pair.cert}")
        trusting.start()
        try:
            try:
                eventually(
                    lambda: cluster_seen(hub, pki.pair.cert, reader, sha),
                    120,
                    "the hub to hear the agent over TLS",
                )
            except AssertionError as error:
                raise AssertionError(f"{error}\n--- agent log:\n{trusting.log_tail(40)}") from None
            trusting.check_running()
        finally:
            trusting.stop()
