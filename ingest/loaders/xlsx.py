"""Excel workbooks (.xlsx, .xlsm): one block per sheet, headed by the sheet's name, one
line per row keeping its header names ("Name: Ada; Role: engineer").

Read with openpyxl in read-only mode (rows stream; the file is never fully expanded
into cell objects) and with cached formula values, not formulas.
"""

from __future__ import annotations

import io

from core.errors import CorruptDocument
from ingest.loaders._base import Builder, Loader, Meta, normalize_text, one_line
from ingest.loaders._tables import records

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def parse_xlsx(data: bytes, source: str) -> tuple[Builder, Meta]:
    from openpyxl import load_workbook
    from openpyxl.utils import get_column_letter

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises zip, XML, key and value errors on damage
        raise CorruptDocument(f"{source}: the .xlsx file is corrupt or unreadable ({e})") from e
    meta: Meta = {}
    builder = Builder()
    try:
        title = workbook.properties.title if workbook.properties is not None else None
        if title and title.strip():
            meta["title"] = normalize_text(title)
        sheets = workbook.worksheets
        meta["sheets"] = len(sheets)
        for sheet in sheets:
            name = one_line(sheet.title)
            rows = sheet.iter_rows(values_only=True)
            lines = list(records(rows, lambda i: f"column {get_column_letter(i + 1)}"))
            if lines:
                builder.add("\n".join([name, *lines]), None, (name,))
    except Exception as e:
        raise CorruptDocument(f"{source}: the .xlsx file is corrupt or unreadable ({e})") from e
    finally:
        workbook.close()
    return builder, meta


LOADER = Loader(
    XLSX,
    (".xlsx", ".xlsm"),
    "zip",
    parse_xlsx,
    ".xlsx file",
    zip_member="xl/workbook.xml",
    not_valid_hint="not a zip archive",
)
