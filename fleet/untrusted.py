"""Text that came from a cluster, a webhook or a repository, made safe to show.

A cluster token is not trusted: what its agent reports (unit names, reasons, messages,
versions, URLs) may carry terminal escape sequences (``\\x1b]0;title\\x07``,
``\\x1b[2J``) or Rich/Textual markup (``[/oops]``, ``[@click=app.quit]x[/]``). This is the
one module that neutralises both, for every place such text is shown:

- ``printable`` replaces control characters (C0, DEL, C1) and the bidirectional
  overrides that reorder what a reader sees, for the CLI and the TUI alike;
- ``literal`` wraps the printable text in a ``rich.text.Text``, which Rich and Textual
  never parse as markup: every widget cell, label, dialog and notification takes one;
- ``escape_markup`` is for the few Textual APIs that only take a markup string.

``control_characters`` is what the report schema uses to refuse such characters in
names, versions and URLs. Pure code: the standard library and Rich.
"""

from __future__ import annotations

import re

from rich.markup import escape as _rich_escape
from rich.text import Text

REPLACEMENT = "\N{REPLACEMENT CHARACTER}"
"""What a control character becomes: visible, and never interpreted by a terminal."""

_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}]")
_CONTROL_EXCEPT_LAYOUT = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]")
"""Newline and tab are layout in a multi-line message, not control."""


def control_characters(text: str) -> list[str]:
    """The distinct control characters in ``text``, as ``\\x1b``-style escapes, sorted."""
    return sorted(
        {
            f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"
            for c in _CONTROL.findall(text)
        }
    )


def printable(text: str, *, multiline: bool = False) -> str:
    """``text`` with every control character replaced by U+FFFD.

    ``multiline`` keeps newlines and tabs (a unit's message under a table); otherwise they
    are replaced too, so that one value stays on one table row.
    """
    pattern = _CONTROL_EXCEPT_LAYOUT if multiline else _CONTROL
    return pattern.sub(REPLACEMENT, text)


def literal(text: str, style: str = "", *, multiline: bool = False) -> Text:
    """``text`` as a Rich ``Text``: shown as written, never parsed as markup."""
    return Text(printable(text, multiline=multiline), style=style)


def escape_markup(text: str, *, multiline: bool = False) -> str:
    """``text`` for an API that parses markup: printable, with ``[`` escaped."""
    return _rich_escape(printable(text, multiline=multiline))
