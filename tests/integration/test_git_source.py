"""GitSource against real servers: git daemon, smart HTTP with basic auth, and sshd."""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pygit2
import pytest

from fleet.source import (
    GitAuth,
    GitRef,
    GitSource,
    HostKeyMismatch,
    RefNotFound,
    SourceAuthError,
    SourceConfigError,
    SourceUnavailable,
    UnknownHostKey,
    set_network_timeouts,
)
from tests.gitservers import (
    GitDaemon,
    SmartHTTP,
    SSHKeyPair,
    SSHServer,
    WorkingClone,
    generate_ssh_key,
    git_daemon,
    git_env,
    served_repo,
    silent_server,
    smart_http,
    ssh_server,
    sshd_unavailable_reason,
)
from tests.support import require

pytestmark = pytest.mark.timeout(60)

HTTP_USER = "alice"
HTTP_PASSWORD = "correct-horse-battery"


@pytest.fixture
def served(tmp_path: Path) -> Path:
    root = tmp_path / "served"
    root.mkdir()
    return root


@pytest.fixture
def repo(served: Path) -> WorkingClone:
    clone = served_repo(served, "app.git")
    clone.commit({"app.yaml": "replicas: 1\n"}, message="first")
    clone.push("main")
    return clone


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def daemon(served: Path) -> Iterator[GitDaemon]:
    with git_daemon(served) as running:
        yield running


@pytest.fixture
def http(served: Path) -> Iterator[SmartHTTP]:
    with smart_http(served, HTTP_USER, HTTP_PASSWORD) as running:
        yield running


@pytest.fixture
def deploy_key(tmp_path: Path) -> SSHKeyPair:
    return generate_ssh_key(tmp_path / "keys" / "deploy")


ENCRYPTED_KEY_PASSPHRASE = "open sesame"


@pytest.fixture
def encrypted_key(tmp_path: Path) -> SSHKeyPair:
    return generate_ssh_key(tmp_path / "keys" / "encrypted", passphrase=ENCRYPTED_KEY_PASSPHRASE)


@pytest.fixture
def sshd(served: Path, deploy_key: SSHKeyPair, encrypted_key: SSHKeyPair) -> Iterator[SSHServer]:
    require(sshd_unavailable_reason())
    with ssh_server(served, f"{deploy_key.public}\n{encrypted_key.public}") as running:
        yield running


def mirror_refs(source: GitSource) -> set[str]:
    listing = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname)"],
        cwd=source.mirror_path,
        env=git_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return set(listing.stdout.split())


def test_branch_follow_picks_up_new_commit(
    repo: WorkingClone, daemon: GitDaemon, cache: Path
) -> None:
    source = GitSource(daemon.url("app.git"), GitRef(branch="main"), cache_dir=cache)
    first = source.fetch()
    assert first.revision.commit == repo.head()
    assert first.revision.display == f"main@sha1:{repo.head()}"
    assert first.changed and first.previous is None
    assert first.duration_seconds > 0

    assert not source.fetch().changed

    second_sha = repo.commit({"app.yaml": "replicas: 2\n"}, message="scale")
    repo.push("main")
    second = source.fetch()
    assert second.revision.commit == second_sha
    assert second.previous == first.revision
    assert second.changed


def test_fetch_brings_only_the_followed_ref(
    repo: WorkingClone, daemon: GitDaemon, cache: Path
) -> None:
    repo.switch("feature", create=True)
    repo.commit({"feature.yaml": "on: true\n"})
    repo.push("feature")
    repo.tag("v9.9.9")
    source = GitSource(daemon.url("app.git"), cache_dir=cache)
    source.fetch()
    assert {r for r in mirror_refs(source) if not r.startswith("refs/fleet/")} == {
        "refs/heads/main"
    }


def test_tag_resolves_annotated_and_lightweight_tags_to_commits(
    repo: WorkingClone, daemon: GitDaemon, cache: Path
) -> None:
    tagged = repo.head()
    repo.tag("v1.0.0", message="release 1.0.0")
    repo.tag("light")
    repo.commit({"app.yaml": "replicas: 3\n"})
    repo.push("main")

    annotated = GitSource(daemon.url("app.git"), GitRef(tag="v1.0.0"), cache_dir=cache).fetch()
    assert annotated.revision.commit == tagged
    assert annotated.revision.display == f"v1.0.0@sha1:{tagged}"
    light = GitSource(daemon.url("app.git"), GitRef(tag="light"), cache_dir=cache).fetch()
    assert light.revision.commit == tagged


def test_missing_tag_raises_ref_not_found(
    repo: WorkingClone, daemon: GitDaemon, cache: Path
) -> None:
    source = GitSource(daemon.url("app.git"), GitRef(tag="v404"), cache_dir=cache)
    with pytest.raises(RefNotFound, match="tag v404 not found") as raised:
        source.fetch()
    assert raised.value.url == daemon.url("app.git")
    assert source.last_revision() is None


def test_semver_picks_newest_matching_tag_and_ignores_out_of_range(
    repo: WorkingClone, daemon: GitDaemon, cache: Path
) -> None:
    shas = {}
    for tag in ("v1.0.0", "v1.2.0", "v1.3.0-rc.1", "v2.0.0", "not-a-version"):
        shas[tag] = repo.commit({"version": tag}, message=tag)
        repo.push("main")
        repo.tag(tag, message=tag if tag.endswith("0") else None)

    def pick(semver: str) -> str:
        source = GitSource(daemon.url("app.git"), GitRef(semver=semver), cache_dir=cache)
        return source.fetch().revision.display

    assert pick(">=1.0.0 <2.0.0") == f"v1.2.0@sha1:{shas['v1.2.0']}"
    assert pick("^1.0") == f"v1.2.0@sha1:{shas['v1.2.0']}"
    assert pick("~1.0") == f"v1.0.0@sha1:{shas['v1.0.0']}"
    assert pick(">=1.3.0-rc.0 <2.0.0") == f"v1.3.0-rc.1@sha1:{shas['v1.3.0-rc.1']}"
    assert pick("*") == f"v2.0.0@sha1:{shas['v2.0.0']}"
    with pytest.raises(RefNotFound, match="no tag matches"):
        GitSource(daemon.url("app.git"), GitRef(semver=">=3"), cache_dir=cache).fetch()


def test_pinned_commit_wins_over_branch_and_must_be_on_it(
    repo: WorkingClone, daemon: GitDaemon, cache: Path
) -> None:
    pinned = repo.head()
    repo.commit({"app.yaml": "replicas: 5\n"})
    repo.push("main")

    on_branch = GitSource(
        daemon.url("app.git"), GitRef(branch="main", commit=pinned), cache_dir=cache
    ).fetch()
    assert on_branch.revision.display == f"main@sha1:{pinned}"
    bare_pin = GitSource(daemon.url("app.git"), GitRef(commit=pinned), cache_dir=cache).fetch()
    assert bare_pin.revision.display == f"sha1:{pinned}"

    repo.switch("other", create=True)
    elsewhere = repo.commit({"other.yaml": "x: 1\n"})
    repo.push("other")
    not_on_main = GitSource(
        daemon.url("app.git"), GitRef(branch="main", commit=elsewhere), cache_dir=cache
    )
    with pytest.raises(RefNotFound, match=f"commit {elsewhere} not found"):
        not_on_main.fetch()
    found_anywhere = GitSource(daemon.url("app.git"), GitRef(commit=elsewhere), cache_dir=cache)
    assert found_anywhere.fetch().revision.commit == elsewhere
    # Now the commit is in the shared mirror, yet still not on main.
    with pytest.raises(RefNotFound, match="is not part of refs/heads/main"):
        not_on_main.fetch()


def test_export_writes_tree_with_symlinks_and_exec_bits(
    repo: WorkingClone, daemon: GitDaemon, cache: Path, tmp_path: Path
) -> None:
    repo.commit(
        {"deploy/app.yaml": "kind: Deployment\n", "bin/render.sh": "#!/bin/sh\necho hi\n"},
        executable=("bin/render.sh",),
        symlinks={"current": "deploy/app.yaml", "escape": "../../../etc/passwd"},
    )
    repo.push("main")
    source = GitSource(daemon.url("app.git"), cache_dir=cache)
    revision = source.fetch().revision
    dest = tmp_path / "checkout"

    source.export(revision, dest)

    assert sorted(os.listdir(dest)) == ["app.yaml", "bin", "current", "deploy", "escape"]
    assert (dest / "deploy/app.yaml").read_text() == "kind: Deployment\n"
    assert os.readlink(dest / "current") == "deploy/app.yaml"
    assert os.readlink(dest / "escape") == "../../../etc/passwd"
    assert (dest / "bin/render.sh").stat().st_mode & stat.S_IXUSR
    assert not (dest / "app.yaml").stat().st_mode & stat.S_IXUSR
    with pytest.raises(FileExistsError):
        source.export(revision, dest)


def test_force_pushed_branch_is_followed(
    repo: WorkingClone, daemon: GitDaemon, cache: Path
) -> None:
    base = repo.head()
    repo.commit({"app.yaml": "replicas: 2\n"}, message="to be rewritten")
    repo.push("main")
    source = GitSource(daemon.url("app.git"), cache_dir=cache)
    source.fetch()

    repo.reset_hard(base)
    rewritten = repo.commit({"app.yaml": "replicas: 9\n"}, message="rewritten")
    repo.push("main", force=True)

    assert source.fetch().revision.commit == rewritten


def test_deleted_branch_raises_ref_not_found_and_keeps_last_revision(
    repo: WorkingClone, daemon: GitDaemon, cache: Path, tmp_path: Path
) -> None:
    repo.switch("release", create=True)
    repo.commit({"release.yaml": "ok: true\n"})
    repo.push("release")
    source = GitSource(daemon.url("app.git"), GitRef(branch="release"), cache_dir=cache)
    good = source.fetch().revision

    repo.delete_remote_branch("release")
    with pytest.raises(RefNotFound, match="branch release not found"):
        source.fetch()

    assert source.last_revision() == good
    assert "refs/heads/release" not in mirror_refs(source)
    source.export(good, tmp_path / "still-there")
    assert (tmp_path / "still-there" / "release.yaml").read_text() == "ok: true\n"


def test_server_down_raises_unavailable_and_last_revision_survives_restart(
    repo: WorkingClone, daemon: GitDaemon, cache: Path, tmp_path: Path
) -> None:
    source = GitSource(daemon.url("app.git"), cache_dir=cache)
    good = source.fetch().revision
    daemon.stop()

    with pytest.raises(SourceUnavailable) as raised:
        source.fetch()
    assert raised.value.duration_seconds is not None
    assert source.last_revision() == good

    restarted = GitSource(daemon.url("app.git"), cache_dir=cache)
    assert restarted.last_revision() == good
    restarted.export(good, tmp_path / "offline")
    assert (tmp_path / "offline" / "app.yaml").exists()


def test_hung_server_times_out_as_unavailable(cache: Path) -> None:
    set_network_timeouts(connect_seconds=5, read_seconds=0.5)
    try:
        with silent_server() as port:
            source = GitSource(f"git://127.0.0.1:{port}/app.git", cache_dir=cache)
            with pytest.raises(SourceUnavailable, match="timed out") as raised:
                source.fetch()
        # The read timeout ended it (the connection was accepted, the read gave up), with
        # the timeouts as configured: the fetch neither overrode them nor used the connect one.
        assert raised.value.detail == "could not read from socket: timed out"
        assert pygit2.settings.server_timeout == 500
        assert pygit2.settings.server_connect_timeout == 5000
        assert raised.value.duration_seconds is not None
    finally:
        set_network_timeouts()


def test_ssh_without_known_hosts_is_a_config_error(cache: Path) -> None:
    with pytest.raises(SourceConfigError, match="known_hosts"):
        GitSource("git@github.com:org/repo.git", cache_dir=cache)


def test_local_path_and_file_url(repo: WorkingClone, cache: Path) -> None:
    for url in (str(repo.bare), f"file://{repo.bare}"):
        assert GitSource(url, cache_dir=cache).fetch().revision.commit == repo.head()


def test_http_basic_auth_fetches(repo: WorkingClone, http: SmartHTTP, cache: Path) -> None:
    auth = GitAuth.basic(HTTP_USER, HTTP_PASSWORD)
    result = GitSource(http.url("app.git"), auth=auth, cache_dir=cache).fetch()
    assert result.revision.commit == repo.head()


def test_http_token_as_password_and_bearer_token(
    repo: WorkingClone, served: Path, cache: Path
) -> None:
    with smart_http(served, "git", "ghp_token123") as server:
        source = GitSource(
            server.url("app.git"), auth=GitAuth.token("ghp_token123"), cache_dir=cache
        )
        assert source.fetch().revision.commit == repo.head()
    with smart_http(served, None, None, bearer_token="bearer-xyz") as server:
        source = GitSource(
            server.url("app.git"), auth=GitAuth.bearer("bearer-xyz"), cache_dir=cache
        )
        assert source.fetch().revision.commit == repo.head()


def test_http_wrong_password_raises_auth_error_without_the_password(
    repo: WorkingClone, http: SmartHTTP, cache: Path
) -> None:
    wrong = "hunter2-not-the-password"
    source = GitSource(http.url("app.git"), auth=GitAuth.basic(HTTP_USER, wrong), cache_dir=cache)
    with pytest.raises(SourceAuthError) as raised:
        source.fetch()
    assert wrong not in str(raised.value) and wrong not in repr(raised.value)
    assert "401" in " ".join(http.requests)

    in_url = http.url("app.git").replace("http://", f"http://{HTTP_USER}:{wrong}@")
    with pytest.raises(SourceAuthError) as raised:
        GitSource(in_url, cache_dir=cache).fetch()
    assert wrong not in str(raised.value)
    assert raised.value.url.startswith(f"http://{HTTP_USER}:***@")


def test_http_without_credentials_raises_auth_error(
    repo: WorkingClone, http: SmartHTTP, cache: Path
) -> None:
    with pytest.raises(SourceAuthError, match="none of a usable kind"):
        GitSource(http.url("app.git"), cache_dir=cache).fetch()


def test_ssh_fetch_with_known_host(
    repo: WorkingClone, sshd: SSHServer, deploy_key: SSHKeyPair, cache: Path
) -> None:
    auth = GitAuth.ssh(deploy_key.private, sshd.known_hosts_line)
    result = GitSource(sshd.url("app.git"), auth=auth, cache_dir=cache).fetch()
    assert result.revision.commit == repo.head()


def test_ssh_hashed_known_hosts_and_encrypted_key_from_files(
    repo: WorkingClone, sshd: SSHServer, encrypted_key: SSHKeyPair, tmp_path: Path, cache: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(sshd.known_hosts_line + "\n")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(known_hosts)], check=True)
    assert known_hosts.read_text().startswith("|1|")
    auth = GitAuth.ssh(encrypted_key.private_path, known_hosts, passphrase=ENCRYPTED_KEY_PASSPHRASE)
    result = GitSource(sshd.url("app.git"), auth=auth, cache_dir=cache).fetch()
    assert result.revision.commit == repo.head()

    wrong = GitAuth.ssh(encrypted_key.private_path, known_hosts, passphrase="not it")
    with pytest.raises(SourceAuthError, match="failed to authenticate"):
        GitSource(sshd.url("app.git"), auth=wrong, cache_dir=cache).fetch()


def test_ssh_changed_host_key_is_refused(
    repo: WorkingClone, sshd: SSHServer, deploy_key: SSHKeyPair, tmp_path: Path, cache: Path
) -> None:
    impostor = generate_ssh_key(tmp_path / "keys" / "impostor").public.split()
    known_hosts = f"[127.0.0.1]:{sshd.port} {impostor[0]} {impostor[1]}\n"
    source = GitSource(
        sshd.url("app.git"), auth=GitAuth.ssh(deploy_key.private, known_hosts), cache_dir=cache
    )
    with pytest.raises(HostKeyMismatch, match="does not match known_hosts"):
        source.fetch()
    assert source.last_revision() is None


def test_ssh_unknown_host_is_refused(
    repo: WorkingClone, sshd: SSHServer, deploy_key: SSHKeyPair, cache: Path
) -> None:
    # The right key, but listed for port 22 only: ssh looks up "[127.0.0.1]:<port>".
    key_type, key = sshd.host_key.public.split()[:2]
    known_hosts = f"127.0.0.1 {key_type} {key}\n"
    source = GitSource(
        sshd.url("app.git"), auth=GitAuth.ssh(deploy_key.private, known_hosts), cache_dir=cache
    )
    with pytest.raises(UnknownHostKey, match="is not in known_hosts"):
        source.fetch()


def test_ssh_unauthorized_key_raises_auth_error(
    repo: WorkingClone, sshd: SSHServer, tmp_path: Path, cache: Path
) -> None:
    stranger = generate_ssh_key(tmp_path / "keys" / "stranger")
    auth = GitAuth.ssh(stranger.private, sshd.known_hosts_line)
    with pytest.raises(SourceAuthError, match="rejected the credentials"):
        GitSource(sshd.url("app.git"), auth=auth, cache_dir=cache).fetch()
