"""CSV and TSV (.csv, .tsv): one line per row keeping its header names
("Name: Ada; Role: engineer"); the delimiter is sniffed. The file name is the heading."""

from __future__ import annotations

import csv
import io
from pathlib import PurePath

from core.errors import CorruptDocument
from ingest.loaders._base import Builder, Loader, Meta
from ingest.loaders._encoding import decode_text
from ingest.loaders._tables import records

CSV = "text/csv"

_DELIMITERS = ",;\t|"


def parse_csv(data: bytes, source: str) -> tuple[Builder, Meta]:
    text = decode_text(data, source)
    dialect: type[csv.Dialect] | csv.Dialect
    try:
        dialect = csv.Sniffer().sniff(text[: 64 * 1024], delimiters=_DELIMITERS)
    except csv.Error:  # one column, or too little text to tell: the extension decides
        dialect = csv.excel_tab if PurePath(source).suffix.lower() == ".tsv" else csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    try:
        lines = list(records(reader))
    except csv.Error as e:
        raise CorruptDocument(
            f"{source}: the CSV cannot be parsed (line {reader.line_num}: {e})"
        ) from e
    builder = Builder()
    heading = PurePath(source).stem
    builder.add("\n".join([heading, *lines]) if lines else "", None, (heading,))
    return builder, {"rows": len(lines)}


LOADER = Loader(CSV, (".csv", ".tsv"), "text", parse_csv, "CSV file")
