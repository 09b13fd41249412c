"""Which format a file is: content first (signatures, zip members, HTML sniffing), then
the extension. Binary content that no loader reads is refused naming its type."""

from __future__ import annotations

import codecs
import io
import zipfile
from pathlib import PurePath

from core.errors import CorruptDocument, UnsupportedFormat
from ingest.loaders._encoding import has_bom
from ingest.loaders._registry import LOADERS, SUPPORTED_LIST, loader_for_extension
from ingest.loaders.txt import TEXT

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")

# Zip-based formats no loader reads, named in the error (checked after the loaders).
_UNSUPPORTED_ZIP_KINDS = (
    ("mimetype", "an OpenDocument file (.odt, .ods, .odp)"),
    ("[Content_Types].xml", "an Office Open XML file of a kind not read here"),
)


def detect_media_type(data: bytes, source: str, *, unknown_as_text: bool = False) -> str:
    """The media type from the content first, the extension of ``source`` second.

    Text under an extension no loader reads (or none) is refused naming the supported
    ones, unless ``unknown_as_text`` (``ingest.unknown_as_text``): then it is plain text."""
    loaders = list(LOADERS.values())
    for loader in loaders:
        if loader.kind == "binary" and loader.sniff is not None and loader.sniff(data):
            return loader.media_type
    if data[:4] in ZIP_MAGIC:
        return _detect_zip(data, source)
    for loader in loaders:
        if loader.kind == "text" and loader.sniff is not None and loader.sniff(data):
            return loader.media_type
    by_ext = loader_for_extension(source)
    if not has_bom(data):
        binary_type = _binary_type(data)
        if binary_type is not None:
            raise UnsupportedFormat(
                f"{source}: binary content ({binary_type}) is not a supported format; "
                f"supported: {SUPPORTED_LIST}"
            )
    if by_ext is None:
        if unknown_as_text:
            return TEXT  # unknown extension, decodable text: read it as plain text
        suffix = PurePath(source).suffix
        what = f"the extension {suffix!r}" if suffix else "a file without an extension"
        raise UnsupportedFormat(
            f"{source}: {what} is not a supported format; supported: {SUPPORTED_LIST} "
            "(to read such text files as plain text, set ingest.unknown_as_text, "
            "RAG_INGEST__UNKNOWN_AS_TEXT=true)"
        )
    if by_ext.kind != "text":
        raise CorruptDocument(f"{source}: not a valid {by_ext.label} ({by_ext.not_valid_hint})")
    return by_ext.media_type


def _detect_zip(data: bytes, source: str) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        by_ext = loader_for_extension(source)
        if by_ext is not None and by_ext.kind == "zip":
            raise CorruptDocument(f"{source}: the {by_ext.label} is corrupt ({e})") from e
        raise UnsupportedFormat(
            f"{source}: a damaged zip archive is not a supported format ({e})"
        ) from e
    for loader in LOADERS.values():
        if loader.kind == "zip" and loader.zip_member in names:
            return loader.media_type
    for member, kind in _UNSUPPORTED_ZIP_KINDS:
        if member in names:
            raise UnsupportedFormat(
                f"{source}: {kind} is not a supported format; supported: {SUPPORTED_LIST}"
            )
    raise UnsupportedFormat(
        f"{source}: a zip archive (application/zip) is not a supported format; "
        f"supported: {SUPPORTED_LIST}"
    )


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
