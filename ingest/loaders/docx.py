"""Word documents (.docx): heading styles become heading paths; tables kept row by row.

The "Title" style (or the core properties' title) is the document title.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

from core.errors import CorruptDocument
from ingest.loaders._base import (
    Builder,
    Loader,
    Meta,
    Sections,
    document_title,
    one_line,
)

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

_HEADING_STYLE = re.compile(r"^heading\s*(\d)$", re.I)


def parse_docx(data: bytes, source: str) -> tuple[Builder, Meta]:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
        items = list(document.iter_inner_content())
    except Exception as e:  # python-docx raises zip, XML and key errors on damaged files
        raise CorruptDocument(f"{source}: the .docx file is corrupt or unreadable ({e})") from e
    meta: Meta = {}
    title = document_title(lambda: document.core_properties.title)
    if title:
        meta["title"] = title

    sections = Sections()
    for item in items:
        if isinstance(item, Paragraph):
            level = _heading_level(item)
            if level is None:
                sections.paragraph(item.text)
            elif level == 0:  # the "Title" style: the document title
                meta.setdefault("title", one_line(item.text))
                sections.heading(1, item.text)
            else:
                sections.heading(level, item.text)
        elif isinstance(item, Table):
            for row in _rows(item):
                sections.paragraph(row)
    builder = Builder()
    sections.into(builder)
    return builder, meta


def _heading_level(paragraph: object) -> int | None:
    try:
        name = paragraph.style.name if paragraph.style is not None else ""  # type: ignore[attr-defined]
    except Exception:
        return None
    if not name:
        return None
    if name.lower() == "title":
        return 0
    m = _HEADING_STYLE.match(name.strip())
    return int(m.group(1)) if m else None


def _rows(table: object) -> Iterator[str]:
    for row in table.rows:  # type: ignore[attr-defined]
        cells: list[str] = []
        previous = None
        for cell in row.cells:
            if cell._tc is previous:  # a merged cell repeats across the row
                continue
            previous = cell._tc
            text = one_line(cell.text)
            if text:
                cells.append(text)
        if cells:
            yield " | ".join(cells)


LOADER = Loader(
    DOCX,
    (".docx",),
    "zip",
    parse_docx,
    ".docx file",
    zip_member="word/document.xml",
    not_valid_hint="not a zip archive",
)
