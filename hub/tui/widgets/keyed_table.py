"""``KeyedTable``: a DataTable kept equal to a list of keyed rows by the smallest edits."""

from __future__ import annotations

from collections.abc import Sequence

from textual.widgets import DataTable

from hub.tui import view


class KeyedTable(DataTable[view.Cell]):
    """``sync`` updates changed cells in place, appends new keys and drops gone ones, so a
    reload of the same data leaves the cursor and scroll position alone."""

    def __init__(self, columns: Sequence[view.Column], *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row")
        self._columns = tuple(columns)
        self._cells: dict[str, tuple[view.Cell, ...]] = {}

    def on_mount(self) -> None:
        for column in self._columns:
            self.add_column(column.label, width=column.width or None, key=column.key)

    @property
    def selected(self) -> str | None:
        if not self.row_count:
            return None
        return self.coordinate_to_cell_key(self.cursor_coordinate)[0].value

    def sync(self, rows: Sequence[tuple[str, tuple[view.Cell, ...]]]) -> None:
        wanted = dict(rows)
        for key in [key for key in self._cells if key not in wanted]:
            self.remove_row(key)
            del self._cells[key]
        for key, cells in rows:
            old = self._cells.get(key)
            if old is None:
                self.add_row(*cells, key=key)
            elif old != cells:
                for column, before, after in zip(self._columns, old, cells, strict=True):
                    if before != after:
                        self.update_cell(key, column.key, after)
            self._cells[key] = cells
