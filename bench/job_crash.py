"""An ingestion job killed with SIGKILL, then resumed: does it finish, redo nothing done,
and leave SQL and both indexes agreeing?

    .venv/bin/python -m bench.job_crash --files 40 --size 3000 --kill-after 8

Runs `rag ingest FOLDER` in a process of its own, kills it (SIGKILL) KILL_AFTER seconds
after its first file started, then `rag jobs run` (a fresh process: index repair,
``recover()``, the job resumed). Prints what each file's state was at the kill, the
resume's time, how many files done before the kill were redone (their finish time
changed), and whether the start-up index repair afterwards finds anything to change.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from core import repository
from core.settings import Settings
from core.types import CollectionKey

WORDS = "tide harbour ferry beacon pier island season keeper channel buoy storm gale".split()  # noqa: SIM905


def _rag(data: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "api.cli", "--data-dir", str(data), *args]


def _files(engine, job_id: str) -> dict[str, tuple[str, object]]:
    with repository.read(engine) as s:
        return {f.source: (f.status, f.finished_at) for f in repository.job_files(s, job_id)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=40)
    ap.add_argument("--size", type=int, default=3000, help="bytes per file")
    ap.add_argument(
        "--kill-after", type=float, default=8.0, help="seconds after the first file started"
    )
    args = ap.parse_args()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        folder, data = Path(tmp) / "in", Path(tmp) / "data"
        folder.mkdir()
        for n in range(args.files):
            words = [WORDS[(n + i * 5) % len(WORDS)] for i in range(args.size // 7)]
            (folder / f"doc{n:04d}.txt").write_text(f"Document {n}. " + " ".join(words))
        from core.db import make_engine

        settings = Settings(data_dir=data)
        engine = make_engine(settings.db_url)  # the schema made before the CLI starts
        proc = subprocess.Popen(
            _rag(data, "ingest", str(folder)),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        job_id = None
        while job_id is None:  # the job runs once the CLI has started
            time.sleep(0.2)
            if proc.poll() is not None:
                sys.exit("rag ingest ended before its job was seen running")
            with repository.read(engine) as s:
                running = repository.list_jobs(s, "default", status="running")
            job_id = running[0][0].id if running else None
        while all(st == "pending" for st, _ in _files(engine, job_id).values()):
            time.sleep(0.1)  # the first file is being read
        time.sleep(args.kill_after)
        before = _files(engine, job_id)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        states: dict[str, int] = {}
        for status, _ in before.values():
            states[status] = states.get(status, 0) + 1
        t0 = time.perf_counter()
        subprocess.run(_rag(data, "jobs", "run"), env=env, check=True, capture_output=True)
        resume_s = time.perf_counter() - t0
        after = _files(engine, job_id)
        with repository.read(engine) as s:
            job, _col = repository.get_job(s, "default", job_id)
            status = job.status
            col = repository.get_collection(s, CollectionKey("default", "default"))
            docs = repository.list_documents(s, col.id)
        redone = sum(
            1 for src, (st, fin) in before.items() if st == "done" and after[src][1] != fin
        )
        from api.platform import Platform

        platform = Platform(settings)
        changed = [r for r in platform.store.repair(platform.engine) if r.changed]
        platform.shutdown()
    after_s = f"{args.kill_after:.1f} s after the first file started"
    print(f"{args.files} files of {args.size} bytes; SIGKILL {after_s}")
    print(f"| at the kill | {', '.join(f'{k} {v}' for k, v in sorted(states.items()))} |")
    print(f"| resume (`rag jobs run`, a new process, model load included) | {resume_s:.1f} s |")
    print(f"| job after resume | {status}, {sum(1 for st, _ in after.values() if st == 'done')} "
          f"files done |")  # fmt: skip
    print(f"| files done before the kill and redone | {redone} |")
    ready = sum(1 for d in docs if d.status == "ready")
    print(f"| documents | {len(docs)} ({ready} ready) |")
    print(f"| index repair after the resume | {len(changed)} collection(s) changed |")


if __name__ == "__main__":
    main()
