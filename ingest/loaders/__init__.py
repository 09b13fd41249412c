"""Load a file's bytes into a normalised ``ParsedDocument`` (text + located blocks).

One module per format (``txt``, ``md``, ``html``, ``pdf``, ``docx``, ``pptx``, ``xlsx``,
``csv``, ``epub``), each defining a ``LOADER``; the registry maps media types to them.
The type is detected from the content first (magic bytes, zip members, HTML sniffing),
the file extension second.
Every failure is a typed ``IngestError`` whose message names the file and the problem.

    doc = load_path(Path("report.pdf"), "report.pdf", max_bytes=50_000_000)
    doc.blocks[0].page  # 1
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from core.errors import DocumentTooLarge, EmptyDocument, IngestError, PathNotFound
from core.settings import IngestSettings
from core.types import ParsedDocument
from ingest.loaders._archive import check_archive
from ingest.loaders._base import Loader, human_bytes, normalize_text
from ingest.loaders._detect import detect_media_type
from ingest.loaders._encoding import decode_text
from ingest.loaders._registry import LOADERS, SUPPORTED_EXTENSIONS
from ingest.loaders.csv import CSV
from ingest.loaders.docx import DOCX
from ingest.loaders.epub import EPUB
from ingest.loaders.html import HTML
from ingest.loaders.md import MARKDOWN
from ingest.loaders.pdf import PDF
from ingest.loaders.pptx import PPTX
from ingest.loaders.txt import TEXT
from ingest.loaders.xlsx import XLSX

__all__ = [
    "CSV",
    "DOCX",
    "EPUB",
    "HTML",
    "LOADERS",
    "MARKDOWN",
    "PDF",
    "PPTX",
    "SUPPORTED_EXTENSIONS",
    "TEXT",
    "XLSX",
    "Loader",
    "decode_text",
    "detect_media_type",
    "load_bytes",
    "load_path",
    "normalize_text",
]


_DEFAULTS = IngestSettings()


def load_path(
    path: Path,
    source: str,
    *,
    max_bytes: int,
    max_unzipped_bytes: int = _DEFAULTS.max_unzipped_bytes,
    max_zip_ratio: float = _DEFAULTS.max_zip_ratio,
    unknown_as_text: bool = _DEFAULTS.unknown_as_text,
) -> ParsedDocument:
    """Read and parse one file; its size is checked before it is read."""
    try:
        size = path.stat().st_size
    except FileNotFoundError as e:
        raise PathNotFound(f"{source}: no such file or directory") from e
    except OSError as e:
        raise IngestError(f"{source}: cannot read the file ({e.strerror or e})") from e
    if path.is_dir():
        raise IngestError(f"{source}: is a folder, not a file")
    _check_size(source, size, max_bytes)
    try:
        data = path.read_bytes()
    except FileNotFoundError as e:
        raise PathNotFound(f"{source}: no such file or directory") from e
    except OSError as e:
        raise IngestError(f"{source}: cannot read the file ({e.strerror or e})") from e
    return load_bytes(
        data,
        source,
        max_bytes=max_bytes,
        max_unzipped_bytes=max_unzipped_bytes,
        max_zip_ratio=max_zip_ratio,
        unknown_as_text=unknown_as_text,
    )


def load_bytes(
    data: bytes,
    source: str,
    *,
    max_bytes: int,
    max_unzipped_bytes: int = _DEFAULTS.max_unzipped_bytes,
    max_zip_ratio: float = _DEFAULTS.max_zip_ratio,
    unknown_as_text: bool = _DEFAULTS.unknown_as_text,
) -> ParsedDocument:
    """Parse a file's raw bytes. ``source`` names it in errors and in the document.

    The limits are ``ingest.max_file_bytes``, ``ingest.max_unzipped_bytes`` and
    ``ingest.max_zip_ratio``; a zip-based format is checked against the last two before
    it is parsed. ``unknown_as_text`` is ``ingest.unknown_as_text``.
    """
    _check_size(source, len(data), max_bytes)
    sha = hashlib.sha256(data).hexdigest()
    media_type = detect_media_type(data, source, unknown_as_text=unknown_as_text)
    loader = LOADERS[media_type]
    if loader.kind == "zip":
        check_archive(data, source, max_unzipped_bytes=max_unzipped_bytes, max_ratio=max_zip_ratio)
    builder, meta = loader.parse(data, source)
    text, blocks = builder.build()
    if not text:
        raise EmptyDocument(f"{source}: the document is empty (no text after parsing)")
    return ParsedDocument(
        source=source,
        media_type=media_type,
        sha256=sha,
        text=text,
        blocks=blocks,
        size_bytes=len(data),
        metadata=meta,
    )


def _check_size(source: str, size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise DocumentTooLarge(
            f"{source}: the file is {human_bytes(size)}, over the limit of "
            f"{human_bytes(max_bytes)} (ingest.max_file_bytes)"
        )
