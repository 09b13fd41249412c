"""Load a file's bytes into a normalised ``ParsedDocument`` (text + located blocks).

The type is detected from the content first (magic bytes, HTML sniffing), the file
extension second. Every failure is a typed ``IngestError`` whose message names the
file and the problem.

    doc = load_path(Path("report.pdf"), "report.pdf", max_bytes=50_000_000)
    doc.blocks[0].page  # 1
"""

from __future__ import annotations

import codecs
import hashlib
import io
import logging
import re
import unicodedata
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath

from core.errors import (
    CorruptDocument,
    DocumentTooLarge,
    EmptyDocument,
    EncryptedDocument,
    IngestError,
    PathNotFound,
    UnsupportedFormat,
)
from core.types import MetadataValue, ParsedDocument, TextBlock

log = logging.getLogger(__name__)

TEXT = "text/plain"
MARKDOWN = "text/markdown"
HTML = "text/html"
PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"

_EXTENSION_TYPES: dict[str, str] = {
    ".txt": TEXT,
    ".text": TEXT,
    ".md": MARKDOWN,
    ".markdown": MARKDOWN,
    ".html": HTML,
    ".htm": HTML,
    ".pdf": PDF,
    ".docx": DOCX,
}
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(_EXTENSION_TYPES)
_SUPPORTED_LIST = ", ".join(sorted(SUPPORTED_EXTENSIONS))


# -- entry points ---------------------------------------------------------------------------


def load_path(path: Path, source: str, *, max_bytes: int) -> ParsedDocument:
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
    return load_bytes(data, source, max_bytes=max_bytes)


def load_bytes(data: bytes, source: str, *, max_bytes: int) -> ParsedDocument:
    """Parse a file's raw bytes. ``source`` names it in errors and in the document."""
    _check_size(source, len(data), max_bytes)
    sha = hashlib.sha256(data).hexdigest()
    media_type = detect_media_type(data, source)
    if media_type == PDF:
        builder, meta = _parse_pdf(data, source)
    elif media_type == DOCX:
        builder, meta = _parse_docx(data, source)
    elif media_type == HTML:
        builder, meta = _parse_html(data, source)
    elif media_type == MARKDOWN:
        builder, meta = _parse_markdown(decode_text(data, source))
    else:
        builder, meta = _parse_plain(decode_text(data, source))
    text, blocks = builder.build()
    if not text:
        if media_type == PDF:
            pages = meta.get("pages", 0)
            raise EmptyDocument(
                f"{source}: the PDF has no extractable text ({pages} page(s)); "
                "it may be a scanned PDF of images, which needs OCR first"
            )
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
            f"{source}: the file is {_human_bytes(size)}, over the limit of "
            f"{_human_bytes(max_bytes)} (ingest.max_file_bytes)"
        )


def _human_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    size, unit = n / 1024, "KiB"
    for bigger in ("MiB", "GiB", "TiB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:.1f} {unit} ({n:,} bytes)"


# -- type detection -------------------------------------------------------------------------

_HTML_SNIFF = re.compile(rb"^\s*(<!--.*?-->\s*)*(<!doctype\s+html|<html[\s>])", re.I | re.S)
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: it starts with the same bytes
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_ZIP_KINDS = (
    ("word/document.xml", None),  # docx
    ("xl/workbook.xml", "an Excel workbook (.xlsx)"),
    ("ppt/presentation.xml", "a PowerPoint deck (.pptx)"),
    ("mimetype", "an OpenDocument / EPUB file"),
)


def detect_media_type(data: bytes, source: str) -> str:
    """The media type from the content first, the extension of ``source`` second."""
    if b"%PDF-" in data[:1024]:
        return PDF
    if data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return _detect_zip(data, source)
    head = _strip_bom(data[:4096])
    if _HTML_SNIFF.match(head):
        return HTML
    ext = PurePath(source).suffix.lower()
    by_ext = _EXTENSION_TYPES.get(ext)
    if not _has_bom(data):
        binary_type = _binary_type(data)
        if binary_type is not None:
            raise UnsupportedFormat(
                f"{source}: binary content ({binary_type}) is not a supported format; "
                f"supported: {_SUPPORTED_LIST}"
            )
    if by_ext == PDF:
        raise CorruptDocument(f"{source}: not a valid PDF (no %PDF- header)")
    if by_ext == DOCX:
        raise CorruptDocument(f"{source}: not a valid .docx file (not a zip archive)")
    return by_ext or TEXT  # unknown extension, decodable text: read it as plain text


def _detect_zip(data: bytes, source: str) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        if PurePath(source).suffix.lower() == ".docx":
            raise CorruptDocument(f"{source}: the .docx file is corrupt ({e})") from e
        raise UnsupportedFormat(
            f"{source}: a damaged zip archive is not a supported format ({e})"
        ) from e
    for member, kind in _ZIP_KINDS:
        if member in names:
            if kind is None:
                return DOCX
            raise UnsupportedFormat(
                f"{source}: {kind} is not a supported format; supported: {_SUPPORTED_LIST}"
            )
    raise UnsupportedFormat(
        f"{source}: a zip archive (application/zip) is not a supported format; "
        f"supported: {_SUPPORTED_LIST}"
    )


def _has_bom(data: bytes) -> bool:
    return any(data.startswith(bom) for bom, _ in _BOMS)


def _strip_bom(head: bytes) -> bytes:
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            try:
                return head.decode(encoding, errors="ignore").encode("utf-8")
            except (UnicodeDecodeError, LookupError):
                return head[len(bom) :]
    return head


def _binary_type(data: bytes) -> str | None:
    """A name for the content's type when it is binary (not text), else None."""
    import filetype

    sample = data[:8192]
    kind = filetype.guess(sample)
    # Some signatures are two or three printable bytes ("BM" for BMP, "ID3" for MP3), so
    # a text that starts "BMI-1 is ..." matches one: clean text overrules such a guess.
    if kind is not None and not _clean_text(sample):
        return str(kind.mime)
    nuls = sample.count(b"\x00")
    if nuls == 0:
        return None
    if nuls > max(1, len(sample) // 100):  # text has no NULs; a stray one is stripped later
        return "application/octet-stream"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "application/octet-stream"
    return None


def _clean_text(sample: bytes) -> bool:
    """True when ``sample`` (a file's head) is UTF-8 text with no NULs and next to no
    control characters; binary formats fail on their header or data bytes."""
    if b"\x00" in sample:
        return False
    try:  # the head may end inside a multi-byte character: decode incrementally
        text = codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        return False
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\n\r\f\v")
    return controls <= len(text) // 1000


# -- text decoding and normalising ------------------------------------------------------


def decode_text(data: bytes, source: str) -> str:
    """Bytes → str: a BOM names the encoding, then UTF-8, then charset-normalizer's guess."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as e:
                raise CorruptDocument(
                    f"{source}: the text is not valid {encoding} despite its byte-order mark"
                ) from e
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if b"\x00" in data[:8192]:
        raise UnsupportedFormat(
            f"{source}: binary content (application/octet-stream) is not a supported format"
        )
    from charset_normalizer import from_bytes

    matches = from_bytes(data)
    best = matches.best()
    if best is None:
        raise UnsupportedFormat(
            f"{source}: the content is not text in any known encoding "
            "(binary content, application/octet-stream)"
        )
    # Short Western European texts fit several code pages equally well; among equally
    # good guesses prefer the most common legacy encoding, Windows-1252 (a superset of
    # Latin-1's printable characters).
    for match in matches:
        if (
            match.encoding in _WESTERN
            and match.chaos <= best.chaos + 0.01
            and match.coherence >= best.coherence - 0.01
        ):
            best = match
            break
    log.debug("%s: decoded as %s", source, best.encoding)
    return str(best)


_WESTERN = ("cp1252", "latin_1", "iso8859_15")


# C0/C1 controls except tab and newline; zero-width and BOM characters.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\u200b\u200e\u200f\ufeff]")
_LINE_BREAKS = re.compile(r"\r\n|[\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_INNER_SPACES = re.compile(r"(?<=\S)[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]{2,}|\u00a0")
_TRAILING_SPACES = re.compile(r"[ \t]+$", re.M)
_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")


def normalize_text(text: str) -> str:
    """NFC, \\n line ends, no control characters, single inner spaces, ≤1 blank line, stripped.

    Leading indentation is kept (code and nested lists read better with it).
    """
    text = unicodedata.normalize("NFC", text)
    text = _LINE_BREAKS.sub("\n", text)
    text = _CONTROL.sub("", text)
    text = _INNER_SPACES.sub(" ", text)
    text = _TRAILING_SPACES.sub("", text)
    text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


# -- building a document -----------------------------------------------------------------

_SEP = "\n\n"


class _Builder:
    """Appends normalised blocks, joined by a blank line, keeping each block's offset exact."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._blocks: list[TextBlock] = []
        self._pos = 0

    def add(self, text: str, page: int | None = None, heading_path: tuple[str, ...] = ()) -> None:
        text = normalize_text(text)
        if not text:
            return
        if self._parts:
            self._parts.append(_SEP)
            self._pos += len(_SEP)
        self._blocks.append(
            TextBlock(text=text, start=self._pos, page=page, heading_path=heading_path)
        )
        self._parts.append(text)
        self._pos += len(text)

    def build(self) -> tuple[str, tuple[TextBlock, ...]]:
        return "".join(self._parts), tuple(self._blocks)


@dataclass
class _Section:
    """Paragraphs under one heading path, gathered into one block."""

    heading_path: tuple[str, ...]
    paragraphs: list[str]


class _Sections:
    """Turns a stream of headings and paragraphs into one block per heading section."""

    def __init__(self) -> None:
        self.sections: list[_Section] = [_Section((), [])]
        self._stack: list[tuple[int, str]] = []

    def heading(self, level: int, text: str) -> None:
        text = " ".join(text.split())
        if not text:
            return
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, text))
        self.sections.append(_Section(tuple(t for _, t in self._stack), [text]))

    def paragraph(self, text: str) -> None:
        if text.strip():
            self.sections[-1].paragraphs.append(text)

    def into(self, builder: _Builder) -> None:
        for section in self.sections:
            builder.add(
                _SEP.join(normalize_text(p) for p in section.paragraphs), None, section.heading_path
            )


# -- plain text and markdown ------------------------------------------------------------


def _parse_plain(raw: str) -> tuple[_Builder, dict[str, MetadataValue]]:
    builder = _Builder()
    builder.add(raw)
    return builder, {}


_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_LIST_OR_QUOTE = re.compile(r"^ {0,3}([-*+>]|\d+[.)])(\s|$)")


def _parse_markdown(raw: str) -> tuple[_Builder, dict[str, MetadataValue]]:
    """One block per heading section; ATX (#) and setext (===, ---) headings.

    Block text is the markdown itself (headings included), so offsets map to the source.
    """
    text = normalize_text(raw)
    lines = text.split("\n")
    meta: dict[str, MetadataValue] = {}
    front_matter_end = _front_matter_end(lines)
    if front_matter_end:  # YAML front matter: metadata, not text
        for line in lines[1 : front_matter_end - 1]:
            key, sep, value = line.partition(":")
            if sep and key.strip().lower() == "title" and value.strip():
                meta["title"] = value.strip().strip("\"'")
        lines = lines[front_matter_end:]
        text = "\n".join(lines)
    # (line index where the section starts, heading level, heading text)
    starts: list[tuple[int, int, str]] = []
    fence: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        fence_match = _FENCE.match(line)
        if fence is not None:
            if (
                fence_match
                and fence_match.group(1)[0] == fence[0]
                and len(fence_match.group(1)) >= len(fence)
            ):
                fence = None
        elif fence_match:
            fence = fence_match.group(1)
        elif (m := _ATX.match(line)) is not None:
            starts.append((i, len(m.group(1)), (m.group(2) or "").strip()))
        elif (
            i + 1 < len(lines)
            and line.strip()
            and (i == 0 or not lines[i - 1].strip())  # a one-line paragraph
            and not _LIST_OR_QUOTE.match(line)
            and (underline := _SETEXT.match(lines[i + 1])) is not None
        ):
            starts.append((i, 1 if underline.group(1)[0] == "=" else 2, line.strip()))
            i += 1
        i += 1

    builder = _Builder()
    line_offsets = [0]
    for line in lines:
        line_offsets.append(line_offsets[-1] + len(line) + 1)
    stack: list[tuple[int, str]] = []
    bounds = [(0, 0, "")] + starts
    for n, (line_no, level, heading) in enumerate(bounds):
        if n > 0:
            while stack and stack[-1][0] >= level:
                stack.pop()
            if heading:
                stack.append((level, heading))
                if level == 1 and "title" not in meta:
                    meta["title"] = heading
        end_line = bounds[n + 1][0] if n + 1 < len(bounds) else len(lines)
        chunk = text[line_offsets[line_no] : line_offsets[end_line]]
        builder.add(chunk, None, tuple(h for _, h in stack))
    return builder, meta


def _front_matter_end(lines: list[str]) -> int:
    """Index of the first line after a leading YAML front-matter block (0 when none)."""
    if lines and lines[0].strip() == "---":
        for i in range(1, min(len(lines), 200)):
            if lines[i].strip() in ("---", "..."):
                return i + 1
    return 0


# -- HTML -----------------------------------------------------------------------------------

_DROP_TAGS = ("script", "style", "noscript", "template", "head", "svg", "iframe", "object")
_WHITESPACE = re.compile(r"\s+")
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "caption", "center", "dd",
        "details", "dialog", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer",
        "form", "header", "hgroup", "hr", "html", "li", "main", "menu", "nav", "ol", "p",
        "section", "summary", "table", "tbody", "tfoot", "thead", "ul",
    }
)  # fmt: skip


def _parse_html(data: bytes, source: str) -> tuple[_Builder, dict[str, MetadataValue]]:
    from bs4 import BeautifulSoup

    try:
        soup = BeautifulSoup(data, "lxml")
    except Exception as e:
        raise CorruptDocument(f"{source}: the HTML cannot be parsed ({e})") from e
    meta: dict[str, MetadataValue] = {}
    if soup.title is not None:
        title = " ".join(soup.title.get_text(" ").split())
        if title:
            meta["title"] = title
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    sections = _Sections()
    try:
        _walk_html(soup, sections)
    except RecursionError:  # pathologically deep nesting: fall back to flat text
        sections = _Sections()
        sections.paragraph(soup.get_text("\n"))
    builder = _Builder()
    sections.into(builder)
    return builder, meta


def _walk_html(root: object, sections: _Sections) -> None:
    from bs4 import NavigableString, Tag
    from bs4.element import PreformattedString

    buffer: list[str] = []

    def flush() -> None:
        text = "".join(buffer)
        buffer.clear()
        # Inline whitespace collapses as a browser would; <br> became "\n".
        lines = (" ".join(line.split()) for line in text.split("\n"))
        joined = "\n".join(line for line in lines if line)
        if joined:
            sections.paragraph(joined)

    def walk(node: Tag) -> None:
        for child in node.children:
            if isinstance(child, NavigableString):
                if not isinstance(child, PreformattedString):  # comments, doctype, CDATA…
                    buffer.append(_WHITESPACE.sub(" ", str(child)))
                continue
            if not isinstance(child, Tag):
                continue
            name = child.name.lower() if child.name else ""
            if name in _HEADINGS:
                flush()
                sections.heading(_HEADINGS[name], child.get_text(" "))
            elif name == "br":
                buffer.append("\n")
            elif name == "pre":
                flush()
                sections.paragraph(child.get_text())
            elif name == "tr":
                flush()
                cells = [" ".join(c.get_text(" ").split()) for c in child.find_all(["td", "th"])]
                sections.paragraph(" | ".join(c for c in cells if c))
            elif name in _BLOCK_TAGS:
                flush()
                walk(child)
                flush()
            else:
                walk(child)

    assert isinstance(root, Tag)
    walk(root)
    flush()


# -- PDF ------------------------------------------------------------------------------------


def _parse_pdf(data: bytes, source: str) -> tuple[_Builder, dict[str, MetadataValue]]:
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

    builder = _Builder()
    failed: list[int] = []
    for number, page in enumerate(pages, start=1):
        try:
            text = page.extract_text() or ""
        except Exception as e:  # one damaged page must not lose the others
            log.warning("%s: page %d: text extraction failed: %r", source, number, e)
            failed.append(number)
            continue
        builder.add(text, number, ())
    if pages and len(failed) == len(pages):
        raise CorruptDocument(f"{source}: the PDF is corrupt: no page could be read")
    meta: dict[str, MetadataValue] = {"pages": len(pages)}
    if failed:
        meta["unreadable_pages"] = ", ".join(map(str, failed))
    try:
        info = reader.metadata
        title = info.title if info is not None else None
    except Exception:  # damaged info dictionary: the text is what matters
        title = None
    if isinstance(title, str) and title.strip():
        meta["title"] = normalize_text(title)
    return builder, meta


# -- DOCX -----------------------------------------------------------------------------------

_HEADING_STYLE = re.compile(r"^heading\s*(\d)$", re.I)


def _parse_docx(data: bytes, source: str) -> tuple[_Builder, dict[str, MetadataValue]]:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
        items = list(document.iter_inner_content())
    except Exception as e:  # python-docx raises zip, XML and key errors on damaged files
        raise CorruptDocument(f"{source}: the .docx file is corrupt or unreadable ({e})") from e
    meta: dict[str, MetadataValue] = {}
    try:
        title = document.core_properties.title
    except Exception:
        title = None
    if title and title.strip():
        meta["title"] = normalize_text(title)

    sections = _Sections()
    for item in items:
        if isinstance(item, Paragraph):
            level = _docx_heading_level(item)
            if level is None:
                sections.paragraph(item.text)
            elif level == 0:  # the "Title" style: the document title
                meta.setdefault("title", " ".join(item.text.split()))
                sections.heading(1, item.text)
            else:
                sections.heading(level, item.text)
        elif isinstance(item, Table):
            for row in _docx_rows(item):
                sections.paragraph(row)
    builder = _Builder()
    sections.into(builder)
    return builder, meta


def _docx_heading_level(paragraph: object) -> int | None:
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


def _docx_rows(table: object) -> Iterator[str]:
    for row in table.rows:  # type: ignore[attr-defined]
        cells: list[str] = []
        previous = None
        for cell in row.cells:
            if cell._tc is previous:  # a merged cell repeats across the row
                continue
            previous = cell._tc
            text = " ".join(cell.text.split())
            if text:
                cells.append(text)
        if cells:
            yield " | ".join(cells)
