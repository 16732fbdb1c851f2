"""The OCI client against the real distribution registry, fed by the real flux and helm CLIs.

Three registries per module: plain HTTP, basic auth (htpasswd), and TLS with basic auth
(a CA of the harness's own). Artifacts are pushed with ``flux push artifact``, charts with
``helm push``; the client pulls them as an OCIRepository / OCI HelmRepository would.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import tarfile
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from fleet.localkube import pki, toolchain
from fleet.localkube.registry import LocalRegistry, RegistryOptions, running_registry
from fleet.source import errors, oci

USER, PASSWORD = "puller", "s3cret-registry-pw"
FLUX = toolchain.cache_dir() / "bin" / "flux-v2.9.5" / "flux"


def _tool(path: Path) -> str:
    assert os.access(path, os.X_OK), f"{path} is not built (make k8s-bin / the flux CLI build)"
    return str(path)


def _env(home: Path, registry: LocalRegistry) -> dict[str, str]:
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", "")}
    if registry.ca_file:
        env["SSL_CERT_FILE"] = str(registry.ca_file)
    return env


def flux_push(registry: LocalRegistry, repository: str, tag: str, folder: Path, home: Path) -> str:
    """``flux push artifact``; returns the manifest digest flux reports."""
    args = [
        _tool(FLUX),
        "push",
        "artifact",
        f"{registry.oci_url(repository)}:{tag}",
        f"--path={folder}",
        "--source=git://127.0.0.1/fleet",
        f"--revision={tag}@sha1:{'a' * 40}",
        "--output=json",
    ]
    if not registry.options.tls:
        args.append("--insecure-registry")
    if registry.options.users:
        args.append(f"--creds={USER}:{PASSWORD}")
    done = subprocess.run(
        args, capture_output=True, text=True, env=_env(home, registry), timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["digest"])


def write_tree(root: Path, files: Mapping[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def configmap(name: str, value: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{v: {value!r}}}\n"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    with running_registry(tmp_path_factory.mktemp("registry-plain")) as registry:
        yield registry


@pytest.fixture(scope="module")
def protected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    options = RegistryOptions(users={USER: PASSWORD})
    with running_registry(tmp_path_factory.mktemp("registry-auth"), options) as registry:
        yield registry


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    options = RegistryOptions(users={USER: PASSWORD}, tls=True)
    with running_registry(tmp_path_factory.mktemp("registry-tls"), options) as registry:
        yield registry


@pytest.fixture(scope="module")
def versions(
    plain: LocalRegistry, home: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """``app`` at v1.0.0, v1.1.0, v2.0.0-rc.1 and ``release-3.0.0``: tag -> digest."""
    digests = {}
    for tag in ("v1.0.0", "v1.1.0", "v2.0.0-rc.1", "release-3.0.0"):
        folder = write_tree(
            tmp_path_factory.mktemp(f"src-{tag}"),
            {"apps/cm.yaml": configmap("app", tag), "README.md": f"version {tag}\n"},
        )
        digests[tag] = flux_push(plain, "app", tag, folder, home)
    return digests


def test_tag_is_pulled_with_flux_revision_and_files(
    plain: LocalRegistry, versions: dict[str, str], tmp_path: Path
) -> None:
    artifact = oci.pull(
        plain.oci_url("app"),
        oci.Reference(tag="v1.0.0"),
        tmp_path / "out",
        registry=oci.Registry(insecure=True),
    )
    assert artifact.revision == f"v1.0.0@{versions['v1.0.0']}"
    assert (tmp_path / "out" / "apps" / "cm.yaml").read_text() == configmap("app", "v1.0.0")
    assert artifact.layer_media_type == oci.FLUX_CONTENT_MEDIA_TYPE
    assert artifact.annotations["org.opencontainers.image.revision"].startswith("v1.0.0@sha1:")


def test_semver_picks_the_highest_release_in_range(
    plain: LocalRegistry, versions: dict[str, str], tmp_path: Path
) -> None:
    artifact = oci.pull(
        plain.oci_url("app"),
        oci.Reference(semver=">=1.0.0"),
        tmp_path / "out",
        registry=oci.Registry(insecure=True),
    )
    # v2.0.0-rc.1 is a prerelease the range does not name; release-3.0.0 is no version.
    assert artifact.revision == f"v1.1.0@{versions['v1.1.0']}"


def test_semver_filter_narrows_the_tags_first(
    plain: LocalRegistry, versions: dict[str, str], tmp_path: Path
) -> None:
    artifact = oci.pull(
        plain.oci_url("app"),
        oci.Reference(semver=">=1.0.0", semver_filter=r"^v1\.0\."),
        tmp_path / "out",
        registry=oci.Registry(insecure=True),
    )
    assert artifact.revision == f"v1.0.0@{versions['v1.0.0']}"


def test_digest_reference_has_the_bare_digest_as_revision(
    plain: LocalRegistry, versions: dict[str, str], tmp_path: Path
) -> None:
    digest = versions["v1.0.0"]
    artifact = oci.pull(
        plain.oci_url("app"),
        oci.Reference(tag="v1.1.0", digest=digest),
        tmp_path / "out",
        registry=oci.Registry(insecure=True),
    )
    assert artifact.revision == digest
    assert "v1.0.0" in (tmp_path / "out" / "apps" / "cm.yaml").read_text()


def test_copy_operation_keeps_the_layer_blob(
    plain: LocalRegistry, versions: dict[str, str], tmp_path: Path
) -> None:
    artifact = oci.pull(
        plain.oci_url("app"),
        oci.Reference(tag="v1.0.0"),
        tmp_path / "out",
        registry=oci.Registry(insecure=True),
        layer_selector=oci.LayerSelector(oci.FLUX_CONTENT_MEDIA_TYPE, "copy"),
    )
    blob = artifact.path.read_bytes()
    assert artifact.path.name == "layer.tar.gz"
    assert "sha256:" + hashlib.sha256(blob).hexdigest() == artifact.layer_digest
    with tarfile.open(artifact.path) as tar:
        assert "apps/cm.yaml" in tar.getnames()


def test_missing_tag_names_spec_ref_tag(
    plain: LocalRegistry, versions: dict[str, str], tmp_path: Path
) -> None:
    with pytest.raises(errors.RefNotFound, match=r"spec\.ref\.tag: tag 'v9\.9\.9' does not exist"):
        oci.pull(
            plain.oci_url("app"),
            oci.Reference(tag="v9.9.9"),
            tmp_path / "out",
            registry=oci.Registry(insecure=True),
        )


def test_semver_without_a_match_names_spec_ref_semver(
    plain: LocalRegistry, versions: dict[str, str], tmp_path: Path
) -> None:
    with pytest.raises(errors.RefNotFound, match=r"spec\.ref\.semver: no tag matches '>=5\.0\.0'"):
        oci.pull(
            plain.oci_url("app"),
            oci.Reference(semver=">=5.0.0"),
            tmp_path / "out",
            registry=oci.Registry(insecure=True),
        )


def test_digest_of_nothing_in_the_repository_names_spec_ref_digest(
    plain: LocalRegistry, versions: dict[str, str], tmp_path: Path
) -> None:
    with pytest.raises(errors.RefNotFound, match=r"spec\.ref\.digest: digest 'sha256:0+' does not"):
        oci.pull(
            plain.oci_url("app"),
            oci.Reference(digest="sha256:" + "0" * 64),
            tmp_path / "out",
            registry=oci.Registry(insecure=True),
        )


def test_layer_selector_without_a_match_names_the_media_type(
    plain: LocalRegistry, versions: dict[str, str], tmp_path: Path
) -> None:
    with pytest.raises(errors.LayerNotFound, match=r"spec\.layerSelector\.mediaType: no layer"):
        oci.pull(
            plain.oci_url("app"),
            oci.Reference(tag="v1.0.0"),
            tmp_path / "out",
            registry=oci.Registry(insecure=True),
            layer_selector=oci.LayerSelector("application/vnd.example.nothing"),
        )


def _blob_file(registry: LocalRegistry, digest: str) -> Path:
    hex_digest = digest.removeprefix("sha256:")
    base = registry.state_dir / "data" / "docker" / "registry" / "v2" / "blobs" / "sha256"
    return base / hex_digest[:2] / hex_digest / "data"


def test_layer_whose_bytes_do_not_match_its_digest_is_refused(
    plain: LocalRegistry, home: Path, tmp_path: Path
) -> None:
    folder = write_tree(tmp_path / "src", {"cm.yaml": configmap("tampered", tmp_path.name)})
    flux_push(plain, "tampered", "v1", folder, home)
    with oci.RegistryClient(plain.oci_url("tampered"), oci.Registry(insecure=True)) as client:
        _, manifest = client.manifest("v1", field="spec.ref.tag")
    stored = _blob_file(plain, manifest["layers"][0]["digest"])
    data = bytearray(stored.read_bytes())
    data[-1] ^= 0xFF  # same size, other bytes: the registry serves the file as it is
    stored.write_bytes(bytes(data))
    with pytest.raises(errors.DigestMismatch, match=r"blob sha256:\w+ \(\d+ bytes\) arrived as"):
        oci.pull(
            plain.oci_url("tampered"),
            oci.Reference(tag="v1"),
            tmp_path / "out",
            registry=oci.Registry(insecure=True),
        )
    assert not (tmp_path / "out" / "cm.yaml").exists()


def test_manifest_whose_bytes_do_not_match_the_digest_asked_for_is_refused(
    plain: LocalRegistry, home: Path, tmp_path: Path
) -> None:
    folder = write_tree(tmp_path / "src", {"cm.yaml": configmap("tampered-m", tmp_path.name)})
    digest = flux_push(plain, "tampered-manifest", "v1", folder, home)
    stored = _blob_file(plain, digest)
    document = json.loads(stored.read_bytes())
    document["annotations"]["org.opencontainers.image.source"] = "git://127.0.0.1/evil"
    stored.write_bytes(json.dumps(document).encode())
    with pytest.raises(errors.DigestMismatch, match=rf"manifest {digest} hashes to sha256:"):
        oci.pull(
            plain.oci_url("tampered-manifest"),
            oci.Reference(digest=digest),
            tmp_path / "out",
            registry=oci.Registry(insecure=True),
        )


def test_basic_auth_with_password_or_docker_config(
    protected: LocalRegistry, home: Path, tmp_path: Path
) -> None:
    folder = write_tree(tmp_path / "src", {"cm.yaml": configmap("private", "1")})
    digest = flux_push(protected, "private", "v1", folder, home)
    artifact = oci.pull(
        protected.oci_url("private"),
        oci.Reference(tag="v1"),
        tmp_path / "a",
        registry=oci.Registry(credentials=oci.Credentials(USER, PASSWORD), insecure=True),
    )
    assert artifact.revision == f"v1@{digest}"
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    config = json.dumps({"auths": {f"http://{protected.host}": {"auth": auth}}})
    credentials = oci.Credentials.from_docker_config(config, protected.host)
    assert credentials == oci.Credentials(USER, PASSWORD)
    semver_pull = oci.pull(
        protected.oci_url("private"),
        oci.Reference(semver="1.x"),
        tmp_path / "b",
        registry=oci.Registry(credentials=credentials, insecure=True),
    )
    assert semver_pull.revision == f"v1@{digest}"


@pytest.mark.parametrize("credentials", [None, oci.Credentials(USER, "wrong-password")])
def test_refused_credentials_are_an_auth_error_without_the_password(
    protected: LocalRegistry, home: Path, tmp_path: Path, credentials: oci.Credentials | None
) -> None:
    folder = write_tree(tmp_path / "src", {"cm.yaml": configmap("private2", "1")})
    flux_push(protected, "private2", "v1", folder, home)
    with pytest.raises(errors.SourceAuthError, match=r"spec\.secretRef") as caught:
        oci.pull(
            protected.oci_url("private2"),
            oci.Reference(tag="v1"),
            tmp_path / "out",
            registry=oci.Registry(credentials=credentials, insecure=True),
        )
    assert "wrong-password" not in str(caught.value)
    assert PASSWORD not in str(caught.value)


def test_tls_registry_with_its_ca(secure: LocalRegistry, home: Path, tmp_path: Path) -> None:
    assert secure.ca_file is not None
    folder = write_tree(tmp_path / "src", {"cm.yaml": configmap("tls", "1")})
    digest = flux_push(secure, "tls", "v1", folder, home)
    artifact = oci.pull(
        secure.oci_url("tls"),
        oci.Reference(tag="v1"),
        tmp_path / "out",
        registry=oci.Registry(
            credentials=oci.Credentials(USER, PASSWORD), ca_pem=secure.ca_file.read_bytes()
        ),
    )
    assert artifact.revision == f"v1@{digest}"


def test_tls_registry_with_a_wrong_ca_is_not_trusted(secure: LocalRegistry, tmp_path: Path) -> None:
    other = pki.CertificateAuthority(tmp_path / "other-ca", "someone-else")
    with pytest.raises(errors.ServerNotTrusted, match=r"spec\.certSecretRef: TLS verification"):
        oci.pull(
            secure.oci_url("tls"),
            oci.Reference(tag="v1"),
            tmp_path / "out",
            registry=oci.Registry(
                credentials=oci.Credentials(USER, PASSWORD), ca_pem=other.pair.cert_pem()
            ),
        )


def test_plain_http_against_a_tls_registry_says_so(secure: LocalRegistry, tmp_path: Path) -> None:
    with pytest.raises(errors.SourceError, match=r"HTTP 400|broke the protocol"):
        oci.pull(
            secure.oci_url("tls"),
            oci.Reference(tag="v1"),
            tmp_path / "out",
            registry=oci.Registry(credentials=oci.Credentials(USER, PASSWORD), insecure=True),
        )


def _chart(root: Path, version: str) -> Path:
    """A packaged chart ``demo`` at ``version`` (helm create + helm package)."""
    helm = _tool(toolchain.binary("helm"))
    root.mkdir(parents=True)
    env = {"HOME": str(root), "PATH": os.environ.get("PATH", "")}
    subprocess.run([helm, "create", "demo"], cwd=root, env=env, check=True, capture_output=True)
    chart_yaml = root / "demo" / "Chart.yaml"
    chart_yaml.write_text(
        textwrap.dedent(f"""\
            apiVersion: v2
            name: demo
            version: {version}
            appVersion: "1.0"
            """)
    )
    subprocess.run(
        [helm, "package", "demo", "-d", str(root)],
        cwd=root,
        env=env,
        check=True,
        capture_output=True,
    )
    return root / f"demo-{version}.tgz"


def helm_push(registry: LocalRegistry, package: Path, home: Path) -> None:
    args = [_tool(toolchain.binary("helm")), "push", str(package), registry.oci_url("charts")]
    if registry.options.tls:
        assert registry.ca_file is not None
        args.append(f"--ca-file={registry.ca_file}")
    else:
        args.append("--plain-http")
    if registry.options.users:
        args += [f"--username={USER}", f"--password={PASSWORD}"]
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", "")}
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("which", ["plain", "secure"])
def test_helm_oci_chart_version_range_is_resolved_and_pulled(
    which: str, request: pytest.FixtureRequest, home: Path, tmp_path: Path
) -> None:
    registry: LocalRegistry = request.getfixturevalue(which)
    for version in ("0.1.0", "0.1.3", "0.2.0"):
        helm_push(registry, _chart(tmp_path / version, version), home)
    transport = oci.Registry(
        credentials=oci.Credentials(USER, PASSWORD) if registry.options.users else None,
        ca_pem=registry.ca_file.read_bytes() if registry.ca_file else None,
        insecure=not registry.options.tls,
    )
    chart = oci.pull_chart(
        registry.oci_url("charts"), "demo", "0.1.x", tmp_path / "out", registry=transport
    )
    assert (chart.name, chart.version) == ("demo", "0.1.3")
    shown = subprocess.run(
        [_tool(toolchain.binary("helm")), "show", "chart", str(chart.path)],
        capture_output=True,
        text=True,
        check=True,
        env={"HOME": str(home)},
    )
    assert "version: 0.1.3" in shown.stdout
    with pytest.raises(errors.RefNotFound, match=r"spec\.chart\.spec\.version: no version"):
        oci.pull_chart(
            registry.oci_url("charts"), "demo", ">=1.0.0", tmp_path / "none", registry=transport
        )


@pytest.fixture(scope="module")
def tokened(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    options = RegistryOptions(users={USER: PASSWORD}, token_auth=True)
    with running_registry(tmp_path_factory.mktemp("registry-token"), options) as registry:
        yield registry


def test_bearer_token_flow_with_the_registrys_token_service(
    tokened: LocalRegistry, home: Path, tmp_path: Path
) -> None:
    # flux's client refuses a token realm on a private address, so helm (oras) pushes here.
    assert tokened.token_service is not None
    helm_push(tokened, _chart(tmp_path / "chart", "1.2.3"), home)
    pushed = tokened.token_service.issued
    assert pushed > 0
    transport = oci.Registry(
        credentials=oci.Credentials(USER, PASSWORD), insecure=True, private_realms=True
    )
    chart = oci.pull_chart(
        tokened.oci_url("charts"), "demo", "1.x", tmp_path / "out", registry=transport
    )
    assert chart.version == "1.2.3"
    assert tokened.token_service.issued > pushed
    artifact = oci.pull(
        tokened.oci_url("charts/demo"),
        oci.Reference(tag="1.2.3"),
        tmp_path / "copy",
        registry=transport,
        layer_selector=oci.LayerSelector(oci.HELM_CHART_MEDIA_TYPE, "copy"),
    )
    assert artifact.revision == f"1.2.3@{chart.digest}"
    with pytest.raises(errors.SourceAuthError, match="token service refused") as caught:
        oci.pull_chart(
            tokened.oci_url("charts"),
            "demo",
            "1.x",
            tmp_path / "refused",
            registry=oci.Registry(
                credentials=oci.Credentials(USER, "nope-pw"), insecure=True, private_realms=True
            ),
        )
    assert "nope-pw" not in str(caught.value)


def test_token_realm_on_a_private_address_is_refused_by_default(
    tokened: LocalRegistry, tmp_path: Path
) -> None:
    with pytest.raises(errors.SourceAuthError, match=r"realm .* is on a private address"):
        oci.pull_chart(
            tokened.oci_url("charts"),
            "demo",
            "*",
            tmp_path / "out",
            registry=oci.Registry(credentials=oci.Credentials(USER, PASSWORD), insecure=True),
        )
