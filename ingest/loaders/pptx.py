"""PowerPoint decks (.pptx): one block per slide, the slide number as its page and the
slide title as its heading. Text boxes, tables (row by row), grouped shapes and the
speaker notes are kept, in reading order (top to bottom, left to right)."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import Any

from core.errors import CorruptDocument
from ingest.loaders._base import (
    SEP,
    Builder,
    Loader,
    Meta,
    document_title,
    one_line,
)

PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"


def parse_pptx(data: bytes, source: str) -> tuple[Builder, Meta]:
    from pptx import Presentation

    try:
        deck = Presentation(io.BytesIO(data))
        slides = list(deck.slides)
    except Exception as e:  # python-pptx raises zip, XML and key errors on damaged files
        raise CorruptDocument(f"{source}: the .pptx file is corrupt or unreadable ({e})") from e
    meta: Meta = {"slides": len(slides)}
    title = document_title(lambda: deck.core_properties.title)
    if title:
        meta["title"] = title

    builder = Builder()
    for number, slide in enumerate(slides, start=1):
        try:
            heading, text = _slide_text(slide)
        except Exception as e:
            raise CorruptDocument(f"{source}: slide {number} cannot be read ({e})") from e
        builder.add(text, number, (heading,) if heading else ())
    return builder, meta


def _slide_text(slide: Any) -> tuple[str, str]:
    """The slide's title ("" when none) and its whole text, the title first."""
    title_shape = slide.shapes.title
    title = one_line(title_shape.text_frame.text) if title_shape is not None else ""
    parts = [title] if title else []
    skip = title_shape.shape_id if title_shape is not None else None
    for shape in _in_reading_order(slide.shapes):
        if shape.shape_id == skip:
            continue
        parts.extend(_shape_text(shape))
    if slide.has_notes_slide:
        notes = slide.notes_slide.notes_text_frame
        if notes is not None and notes.text.strip():
            parts.append(f"Notes: {notes.text}")
    return title, SEP.join(p for p in parts if p.strip())


def _in_reading_order(shapes: Iterable[Any]) -> list[Any]:
    return sorted(shapes, key=lambda s: (s.top or 0, s.left or 0))


def _shape_text(shape: Any) -> Iterator[str]:
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
        for inner in _in_reading_order(shape.shapes):
            yield from _shape_text(inner)
    elif getattr(shape, "has_table", False) and shape.has_table:
        rows = ([one_line(cell.text) for cell in row.cells] for row in shape.table.rows)
        yield "\n".join(" | ".join(c for c in cells if c) for cells in rows if any(cells))
    elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        yield shape.text_frame.text


LOADER = Loader(
    PPTX,
    (".pptx",),
    "zip",
    parse_pptx,
    ".pptx file",
    zip_member="ppt/presentation.xml",
    not_valid_hint="not a zip archive",
)
