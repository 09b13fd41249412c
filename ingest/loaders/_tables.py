"""Rows of a table (a spreadsheet, a CSV file) as lines that keep their header names:
``Name: Ada; Role: engineer``. A row read alone still says what each value is."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Iterator, Sequence

from ingest.loaders._base import one_line

_NUMBER = re.compile(r"^[-+]?(\d[\d,_ ]*)?(\.\d+)?([eE][-+]?\d+)?%?$")


def cell_text(value: object) -> str:
    """A cell value as text: whole floats without ".0", dates without a midnight time."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, dt.datetime) and value.time() == dt.time(0):
        return value.date().isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return one_line(str(value))


def looks_like_header(row: Sequence[object]) -> bool:
    """A header row: every non-empty cell is text that is not a number, all distinct."""
    names = [one_line(v) for v in row if isinstance(v, str) and v.strip()]
    if not names or len(names) != sum(1 for v in row if v is not None and str(v).strip()):
        return False  # a number, a date or a bool among the cells: data, not names
    return len(set(names)) == len(names) and not any(_NUMBER.match(n) for n in names)


def column_number(index: int) -> str:
    return f"column {index + 1}"


def records(
    rows: Iterable[Sequence[object]],
    column_name: Callable[[int], str] = column_number,
) -> Iterator[str]:
    """One line per non-empty row. The first non-empty row is the header when it
    ``looks_like_header``; a cell without a header name is named by ``column_name``.
    Without a header, cells are joined with `` | `` (as tables in other formats)."""
    header: list[str] | None = None
    header_row = ""
    data_rows = 0
    for row in rows:
        cells = [cell_text(v) for v in row]
        if not any(cells):
            continue
        if header is None:
            if looks_like_header(row):
                header = cells
                header_row = " | ".join(c for c in cells if c)
                continue
            header = []
        data_rows += 1
        if not header:
            yield " | ".join(c for c in cells if c)
            continue
        pairs = (
            f"{header[i] if i < len(header) and header[i] else column_name(i)}: {value}"
            for i, value in enumerate(cells)
            if value
        )
        yield "; ".join(pairs)
    if header_row and not data_rows:  # a header alone is still the table's text
        yield header_row
