"""rag serve's allocator settings (issue 14): applied where the C library is glibc."""

from __future__ import annotations

import logging

import pytest

from api.allocator import AllocatorTuning


def test_the_threshold_is_fixed_and_the_trim_runs(caplog: pytest.LogCaptureFixture) -> None:
    tuning = AllocatorTuning(mmap_threshold_kib=128, trim_every_s=0.01)
    if not tuning.available:
        pytest.skip("not glibc: nothing to tune")
    with caplog.at_level(logging.INFO, logger="rag.allocator"):
        tuning.start()
    try:
        assert "mmap threshold fixed at 128 KiB" in caplog.text
        assert "refused" not in caplog.text
        assert tuning._thread is not None and tuning._thread.is_alive()
        tuning.trim()  # callable at any time
    finally:
        tuning.stop()
        tuning._thread.join(2)
    assert not tuning._thread.is_alive()


def test_zero_leaves_glibc_alone() -> None:
    tuning = AllocatorTuning(mmap_threshold_kib=0, trim_every_s=0)
    tuning.start()
    assert tuning._thread is None
