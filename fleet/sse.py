"""Server-sent events (the WHATWG ``text/event-stream`` format), both directions. Pure code.

The hub streams changes to the TUI and commands to agents as SSE; ``format_event`` writes
one event, ``EventStreamParser`` turns received lines back into events (with the last
event id a client sends as ``Last-Event-ID`` when it reconnects).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

MEDIA_TYPE = "text/event-stream"


@dataclass(frozen=True)
class ServerSentEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None
    retry_ms: int | None = None


def format_event(
    data: str, *, event: str | None = None, id: str | int | None = None, retry_ms: int | None = None
) -> bytes:
    """One event; multi-line data becomes several ``data:`` lines, as the format requires."""
    lines = []
    if id is not None:
        lines.append(f"id: {id}")
    if event:
        lines.append(f"event: {event}")
    if retry_ms is not None:
        lines.append(f"retry: {retry_ms}")
    lines.extend(f"data: {line}" for line in data.split("\n"))
    return ("\n".join(lines) + "\n\n").encode()


def format_comment(text: str = "") -> bytes:
    """A comment line: ignored by clients, keeps idle connections open through proxies."""
    return f": {text}\n\n".encode()


class EventStreamParser:
    """Feed it lines (without line endings); it yields each event when its blank line comes."""

    def __init__(self) -> None:
        self.last_event_id: str | None = None
        self.retry_ms: int | None = None
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, line: str) -> ServerSentEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        elif name == "retry" and value.isdigit():
            self.retry_ms = int(value)
        return None

    def feed_lines(self, lines: Iterable[str]) -> Iterator[ServerSentEvent]:
        for line in lines:
            event = self.feed(line)
            if event is not None:
                yield event

    def _dispatch(self) -> ServerSentEvent | None:
        if self._id is not None:
            self.last_event_id = self._id
        if not self._data and not self._event:
            self._id = None
            return None
        event = ServerSentEvent(
            self._event or "message", "\n".join(self._data), self._id, self.retry_ms
        )
        self._event, self._data, self._id = "", [], None
        return event
