"""``redact_url``: a URL safe to log, report and show, whatever credentials it carried.

The one implementation for Git remotes, database URLs and the source URL a report
carries. Credentials hide in three places of a URL: the user info (``user:password@``,
or a token alone as the user name of an HTTPS URL, as GitHub and GitLab accept), the
query string (``?private_token=...``, presigned ``X-Amz-Signature=...``) and, more
rarely, the fragment. Pure code.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "***"

_NAMED_USER_SCHEMES = ("ssh", "git+ssh", "ssh+git")
"""Schemes whose user name is an account (``ssh://git@host``), not a credential."""


def redact_url(url: str) -> str:
    """``https://user:secret@host/x?token=t#f`` -> ``https://user:***@host/x?token=***#***``.

    A user name without a password is kept for SSH (``git``) and replaced for every other
    scheme (``https://<token>@host``). Text that is not a URL with a scheme (a local path,
    ``git@host:path``) is returned unchanged: it has nowhere to carry a password.
    """
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
        username, password = parts.username, parts.password
    except ValueError:
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        host = netloc.rpartition("@")[2]
        if password is not None:
            user = username if username else ""
            netloc = f"{user}:{REDACTED}@{host}"
        elif parts.scheme.lower() in _NAMED_USER_SCHEMES:
            netloc = f"{username}@{host}"
        else:
            netloc = f"{REDACTED}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(key, REDACTED) for key, _ in pairs], safe="*") or REDACTED
    fragment = REDACTED if parts.fragment else ""
    return urlunsplit(parts._replace(netloc=netloc, query=query, fragment=fragment))
