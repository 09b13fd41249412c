"""Crash safety of upload jobs, measured: a real server SIGKILLed at random points of a
job, restarted, and checked.

    .venv/bin/python -m bench.job_crash               # 20 trials, ~20 min here
    .venv/bin/python -m bench.job_crash --trials 3 --files 10 --out -   # a quick look

Each trial starts `rag serve` on a fresh data folder, uploads FILES text files in one
request (POST /v1/collections/crash/documents, the 202 path), and SIGKILLs the server a
random time after the request started (seeded per trial: one trial in four early, while
the upload is spooled or the job queued or read; one in four 0-20 ms after the first
document row is written, during the commit; the others anywhere up to --max-kill
seconds, by default an uninterrupted job's time, measured first: mostly reading and
embedding). The phase at the kill is read from SQL once the process is dead. Then `rag
serve` again (its start-up repairs the indexes, completes half-written documents and
resumes or fails each unfinished job, one log line each), waits for the job to end and
checks, with the server stopped:

* SQL chunks == FAISS ids == BM25 ids for the collection, no id twice in either index;
* no document twice (one per source), every chunk's document present and ready;
* every acknowledged file (the 202 came back) ingested exactly once; the job done.

Prints a table and writes it to bench/results/job_crash.txt (--out).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.server import RagServer, local_settings
from core import repository
from core.db import make_engine
from core.settings import Settings
from core.types import CollectionKey

WORDS = [
    "tide",
    "harbour",
    "ferry",
    "beacon",
    "pier",
    "island",
    "season",
    "keeper",
    "channel",
    "buoy",
    "storm",
    "gale",
    "lantern",
    "quay",
    "mooring",
    "anchor",
    "current",
    "shoal",
    "reef",
    "estuary",
]
COLLECTION = CollectionKey("default", "crash")
OUT = Path(__file__).parent / "results" / "job_crash.txt"


@dataclass
class Trial:
    n: int
    kill_after: float
    phase: str = ""
    acknowledged: bool = False
    recovered_s: float = 0.0
    repairs: str = ""
    files: int = 0
    chunks: int = 0
    status: str = ""
    problems: tuple[str, ...] = ()

    @property
    def consistent(self) -> bool:
        return not self.problems


def _write_files(folder: Path, n: int, size: int, seed: int) -> dict[str, bytes]:
    rng = random.Random(seed)
    files = {}
    for i in range(n):
        words = [rng.choice(WORDS) for _ in range(size // 7)]
        files[f"doc{i:03d}.txt"] = f"Document {i} of trial {seed}. {' '.join(words)}".encode()
    return files


def _upload(url: str, files: dict[str, bytes], result: dict[str, Any]) -> None:
    try:
        r = httpx.post(
            f"{url}/v1/collections/{COLLECTION.name}/documents",
            files=[("files", (name, data, "text/plain")) for name, data in files.items()],
            timeout=120.0,
        )
        result["status"] = r.status_code
        if r.status_code == 202:
            result["job_id"] = r.json()["id"]
    except httpx.HTTPError as e:  # killed mid-request: not acknowledged
        result["error"] = type(e).__name__


def _phase(engine: Any, job_id: str | None) -> tuple[str, str | None]:
    """What the job was doing when the server died (read from SQL afterwards)."""
    with repository.read(engine) as s:
        if job_id is None:
            jobs = repository.list_jobs(s, COLLECTION.tenant, collection=COLLECTION.name)
            if not jobs:
                return "spooling (no job yet)", None
            job_id = jobs[0][0].id
        job = repository.job_by_id(s, job_id)
        assert job is not None
        if job.status != "running":
            return job.status if job.status != "pending" else "queued", job_id
        files = Counter(f.status for f in repository.job_files(s, job_id))
        col = repository.find_collection(s, COLLECTION)
        docs = [] if col is None else repository.list_documents(s, col.id)
    indexing = sum(1 for d in docs if d.status == "indexing")
    done, total = files.get("done", 0), sum(files.values())
    if indexing:
        return f"committing ({indexing} docs indexing)", job_id
    if len(docs) > done:
        return f"committed ({len(docs)} docs), {done} files marked", job_id
    if files.get("running", 0):
        return f"reading/embedding ({done}/{total} done)", job_id
    return f"running ({done}/{total} done)", job_id


def _check(settings: Settings, files: dict[str, bytes], trial: Trial, job_id: str) -> None:
    """With the server stopped: SQL, FAISS and BM25 agree; nothing twice, nothing lost."""
    from api.platform import Platform

    problems: list[str] = []
    platform = Platform(settings)  # nothing repaired here: the indexes as the server left them
    try:
        engine = platform.engine
        with repository.read(engine) as s:
            job = repository.job_by_id(s, job_id)
            trial.status = job.status if job is not None else "missing"
            job_files = repository.job_files(s, job_id)
            col = repository.get_collection(s, COLLECTION)
            docs = repository.list_documents(s, col.id)
            chunk_ids = repository.chunk_ids(s, col.id)
        sparse, dense = platform.store.sparse(col.id), platform.store.dense(col.id)
        sql_ids = set(chunk_ids)  # a primary key: never twice
        if sparse.ids() != sql_ids:
            problems.append(f"BM25 {len(sparse.ids())} ids vs SQL {len(sql_ids)}")
        if dense.ids() != sql_ids:
            problems.append(f"FAISS {len(dense.ids())} ids vs SQL {len(sql_ids)}")
        if len(sparse) != len(sparse.ids()) or len(dense) != len(dense.ids()):
            problems.append("an id twice in an index")
        sources = Counter(d.source for d in docs)
        if any(n > 1 for n in sources.values()):
            problems.append("a document twice")
        if trial.acknowledged and set(sources) != set(files):
            problems.append(f"{len(set(files) - set(sources))} acknowledged file(s) lost")
        if any(d.status != "ready" for d in docs):
            problems.append("a document not ready")
        if sum(d.n_chunks for d in docs) != len(sql_ids):
            problems.append("chunk counts differ from the chunks stored")
        if trial.status != "done":
            problems.append(f"job {trial.status}")
        if any(f.status != "done" for f in job_files):
            problems.append("a file not done")
        trial.files, trial.chunks = len(docs), len(sql_ids)
    finally:
        platform.shutdown()
    trial.problems = tuple(problems)


def _writing(engine: Any) -> bool:
    """Whether the job has begun to write documents (the commit of its group)."""
    with repository.read(engine) as s:
        col = repository.find_collection(s, COLLECTION)
        return col is not None and bool(repository.list_documents(s, col.id))


def run_trial(n: int, args: argparse.Namespace, root: Path) -> Trial:
    """Kill schedule by ``n % 4``: 0 early (0-0.3 s: spooling, queued, the first file),
    1 and 2 anywhere up to ``max_kill``, 3 once documents are being written (+0-20 ms:
    the commit), each random delay seeded by the trial."""
    rng = random.Random(args.seed * 1000 + n)
    kind = n % 4
    if kind == 0:
        kill_after = rng.uniform(0.0, 0.3)
    elif kind == 3:
        kill_after = rng.uniform(0.0, 0.02)  # after the first document row appears
    else:
        kill_after = rng.uniform(0.3, args.max_kill)
    trial = Trial(n, kill_after)
    data = root / f"trial{n:02d}"
    settings = local_settings(data)
    files = _write_files(root, args.files, args.size, n)
    log = root / f"trial{n:02d}.log"
    server = RagServer(data, log=log)
    server.start(ready="/healthz")
    result: dict[str, Any] = {}
    uploader = threading.Thread(target=_upload, args=(server.url, files, result))
    engine = make_engine(settings.db_url)
    t0 = time.perf_counter()
    uploader.start()
    if kind == 3:
        while not _writing(engine) and time.perf_counter() - t0 < 600:
            time.sleep(0.005)
    time.sleep(kill_after)
    trial.kill_after = time.perf_counter() - t0
    server.kill()
    uploader.join()
    trial.acknowledged = result.get("status") == 202
    trial.phase, job_id = _phase(engine, result.get("job_id"))
    engine.dispose()
    t0 = time.perf_counter()
    mark = log.stat().st_size
    try:
        server.start(ready="/healthz")
        if job_id is not None:
            _wait_job(server.url, job_id, timeout=600.0)
        trial.recovered_s = time.perf_counter() - t0
    finally:
        server.stop()
    with open(log, "rb") as f:
        f.seek(mark)
        restart = [ln for ln in f.read().decode(errors="replace").splitlines() if "restart:" in ln]
    trial.repairs = "; ".join(_short(ln) for ln in restart if "restart: job" in ln) or "none"
    if job_id is None:
        trial.status = "no job"
        trial.problems = () if not trial.acknowledged else ("acknowledged, no job",)
        return trial
    _check(settings, files, trial, job_id)
    return trial


def calibrate(args: argparse.Namespace, root: Path) -> float:
    """Seconds from the upload's start to its job's end, nothing killed."""
    data = root / "calibration"
    server = RagServer(data, log=root / "calibration.log")
    try:
        server.start(ready="/healthz")
        result: dict[str, Any] = {}
        t0 = time.perf_counter()
        _upload(server.url, _write_files(root, args.files, args.size, 999), result)
        _wait_job(server.url, result["job_id"], timeout=600.0)
        return time.perf_counter() - t0
    finally:
        server.stop()


def _short(line: str) -> str:
    text = line.split("restart: job ", 1)[1]
    job, rest = text.split(" ", 1)
    return f"{job[:6]}… {rest}"


def _wait_job(url: str, job_id: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = httpx.get(f"{url}/v1/jobs/{job_id}", timeout=10.0)
        if r.status_code != 200 or r.json()["status"] in ("done", "failed", "cancelled"):
            return
        time.sleep(0.2)


def table(trials: list[Trial]) -> list[str]:
    head = (
        f"| {'trial':>5} | {'kill after s':>12} | {'phase at kill':<32} | 202 | "
        f"{'recovered in s':>14} | {'files':>5} | {'chunks':>6} | {'job':<6} | consistent |"
    )
    lines = [head, "|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|"]
    for t in trials:
        lines.append(
            f"| {t.n:>5} | {t.kill_after:>12.2f} | {t.phase[:32]:<32} | "
            f"{'yes' if t.acknowledged else 'no ':<3} | {t.recovered_s:>14.1f} | {t.files:>5} | "
            f"{t.chunks:>6} | {t.status[:6]:<6} | {'yes' if t.consistent else 'NO':<10} |"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--files", type=int, default=20, help="files per upload")
    ap.add_argument("--size", type=int, default=3000, help="bytes per file")
    ap.add_argument(
        "--max-kill",
        type=float,
        default=None,
        help="latest kill, seconds after the upload started (default: an uninterrupted "
        "job's time, measured first)",
    )
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=str(OUT), help="the results file ('-': none)")
    args = ap.parse_args()
    trials: list[Trial] = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.max_kill is None:
            job_s = calibrate(args, Path(tmp))
            args.max_kill = round(job_s, 1)
            print(f"an uninterrupted job: {job_s:.1f} s; kills up to {args.max_kill} s", flush=True)
        for n in range(args.trials):
            trial = run_trial(n, args, Path(tmp))
            trials.append(trial)
            print(table([trial])[-1], f"repairs: {trial.repairs}", flush=True)
            for problem in trial.problems:
                print(f"  trial {n}: {problem}", flush=True)
    ok = sum(1 for t in trials if t.consistent)
    recovered = sorted(t.recovered_s for t in trials)
    summary = [
        f"{ok} of {len(trials)} trials consistent; acknowledged uploads "
        f"{sum(t.acknowledged for t in trials)}, their files all ingested once: "
        f"{all(t.consistent for t in trials if t.acknowledged)}",
        f"recovery (restart incl. model load + the rest of the job): median "
        f"{recovered[len(recovered) // 2]:.1f} s, max {recovered[-1]:.1f} s",
    ]
    report = [
        f"# python -m bench.job_crash --trials {args.trials} --files {args.files} --size "
        f"{args.size} --max-kill {args.max_kill} --seed {args.seed}   "
        f"({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores)",
        "# `rag serve` SIGKILLed during a 202 upload job, restarted, the job awaited; checked "
        "with the server stopped",
        "",
        *table(trials),
        "",
        *summary,
        "",
        "restart log lines (per trial):",
        *(f"  {t.n:>2}: {t.repairs}" for t in trials),
    ]
    print("\n".join(report))
    if args.out != "-":
        Path(args.out).write_text("\n".join(report) + "\n")
    if ok != len(trials):
        sys.exit(1)


if __name__ == "__main__":
    main()
