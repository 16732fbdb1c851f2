"""How a promotion record reads in Git: its file, its YAML and its commit message."""

from __future__ import annotations

import pytest
import yaml

from hub.config import ConfigError, PromotionConfig
from hub.promotion import records
from hub.promotion.repository import FleetRepository
from hub.store.promotions import Entry

OLD, NEW = "a" * 40, "b" * 40
AT = 1_795_000_000.0  # 2026-11-18T11:06:40Z


def entry(action: str, **fields: object) -> Entry:
    values: dict[str, object] = {
        "wave": "prod",
        "action": action,
        "who": "alice",
        "why": "because",
        "id": 7,
        "at": AT,
    }
    return Entry(**(values | fields))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("action", "fields", "subject"),
    [
        (
            "promote",
            {"previous": OLD, "revision": NEW, "batch": 2},
            "prod batch 2: promote aaaaaaa -> bbbbbbb",
        ),
        ("promote", {"revision": NEW}, "prod: promote nothing -> bbbbbbb"),
        ("rollback", {"previous": NEW, "revision": OLD}, "prod: roll back bbbbbbb -> aaaaaaa"),
        ("approve", {"revision": NEW}, "prod: approve bbbbbbb"),
        ("halt", {"revision": NEW}, "prod: halt at bbbbbbb"),
        ("finish", {"revision": NEW}, "prod: bbbbbbb Ready on every cluster"),
        ("pause", {}, "prod: pause"),
    ],
)
def test_the_commit_subject_says_what_happened_to_which_wave(
    action: str, fields: dict[str, object], subject: str
) -> None:
    assert records.subject(entry(action, **fields)) == subject


def test_the_record_file_holds_who_when_why_from_and_to() -> None:
    promoted = entry("promote", previous=OLD, revision=NEW, clusters=("prod-1",))
    assert records.path_of(promoted) == "records/20261118T110640Z-000007-prod-promote.yaml"
    assert yaml.safe_load(records.render(promoted)) == {
        "apiVersion": "fleet.dev/v1alpha1",
        "kind": "PromotionRecord",
        "id": 7,
        "wave": "prod",
        "action": "promote",
        "from": OLD,
        "revision": NEW,
        "clusters": ["prod-1"],
        "who": "alice",
        "why": "because",
        "at": "2026-11-18T11:06:40Z",
    }
    assert records.message(promoted).endswith(
        "\n\nbecause\n\nPromotion-Id: 7\nPromotion-By: alice\n"
    )


def test_a_bad_repository_url_is_a_config_error() -> None:
    config = PromotionConfig.model_validate({"repo": "not a url at all", "cacheDir": "/tmp/x"})
    with pytest.raises(ConfigError, match=r"promotion\.repo"):
        FleetRepository(config)
