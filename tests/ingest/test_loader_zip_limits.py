"""Zip bombs built in the test: every zip-based format is refused before parsing, with the
limit named, and refusing one costs next to no memory."""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from collections.abc import Callable

import pytest

from core.errors import UnsafeArchive
from core.settings import IngestSettings
from ingest.loaders import DOCX, load_bytes
from tests.ingest.conftest import make_docx
from tests.ingest.test_loader_epub import make_epub
from tests.ingest.test_loader_pptx import make_pptx
from tests.ingest.test_loader_xlsx import make_xlsx
from tests.ingest.test_loaders import LIMIT

MiB = 1024 * 1024


def with_padding(data: bytes, member: str, unpacked_mib: int) -> bytes:
    """``data`` (a zip-based file) plus one member of zeros, written 1 MiB at a time."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(data)) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        with dst.open(member, "w") as padding:
            zeros = bytes(MiB)
            for _ in range(unpacked_mib):
                padding.write(zeros)
    return out.getvalue()


def test_defaults() -> None:
    settings = IngestSettings()
    assert settings.max_unzipped_bytes == 200 * MiB
    assert settings.max_zip_ratio == 100


def test_docx_bomb_is_refused_by_size_before_parsing_with_bounded_memory() -> None:
    bomb = with_padding(make_docx(), "word/media/image1.bin", 256)
    assert len(bomb) < MiB  # 256 MiB of zeros deflate to about 250 KiB
    tracemalloc.start()
    try:
        with pytest.raises(UnsafeArchive) as caught:
            load_bytes(bomb, "report.docx", max_bytes=LIMIT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    assert message.startswith("report.docx: the file's zip archive unpacks to 256.")
    assert "(ingest.max_unzipped_bytes)" in message and "zip bomb" in message
    assert caught.value.http_status == 422 and caught.value.code == "unsafe_archive"
    assert peak < 5 * MiB, f"refusing the bomb peaked at {peak:,} bytes"


@pytest.mark.parametrize(
    ("make", "name"),
    [(make_docx, "a.docx"), (make_pptx, "a.pptx"), (make_xlsx, "a.xlsx"), (make_epub, "a.epub")],
)
def test_every_zip_format_checks_the_ratio(make: Callable[[], bytes], name: str) -> None:
    bomb = with_padding(make(), "extra/padding.xml", 8)  # 8 MiB at about 1000:1
    with pytest.raises(UnsafeArchive, match=r"padding\.xml unpacks to [\d,]+ times .*"):
        load_bytes(bomb, name, max_bytes=LIMIT)
    with pytest.raises(UnsafeArchive, match=r"over the limit of 100 \(ingest\.max_zip_ratio\)"):
        load_bytes(bomb, name, max_bytes=LIMIT)


def test_limits_come_from_the_caller_and_normal_files_pass() -> None:
    padded = with_padding(make_docx(), "word/media/image1.bin", 8)
    doc = load_bytes(padded, "a.docx", max_bytes=LIMIT, max_zip_ratio=5000)
    assert doc.media_type == DOCX and "Badges must be worn" in doc.text
    with pytest.raises(UnsafeArchive, match=r"over the limit of 1000 bytes"):
        load_bytes(make_docx(), "a.docx", max_bytes=LIMIT, max_unzipped_bytes=1000)
    small = with_padding(make_docx(), "word/media/tiny.bin", 0)
    assert load_bytes(small, "a.docx", max_bytes=LIMIT).media_type == DOCX
