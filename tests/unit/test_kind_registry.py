"""The kind registry: each kind registered once, looked up by name; objects find the
unit (and so the kind) that owns them by their labels."""

from __future__ import annotations

from typing import Any

import pytest

from agent import healer, kinds
from agent.units import HELMRELEASE, KUSTOMIZATION, UnitKey
from fleet.api import unit as unit_api


class Named:
    """The smallest thing the registry reads of a kind."""

    recheck_stalled = False

    def __init__(self, name: str) -> None:
        self.name = name


def test_kinds_are_found_by_name() -> None:
    found = kinds.registry([Named(KUSTOMIZATION), Named(HELMRELEASE)])  # type: ignore[list-item]
    assert sorted(found) == [HELMRELEASE, KUSTOMIZATION]
    assert found[HELMRELEASE].name == HELMRELEASE


def test_a_kind_registered_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="registered twice"):
        kinds.registry([Named(KUSTOMIZATION), Named(KUSTOMIZATION)])  # type: ignore[list-item]


def labelled(**labels: str) -> dict[str, Any]:
    return {"metadata": {"name": "web", "labels": labels}}


def test_an_object_is_routed_to_its_unit_by_labels() -> None:
    live = labelled(
        **{
            unit_api.UNIT_KIND_LABEL: HELMRELEASE,
            unit_api.UNIT_NAMESPACE_LABEL: "apps",
            unit_api.UNIT_NAME_LABEL: "podinfo",
        }
    )
    assert healer.owner_of(live) == UnitKey(HELMRELEASE, "apps", "podinfo")


def test_an_object_labelled_before_kinds_existed_is_a_kustomizations() -> None:
    live = labelled(
        **{unit_api.UNIT_NAMESPACE_LABEL: "flux-system", unit_api.UNIT_NAME_LABEL: "apps"}
    )
    assert healer.owner_of(live) == UnitKey(KUSTOMIZATION, "flux-system", "apps")
