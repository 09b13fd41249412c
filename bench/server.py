"""The real ``rag serve`` in a process of its own, for the benchmarks that measure it from
outside (soak, load, fault and job-crash trials).

    server = RagServer(data_dir)          # a free port, its log in data_dir/serve.log
    ingest_examples(data_dir)             # examples/ into "default" first, if wanted
    server.start()                        # waits for /readyz; the seconds it took
    server.kill()                         # SIGKILL; start() again on the same data
    server.stop()                         # SIGTERM, and wait
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from core.settings import DBSettings, Settings

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mib(pid: int) -> float:
    """A process's resident set size in MiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def memory_map(pid: int) -> dict[str, float]:
    """A process's RSS in MiB by where it sits (Linux ``smaps``): ``[heap]`` (the main
    malloc heap), anonymous mappings by size (``≥ 60 MiB``: whole 64 MiB malloc arenas;
    ``< 60 MiB``: large malloc blocks, thread stacks, and arenas whose writable part glibc
    split off), ``[stack]``, and file mappings by file name (shared libraries grouped as
    ``*.so``)."""
    kinds: dict[str, float] = {}
    kind = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split(maxsplit=5)
        if "-" in head[0] and not head[0].endswith(":"):
            start, end = (int(x, 16) for x in head[0].split("-"))
            name = head[5] if len(head) > 5 else ""
            if not name:
                big = end - start >= 60 << 20
                kind = "anonymous ≥ 60 MiB" if big else "anonymous < 60 MiB"
            elif name.startswith("["):
                kind = name
            else:
                base = Path(name).name
                kind = "*.so" if ".so" in base else base
        elif line.startswith("Rss:"):
            kinds[kind] = kinds.get(kind, 0.0) + int(line.split()[1]) / 1024
    return kinds


def bench_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment, offline, on the data folder's own SQLite (never a test database)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(extra or {})}
    env.pop("RAG_DB__URL", None)
    return env


def local_settings(data: Path) -> Settings:
    """The settings of a benchmark's server on ``data``: its own SQLite file there, even
    when RAG_DB__URL names another database (``pytest --postgres`` sets it)."""
    return Settings(data_dir=data, db=DBSettings())


def rag(data: Path, *args: str) -> list[str]:
    """The ``rag`` command line on ``data``, as this interpreter runs it."""
    return [sys.executable, "-m", "api.cli", "--data-dir", str(data), *args]


def ingest_examples(data: Path, env: dict[str, str] | None = None) -> None:
    subprocess.run(
        rag(data, "ingest", str(ROOT / "examples")),
        env=env or bench_env(),
        check=True,
        capture_output=True,
    )


class RagServer:
    """``rag serve`` on ``data`` (plain-text log appended to ``log``)."""

    def __init__(
        self,
        data: Path,
        *,
        env: dict[str, str] | None = None,
        log: Path | None = None,
        log_level: str = "INFO",
    ) -> None:
        self.data = data
        self.env = env or bench_env()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log or data / "serve.log"
        self.log_level = log_level
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def start(self, ready: str = "/readyz", timeout_s: float = 300.0) -> float:
        """Start it and wait until ``ready`` answers 200; the seconds that took."""
        t = time.monotonic()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                rag(self.data, "serve", "--host", "127.0.0.1", "--port", str(self.port),
                    "--log-format", "text", "--log-level", self.log_level),
                env=self.env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        while time.monotonic() - t < timeout_s:
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"rag serve exited {self.proc.returncode} at start:\n{tail}")
            try:
                if httpx.get(f"{self.url}{ready}", timeout=2).status_code == 200:
                    return time.monotonic() - t
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"rag serve did not answer {ready} within {timeout_s:.0f} s")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self, timeout_s: float = 120.0) -> None:
        """SIGTERM (the server drains), SIGKILL if it has not ended in ``timeout_s``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()


class HealthProbe:
    """Asks ``paths`` (by default /healthz and /readyz) every ``every_s`` seconds on a
    thread of its own while the block runs; ``summary()`` gives their latencies."""

    def __init__(
        self, url: str, paths: tuple[str, ...] = ("/healthz", "/readyz"), every_s: float = 0.5
    ) -> None:
        self.url, self.paths, self.every_s = url, paths, every_s
        self.ms: dict[str, list[float]] = {p: [] for p in paths}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health-probe", daemon=True)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self._stop.is_set():
                for path in self.paths:
                    start = time.perf_counter()
                    # a probe that failed counts by the time it took
                    with contextlib.suppress(httpx.HTTPError):
                        http.get(path)
                    self.ms[path].append((time.perf_counter() - start) * 1000)
                self._stop.wait(self.every_s)

    def summary(self) -> list[str]:
        """One line per path: p50, p99, max over the probes (target p99 <= 100 ms)."""
        lines = []
        for path, ms in self.ms.items():
            if ms:
                v = np.array(ms)
                lines.append(
                    f"{path} during the run: p50 {np.percentile(v, 50):.1f} ms, p99 "
                    f"{np.percentile(v, 99):.1f} ms, max {v.max():.1f} ms over {len(v)} probes "
                    "(target p99 <= 100 ms)"
                )
        return lines
