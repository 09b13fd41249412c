"""Plain text (.txt): the decoded, normalised text as one block.

Also what a decodable file with an unknown extension is read as.
"""

from __future__ import annotations

from ingest.loaders._base import Builder, Loader, Meta
from ingest.loaders._encoding import decode_text

TEXT = "text/plain"


def parse_text(data: bytes, source: str) -> tuple[Builder, Meta]:
    builder = Builder()
    builder.add(decode_text(data, source))
    return builder, {}


LOADER = Loader(TEXT, (".txt", ".text"), "text", parse_text, "text file")
