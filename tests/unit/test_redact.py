"""``fleet.redact.redact_url``: one implementation for every URL the product prints."""

from __future__ import annotations

import pytest

from fleet.redact import redact_url
from fleet.report import SourceReport
from fleet.source.urls import parse_git_url


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("https://bot:pw@example.com/repo.git", "https://bot:***@example.com/repo.git"),
        ("https://ghp_token@github.com/o/r.git", "https://***@github.com/o/r.git"),
        ("https://:pw@example.com/r", "https://:***@example.com/r"),
        ("ssh://git@example.com/r.git", "ssh://git@example.com/r.git"),
        ("https://h/r.git?private_token=t&ref=main", "https://h/r.git?private_token=***&ref=***"),
        ("https://h/r.git#secret", "https://h/r.git#***"),
        ("https://h/r.git", "https://h/r.git"),
        ("git@example.com:o/r.git", "git@example.com:o/r.git"),
        ("/srv/git/fleet", "/srv/git/fleet"),
        ("postgresql://hub:pw@db/fleet", "postgresql://hub:***@db/fleet"),
        ("https://[::1/broken", "***"),
    ],
)
def test_credentials_in_user_info_query_and_fragment_are_redacted(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


def test_the_report_and_git_urls_use_the_same_redaction() -> None:
    url = "https://tok@example.com/r.git?sig=abc#frag"
    source = SourceReport(url=url, ref="main")
    assert source.url == redact_url(url) == parse_git_url(url).redacted
    assert "tok" not in source.url and "abc" not in source.url and "frag" not in source.url
