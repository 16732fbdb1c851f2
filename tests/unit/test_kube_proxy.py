"""The API server's proxy, read once from the environment as client-go reads it."""

from __future__ import annotations

import pytest

from fleet.kube.client import proxy_from_environment


@pytest.fixture(autouse=True)
def no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


def test_no_proxy_variables_mean_a_direct_connection() -> None:
    assert proxy_from_environment("https://10.0.0.1:6443") is None


def test_https_proxy_is_used_unless_no_proxy_names_the_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "10.0.0.1,.svc")
    assert proxy_from_environment("https://api.example.com:6443") == "http://proxy.internal:3128"
    assert proxy_from_environment("https://10.0.0.1:6443") is None
    assert proxy_from_environment("https://kubernetes.default.svc") is None
