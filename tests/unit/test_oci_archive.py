"""Safe extraction of artifact layers and docker-config credentials: plain data only."""

from __future__ import annotations

import base64
import io
import json
import tarfile
from pathlib import Path

import pytest

from fleet.source import errors, oci


def tar_gz(path: Path, *members: tuple[tarfile.TarInfo, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


def test_regular_files_folders_and_inner_links_are_extracted(tmp_path: Path) -> None:
    archive = tar_gz(
        tmp_path / "ok.tgz",
        (entry("apps", tarfile.DIRTYPE), b""),
        (entry("apps/cm.yaml"), b"kind: ConfigMap\n"),
        (entry("apps/link.yaml", tarfile.SYMTYPE, "cm.yaml"), b""),
    )
    oci.extract_tar_gz(archive, tmp_path / "out", max_size=1 << 20)
    assert (tmp_path / "out" / "apps" / "link.yaml").read_text() == "kind: ConfigMap\n"


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (entry("/etc/evil"), "would land outside"),
        (entry("apps/../../evil"), "would land outside"),
        (entry("link", tarfile.SYMTYPE, "../../etc/passwd"), "leaves the artifact"),
        (entry("link", tarfile.SYMTYPE, "/etc/passwd"), "leaves the artifact"),
        (entry("apps/link", tarfile.SYMTYPE, "../../outside"), "leaves the artifact"),
        (entry("hard", tarfile.LNKTYPE, "../outside"), "leaves the artifact"),
        (entry("dev", tarfile.CHRTYPE), "device or FIFO"),
        (entry("fifo", tarfile.FIFOTYPE), "device or FIFO"),
    ],
)
def test_unsafe_entries_are_refused_and_nothing_is_written(
    tmp_path: Path, member: tarfile.TarInfo, message: str
) -> None:
    archive = tar_gz(tmp_path / "bad.tgz", (entry("first.yaml"), b"a: 1\n"), (member, b"x"))
    with pytest.raises(errors.UnsafeArchive, match=message):
        oci.extract_tar_gz(archive, tmp_path / "out", max_size=1 << 20)
    assert not (tmp_path / "out" / "first.yaml").exists()


def test_layer_larger_than_the_limit_is_refused(tmp_path: Path) -> None:
    archive = tar_gz(tmp_path / "big.tgz", (entry("big"), b"0" * 4096))
    with pytest.raises(errors.UnsafeArchive, match="more than 1000 bytes"):
        oci.extract_tar_gz(archive, tmp_path / "out", max_size=1000)


def test_layer_that_is_no_tar_gz_points_at_copy(tmp_path: Path) -> None:
    (tmp_path / "plain.txt").write_text("not an archive")
    with pytest.raises(errors.SourceConfigError, match="operation: copy"):
        oci.extract_tar_gz(tmp_path / "plain.txt", tmp_path / "out", max_size=1000)


def test_docker_config_entry_is_found_by_host_in_any_key_form() -> None:
    auth = base64.b64encode(b"user:pa:ss").decode()
    for key in ("127.0.0.1:5000", "https://127.0.0.1:5000", "https://127.0.0.1:5000/v1/"):
        config = json.dumps({"auths": {"other:1": {"auth": "eDp5"}, key: {"auth": auth}}})
        assert oci.Credentials.from_docker_config(config, "127.0.0.1:5000") == oci.Credentials(
            "user", "pa:ss"
        )
    assert oci.Credentials.from_docker_config('{"auths": {}}', "127.0.0.1:5000") is None


def test_docker_config_without_auths_names_the_secret_key() -> None:
    with pytest.raises(errors.SourceConfigError, match=r"\.dockerconfigjson: has no `auths`"):
        oci.Credentials.from_docker_config("{}", "h:1")


@pytest.mark.parametrize(
    "url", ["https://h/r", "oci://h", "oci://h/repo:tag", "oci://h/repo@sha256:ab", "oci://h/UP"]
)
def test_malformed_oci_urls_name_spec_url(url: str) -> None:
    with pytest.raises(errors.SourceConfigError, match=r"spec\.url"):
        oci.parse_url(url)


def test_password_is_not_in_the_credentials_repr() -> None:
    assert "hunter2" not in repr(oci.Credentials("u", "hunter2"))
