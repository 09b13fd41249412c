"""glibc's allocator set for a long-running server (``rag serve``).

Measured (issue 14; ``bench/soak.py``, and 125 distinct answers in one process): with
glibc's defaults the server's RSS grew ~40–50 MiB per 100 answers and never came back.
The LLM alone (raw prompts) and retrieval alone stayed flat; the growth was heap
fragmentation: glibc raises its mmap threshold each time a large block is freed (up to
32 MiB), after which the many medium-sized, short-lived buffers of a question (sentence
embeddings of the cited passages, token arrays, numpy scores) come from the heap, whose
freed holes are rarely reusable and never returned. Fixing the threshold at 128 KiB
(which also turns that adjustment off) kept the same run at ~2 MiB per 100 answers, and
``malloc_trim(0)`` after each answer kept it flat. Both are set here: the threshold at
start, and a trim on a timer (a few milliseconds) so an idle server gives memory back.
The arena count (``MALLOC_ARENA_MAX=2``) made no difference once generation ran on its
own worker threads (generation.queue), so it is left alone.

    tuning = AllocatorTuning(mmap_threshold_kib=128, trim_every_s=30)
    tuning.start()      # rag serve does this; a no-op where the C library is not glibc
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading

log = logging.getLogger("rag.allocator")

M_MMAP_THRESHOLD = -3  # mallopt parameter numbers from glibc's malloc.h


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt  # noqa: B018 - only glibc (and a few others) have both
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


class AllocatorTuning:
    """A fixed mmap threshold (0: glibc's adaptive default) and a periodic trim (0: off)."""

    def __init__(self, mmap_threshold_kib: int = 128, trim_every_s: float = 30.0) -> None:
        self.mmap_threshold_kib = mmap_threshold_kib
        self.trim_every_s = trim_every_s
        self._libc = _glibc()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def available(self) -> bool:
        return self._libc is not None

    def start(self) -> None:
        if self._libc is None:
            log.info("allocator tuning skipped: not glibc")
            return
        if self.mmap_threshold_kib > 0:
            ok = self._libc.mallopt(M_MMAP_THRESHOLD, self.mmap_threshold_kib * 1024)
            log.info(
                "allocator: mmap threshold fixed at %d KiB%s",
                self.mmap_threshold_kib,
                "" if ok else " (refused by the C library)",
            )
        if self.trim_every_s > 0:
            self._thread = threading.Thread(target=self._trim_loop, name="rag-trim", daemon=True)
            self._thread.start()

    def trim(self) -> None:
        """Give the heap's free memory back to the system now."""
        if self._libc is not None:
            self._libc.malloc_trim(0)

    def stop(self) -> None:
        self._stop.set()

    def _trim_loop(self) -> None:
        while not self._stop.wait(self.trim_every_s):
            self.trim()
