"""Scanned PDFs built in the test (a page that is only an image of text) read by OCR.

The OCR test needs the tesseract-ocr program (``apt-get install tesseract-ocr``; `make
install` tries it) and is skipped without it; the missing-program error is checked in a
child process whose PATH has no tesseract, so it runs everywhere.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import EmptyDocument
from ingest.loaders import PDF, load_bytes
from tests.ingest.conftest import make_blank_pdf
from tests.ingest.test_loaders import LIMIT, assert_offsets

SCANNED_LINES = ["The night ferry leaves", "the harbour at ten."]

needs_tesseract = pytest.mark.skipif(
    shutil.which("tesseract") is None,
    reason="the tesseract-ocr program is not installed (apt-get install tesseract-ocr)",
)


def scan_of(lines: list[str]) -> io.BytesIO:
    """A PNG of black text on white, as a 200 DPI scanner would give for a letter page."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("L", (1700, 2200), color=255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=56)
    for n, line in enumerate(lines):
        draw.text((150, 200 + 90 * n), line, fill=0, font=font)
    png = io.BytesIO()
    image.save(png, format="PNG")
    png.seek(0)
    return png


def make_half_scanned_pdf() -> bytes:
    """Page 1 has a text layer, page 2 is only a scanned image, page 3 is blank."""
    from fpdf import FPDF

    pdf = FPDF(format="letter")
    pdf.set_font("helvetica", size=12)
    pdf.add_page()
    pdf.multi_cell(0, 8, "Timetable of the harbour ferries.")
    pdf.add_page()
    pdf.image(scan_of(SCANNED_LINES), x=0, y=0, w=pdf.w, h=pdf.h)
    pdf.add_page()
    return bytes(pdf.output())


@needs_tesseract
def test_scanned_page_is_read_by_ocr_and_keeps_its_page_number() -> None:
    doc = load_bytes(make_half_scanned_pdf(), "ferries.pdf", max_bytes=LIMIT)
    assert doc.media_type == PDF
    assert [b.page for b in doc.blocks] == [1, 2]
    assert doc.blocks[0].text == "Timetable of the harbour ferries."
    assert " ".join(doc.blocks[1].text.split()) == " ".join(SCANNED_LINES)
    assert doc.metadata["ocr_pages"] == "2"
    assert doc.metadata["pages"] == 3
    assert_offsets(doc)


def test_blank_pages_are_not_sent_to_ocr() -> None:
    with pytest.raises(EmptyDocument, match=r"^blank\.pdf: .*not a scanned PDF either"):
        load_bytes(make_blank_pdf(2), "blank.pdf", max_bytes=LIMIT)


def test_without_tesseract_the_error_says_so(tmp_path: Path) -> None:
    scanned = tmp_path / "scan.pdf"
    scanned.write_bytes(make_half_scanned_pdf())
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from core.errors import OcrUnavailable\n"
        "from ingest.loaders import load_path\n"
        "try:\n"
        f"    load_path(Path({str(scanned)!r}), 'scan.pdf', max_bytes=10**7)\n"
        "except OcrUnavailable as e:\n"
        "    print(type(e).__name__, e.code, e.http_status, e)\n"
        "    sys.exit(0)\n"
        "sys.exit('no OcrUnavailable raised')\n"
    )
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={"PATH": str(empty_bin), "OMP_NUM_THREADS": "1"},
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OcrUnavailable ocr_unavailable 422 scan.pdf: page(s) 2 ")
    assert "tesseract-ocr is not installed" in done.stdout
