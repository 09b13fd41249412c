"""PDF (.pdf): one block per page, numbered from 1; the info dictionary's title.

Scanned pages (no text layer, an image) are read by OCR (see ``_ocr``) and listed in
``ocr_pages``. Encrypted PDFs open when their user password is empty; others are refused
by name. One unreadable page is logged and listed in ``unreadable_pages``, not fatal.
"""

from __future__ import annotations

import io
import logging

from core.errors import CorruptDocument, EmptyDocument, EncryptedDocument, IngestError
from ingest.loaders._base import Builder, Loader, Meta, normalize_text
from ingest.loaders._ocr import ocr_pages, pages_with_images

log = logging.getLogger(__name__)

PDF = "application/pdf"


def looks_like_pdf(data: bytes) -> bool:
    return b"%PDF-" in data[:1024]


def parse_pdf(data: bytes, source: str) -> tuple[Builder, Meta]:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                decrypted = reader.decrypt("")
            except DependencyError as e:
                raise EncryptedDocument(
                    f"{source}: the PDF is encrypted (AES) and reading it needs the "
                    "'cryptography' package: pip install cryptography"
                ) from e
            if not decrypted:
                raise EncryptedDocument(f"{source}: the PDF is encrypted with a password")
        pages = list(reader.pages)
    except IngestError:
        raise
    except FileNotDecryptedError as e:
        raise EncryptedDocument(f"{source}: the PDF is encrypted with a password") from e
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError) as e:
        raise CorruptDocument(f"{source}: the PDF is corrupt or unreadable ({e})") from e
    except Exception as e:  # pypdf raises many kinds on damaged files
        raise CorruptDocument(f"{source}: the PDF is corrupt or unreadable ({e!r})") from e

    texts: dict[int, str] = {}
    failed: list[int] = []
    for number, page in enumerate(pages, start=1):
        try:
            texts[number] = normalize_text(page.extract_text() or "")
        except Exception as e:  # one damaged page must not lose the others
            log.warning("%s: page %d: text extraction failed: %r", source, number, e)
            failed.append(number)
    if pages and len(failed) == len(pages):
        raise CorruptDocument(f"{source}: the PDF is corrupt: no page could be read")
    # A page with no text layer but an image is a scan: OCR reads it.
    no_text = [number for number, text in texts.items() if not text]
    scanned = pages_with_images(data, no_text, source) if no_text else []
    texts.update(ocr_pages(data, scanned, source))
    builder = Builder()
    for number, text in texts.items():
        builder.add(text, number, ())
    if builder.empty:
        if scanned:
            raise EmptyDocument(
                f"{source}: the PDF has no extractable text ({len(pages)} page(s)); OCR of "
                f"its {len(scanned)} scanned page(s) found no text either"
            )
        raise EmptyDocument(
            f"{source}: the PDF has no extractable text ({len(pages)} page(s)) and it is "
            "not a scanned PDF either (no page images to OCR)"
        )
    meta: Meta = {"pages": len(pages)}
    if failed:
        meta["unreadable_pages"] = ", ".join(map(str, failed))
    if scanned:
        meta["ocr_pages"] = ", ".join(map(str, scanned))
    try:
        info = reader.metadata
        title = info.title if info is not None else None
    except Exception:  # damaged info dictionary: the text is what matters
        title = None
    if isinstance(title, str) and title.strip():
        meta["title"] = normalize_text(title)
    return builder, meta


LOADER = Loader(
    PDF,
    (".pdf",),
    "binary",
    parse_pdf,
    "PDF",
    sniff=looks_like_pdf,
    not_valid_hint="no %PDF- header",
)
