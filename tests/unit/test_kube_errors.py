from __future__ import annotations

import json

import pytest

from fleet.kube import errors


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (404, errors.NotFound),
        (409, errors.Conflict),
        (403, errors.Forbidden),
        (401, errors.Unauthorized),
        (410, errors.Gone),
        (422, errors.Invalid),
        (500, errors.ApiUnavailable),
        (503, errors.ApiUnavailable),
        (429, errors.ApiUnavailable),
    ],
)
def test_each_status_has_its_error_class(status: int, expected: type[errors.KubeError]) -> None:
    body = json.dumps({"kind": "Status", "message": "the message", "reason": "Why", "code": status})
    error = errors.from_response(status, body, "apply ConfigMap ns/a")
    assert type(error) is expected
    assert str(error) == "apply ConfigMap ns/a: the message"
    assert error.reason == "Why"
    assert error.transient is (expected is errors.ApiUnavailable)


def test_a_body_that_is_not_a_status_is_kept_as_text() -> None:
    error = errors.from_response(502, b"bad gateway", "get Pod ns/p")
    assert str(error) == "get Pod ns/p: bad gateway"


@pytest.mark.parametrize(
    ("path", "resource"),
    [
        ("/apis/apps/v1/namespaces/x/deployments/web", "deployments"),
        ("/apis/apps/v1/namespaces/x/deployments", "deployments/"),
        ("/api/v1/namespaces", "namespaces/"),
        ("/api/v1/namespaces/x", "namespaces"),
        ("/apis/fleet.dev/v1alpha1/namespaces/fleet-system/units/root/status", "units/status"),
        (
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/a.b",
            "customresourcedefinitions",
        ),
        ("/apis/apps/v1", "discovery"),
    ],
)
def test_requests_are_counted_by_resource(path: str, resource: str) -> None:
    from fleet.kube.client import _resource_of

    assert _resource_of(path) == resource
