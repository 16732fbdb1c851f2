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
