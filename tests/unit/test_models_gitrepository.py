from __future__ import annotations

import datetime
from typing import Any

import pytest

from fleet.models import GitRepository, ManifestError, NamespacedName


def repository(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": "flux-system"},
        "spec": {"url": "https://example.test/fleet.git", "interval": "1m", **spec},
    }


def load(manifest: dict[str, Any]) -> GitRepository:
    return GitRepository.from_manifest(
        manifest, file="clusters/dev/flux-system/gotk-sync.yaml", default_namespace="flux-system"
    )


def test_defaults() -> None:
    source = load(repository({}))
    assert source.key == NamespacedName("flux-system", "flux-system")
    assert source.spec.timeout == datetime.timedelta(seconds=60)
    assert source.spec.effective_ref.chosen == ("branch", "master")
    assert source.spec.suspend is False
    assert source.unsupported_fields() == []


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ({"branch": "main"}, ("branch", "main")),
        ({"branch": "main", "tag": "v1.0.0"}, ("tag", "v1.0.0")),
        ({"tag": "v1.0.0", "semver": ">=1.0.0"}, ("semver", ">=1.0.0")),
        ({"semver": ">=1.0.0", "name": "refs/heads/x"}, ("name", "refs/heads/x")),
        ({"name": "refs/heads/x", "commit": "abc123"}, ("commit", "abc123")),
    ],
)
def test_ref_precedence(ref: dict[str, str], expected: tuple[str, str]) -> None:
    assert load(repository({"ref": ref})).spec.effective_ref.chosen == expected


def test_secret_ref_and_ssh_url() -> None:
    source = load(repository({"url": "ssh://git@example.test/fleet", "secretRef": {"name": "key"}}))
    assert source.spec.secret_ref is not None and source.spec.secret_ref.name == "key"


def test_unsupported_fields() -> None:
    source = load(
        repository(
            {
                "ignore": "/*\n!/deploy",
                "include": [{"repository": {"name": "other"}}],
                "recurseSubmodules": True,
                "verify": {"mode": "HEAD", "secretRef": {"name": "pgp"}},
                "sparseCheckout": ["deploy"],
            }
        )
    )
    assert source.unsupported_fields() == [
        "spec.ignore",
        "spec.include",
        "spec.recurseSubmodules",
        "spec.sparseCheckout",
        "spec.verify",
    ]


def test_unknown_url_scheme_is_an_error_naming_the_field() -> None:
    with pytest.raises(ManifestError) as caught:
        load(repository({"url": "ftp://example.test/repo"}))
    assert caught.value.field == "spec.url"
    assert caught.value.object == "GitRepository/flux-system/flux-system"
    assert "unsupported URL" in caught.value.message
