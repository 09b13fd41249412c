"""Excel workbooks built in the test with openpyxl: each row keeps its header names."""

from __future__ import annotations

import datetime as dt
import io

import pytest

from core.errors import CorruptDocument
from ingest.loaders import XLSX, load_bytes
from tests.ingest.test_loaders import LIMIT, assert_offsets


def make_xlsx() -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    book.properties.title = "Staff list"
    staff = book.active
    staff.title = "Staff"
    staff.append(["Name", "Role", "Started", "Desk"])
    staff.append(["Ada Lovelace", "engineer", dt.datetime(2021, 3, 1), 12.0])
    staff.append([None, None, None, None])  # blank rows are skipped
    staff.append(["Grace Hopper", "admiral", None, 7])
    staff.append(["Alan Turing", "analyst", None, None, "on leave"])  # no header for E
    numbers = book.create_sheet("Budget")
    numbers.append([2024, 1500.5])  # no header row: cells joined as a table row
    numbers.append([2025, "=A1*2"])  # a formula without a cached value reads as empty
    book.create_sheet("Empty")
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def test_rows_keep_their_header_names_and_sheets_are_headings() -> None:
    doc = load_bytes(make_xlsx(), "staff.xlsx", max_bytes=LIMIT)
    assert doc.media_type == XLSX
    assert doc.metadata["title"] == "Staff list"
    assert doc.metadata["sheets"] == 3
    assert [b.heading_path for b in doc.blocks] == [("Staff",), ("Budget",)]
    assert doc.blocks[0].text.split("\n") == [
        "Staff",
        "Name: Ada Lovelace; Role: engineer; Started: 2021-03-01; Desk: 12",
        "Name: Grace Hopper; Role: admiral; Desk: 7",
        "Name: Alan Turing; Role: analyst; column E: on leave",
    ]
    assert doc.blocks[1].text.split("\n") == ["Budget", "2024 | 1500.5", "2025"]
    assert_offsets(doc)


def test_xlsx_detected_by_content() -> None:
    assert load_bytes(make_xlsx(), "export", max_bytes=LIMIT).media_type == XLSX


def test_damaged_xlsx_is_corrupt() -> None:
    data = make_xlsx()
    with pytest.raises(CorruptDocument, match=r"^book\.xlsx: "):
        load_bytes(data[: len(data) // 2], "book.xlsx", max_bytes=LIMIT)
