"""OCR of scanned PDF pages: pypdfium2 renders the page, tesseract-ocr reads it.

Only pages with no text layer that carry an image are read: a blank page stays blank.
The tesseract program comes from the system (``apt-get install tesseract-ocr``);
without it such a page fails with ``OcrUnavailable`` naming the file and the pages.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence

from core.errors import IngestError, OcrUnavailable

log = logging.getLogger(__name__)

DPI = 300  # tesseract's accuracy falls off below ~200 DPI
MAX_SIDE_PX = 6000  # a poster-sized page is scaled down rather than rendered huge


def pages_with_images(data: bytes, pages: Sequence[int], source: str) -> list[int]:
    """Those of ``pages`` (numbered from 1) that show at least one image."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as pdfium_c

    try:
        pdf = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as e:  # pypdf read it: keep its text, OCR nothing
        log.warning("%s: pdfium cannot open the PDF, no OCR (%s)", source, e)
        return []
    try:
        found = []
        for number in pages:
            page = pdf[number - 1]
            try:
                images = page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,))
                if next(iter(images), None) is not None:
                    found.append(number)
            finally:
                page.close()
        return found
    finally:
        pdf.close()


def ocr_pages(data: bytes, pages: Sequence[int], source: str) -> dict[int, str]:
    """The text tesseract reads on each of ``pages`` (numbered from 1)."""
    if not pages:
        return {}
    import pypdfium2 as pdfium
    import pytesseract

    listed = ", ".join(map(str, pages))
    if shutil.which(pytesseract.pytesseract.tesseract_cmd) is None:
        raise OcrUnavailable(
            f"{source}: page(s) {listed} are scanned images with no text layer and need "
            "OCR, but tesseract-ocr is not installed (apt-get install tesseract-ocr)"
        )
    pdf = pdfium.PdfDocument(data)
    texts: dict[int, str] = {}
    try:
        for number in pages:
            page = pdf[number - 1]
            try:
                width, height = page.get_size()  # in points (1/72 inch)
                scale = min(DPI / 72, MAX_SIDE_PX / max(width, height, 1))
                image = page.render(scale=scale, grayscale=True).to_pil()
            finally:
                page.close()
            try:
                texts[number] = pytesseract.image_to_string(image)
            except pytesseract.TesseractNotFoundError as e:
                raise OcrUnavailable(
                    f"{source}: page {number} needs OCR, but tesseract-ocr is not installed "
                    "(apt-get install tesseract-ocr)"
                ) from e
            except (pytesseract.TesseractError, RuntimeError, OSError) as e:
                raise IngestError(f"{source}: OCR of page {number} failed ({e})") from e
            log.info("%s: page %d read by OCR (%d characters)", source, number, len(texts[number]))
    finally:
        pdf.close()
    return texts
