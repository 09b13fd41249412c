"""The real ``rag serve`` killed with SIGKILL at random points, again and again: after
each restart, is anything lost or duplicated, is any job stuck, are the answers the same?

    .venv/bin/python -m bench.fault --trials 20 --seed 7

Each trial starts one kind of work against the running server, then kills it (SIGKILL)
after a random delay and starts it again on the same data folder:

- ``generation``: three questions at once about the ``default`` collection;
- ``upload``: small documents uploaded one after another with ``?wait=true``;
- ``job``: a batch of ten documents uploaded as a job (202), killed while it runs;
- ``delete``: documents uploaded by earlier trials deleted one after another.

Uploads and deletes go to a collection of their own (``faults``); the fixed questions ask
``default`` (examples/), whose answers were recorded before the first kill. After each
restart the bench waits for /readyz, then checks: every acknowledged upload is there
exactly once unless an acknowledged delete removed it, no source is there twice, no job
is left queued or running (the restart resumes or fails them), and the fixed questions
get the same answers. At the end, with the server stopped, the index repair is run once
more and must find nothing to change (SQL, FAISS and BM25 agree).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.server import RagServer, ingest_examples, local_settings

KINDS = ("generation", "upload", "job", "delete")
QUESTIONS = (
    "What is reciprocal rank fusion?",
    "How long must passwords be?",
    "What does BM25 score?",
)


@dataclass
class Ledger:
    """What the server acknowledged, across trials."""

    uploaded: dict[str, str] = field(default_factory=dict)  # source -> document id
    deleted: set[str] = field(default_factory=set)  # sources whose delete was acknowledged
    lock: threading.Lock = field(default_factory=threading.Lock)


def answers(url: str) -> list[str]:
    with httpx.Client(base_url=url, timeout=300) as http:
        return [http.post("/v1/query", json={"question": q}).json()["answer"] for q in QUESTIONS]


def work(kind: str, url: str, ledger: Ledger, trial: int, stop: threading.Event) -> None:
    """The trial's work until the kill (errors once the server is gone are expected)."""
    http = httpx.Client(base_url=url, timeout=120)
    try:
        if kind == "generation":
            threads = [
                threading.Thread(target=lambda q=q: http.post("/v1/query", json={"question": q}))
                for q in QUESTIONS
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        elif kind == "upload":
            for i in range(50):
                if stop.is_set():
                    return
                source = f"t{trial:02d}-u{i:02d}.txt"
                resp = http.post(
                    "/v1/collections/faults/documents", params={"wait": "true"},
                    files={"files": (source, _text(trial, i), "text/plain")},
                )  # fmt: skip
                if resp.status_code == 200:
                    doc = resp.json()["results"][0]["document_id"]
                    with ledger.lock:
                        ledger.uploaded[source] = doc
        elif kind == "job":
            files = [
                ("files", (f"t{trial:02d}-j{i:02d}.txt", _text(trial, 100 + i), "text/plain"))
                for i in range(10)
            ]
            resp = http.post("/v1/collections/faults/documents", files=files)
            if resp.status_code == 202:  # accepted: every file must arrive, job or not
                with ledger.lock:
                    for _, (source, _b, _t) in files:
                        ledger.uploaded[source] = ""
        elif kind == "delete":
            with ledger.lock:
                victims = [s for s in ledger.uploaded if s not in ledger.deleted]
            docs = _documents(http)
            for source in victims:
                if stop.is_set() or source not in docs:
                    continue
                resp = http.delete(f"/v1/collections/faults/documents/{docs[source][0]}")
                if resp.status_code == 204:
                    with ledger.lock:
                        ledger.deleted.add(source)
    except httpx.HTTPError:
        pass  # the server was killed under it
    finally:
        http.close()


def _text(trial: int, i: int) -> bytes:
    words = " ".join(f"w{(trial * 131 + i * 17 + k) % 997}" for k in range(400))
    return f"Fault trial {trial} document {i}. {words}\n".encode()


def _documents(http: httpx.Client) -> dict[str, list[str]]:
    resp = http.get("/v1/collections/faults/documents")
    if resp.status_code == 404:
        return {}
    resp.raise_for_status()
    found: dict[str, list[str]] = {}
    for d in resp.json()["data"]:
        found.setdefault(d["source"], []).append(d["id"])
    return found


def wait_jobs(url: str, timeout_s: float = 300) -> tuple[bool, float]:
    """(no job left queued or running, seconds waited)."""
    t = time.monotonic()
    with httpx.Client(base_url=url, timeout=30) as http:
        while time.monotonic() - t < timeout_s:
            jobs = http.get("/v1/jobs", params={"limit": 1000}).json()["data"]
            if not any(j["status"] in ("pending", "running") for j in jobs):
                return True, time.monotonic() - t
            time.sleep(0.5)
    return False, time.monotonic() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--max-kill-after", type=float, default=4.0, help="seconds")
    ap.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    rows: list[str] = []
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        ingest_examples(data)
        server = RagServer(data)
        server.start()
        baseline = answers(server.url)
        ledger = Ledger()
        for trial in range(1, args.trials + 1):
            kind = KINDS[(trial - 1) % len(KINDS)]
            kill_after = rng.uniform(0.2, args.max_kill_after)
            stop = threading.Event()
            worker = threading.Thread(
                target=work, args=(kind, server.url, ledger, trial, stop), daemon=True
            )
            worker.start()
            time.sleep(kill_after)
            stop.set()
            server.kill()
            worker.join(30)
            ready_s = server.start()
            settled, jobs_s = wait_jobs(server.url)
            with httpx.Client(base_url=server.url, timeout=60) as http:
                docs = _documents(http)
            expected = {s for s in ledger.uploaded if s not in ledger.deleted}
            lost = sorted(expected - docs.keys())
            dup = sorted(s for s, ids in docs.items() if len(ids) > 1)
            same = answers(server.url) == baseline
            ok = settled and not lost and not dup and same
            failures += not ok
            rows.append(
                f"| {trial:>2} | {kind:<10} | {kill_after:4.1f} | {ready_s:5.1f} | "
                f"{'yes' if settled else 'NO'} ({jobs_s:4.1f} s) | {len(expected):>3} | "
                f"{len(docs):>3} | {len(lost)} | {len(dup)} | {'yes' if same else 'NO'} |"
            )
            print(rows[-1], flush=True)
        server.stop()
        from api.platform import Platform

        platform = Platform(local_settings(data))
        changed = [r for r in platform.store.repair(platform.engine) if r.changed]
        platform.shutdown()
    kinds = Counter(KINDS[(t - 1) % len(KINDS)] for t in range(1, args.trials + 1))
    head = [
        f"fault trials: {args.trials} SIGKILLs of rag serve (seed {args.seed}; "
        + ", ".join(f"{k} {n}" for k, n in kinds.items())
        + ")",
        "",
        "| trial | killed during | after s | restart to ready s | jobs settled | "
        "expected docs | found docs | lost | duplicated | same answers |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    tail = [
        "",
        f"trials with a problem: {failures} of {args.trials}",
        f"index repair after the last trial (server stopped): {len(changed)} collection(s) "
        "changed (0: SQL, FAISS and BM25 agree)",
    ]
    report = "\n".join(head + rows + tail)
    print(report)
    if args.out:
        args.out.write_text(report + "\n")
    if failures or changed:
        sys.exit(1)


if __name__ == "__main__":
    main()
