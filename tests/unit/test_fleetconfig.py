from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from fleet.models.errors import ManifestError
from fleet.models.fleetconfig import load_fleet_config

VALID = """
apiVersion: fleet.dev/v1alpha1
kind: Fleet
clusters:
  - {name: dev, labels: {env: dev}}
  - {name: staging-eu, labels: {env: staging}}
  - {name: staging-us, labels: {env: staging}}
  - {name: prod-1, labels: {env: prod}}
  - {name: prod-2, labels: {env: prod}}
  - {name: prod-3, labels: {env: prod}}
waves:
  - {name: dev, selector: {env: dev}, ref: refs/heads/main}
  - {name: staging, selector: {env: staging}, dependsOn: [dev], soak: 10m}
  - {name: prod, selector: {env: prod}, dependsOn: [staging], approval: required,
     rollback: auto, maxParallel: "34%", maxStale: 1}
"""


def test_example_fleet_file_is_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    config = load_fleet_config((root / "clusters" / "fleet.yaml").read_text())
    assert [w.name for w in config.order()] == ["dev", "staging", "prod"]


def test_waves_select_their_clusters_and_keep_their_settings() -> None:
    config = load_fleet_config(VALID)
    prod = config.wave("prod")
    assert config.members(prod) == ["prod-1", "prod-2", "prod-3"]
    assert config.members(config.wave("staging")) == ["staging-eu", "staging-us"]
    assert config.wave("staging").soak == datetime.timedelta(minutes=10)
    assert prod.approval == "required" and prod.rollback == "auto" and prod.max_stale == 1
    assert prod.batch_size(3) == 1
    assert config.wave("staging").batch_size(2) == 2
    assert config.wave("dev").effective_ref == "refs/heads/main"
    assert prod.effective_ref == "refs/heads/fleet/wave/prod"
    assert config.wave_of("staging-us") is config.wave("staging")


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (("dependsOn: [dev]", "dependsOn: [qa]"), "waves[1].dependsOn", 'unknown wave "qa"'),
        (
            (
                "{name: dev, selector: {env: dev}, ref: refs/heads/main}",
                "{name: dev, selector: {env: dev}, dependsOn: [prod]}",
            ),
            "waves[0].dependsOn",
            "wave cycle",
        ),
        (
            ("selector: {env: staging}", "selector: {env: nowhere}"),
            "waves[1]",
            "selects no cluster",
        ),
        (('maxParallel: "34%"', 'maxParallel: "lots"'), "waves[2].maxParallel", "percentage"),
        (("soak: 10m", "soak: ten minutes"), "waves[1].soak", "invalid duration"),
        (("- {name: prod-3", "- {name: Prod_3"), "clusters[5].name", "not a valid cluster name"),
    ],
)
def test_invalid_fleet_file_names_the_field(
    change: tuple[str, str], field: str, message: str | None
) -> None:
    before, after = change
    assert before in VALID
    with pytest.raises(ManifestError) as error:
        load_fleet_config(VALID.replace(before, after))
    assert error.value.file == "fleet.yaml"
    assert error.value.field == field, str(error.value)
    if message:
        assert message in error.value.message


def test_duplicate_cluster_and_wave_names_are_refused() -> None:
    with pytest.raises(ManifestError, match='cluster "dev" is defined twice'):
        load_fleet_config(VALID.replace("- {name: staging-eu", "- {name: dev"))


def test_a_cluster_in_two_waves_is_refused() -> None:
    with pytest.raises(ManifestError, match='cluster "dev" is in waves "dev" and "staging"'):
        load_fleet_config(
            VALID.replace("selector: {env: staging},", "selector: {env: staging}, clusters: [dev],")
        )


def test_not_a_mapping_is_refused() -> None:
    with pytest.raises(ManifestError, match="one YAML mapping"):
        load_fleet_config("- a\n- b\n")
