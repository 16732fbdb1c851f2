from __future__ import annotations

from pathlib import Path

import pytest

from fleet.localkube import toolchain

GO_MOD = """module k8s.io/kubernetes

go 1.24.0

require (
\tgithub.com/spf13/cobra v1.9.1
\tk8s.io/api v0.0.0
\tk8s.io/client-go v0.0.0
\tk8s.io/klog/v2 v2.130.1
\tk8s.io/cri-client v0.0.0
)

require k8s.io/component-base v0.0.0

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
)
"""


def test_staging_modules_are_the_k8s_modules_required_at_v0_0_0() -> None:
    assert toolchain.staging_modules(GO_MOD) == [
        "k8s.io/api",
        "k8s.io/client-go",
        "k8s.io/component-base",
        "k8s.io/cri-client",
    ]


def test_cache_folder_is_keyed_by_version(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FLEET_CACHE_DIR", str(tmp_path))
    assert (
        toolchain.KUBERNETES.directory
        == tmp_path / "bin" / f"kubernetes-{toolchain.KUBERNETES_VERSION}"
    )
    assert toolchain.binary("kube-scheduler").parent == toolchain.KUBERNETES.directory
    assert not toolchain.ETCD.is_built()


def test_unknown_binary_is_an_error() -> None:
    with pytest.raises(KeyError, match="kubectl"):
        toolchain.binary("kubectl")


def test_version_ldflags_set_every_field_in_both_packages() -> None:
    flags = toolchain._version_ldflags("v1.34.4")
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {package}.gitVersion=v1.34.4" in flags
        assert f"-X {package}.gitMajor=1" in flags
        assert f"-X {package}.gitMinor=34" in flags
        assert f"-X {package}.gitTreeState=clean" in flags


def test_pseudo_versions_of_published_modules_are_not_staging() -> None:
    go_mod = (
        "require (\n\tk8s.io/utils v0.0.0-20250604170112-4c0f3b243397\n\tk8s.io/api v0.0.0\n)\n"
    )
    assert toolchain.staging_modules(go_mod) == ["k8s.io/api"]


KUSTOMIZE_CONTROLLER_GO_MOD = """module github.com/fluxcd/kustomize-controller

go 1.26.0

replace github.com/fluxcd/kustomize-controller/api => ./api

// Pin kustomize to v5.8.1
replace github.com/opencontainers/go-digest => github.com/opencontainers/go-digest v1.0.1-0.2022

require (
\tgithub.com/fluxcd/kustomize-controller/api v1.9.6
\tsigs.k8s.io/kustomize/api v0.21.1
)

replace (
\tsigs.k8s.io/kustomize/api => sigs.k8s.io/kustomize/api v0.21.1 // keep
\tsigs.k8s.io/kustomize/kyaml v0.20.0 => sigs.k8s.io/kustomize/kyaml v0.21.1
)
"""


def test_go_mod_replaces_reads_single_lines_and_blocks() -> None:
    assert toolchain.go_mod_replaces(KUSTOMIZE_CONTROLLER_GO_MOD) == [
        ("github.com/fluxcd/kustomize-controller/api", "./api"),
        (
            "github.com/opencontainers/go-digest",
            "github.com/opencontainers/go-digest v1.0.1-0.2022",
        ),
        ("sigs.k8s.io/kustomize/api", "sigs.k8s.io/kustomize/api v0.21.1"),
        ("sigs.k8s.io/kustomize/kyaml v0.20.0", "sigs.k8s.io/kustomize/kyaml v0.21.1"),
    ]


def test_wrapper_mirrors_replaces_and_publishes_the_local_api_module() -> None:
    module = "github.com/fluxcd/kustomize-controller"
    assert toolchain.wrapper_replaces(module, "v1.9.6", KUSTOMIZE_CONTROLLER_GO_MOD) == [
        f"-replace={module}/api={module}/api@v1.9.6",
        "-replace=github.com/opencontainers/go-digest="
        "github.com/opencontainers/go-digest@v1.0.1-0.2022",
        "-replace=sigs.k8s.io/kustomize/api=sigs.k8s.io/kustomize/api@v0.21.1",
        "-replace=sigs.k8s.io/kustomize/kyaml@v0.20.0=sigs.k8s.io/kustomize/kyaml@v0.21.1",
    ]


def test_a_local_replace_of_another_module_cannot_be_mirrored() -> None:
    go_mod = "replace example.com/other => ../other\n"
    with pytest.raises(toolchain.BuildError, match="cannot mirror"):
        toolchain.wrapper_replaces("github.com/fluxcd/source-controller", "v1.9.6", go_mod)


def test_flux_tools_are_not_in_the_default_set_but_resolve_by_name() -> None:
    for tool in toolchain.FLUX_TOOLS:
        assert tool.name not in toolchain.TOOLS
        assert "crds.yaml" in tool.files
    assert toolchain.binary("kustomize-controller") == toolchain.KUSTOMIZE_CONTROLLER.path()


def test_registry_sops_and_age_are_in_the_default_set_and_built_by_go_install() -> None:
    for name, binaries in (
        ("registry", ("registry",)),
        ("sops", ("sops",)),
        ("age", ("age", "age-keygen")),
    ):
        assert toolchain.TOOLS[name].binaries == binaries
        assert toolchain._BUILDERS[name] is toolchain._build_by_install
        assert len(toolchain._INSTALL_PACKAGES[name]) == len(binaries)
    assert toolchain.binary("age-keygen").parent == toolchain.AGE.directory
    assert toolchain._INSTALL_PACKAGES["age"] == (
        "filippo.io/age/cmd/age",
        "filippo.io/age/cmd/age-keygen",
    )


def test_flux_cli_is_built_by_default_into_its_versioned_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FLEET_CACHE_DIR", str(tmp_path))
    assert toolchain.TOOLS["flux"] is toolchain.FLUX_CLI
    assert toolchain.binary("flux") == tmp_path / "bin" / "flux-v2.9.5" / "flux"


def test_flux_cli_version_ldflag_is_the_release_without_its_v() -> None:
    # flux prints "v" + main.VERSION, so the flag carries 2.9.5 as its goreleaser does.
    assert toolchain.flux_cli_ldflags("v2.9.5") == "-s -w -X main.VERSION=2.9.5"


def test_flux_names_the_cli_and_flux_controllers_the_benchmark_controllers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert toolchain.main(["flux", "--print-dir"]) == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == ["flux"]
    assert toolchain.main(["flux-controllers", "--print-dir"]) == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == [
        "source-controller",
        "kustomize-controller",
    ]
