"""Atomic file writes: write a temporary file in the same folder, fsync, rename into place."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write(f)`` on a temp file, then rename it to ``path``: readers see old or new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    data = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
    atomic_write(path, lambda f: f.write(data))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


class RWLock:
    """Many readers or one writer. Searches read concurrently; mutation waits for them."""

    def __init__(self) -> None:
        import threading

        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False

    def acquire_read(self) -> None:
        with self._cond:
            while self._writer:
                self._cond.wait()
            self._readers += 1

    def release_read(self) -> None:
        with self._cond:
            self._readers -= 1
            if self._readers == 0:
                self._cond.notify_all()

    def acquire_write(self) -> None:
        with self._cond:
            while self._writer or self._readers:
                self._cond.wait()
            self._writer = True

    def release_write(self) -> None:
        with self._cond:
            self._writer = False
            self._cond.notify_all()

    class _Guard:
        def __init__(self, enter: Callable[[], None], leave: Callable[[], None]) -> None:
            self._enter, self._leave = enter, leave

        def __enter__(self) -> None:
            self._enter()

        def __exit__(self, *exc: object) -> None:
            self._leave()

    def read(self) -> RWLock._Guard:
        return RWLock._Guard(self.acquire_read, self.release_read)

    def write(self) -> RWLock._Guard:
        return RWLock._Guard(self.acquire_write, self.release_write)
