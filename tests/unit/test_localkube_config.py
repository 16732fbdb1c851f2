from __future__ import annotations

import io
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from fleet.cli import output
from fleet.localkube import kubeconfig, pki
from fleet.localkube.cluster import Ports, fake_node


def test_ports_are_distinct() -> None:
    ports = Ports.allocate()
    values = list(vars(ports).values())
    assert len(set(values)) == len(values)


def test_client_certificate_carries_user_and_groups(tmp_path: Path) -> None:
    ca = pki.CertificateAuthority(tmp_path, "test-ca")
    pair = ca.issue_client("alice", "alice", ("developers", "system:masters"))
    cert = x509.load_pem_x509_certificate(pair.cert_pem())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "alice"
    groups = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert groups == ["developers", "system:masters"]
    assert cert.issuer == x509.load_pem_x509_certificate(ca.pair.cert_pem()).subject
    assert oct(pair.key.stat().st_mode & 0o777) == "0o600"


def test_merged_kubeconfig_has_a_context_per_cluster(tmp_path: Path) -> None:
    ca = pki.CertificateAuthority(tmp_path, "ca")
    pair = ca.issue_client("admin", "admin", ("system:masters",))
    configs = [
        kubeconfig.kubeconfig_dict(
            name, f"https://127.0.0.1:{port}", ca.pair.cert_pem(), pair, "admin"
        )
        for name, port in (("dev", 1), ("prod", 2))
    ]
    merged = kubeconfig.merge(configs)
    assert [c["name"] for c in merged["contexts"]] == ["dev", "prod"]  # type: ignore[index]
    assert merged["current-context"] == "dev"


def test_fake_node_is_managed_by_kwok_and_untainted() -> None:
    node = fake_node("n1")
    assert node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
    assert "taints" not in node.get("spec", {})


def test_table_aligns_columns_like_kubectl() -> None:
    stream = io.StringIO()
    output.print_table(["name", "ready"], [["dev", "True"], ["staging-long", "False"]], stream)
    assert stream.getvalue().splitlines() == [
        "NAME           READY",
        "dev            True",
        "staging-long   False",
    ]
