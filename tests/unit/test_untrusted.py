"""``fleet.untrusted``: control characters replaced, markup never parsed. Plain data."""

from __future__ import annotations

import pytest
from rich.console import Console
from rich.text import Text

from fleet import untrusted
from fleet.cli import output


@pytest.mark.parametrize(
    "raw",
    ["\x1b]0;title\x07", "\x1b[2J", "\x9b31m", "a\x00b", "\x7f", "rtl\u202eevil", "\u2066x\u2069"],
)
def test_printable_replaces_every_control_character(raw: str) -> None:
    shown = untrusted.printable(raw)
    assert not untrusted.control_characters(shown)
    assert untrusted.REPLACEMENT in shown


def test_printable_keeps_layout_only_when_multiline() -> None:
    assert untrusted.printable("a\n\tb") == "a\ufffd\ufffdb"
    assert untrusted.printable("a\n\tb\x1b", multiline=True) == "a\n\tb\ufffd"


def test_control_characters_names_them_as_escapes() -> None:
    assert untrusted.control_characters("a\x1b[2J\x07\x1b") == ["\\x07", "\\x1b"]
    assert untrusted.control_characters("\u202e") == ["\\u202e"]
    assert untrusted.control_characters("plain [markup] text") == []


@pytest.mark.parametrize("markup", ["[/oops]", "[@click=app.quit]x[/]", "[bold]b", "a\\[b]"])
def test_literal_is_shown_as_written(markup: str) -> None:
    text = untrusted.literal(markup)
    assert isinstance(text, Text) and text.plain == markup and not text.spans
    console = Console(width=80, record=True, color_system=None)
    console.print(text)
    assert console.export_text().rstrip("\n") == markup
    assert Text.from_markup(untrusted.escape_markup(markup)).plain == markup


def test_cli_tables_replace_control_characters() -> None:
    import io

    stream = io.StringIO()
    output.print_table(["name", "agent"], [["evil", "1\x1b]0;owned\x07"]], stream)
    assert "\x1b" not in stream.getvalue() and "\x07" not in stream.getvalue()
    assert "1\ufffd]0;owned\ufffd" in stream.getvalue()
