"""Drift of Secrets written with ``stringData``, compared as the server stores them."""

from __future__ import annotations

import base64
from typing import Any

from fleet.core import drift


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


DESIRED: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Secret",
    "metadata": {"name": "db", "namespace": "apps"},
    "data": {"user": _b64("old"), "other": _b64("x")},
    "stringData": {"user": "app", "password": "from-git"},
}


def _stored(password: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "apps", "resourceVersion": "7"},
        "data": {"user": _b64("app"), "other": _b64("x"), "password": _b64(password)},
        "type": "Opaque",
    }


def test_string_data_folds_into_data_and_wins() -> None:
    stored = drift.as_stored(DESIRED)
    assert "stringData" not in stored
    assert stored["data"] == {"user": _b64("app"), "other": _b64("x"), "password": _b64("from-git")}
    assert DESIRED["stringData"], "the desired object is not changed"


def test_an_edit_of_a_string_data_key_is_drift() -> None:
    applied = drift.fingerprint(_stored("from-git"), DESIRED)
    assert drift.fingerprint(_stored("from-git"), DESIRED) == applied
    assert drift.fingerprint(_stored("edited"), DESIRED) != applied
    assert drift.contains(_stored("from-git"), DESIRED)
    assert not drift.contains(_stored("edited"), DESIRED)
    changes = list(drift.changed_fields(_stored("edited"), DESIRED))
    assert [change.path for change in changes] == ["/data/password"]
    assert "edited" not in str(changes[0]) and "hidden" in str(changes[0])


def test_other_kinds_keep_a_field_named_string_data() -> None:
    config = {"apiVersion": "v1", "kind": "ConfigMap", "stringData": {"a": "b"}}
    assert drift.as_stored(config) is config
