"""``fleet bootstrap``'s hub flags: refused by name before anything is committed or installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.cli.main import main


def _bootstrap(tmp_path: Path, *flags: str) -> list[str]:
    (tmp_path / "token").write_text("fleet_0123456789ab_" + "x" * 43)
    return ["bootstrap", "--cluster=dev", f"--repo={tmp_path}", *flags]


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--hub-url=http://hub"], ["--hub-admin-token-file", "--cluster-token-file"]),
        (["--hub-admin-token-file={token}"], ["--hub-url"]),
        (["--cluster-token-file={token}"], ["--hub-url"]),
    ],
    ids=["hub-url-alone", "admin-token-without-hub-url", "cluster-token-without-hub-url"],
)
def test_hub_flags_missing_their_partner_are_refused_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], named: list[str]
) -> None:
    token = tmp_path / "token"
    code = main(_bootstrap(tmp_path, *(flag.format(token=token) for flag in flags)))

    assert code == 2
    error = capsys.readouterr().err
    assert error.startswith("✗ ")
    for option in named:
        assert option in error


def test_an_admin_token_and_a_cluster_token_are_mutually_exclusive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = tmp_path / "token"
    flags = [
        "--hub-url=http://hub",
        f"--hub-admin-token-file={token}",
        f"--cluster-token-file={token}",
    ]

    with pytest.raises(SystemExit) as exited:
        main(_bootstrap(tmp_path, *flags))

    assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
