"""Errors of the retrieval stage's derived index files."""

from __future__ import annotations

from core.errors import RagError


class IndexCorrupt(RagError):
    """An index folder is missing a file, half-written, or was built with other settings.

    The store answers this by rebuilding the index from SQL (``IndexStore.repair``).
    """

    code = "index_corrupt"
    http_status = 503
    exit_code = 5
