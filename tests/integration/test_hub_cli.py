"""The hub's command line: ``fleet hub serve`` over TLS as a real process, ``fleet hub token``
and ``fleet get clusters`` from the hub and from the status branch."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.reporters import GitStatusReporter
from fleet.cli.main import main
from fleet.localkube.gitserver import HOST, free_port, git_daemon
from fleet.report import UnitReport
from tests.gitservers import served_repo
from tests.hubserver import body_of, event, report
from tests.support import eventually

pytestmark = pytest.mark.timeout(60)


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, the certificate doubling as CA bundle."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fleet hub test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def fleet(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the CLI in this process; (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def served_hub(database: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``fleet hub serve`` with TLS in a process of its own; (URL, CA file)."""
    cert, key = self_signed(tmp_path)
    port = free_port()
    log = (tmp_path / "hub.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fleet.cli.main",
            "hub",
            "serve",
            "--listen",
            f"{HOST}:{port}",
            "--db",
            database,
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(key),
            "--stale-after",
            "1h",
            "--log-level",
            "warning",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"https://{HOST}:{port}"
    try:

        def healthy() -> bool:
            assert process.poll() is None, (tmp_path / "hub.log").read_text()
            try:
                return (
                    httpx.get(
                        f"{url}/healthz", verify=ssl.create_default_context(cafile=str(cert))
                    ).status_code
                    == 200
                )
            except httpx.HTTPError:
                return False

        eventually(healthy, 20, "fleet hub serve to answer over TLS", interval=0.1)
        yield url, cert
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def test_get_clusters_from_a_tls_hub_with_tokens_made_by_the_cli(
    served_hub: tuple[str, Path],
    database: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, ca = served_hub
    code, agent_token, _ = fleet(
        capsys, "hub", "token", "create", "dev", "--label", "env=dev", "--db", database
    )
    assert code == 0
    code, user_token, notice = fleet(
        capsys, "hub", "token", "create", "--user", "alice", "--db", database
    )
    assert code == 0 and "shown only now" in notice
    failing = UnitReport(namespace="flux-system", name="infra", ready="False", message="boom")
    sent = report(
        "dev", units=[*report("dev").units, failing], events=[event("DriftCorrected", "fixed")]
    )
    httpx.put(
        f"{url}/api/v1/clusters/dev/report",
        content=body_of(sent),
        headers={"Authorization": f"Bearer {agent_token.strip()}"},
        verify=ssl.create_default_context(cafile=str(ca)),
    ).raise_for_status()
    token_file = tmp_path / "token"
    token_file.write_text(user_token)

    code, table, _ = fleet(
        capsys,
        "get",
        "clusters",
        "--hub",
        url,
        "--token-file",
        str(token_file),
        "--ca-file",
        str(ca),
    )
    code_json, as_json, _ = fleet(
        capsys,
        "get",
        "clusters",
        "--hub",
        url,
        "--token-file",
        str(token_file),
        "--ca-file",
        str(ca),
        "-o",
        "json",
    )

    assert code == 0 and code_json == 0
    header, row = table.splitlines()
    assert header.split() == [
        "NAME",
        "HEALTH",
        "REVISION",
        "UNITS",
        "DRIFT(24H)",
        "LAST",
        "REPORT",
        "AGENT",
    ]
    assert row.split() == [
        "dev",
        "Degraded",
        "main@sha1:01234567",
        "1/2",
        "1",
        row.split()[5],
        "0.1.0",
    ]
    assert row.split()[5].endswith("s")
    item = json.loads(as_json)["items"][0]
    assert item["labels"] == {"env": "dev"} and item["message"] == "flux-system/infra: boom"


def test_cli_refuses_a_revoked_token_and_an_untrusted_certificate(
    served_hub: tuple[str, Path],
    database: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, ca = served_hub
    _, token, _ = fleet(capsys, "hub", "token", "create", "--user", "bob", "--db", database)
    token_file = tmp_path / "token"
    token_file.write_text(token)
    code, _, _ = fleet(capsys, "hub", "token", "revoke", "bob", "--db", database)
    assert code == 0

    revoked, _, revoked_error = fleet(
        capsys,
        "get",
        "clusters",
        "--hub",
        url,
        "--token-file",
        str(token_file),
        "--ca-file",
        str(ca),
    )
    untrusted, _, untrusted_error = fleet(
        capsys, "get", "clusters", "--hub", url, "--token-file", str(token_file)
    )

    assert revoked == 1 and "401" in revoked_error
    assert untrusted == 1 and "cannot reach the hub" in untrusted_error


def test_get_clusters_from_the_status_branch_without_a_hub(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    served = tmp_path / "served"
    served.mkdir()
    clone = served_repo(served, "fleet.git")
    clone.commit({"README.md": "fleet\n"})
    clone.push("main")
    with git_daemon(served) as daemon:
        url = daemon.url("fleet.git")
        drifted = report("dev", events=[event("DriftCorrected", "replicas", type="Normal")])
        GitStatusReporter(url, "dev", cache_dir=tmp_path / "dev").publish(drifted)
        suspended = UnitReport(namespace="flux-system", name="apps", ready="True", suspended=True)
        GitStatusReporter(url, "prod", cache_dir=tmp_path / "prod").publish(
            report("prod", units=[suspended], revision_sha="f" * 40)
        )

        code, table, _ = fleet(capsys, "get", "clusters", "--repo", url)
        code_yaml, as_yaml, _ = fleet(capsys, "get", "clusters", "--repo", url, "-o", "yaml")

    assert code == 0 and code_yaml == 0
    rows = [line.split() for line in table.splitlines()[1:]]
    assert [row[:5] for row in rows] == [
        ["dev", "Ready", "main@sha1:01234567", "1/1", "1"],
        ["prod", "Suspended", "main@sha1:ffffffff", "1/1", "0"],
    ]
    items = yaml.safe_load(as_yaml)["items"]
    assert [item["name"] for item in items] == ["dev", "prod"]


def test_every_hub_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in (
        ["hub"],
        ["hub", "serve"],
        ["hub", "token"],
        ["hub", "token", "create"],
        ["hub", "token", "revoke"],
        ["hub", "token", "list"],
        ["get"],
        ["get", "clusters"],
    ):
        with pytest.raises(SystemExit) as exited:
            main([*command, "--help"])
        assert exited.value.code == 0
        assert "usage: fleet" in capsys.readouterr().out
