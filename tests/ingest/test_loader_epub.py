"""EPUB books built in the test with ebooklib: chapters in spine order as headings."""

from __future__ import annotations

import io
import zipfile

import pytest

from core.errors import CorruptDocument, EncryptedDocument
from ingest.loaders import EPUB, load_bytes
from tests.ingest.test_loaders import LIMIT, assert_offsets


def make_epub() -> bytes:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("field-guide-1")
    book.set_title("Field Guide")
    book.set_language("en")
    birds = epub.EpubHtml(title="Birds", file_name="birds.xhtml", lang="en")
    birds.content = (
        "<html><body><h1>Birds</h1><p>The robin sings at dawn.</p>"
        "<h2>Owls</h2><p>Owls hunt at night.</p></body></html>"
    )
    trees = epub.EpubHtml(title="Trees", file_name="trees.xhtml", lang="en")
    trees.content = "<html><body><p>Oaks live for centuries.</p></body></html>"
    book.add_item(birds)
    book.add_item(trees)
    book.toc = [
        epub.Link("birds.xhtml", "Birds", "birds"),
        epub.Link("trees.xhtml#start", "Chapter 2: Trees", "trees"),
    ]
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", trees, birds]  # reading order is the spine's, not the file order
    buf = io.BytesIO()
    epub.write_epub(buf, book)
    return buf.getvalue()


def test_chapters_are_headings_in_spine_order() -> None:
    doc = load_bytes(make_epub(), "guide.epub", max_bytes=LIMIT)
    assert doc.media_type == EPUB
    assert doc.metadata["title"] == "Field Guide"
    assert doc.metadata["chapters"] == 2
    assert [b.heading_path for b in doc.blocks] == [
        ("Chapter 2: Trees",),
        ("Birds",),
        ("Birds", "Owls"),
    ]
    assert doc.blocks[0].text == "Chapter 2: Trees\n\nOaks live for centuries."
    assert doc.blocks[1].text == "Birds\n\nThe robin sings at dawn."
    assert "Owls hunt at night." in doc.blocks[2].text
    assert "Field Guide" not in doc.text  # the navigation page is not read
    assert_offsets(doc)


def test_drm_protected_epub_is_refused() -> None:
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(make_epub())) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        dst.writestr(
            "META-INF/encryption.xml",
            '<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
            '<EncryptedData><CipherData><CipherReference URI="EPUB/birds.xhtml"/>'
            "</CipherData></EncryptedData></encryption>",
        )
    with pytest.raises(EncryptedDocument, match=r"^locked\.epub: the EPUB is DRM-protected"):
        load_bytes(out.getvalue(), "locked.epub", max_bytes=LIMIT)


def test_damaged_epub_is_corrupt() -> None:
    data = make_epub()
    with pytest.raises(CorruptDocument, match=r"^guide\.epub: "):
        load_bytes(data[: len(data) // 2], "guide.epub", max_bytes=LIMIT)
