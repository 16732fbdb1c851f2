"""``ConnectionStatus``: whether what is on screen is live, always in view."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from fleet import untrusted
from hub.tui.feed import Connection

STATE_STYLE: dict[str, tuple[str, str, str]] = {
    "connecting": ("◌", "connecting", "yellow"),
    "connected": ("●", "connected", "green"),
    "reconnecting": ("◌", "reconnecting", "yellow"),
    "unreachable": ("✖", "hub unreachable", "bold red"),
    "refused": ("✖", "refused by the hub", "bold red"),
    "read-only": ("●", "read-only", "cyan"),
}


class ConnectionStatus(Static):
    connection: reactive[Connection] = reactive(Connection("connecting"))
    """Kept in step with the app's ``connection``."""

    def on_mount(self) -> None:
        self.watch(self.app, "connection", self._follow, init=True)

    def _follow(self, connection: Connection) -> None:
        self.connection = connection

    def watch_connection(self, connection: Connection) -> None:
        self.set_class(connection.state != "connected", "-degraded")
        self.update(render_connection(connection, self.app.sub_title))


def render_connection(connection: Connection, where: str) -> Text:
    symbol, words, style = STATE_STYLE[connection.state]
    text = Text.assemble((f"{symbol} {words}", style))
    if connection.state in ("connected", "read-only", "connecting"):
        text.append(f"  {untrusted.printable(where)}", style="bright_black")
    else:
        attempt = f" (attempt {connection.attempt})" if connection.attempt else ""
        detail = untrusted.printable(connection.detail)
        text.append(f"{attempt}  {detail}", style="bright_black")
    return text
