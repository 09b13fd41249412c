"""CSV and TSV files written in the test: sniffed delimiters, rows with header names."""

from __future__ import annotations

import pytest

from ingest.loaders import CSV, TEXT, load_bytes
from tests.ingest.test_loaders import LIMIT, assert_offsets


@pytest.mark.parametrize(
    ("name", "delimiter"), [("staff.csv", ","), ("staff.csv", ";"), ("staff.tsv", "\t")]
)
def test_rows_keep_header_names_whatever_the_delimiter(name: str, delimiter: str) -> None:
    rows = [["Name", "Role", "Note"], ["Ada", "engineer", "wrote, in 1843, the first program"]]
    rows.append(["Grace", "admiral", ""])
    lines = [delimiter.join(f'"{c}"' if delimiter in c else c for c in r) for r in rows]
    doc = load_bytes("\r\n".join(lines).encode(), name, max_bytes=LIMIT)
    assert doc.media_type == CSV
    assert doc.blocks[0].heading_path == ("staff",)
    assert doc.text.split("\n") == [
        "staff",
        "Name: Ada; Role: engineer; Note: wrote, in 1843, the first program",
        "Name: Grace; Role: admiral",
    ]
    assert doc.metadata["rows"] == 2
    assert_offsets(doc)


def test_numeric_first_row_is_data_not_a_header() -> None:
    doc = load_bytes(b"2024,1500\n2025,1720\n", "budget.csv", max_bytes=LIMIT)
    assert doc.text.split("\n") == ["budget", "2024 | 1500", "2025 | 1720"]


def test_single_column_and_legacy_encoding() -> None:
    data = "Ville\nMontréal\nQuébec\n".encode("cp1252")
    doc = load_bytes(data, "villes.csv", max_bytes=LIMIT)
    assert doc.text.split("\n") == ["villes", "Ville: Montréal", "Ville: Québec"]


def test_a_csv_without_its_extension_is_plain_text() -> None:
    assert load_bytes(b"a,b\n1,2\n", "data.txt", max_bytes=LIMIT).media_type == TEXT
