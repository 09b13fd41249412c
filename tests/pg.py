"""A throwaway PostgreSQL server for tests: a real cluster in a temp dir, reached over a
Unix socket in that dir (no TCP port to clash with), removed when stopped.

    with PostgresServer.start() as pg:
        url = pg.create_database()  # postgresql+psycopg://postgres@/rag_1?host=/tmp/...

PostgreSQL refuses to run as root; as root the server runs as the unprivileged user
``nobody`` and the temp dir is handed to it. ``unavailable()`` says what is missing
(server binaries, the psycopg driver, the user), for a test to skip naming it.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

SERVER_USER = "nobody"  # who runs the server when we are root
_BINARIES = ("initdb", "pg_ctl")


def find_bin_dir() -> Path | None:
    """The folder of initdb and pg_ctl: on PATH, else the newest /usr/lib/postgresql/N/bin."""
    on_path = [shutil.which(b) for b in _BINARIES]
    if all(on_path):
        return Path(on_path[0]).parent  # type: ignore[arg-type]
    found = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")]
    found = [d for d in found if all((d / b).exists() for b in _BINARIES)]
    found.sort(key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0)
    return found[-1] if found else None


def unavailable() -> str | None:
    """Why no server can be started here (a reason to skip with), or None."""
    if find_bin_dir() is None:
        return (
            "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in "
            "/usr/lib/postgresql/*/bin; install the postgresql package"
        )
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "the psycopg driver is not installed (pip install -e '.[dev]')"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return f"running as root and there is no user {SERVER_USER!r} to run PostgreSQL as"
    return None


class PostgresServer:
    """One running cluster; ``create_database()`` gives each user of it a fresh database."""

    def __init__(self, root: Path, bin_dir: Path) -> None:
        self.root = root
        self.bin_dir = bin_dir
        self.data = root / "data"
        self.socket_dir = root
        self._names = itertools.count(1)

    @classmethod
    def start(cls, timeout_s: int = 60) -> PostgresServer:
        reason = unavailable()
        if reason:
            raise RuntimeError(reason)
        bin_dir = find_bin_dir()
        assert bin_dir is not None
        # Directly under the system temp dir: pytest's own tmp dirs are root-only (0700).
        root = Path(tempfile.mkdtemp(prefix="rag-pg-"))
        server = cls(root, bin_dir)
        if os.geteuid() == 0:
            user = pwd.getpwnam(SERVER_USER)
            os.chown(root, user.pw_uid, user.pw_gid)
        try:
            server._run(
                "initdb", "-D", str(server.data), "-U", "postgres", "--auth=trust",
                "-E", "UTF8", "--locale=C", "--no-sync",
            )  # fmt: skip
            options = (
                f"-k {root} -c listen_addresses='' -c fsync=off -c synchronous_commit=off "
                "-c full_page_writes=off -c timezone=UTC -c max_connections=200"
            )
            server._run(
                "pg_ctl", "-D", str(server.data), "-l", str(root / "server.log"), "-w",
                "-t", str(timeout_s), "-o", options, "start",
            )  # fmt: skip
        except BaseException:
            server._remove()
            raise
        return server

    def _run(self, binary: str, *args: str) -> None:
        kw: dict[str, Any] = {}
        if os.geteuid() == 0:
            kw = {"user": SERVER_USER, "group": pwd.getpwnam(SERVER_USER).pw_gid}
        r = subprocess.run(
            [str(self.bin_dir / binary), *args],
            cwd=self.root, capture_output=True, text=True, check=False, **kw,
        )  # fmt: skip
        if r.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{binary} failed ({r.returncode}): {r.stderr}{r.stdout}\n{tail}")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={self.socket_dir}"

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a fresh name unless given); returns its URL."""
        import psycopg

        name = name or f"rag_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(
            host=str(self.socket_dir), user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        return self.url(name)

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            self._remove()

    def _remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
