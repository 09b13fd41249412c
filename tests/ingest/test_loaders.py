"""Loaders on real files built in the test: PDF, DOCX, HTML, Markdown, legacy encodings."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from core.errors import (
    CorruptDocument,
    DocumentTooLarge,
    EmptyDocument,
    EncryptedDocument,
    PathNotFound,
    UnsupportedFormat,
)
from core.types import ParsedDocument
from ingest.loaders import (
    DOCX,
    HTML,
    MARKDOWN,
    PDF,
    SUPPORTED_EXTENSIONS,
    TEXT,
    load_bytes,
    load_path,
    normalize_text,
)
from tests.ingest.conftest import encrypt_pdf, make_blank_pdf, make_docx, make_pdf

LIMIT = 1_000_000


def assert_offsets(doc: ParsedDocument) -> None:
    for block in doc.blocks:
        assert doc.text[block.start : block.start + len(block.text)] == block.text


def test_multi_page_pdf_has_one_block_per_page_numbered_from_one() -> None:
    pages = ["Apples grow on trees in the orchard.", "Bananas are yellow.", "Cherries are red."]
    doc = load_bytes(make_pdf(pages), "fruit.pdf", max_bytes=LIMIT)
    assert doc.media_type == PDF
    assert [b.page for b in doc.blocks] == [1, 2, 3]
    assert "Bananas are yellow." in doc.blocks[1].text
    assert doc.metadata["pages"] == 3
    assert_offsets(doc)


def test_pdf_encrypted_with_a_password_is_refused_by_name() -> None:
    data = encrypt_pdf(make_pdf(["Top secret plans."]), "hunter2")
    with pytest.raises(
        EncryptedDocument, match=r"^report\.pdf: the PDF is encrypted with a password"
    ):
        load_bytes(data, "report.pdf", max_bytes=LIMIT)


def test_pdf_encrypted_with_an_empty_password_is_read() -> None:
    data = encrypt_pdf(make_pdf(["Readable although encrypted."]), "")
    doc = load_bytes(data, "open.pdf", max_bytes=LIMIT)
    assert "Readable although encrypted." in doc.text


def test_truncated_pdf_is_corrupt() -> None:
    data = make_pdf(["Some text on a page that will be cut off."] * 2)
    with pytest.raises(CorruptDocument, match=r"^cut\.pdf: the PDF is corrupt"):
        load_bytes(data[: len(data) // 2], "cut.pdf", max_bytes=LIMIT)


def test_pdf_without_text_may_be_scanned() -> None:
    with pytest.raises(EmptyDocument, match=r"scan\.pdf: .*scanned PDF"):
        load_bytes(make_blank_pdf(2), "scan.pdf", max_bytes=LIMIT)


def test_pdf_named_txt_is_detected_by_content() -> None:
    doc = load_bytes(make_pdf(["Hidden PDF content."]), "notes.txt", max_bytes=LIMIT)
    assert doc.media_type == PDF
    assert "Hidden PDF content." in doc.text


def test_docx_headings_become_heading_paths_and_tables_are_kept() -> None:
    doc = load_bytes(make_docx(), "handbook.docx", max_bytes=LIMIT)
    assert doc.media_type == DOCX
    assert doc.metadata["title"] == "Handbook"
    paths = [b.heading_path for b in doc.blocks]
    assert paths == [("Onboarding",), ("Onboarding", "Security"), ("Leave",)]
    security = doc.blocks[1].text
    assert "Badges must be worn" in security
    assert "Library | Third" in security
    assert_offsets(doc)


def test_html_drops_scripts_and_keeps_headings_and_title() -> None:
    html = b"""<!DOCTYPE html><html><head><title>Travel policy</title>
    <style>body { color: red }</style></head><body>
    <script>var secret = "do-not-index";</script><noscript>enable js</noscript>
    <h1>Travel</h1><p>Book trains   when the trip
    is under four hours.</p>
    <h2>Hotels</h2><p>Up to <b>150 EUR</b> a night.<br>Breakfast included.</p>
    <table><tr><th>City</th><th>Cap</th></tr><tr><td>Paris</td><td>180</td></tr></table>
    </body></html>"""
    doc = load_bytes(html, "travel.html", max_bytes=LIMIT)
    assert doc.media_type == HTML
    assert doc.metadata["title"] == "Travel policy"
    assert "do-not-index" not in doc.text and "color: red" not in doc.text
    assert "enable js" not in doc.text
    assert "Book trains when the trip is under four hours." in doc.text
    assert "Up to 150 EUR a night.\nBreakfast included." in doc.text
    assert "Paris | 180" in doc.text
    assert [b.heading_path for b in doc.blocks] == [("Travel",), ("Travel", "Hotels")]
    assert_offsets(doc)


def test_html_is_sniffed_from_content_whatever_the_extension() -> None:
    doc = load_bytes(b"<html><body><p>Hi there</p></body></html>", "page.txt", max_bytes=LIMIT)
    assert doc.media_type == HTML
    assert doc.text == "Hi there"


def test_markdown_heading_paths_front_matter_and_code_fences() -> None:
    md = """---
title: Guide
---
# Setup

Intro text.

## Install

Run the installer.

```bash
# not a heading
```

Usage
-----

Call the API.
"""
    doc = load_bytes(md.encode(), "guide.md", max_bytes=LIMIT)
    assert doc.media_type == MARKDOWN
    assert doc.metadata["title"] == "Guide"
    assert "title: Guide" not in doc.text
    assert [b.heading_path for b in doc.blocks] == [
        ("Setup",),
        ("Setup", "Install"),
        ("Setup", "Usage"),
    ]
    assert "# not a heading" in doc.blocks[1].text
    assert_offsets(doc)


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1"])
def test_legacy_encodings_with_accents_are_decoded(encoding: str) -> None:
    text = "Les élèves ont mangé une crème brûlée à la café. Voilà, c'était très bon."
    doc = load_bytes(text.encode(encoding), "notes.txt", max_bytes=LIMIT)
    assert doc.media_type == TEXT
    assert doc.text == text


def test_boms_are_honoured() -> None:
    text = "Grüße aus Köln"
    for data in (b"\xef\xbb\xbf" + text.encode(), text.encode("utf-16")):
        assert load_bytes(data, "x.txt", max_bytes=LIMIT).text == text


def test_normalisation_nfc_newlines_controls_spaces() -> None:
    raw = "Cafe\u0301  au \tlait\r\nline two\x00\x07\r\n\r\n\r\n\r\nlast   line  \n"
    assert normalize_text(raw) == "Café au lait\nline two\n\nlast line"
    doc = load_bytes(raw.encode(), "n.txt", max_bytes=LIMIT)
    assert doc.text == "Café au lait\nline two\n\nlast line"
    assert doc.blocks[0].start == 0


def test_sha256_is_of_the_raw_bytes() -> None:
    import hashlib

    data = b"hello   world\r\n"
    assert load_bytes(data, "h.txt", max_bytes=LIMIT).sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("data", [b"", b"   \n\t\r\n  "])
def test_empty_or_whitespace_only_is_empty(data: bytes) -> None:
    with pytest.raises(EmptyDocument, match=r"^empty\.txt: "):
        load_bytes(data, "empty.txt", max_bytes=LIMIT)


def test_too_large_is_refused_before_parsing(tmp_path: Path) -> None:
    big = tmp_path / "big.pdf"
    big.write_bytes(b"not even a pdf" * 100)
    with pytest.raises(DocumentTooLarge, match=r"^big\.pdf: the file is .* over the limit"):
        load_path(big, "big.pdf", max_bytes=100)


def test_missing_path() -> None:
    with pytest.raises(PathNotFound, match="gone.txt: no such file or directory"):
        load_path(Path("/nonexistent/gone.txt"), "gone.txt", max_bytes=LIMIT)


def test_binary_and_archives_are_unsupported_naming_the_type() -> None:
    with pytest.raises(UnsupportedFormat, match=r"^blob\.bin: binary content \(application/"):
        load_bytes(bytes(range(256)) * 4, "blob.bin", max_bytes=LIMIT)
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    with pytest.raises(UnsupportedFormat, match=r"image/png"):
        load_bytes(png, "photo.txt", max_bytes=LIMIT)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.txt", "x")
    with pytest.raises(UnsupportedFormat, match=r"^files\.zip: a zip archive"):
        load_bytes(buf.getvalue(), "files.zip", max_bytes=LIMIT)


def test_text_that_starts_like_a_short_binary_signature_is_text() -> None:
    # "BM" is the BMP signature and "ID3" the MP3 one; this SciFact title starts with "BMI".
    for text in ("BMI-1 Autoantibody as a New Potential Biomarker", "ID3 tags hold a title"):
        doc = load_bytes(text.encode(), "abstract.txt", max_bytes=LIMIT)
        assert doc.media_type == "text/plain" and doc.text == text
    bmp = b"BM" + (70).to_bytes(4, "little") + b"\x00" * 4 + (54).to_bytes(4, "little")
    with pytest.raises(UnsupportedFormat, match=r"image/bmp"):
        load_bytes(bmp + b"\x00" * 56, "picture.txt", max_bytes=LIMIT)


def test_wrong_content_for_pdf_or_docx_extension_is_corrupt() -> None:
    with pytest.raises(CorruptDocument, match=r"^fake\.pdf: not a valid PDF"):
        load_bytes(b"just some text", "fake.pdf", max_bytes=LIMIT)
    with pytest.raises(CorruptDocument, match=r"^fake\.docx: "):
        load_bytes(b"just some text", "fake.docx", max_bytes=LIMIT)


def test_supported_extensions() -> None:
    assert {".txt", ".md", ".html", ".htm", ".pdf", ".docx"} <= SUPPORTED_EXTENSIONS


def test_text_under_an_unknown_extension_is_refused_unless_opted_in() -> None:
    """Issue 11: a `.log` (or extensionless) text file is refused naming the supported
    extensions (.jsonl too) and the setting that reads it as plain text."""
    for name, what in (("server.log", "the extension '.log'"), ("NOTES", "without an extension")):
        with pytest.raises(UnsupportedFormat) as e:
            load_bytes(b"Plain words in a log file.", name, max_bytes=LIMIT)
        message = e.value.message
        assert message.startswith(f"{name}: ") and what in message
        assert ".jsonl" in message and ".txt" in message and "ingest.unknown_as_text" in message
    doc = load_bytes(b"Plain words in a log file.", "server.log", max_bytes=LIMIT,
                     unknown_as_text=True)  # fmt: skip
    assert doc.media_type == TEXT and doc.text == "Plain words in a log file."
