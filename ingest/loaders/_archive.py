"""Zip-bomb guard for the zip-based formats, run before any parser opens the file.

The limits are checked on the sizes the zip's central directory declares. That is safe
because every parser used here reads members through ``zipfile``, which never yields
more than a member's declared size (and fails its CRC check if the data disagree), so
the declared total bounds what parsing can unpack.
"""

from __future__ import annotations

import io
import zipfile

from core.errors import CorruptDocument, UnsafeArchive
from ingest.loaders._base import human_bytes

# Below this a member's ratio does not matter: a small run of repeated bytes compresses
# far past any sane ratio and costs nothing to unpack.
RATIO_GRACE_BYTES = 1024 * 1024


def check_archive(data: bytes, source: str, *, max_unzipped_bytes: int, max_ratio: float) -> None:
    """Raise ``UnsafeArchive`` when the zip in ``data`` would unpack past the limits."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            members = zf.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise CorruptDocument(f"{source}: the zip archive is corrupt ({e})") from e
    total = sum(m.file_size for m in members)
    if total > max_unzipped_bytes:
        raise UnsafeArchive(
            f"{source}: the file's zip archive unpacks to {human_bytes(total)}, over the "
            f"limit of {human_bytes(max_unzipped_bytes)} (ingest.max_unzipped_bytes); "
            "refused before parsing as a possible zip bomb"
        )
    for m in members:
        ratio = m.file_size / max(m.compress_size, 1)
        if m.file_size > RATIO_GRACE_BYTES and ratio > max_ratio:
            raise UnsafeArchive(
                f"{source}: its member {m.filename} unpacks to {ratio:,.0f} times its "
                f"compressed size ({human_bytes(m.file_size)}), over the limit of "
                f"{max_ratio:g} (ingest.max_zip_ratio); refused before parsing as a "
                "possible zip bomb"
            )
