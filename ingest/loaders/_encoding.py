"""Bytes → text for the text formats: byte-order marks, UTF-8, then a charset guess."""

from __future__ import annotations

import codecs
import logging

from core.errors import CorruptDocument, UnsupportedFormat

log = logging.getLogger(__name__)

BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: it starts with the same bytes
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

# Short Western European texts fit several code pages equally well; among equally good
# guesses the most common legacy encoding, Windows-1252, wins.
_WESTERN = ("cp1252", "latin_1", "iso8859_15")


def has_bom(data: bytes) -> bool:
    return any(data.startswith(bom) for bom, _ in BOMS)


def strip_bom(head: bytes) -> bytes:
    """A file's head as UTF-8-compatible bytes without its byte-order mark."""
    for bom, encoding in BOMS:
        if head.startswith(bom):
            try:
                return head.decode(encoding, errors="ignore").encode("utf-8")
            except (UnicodeDecodeError, LookupError):
                return head[len(bom) :]
    return head


def decode_text(data: bytes, source: str) -> str:
    """Bytes → str: a BOM names the encoding, then UTF-8, then charset-normalizer's guess."""
    for bom, encoding in BOMS:
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
