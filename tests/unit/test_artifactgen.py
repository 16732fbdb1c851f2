"""ArtifactGenerator copy semantics on plain temporary folders."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet.core import artifactgen as ag


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.fixture
def sources(tmp_path: Path) -> dict[str, ag.SourceTree]:
    repo = tree(
        tmp_path / "repo",
        {
            "deploy/app.yaml": "kind: A\n",
            "deploy/sub/svc.yaml": "kind: S\n",
            "deploy/sub/README.md": "docs\n",
            "deploy/tests/t.yaml": "kind: T\n",
            "charts/podinfo/values-prod.yaml": "replicas: 3\nimage: {tag: v2}\n",
            "top.yaml": "kind: Top\n",
        },
    )
    chart = tree(
        tmp_path / "chart",
        {
            "Chart.yaml": "name: podinfo\n",
            "values.yaml": "replicas: 1\nimage: {repo: ghcr, tag: v1}\nlist: [1, 2]\n",
            "templates/d.yaml": "kind: D\n",
        },
    )
    return {
        "repo": ag.SourceTree(repo, "main@sha1:" + "a" * 40),
        "chart": ag.SourceTree(chart, "6.0.0@sha256:" + "b" * 64),
    }


def run(
    tmp_path: Path,
    sources: dict[str, ag.SourceTree],
    copy: list[dict[str, Any]],
    revision: str = "",
) -> ag.GeneratedArtifact:
    spec = ag.parse_spec(
        {
            "sources": [
                {"alias": "repo", "kind": "GitRepository", "name": "r"},
                {"alias": "chart", "kind": "OCIRepository", "name": "c"},
            ],
            "artifacts": [
                {"name": "out", "copy": copy, **({"revision": revision} if revision else {})}
            ],
        }
    )
    return ag.build(spec.artifacts[0], 0, sources, tmp_path / "staging")


def test_recursive_contents_pattern_drops_its_prefix(
    tmp_path: Path, sources: dict[str, ag.SourceTree]
) -> None:
    out = run(tmp_path, sources, [{"from": "@repo/deploy/**", "to": "@artifact/app/"}])
    assert out.files == (
        "app/app.yaml",
        "app/sub/README.md",
        "app/sub/svc.yaml",
        "app/tests/t.yaml",
    )


def test_double_star_then_suffix_matches_at_every_depth_keeping_paths(
    tmp_path: Path, sources: dict[str, ag.SourceTree]
) -> None:
    out = run(tmp_path, sources, [{"from": "@repo/deploy/**/*.yaml", "to": "@artifact/x/"}])
    assert out.files == ("x/deploy/app.yaml", "x/deploy/sub/svc.yaml", "x/deploy/tests/t.yaml")


def test_single_star_stays_in_one_folder(tmp_path: Path, sources: dict[str, ag.SourceTree]) -> None:
    out = run(tmp_path, sources, [{"from": "@repo/*.yaml", "to": "@artifact/"}])
    assert out.files == ("top.yaml",)


def test_file_to_a_name_and_into_a_folder(
    tmp_path: Path, sources: dict[str, ag.SourceTree]
) -> None:
    out = run(
        tmp_path,
        sources,
        [
            {"from": "@repo/top.yaml", "to": "@artifact/renamed.yaml"},
            {"from": "@repo/top.yaml", "to": "@artifact/dir/"},
        ],
    )
    assert out.files == ("dir/top.yaml", "renamed.yaml")


def test_folder_is_copied_under_its_own_name(
    tmp_path: Path, sources: dict[str, ag.SourceTree]
) -> None:
    out = run(tmp_path, sources, [{"from": "@repo/deploy/sub", "to": "@artifact/into"}])
    assert out.files == ("into/sub/README.md", "into/sub/svc.yaml")


def test_excludes_match_paths_names_and_below_the_prefix(
    tmp_path: Path, sources: dict[str, ag.SourceTree]
) -> None:
    out = run(
        tmp_path,
        sources,
        [{"from": "@repo/deploy/**", "to": "@artifact/", "exclude": ["*.md", "tests/**"]}],
    )
    assert out.files == ("app.yaml", "sub/svc.yaml")


def test_later_copies_overwrite_and_merge_deep_merges(
    tmp_path: Path, sources: dict[str, ag.SourceTree]
) -> None:
    out = run(
        tmp_path,
        sources,
        [
            {"from": "@chart/**", "to": "@artifact/"},
            {
                "from": "@repo/charts/podinfo/values-prod.yaml",
                "to": "@artifact/values.yaml",
                "strategy": "Merge",
            },
        ],
        revision="@chart",
    )
    values = yaml.safe_load((out.path / "values.yaml").read_text())
    assert values == {"replicas": 3, "image": {"repo": "ghcr", "tag": "v2"}, "list": [1, 2]}
    assert out.revision == sources["chart"].revision
    overwritten = run(
        tmp_path / "again",
        sources,
        [
            {"from": "@chart/**", "to": "@artifact/"},
            {"from": "@repo/charts/podinfo/values-prod.yaml", "to": "@artifact/values.yaml"},
        ],
    )
    assert yaml.safe_load((overwritten.path / "values.yaml").read_text()) == {
        "replicas": 3,
        "image": {"tag": "v2"},
    }


def test_content_revision_follows_the_files(
    tmp_path: Path, sources: dict[str, ag.SourceTree]
) -> None:
    first = run(tmp_path / "a", sources, [{"from": "@repo/top.yaml", "to": "@artifact/t.yaml"}])
    same = run(tmp_path / "b", sources, [{"from": "@repo/top.yaml", "to": "@artifact/t.yaml"}])
    assert first.revision == same.revision
    assert first.revision.startswith("latest@sha256:") and len(first.revision) == 14 + 64
    (sources["repo"].path / "top.yaml").write_text("kind: Changed\n")
    changed = run(tmp_path / "c", sources, [{"from": "@repo/top.yaml", "to": "@artifact/t.yaml"}])
    assert changed.revision != first.revision


@pytest.mark.parametrize(
    ("copy", "field", "message"),
    [
        ({"from": "@repo/../etc/passwd", "to": "@artifact/"}, "copy[0].from", "climbs out"),
        ({"from": "@repo//etc/passwd", "to": "@artifact/"}, "copy[0].from", "absolute path"),
        ({"from": "repo/x", "to": "@artifact/"}, "copy[0].from", "@alias/pattern"),
        ({"from": "@nope/x", "to": "@artifact/"}, "copy[0].from", "not in spec.sources"),
        ({"from": "@repo/x", "to": "@artifact/../up"}, "copy[0].to", "stay within"),
        ({"from": "@repo/x", "to": "out/"}, "copy[0].to", "must start with @artifact/"),
        ({"from": "@repo/x", "to": "@artifact/", "strategy": "Squash"}, "copy[0].strategy", "not"),
        (
            {"from": "@repo/{" + ",".join("abcdefghijklmnopqrstuvw") + "}", "to": "@artifact/"},
            "copy[0].from",
            "alternatives",
        ),
    ],
)
def test_bad_rules_name_their_field(
    tmp_path: Path,
    sources: dict[str, ag.SourceTree],
    copy: dict[str, Any],
    field: str,
    message: str,
) -> None:
    with pytest.raises(ag.ArtifactGenError, match=message) as caught:
        run(tmp_path, sources, [copy])
    assert caught.value.field == f"spec.artifacts[0].{field}"


def test_missing_source_and_no_match_are_errors_unless_optional(
    tmp_path: Path, sources: dict[str, ag.SourceTree]
) -> None:
    with pytest.raises(
        ag.ArtifactGenError, match=r"copy\[0\]\.from: 'nothing.yaml' does not exist"
    ):
        run(tmp_path, sources, [{"from": "@repo/nothing.yaml", "to": "@artifact/"}])
    with pytest.raises(ag.ArtifactGenError, match=r"copy\[1\]\.from: no files match"):
        run(
            tmp_path / "b",
            sources,
            [
                {"from": "@repo/top.yaml", "to": "@artifact/"},
                {"from": "@repo/**/*.json", "to": "@artifact/"},
            ],
        )
    out = run(
        tmp_path / "c",
        sources,
        [
            {"from": "@repo/top.yaml", "to": "@artifact/"},
            {"from": "@repo/*.json", "to": "@artifact/", "optional": True},
        ],
    )
    assert out.files == ("top.yaml",)


def test_symlinks_leaving_the_source_are_refused(
    tmp_path: Path, sources: dict[str, ag.SourceTree]
) -> None:
    secret = tree(tmp_path / "outside", {"passwd": "root:x:0:0\n"})
    os.symlink(secret / "passwd", sources["repo"].path / "deploy" / "leak.yaml")
    with pytest.raises(
        ag.ArtifactGenError, match=r"copy\[0\]\.from: 'deploy/leak.yaml' is a symlink"
    ):
        run(tmp_path, sources, [{"from": "@repo/deploy/**", "to": "@artifact/"}])
    os.symlink(secret, sources["repo"].path / "linked")
    with pytest.raises(ag.ArtifactGenError, match="symlink that leaves the source"):
        run(tmp_path / "b", sources, [{"from": "@repo/linked", "to": "@artifact/"}])
    assert not (tmp_path / "b" / "staging" / "linked" / "passwd").exists()


def test_duplicate_aliases_and_names_are_refused() -> None:
    with pytest.raises(ag.ArtifactGenError, match=r"spec\.sources\[1\]\.alias: 'a' is used twice"):
        ag.parse_spec(
            {
                "sources": [
                    {"alias": "a", "kind": "GitRepository", "name": "x"},
                    {"alias": "a", "kind": "GitRepository", "name": "y"},
                ],
                "artifacts": [{"name": "o", "copy": [{"from": "@a/x", "to": "@artifact/"}]}],
            }
        )
