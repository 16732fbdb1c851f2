"""The parsers refuse the bad-input corpus on their own, naming file, object and field."""

from __future__ import annotations

import pytest

from fleet.core.manifests import load_manifests
from fleet.models.errors import ManifestError
from fleet.models.fleetconfig import load_fleet_config
from tests.badinput import TextCase, text_cases

MANIFESTS = text_cases("manifests.yaml")
FLEET_FILES = text_cases("fleetconfig.yaml")


@pytest.mark.parametrize("case", MANIFESTS, ids=[c.name for c in MANIFESTS])
def test_manifest_parser_refuses_and_names_the_problem(case: TextCase) -> None:
    with pytest.raises(ManifestError) as refused:
        load_manifests(case.text, "clusters/dev/bad.yaml")
    for expected in case.expect:
        assert expected in str(refused.value), case.name


@pytest.mark.parametrize("case", MANIFESTS, ids=[c.name for c in MANIFESTS])
def test_manifest_parser_refuses_bytes_as_it_refuses_text(case: TextCase) -> None:
    with pytest.raises(ManifestError):
        load_manifests(case.text.encode(), "clusters/dev/bad.yaml")


@pytest.mark.parametrize("case", FLEET_FILES, ids=[c.name for c in FLEET_FILES])
def test_fleet_config_refuses_and_names_the_field(case: TextCase) -> None:
    with pytest.raises(ManifestError) as refused:
        load_fleet_config(case.text)
    for expected in case.expect:
        assert expected in str(refused.value), case.name
