"""Pure parts of the Git source: semver ranges, ref precedence, known_hosts, URLs, auth."""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct

import pytest
from pydantic import ValidationError

from fleet.source import GitAuth, GitRef, RefKind, SourceConfigError
from fleet.source._libgit2 import scrub
from fleet.source.known_hosts import HostKeyVerdict, KnownHosts, fingerprint, host_lookup_name
from fleet.source.refs import RefMissing, plan_fetch, revision_display
from fleet.source.semver import InvalidRange, newest_matching, parse_range, parse_version
from fleet.source.urls import Transport, parse_git_url

SHA_A = "a" * 40
SHA_B = "b" * 40
SHA_C = "c" * 40


def ssh_blob(key_type: str, body: bytes) -> bytes:
    return struct.pack(">I", len(key_type)) + key_type.encode() + body


def key_line_part(blob: bytes) -> str:
    return base64.b64encode(blob).decode()


ED25519_A = ssh_blob("ssh-ed25519", b"\x00\x00\x00\x20" + b"A" * 32)
ED25519_B = ssh_blob("ssh-ed25519", b"\x00\x00\x00\x20" + b"B" * 32)
RSA_A = ssh_blob("ssh-rsa", b"\x00\x00\x00\x03\x01\x00\x01")


def sha(blob: bytes) -> bytes:
    return hashlib.sha256(blob).digest()


# Semver


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.2.3", (1, 2, 3, ())),
        ("v1.2.3", (1, 2, 3, ())),
        ("v1", (1, 0, 0, ())),
        ("1.2", (1, 2, 0, ())),
        ("1.2.3-rc.1", (1, 2, 3, ("rc", 1))),
        ("1.2.3+build.5", (1, 2, 3, ())),
    ],
)
def test_parse_version_accepts_tags_as_flux_does(
    text: str, expected: tuple[int, int, int, tuple[object, ...]]
) -> None:
    version = parse_version(text)
    assert version is not None
    assert (version.major, version.minor, version.patch, version.prerelease) == expected


@pytest.mark.parametrize("text", ["latest", "release-1", "1.2.3.4", "", "v", "01.2.3"])
def test_parse_version_rejects_non_versions(text: str) -> None:
    assert parse_version(text) is None


def test_version_precedence_follows_semver_spec() -> None:
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.1.0",
        "2.0.0",
    ]
    versions = [parse_version(v) for v in ordered]
    assert versions == sorted(versions)  # type: ignore[type-var]
    assert parse_version("1.0.0+a") == parse_version("1.0.0+b")


@pytest.mark.parametrize(
    ("semver_range", "inside", "outside"),
    [
        (">=1.0.0 <2.0.0", ["1.0.0", "1.9.9"], ["0.9.9", "2.0.0", "1.5.0-rc.1"]),
        (">=1.0.0, <2.0.0", ["1.5.0"], ["2.1.0"]),
        ("~1.2", ["1.2.0", "1.2.9"], ["1.3.0", "1.1.9"]),
        ("~1.2.3", ["1.2.3", "1.2.10"], ["1.2.2", "1.3.0"]),
        ("~1", ["1.0.0", "1.9.0"], ["2.0.0"]),
        ("^1.0", ["1.0.0", "1.99.0"], ["2.0.0", "0.9.0"]),
        ("^1.2.3", ["1.2.3", "1.9.0"], ["1.2.2", "2.0.0"]),
        ("^0.2.3", ["0.2.3", "0.2.9"], ["0.3.0"]),
        ("^0.0.3", ["0.0.3"], ["0.0.4"]),
        ("1.x", ["1.0.0", "1.7.3"], ["2.0.0", "0.1.0"]),
        ("1.2.*", ["1.2.0", "1.2.5"], ["1.3.0"]),
        ("1.2", ["1.2.0", "1.2.7"], ["1.3.0"]),
        ("*", ["0.0.1", "9.9.9"], ["1.0.0-beta"]),
        ("=1.2.3", ["1.2.3"], ["1.2.4"]),
        ("!=1.2.3", ["1.2.4"], ["1.2.3"]),
        (">1.2", ["1.3.0"], ["1.2.9"]),
        ("<=1.2", ["1.2.9"], ["1.3.0"]),
        ("<1.2", ["1.1.9"], ["1.2.0"]),
        ("1.2 - 1.4", ["1.2.0", "1.4.9"], ["1.5.0", "1.1.0"]),
        ("<1.0.0 || >=3.0.0", ["0.5.0", "3.1.0"], ["1.0.0", "2.9.9"]),
        (">= 1.0.0", ["1.0.0"], ["0.9.0"]),
        (">=1.0.0-rc.1 <2.0.0", ["1.0.0-rc.1", "1.0.0-rc.2", "1.5.0"], ["1.5.0-rc.1"]),
        ("^1.0.0-beta.2", ["1.0.0-beta.3", "1.0.0", "1.4.0"], ["1.0.0-beta.1", "1.1.0-beta"]),
    ],
)
def test_range_matching(semver_range: str, inside: list[str], outside: list[str]) -> None:
    parsed = parse_range(semver_range)
    for text in inside:
        version = parse_version(text)
        assert version is not None and parsed.matches(version), f"{text} in {semver_range}"
    for text in outside:
        version = parse_version(text)
        assert version is not None and not parsed.matches(version), f"{text} not in {semver_range}"


@pytest.mark.parametrize("text", ["", "  ", ">=", "foo", ">=1.0 bar", "1.x-beta", "||"])
def test_invalid_ranges_are_rejected(text: str) -> None:
    with pytest.raises(InvalidRange):
        parse_range(text)


def test_newest_matching_ignores_out_of_range_prereleases_and_non_versions() -> None:
    tags = ["v1.0.0", "v1.2.0", "v1.3.0-rc.1", "v2.0.0", "latest", "1.1.0"]
    assert newest_matching(parse_range(">=1.0.0 <2.0.0"), tags) == (
        "v1.2.0",
        parse_version("1.2.0"),
    )
    assert newest_matching(parse_range(">=3"), tags) is None


def test_newest_matching_breaks_ties_by_tag_name() -> None:
    chosen = newest_matching(parse_range("1.x"), ["v1.0.0", "1.0.0"])
    assert chosen is not None and chosen[0] == "v1.0.0"


# Ref precedence and fetch planning


@pytest.mark.parametrize(
    ("ref", "kind"),
    [
        (GitRef(), RefKind.BRANCH),
        (GitRef(branch="dev"), RefKind.BRANCH),
        (GitRef(branch="dev", tag="v1"), RefKind.TAG),
        (GitRef(tag="v1", semver="1.x"), RefKind.SEMVER),
        (GitRef(semver="1.x", name="refs/heads/x"), RefKind.NAME),
        (GitRef(name="refs/heads/x", commit=SHA_A, branch="main"), RefKind.COMMIT),
    ],
)
def test_ref_precedence_is_commit_name_semver_tag_branch(ref: GitRef, kind: RefKind) -> None:
    assert ref.kind is kind


def test_default_ref_follows_main() -> None:
    assert GitRef().effective_branch == "main"
    assert GitRef().describe() == "branch main"


@pytest.mark.parametrize(
    "fields",
    [
        {"commit": "abc123"},
        {"name": "heads/main"},
        {"semver": ">=banana"},
        {"branch": ""},
        {"unknown": "x"},
    ],
)
def test_invalid_refs_are_rejected(fields: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        GitRef.model_validate(fields)


ADVERTISED = {
    "HEAD": SHA_A,
    "refs/heads/main": SHA_A,
    "refs/heads/dev": SHA_B,
    "refs/tags/v1.0.0": SHA_B,
    "refs/tags/v1.1.0": SHA_C,
    "refs/tags/v1.1.0^{}": SHA_A,
    "refs/tags/v2.0.0": SHA_C,
    "refs/pull/7/head": SHA_C,
}


def test_plan_branch_fetches_only_that_branch() -> None:
    plan = plan_fetch(GitRef(branch="dev"), ADVERTISED)
    assert plan.refspecs == ("+refs/heads/dev:refs/heads/dev",)
    assert (plan.remote_ref, plan.advertised_target, plan.label) == ("refs/heads/dev", SHA_B, "dev")


def test_plan_semver_fetches_the_newest_matching_tag_only() -> None:
    plan = plan_fetch(GitRef(semver="^1.0"), ADVERTISED)
    assert plan.refspecs == ("+refs/tags/v1.1.0:refs/tags/v1.1.0",)
    assert plan.label == "v1.1.0"


def test_plan_name_and_tag() -> None:
    assert plan_fetch(GitRef(name="refs/pull/7/head"), ADVERTISED).label == "refs/pull/7/head"
    assert plan_fetch(GitRef(tag="v2.0.0"), ADVERTISED).remote_ref == "refs/tags/v2.0.0"


def test_plan_commit_with_branch_fetches_branch_and_pins() -> None:
    plan = plan_fetch(GitRef(branch="main", commit=SHA_B), ADVERTISED)
    assert plan.refspecs == ("+refs/heads/main:refs/heads/main",)
    assert (plan.pinned_commit, plan.label) == (SHA_B, "main")


def test_plan_bare_commit_fetches_an_advertised_tip_or_all_heads_and_tags() -> None:
    assert plan_fetch(GitRef(commit=SHA_B), ADVERTISED).refspecs == (
        "+refs/heads/dev:refs/heads/dev",
    )
    unadvertised = plan_fetch(GitRef(commit="d" * 40), ADVERTISED)
    assert unadvertised.refspecs == ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
    assert unadvertised.label == ""


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (GitRef(branch="gone"), "branch gone not found"),
        (GitRef(tag="v9"), "tag v9 not found"),
        (GitRef(semver=">=5"), "no tag matches"),
        (GitRef(name="refs/heads/gone"), "ref refs/heads/gone not found"),
        (GitRef(branch="gone", commit=SHA_A), "branch gone not found"),
    ],
)
def test_plan_reports_what_is_missing(ref: GitRef, message: str) -> None:
    with pytest.raises(RefMissing, match=message):
        plan_fetch(ref, ADVERTISED)


def test_revision_display_matches_flux() -> None:
    assert revision_display("main", SHA_A) == f"main@sha1:{SHA_A}"
    assert revision_display("", SHA_A) == f"sha1:{SHA_A}"
    assert revision_display("v1", "e" * 64) == f"v1@sha256:{'e' * 64}"


# known_hosts


def hashed_host(name: str, salt: bytes = b"0123456789abcdefghij") -> str:
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


def test_lookup_name_uses_brackets_for_non_default_ports() -> None:
    assert host_lookup_name("GitHub.com", 22) == "github.com"
    assert host_lookup_name("github.com", None) == "github.com"
    assert host_lookup_name("127.0.0.1", 2222) == "[127.0.0.1]:2222"


def test_plain_entry_trusts_its_key_and_flags_another_as_mismatch() -> None:
    known = KnownHosts.parse(f"github.com,gh ssh-ed25519 {key_line_part(ED25519_A)}\n")
    assert known.check("github.com", 22, sha(ED25519_A)) is HostKeyVerdict.TRUSTED
    assert known.check("gh", 22, sha(ED25519_A)) is HostKeyVerdict.TRUSTED
    assert known.check("github.com", 22, sha(ED25519_B)) is HostKeyVerdict.MISMATCH
    assert known.check("gitlab.com", 22, sha(ED25519_A)) is HostKeyVerdict.UNKNOWN_HOST


def test_non_default_port_needs_bracketed_entry() -> None:
    known = KnownHosts.parse(
        f"git.local ssh-ed25519 {key_line_part(ED25519_A)}\n"
        f"[git.local]:2222 ssh-ed25519 {key_line_part(ED25519_B)}\n"
    )
    assert known.check("git.local", 2222, sha(ED25519_B)) is HostKeyVerdict.TRUSTED
    assert known.check("git.local", 2222, sha(ED25519_A)) is HostKeyVerdict.MISMATCH
    assert known.check("git.local", 2200, sha(ED25519_A)) is HostKeyVerdict.UNKNOWN_HOST


def test_hashed_entries_match_host_and_port() -> None:
    on_port = hashed_host("[10.0.0.1]:2222", b"another-salt-value!!")
    known = KnownHosts.parse(
        f"{hashed_host('github.com')} ssh-ed25519 {key_line_part(ED25519_A)}\n"
        f"{on_port} ssh-rsa {key_line_part(RSA_A)}\n"
    )
    assert known.check("github.com", 22, sha(ED25519_A)) is HostKeyVerdict.TRUSTED
    assert known.check("10.0.0.1", 2222, sha(RSA_A)) is HostKeyVerdict.TRUSTED
    assert known.check("10.0.0.1", 22, sha(RSA_A)) is HostKeyVerdict.UNKNOWN_HOST
    assert known.check("github.com", 22, sha(ED25519_B)) is HostKeyVerdict.MISMATCH


def test_wildcards_negation_and_markers() -> None:
    known = KnownHosts.parse(
        "\n".join(
            [
                "# comment",
                f"*.corp,!evil.corp ssh-ed25519 {key_line_part(ED25519_A)}",
                f"@revoked * ssh-ed25519 {key_line_part(ED25519_B)}",
                f"@cert-authority *.ca ssh-ed25519 {key_line_part(ED25519_A)}",
                "garbage line",
                "host ssh-ed25519 not-base64!",
                f"host ssh-rsa {key_line_part(ED25519_A)}",
            ]
        )
    )
    assert known.skipped_lines == (5, 6, 7)
    assert known.check("git.corp", 22, sha(ED25519_A)) is HostKeyVerdict.TRUSTED
    assert known.check("evil.corp", 22, sha(ED25519_A)) is HostKeyVerdict.UNKNOWN_HOST
    assert known.check("git.corp", 22, sha(ED25519_B)) is HostKeyVerdict.REVOKED
    assert known.check("x.ca", 22, sha(ED25519_A)) is HostKeyVerdict.UNKNOWN_HOST


def test_fingerprint_has_openssh_form() -> None:
    assert fingerprint(b"\x00" * 32) == "SHA256:" + "A" * 43


# URLs


@pytest.mark.parametrize(
    ("url", "transport", "host", "port"),
    [
        ("https://github.com/org/repo.git", Transport.HTTPS, "github.com", 443),
        ("http://127.0.0.1:8080/repo", Transport.HTTP, "127.0.0.1", 8080),
        ("ssh://git@github.com/org/repo.git", Transport.SSH, "github.com", 22),
        ("ssh://git@[::1]:2222/repo", Transport.SSH, "::1", 2222),
        ("git@github.com:org/repo.git", Transport.SSH, "github.com", 22),
        ("git://127.0.0.1:9418/repo", Transport.GIT, "127.0.0.1", 9418),
        ("file:///srv/git/repo", Transport.FILE, None, None),
        ("/srv/git/repo.git", Transport.FILE, None, None),
    ],
)
def test_parse_git_url(url: str, transport: Transport, host: str | None, port: int | None) -> None:
    parsed = parse_git_url(url)
    assert (parsed.transport, parsed.host, parsed.effective_port) == (transport, host, port)


@pytest.mark.parametrize("url", ["", "ftp://host/repo", "not a url", "https:///nohost"])
def test_parse_git_url_rejects_unusable_urls(url: str) -> None:
    with pytest.raises(ValueError):
        parse_git_url(url)


def test_url_password_is_redacted_and_ignored_by_cache_key() -> None:
    with_password = parse_git_url("https://bot:s3cret@example.com/repo.git")
    assert with_password.redacted == "https://bot:***@example.com/repo.git"
    assert with_password.secret_values == ("s3cret",)
    other_password = parse_git_url("https://bot:rotated@example.com/repo.git")
    assert with_password.cache_key == other_password.cache_key
    assert with_password.cache_key != parse_git_url("https://example.com/other.git").cache_key


# Credentials


KNOWN_HOSTS = f"github.com ssh-ed25519 {key_line_part(ED25519_A)}\n"
PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"


def test_secret_data_with_identity_means_ssh_and_password_is_the_passphrase() -> None:
    auth = GitAuth.from_secret_data(
        {"identity": PRIVATE_KEY, "known_hosts": KNOWN_HOSTS, "password": "phrase"}
    )
    assert (auth.identity, auth.passphrase, auth.password) == (PRIVATE_KEY, "phrase", None)
    assert auth.parsed_known_hosts.entries


def test_secret_data_basic_bearer_and_base64() -> None:
    basic = GitAuth.from_secret_data({"username": "bot", "password": "pw", "ignored": "x"})
    assert (basic.username, basic.password) == ("bot", "pw")
    bearer = GitAuth.from_secret_data(
        {"bearerToken": base64.b64encode(b"tok")}, base64_encoded=True
    )
    assert bearer.bearer_token == "tok"


def test_secrets_stay_out_of_repr() -> None:
    auth = GitAuth.basic("bot", "hunter2")
    assert "hunter2" not in repr(auth)
    assert GitAuth.token("tok").username == "git"


@pytest.mark.parametrize(
    "fields",
    [
        {"identity": "not a key", "known_hosts": KNOWN_HOSTS},
        {"known_hosts": "# only a comment\n"},
        {"password": "pw", "bearer_token": "tok"},
    ],
)
def test_unusable_credentials_are_rejected_early(fields: dict[str, str]) -> None:
    with pytest.raises(SourceConfigError):
        GitAuth(**fields)


def test_scrub_hides_secrets_without_mangling_words() -> None:
    assert scrub("token ghp_abcdef rejected", ("ghp_abcdef",)) == "token *** rejected"
    assert scrub("unexpected http status code: 404", ("p",)) == "unexpected http status code: 404"
    assert scrub("user u:p@host", ("p",)) == "user u:***@host"
