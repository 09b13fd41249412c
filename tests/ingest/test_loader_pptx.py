"""PowerPoint decks built in the test with python-pptx: slides as pages, titles as headings."""

from __future__ import annotations

import io

import pytest

from core.errors import CorruptDocument
from ingest.loaders import PPTX, load_bytes
from tests.ingest.test_loaders import LIMIT, assert_offsets


def make_pptx() -> bytes:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    deck.core_properties.title = "Quarterly review"
    title_and_content = deck.slide_layouts[1]
    first = deck.slides.add_slide(title_and_content)
    first.shapes.title.text = "Revenue"
    first.placeholders[1].text = "Revenue grew 12 percent in the third quarter."
    first.notes_slide.notes_text_frame.text = "Mention the new Lisbon office."
    second = deck.slides.add_slide(deck.slide_layouts[5])  # title only
    second.shapes.title.text = "Head count"
    rows = [("Team", "People"), ("Support", "14"), ("Research", "9")]
    table = second.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(6), Inches(2)).table
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    group = second.shapes.add_group_shape()
    box = group.shapes.add_textbox(Inches(1), Inches(5), Inches(4), Inches(1))
    box.text_frame.text = "Hiring freeze until March."
    untitled = deck.slides.add_slide(deck.slide_layouts[6])  # blank: no title
    untitled.shapes.add_textbox(
        Inches(1), Inches(1), Inches(4), Inches(1)
    ).text_frame.text = "Questions welcome."
    deck.slides.add_slide(deck.slide_layouts[6])  # an empty slide adds no block
    buf = io.BytesIO()
    deck.save(buf)
    return buf.getvalue()


def test_slides_are_pages_and_titles_are_headings() -> None:
    doc = load_bytes(make_pptx(), "review.pptx", max_bytes=LIMIT)
    assert doc.media_type == PPTX
    assert doc.metadata["title"] == "Quarterly review"
    assert doc.metadata["slides"] == 4
    assert [(b.page, b.heading_path) for b in doc.blocks] == [
        (1, ("Revenue",)),
        (2, ("Head count",)),
        (3, ()),
    ]
    first, second, third = (b.text for b in doc.blocks)
    assert first.startswith("Revenue\n\nRevenue grew 12 percent")
    assert "Notes: Mention the new Lisbon office." in first
    assert "Team | People\nSupport | 14\nResearch | 9" in second
    assert "Hiring freeze until March." in second  # inside a group shape
    assert third == "Questions welcome."
    assert_offsets(doc)


def test_pptx_detected_by_content_whatever_the_name() -> None:
    assert load_bytes(make_pptx(), "upload.bin", max_bytes=LIMIT).media_type == PPTX


def test_damaged_pptx_is_corrupt() -> None:
    data = make_pptx()
    with pytest.raises(CorruptDocument, match=r"^deck\.pptx: "):
        load_bytes(data[: len(data) // 2], "deck.pptx", max_bytes=LIMIT)
    with pytest.raises(CorruptDocument, match=r"^deck\.pptx: not a valid \.pptx file"):
        load_bytes(b"plain words", "deck.pptx", max_bytes=LIMIT)
