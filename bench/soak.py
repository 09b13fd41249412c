"""A long run against the real ``rag serve``: does its memory stay flat, and does the
health route answer fast while it works?

    .venv/bin/python -m bench.soak --requests 1000 --clients 4
    .venv/bin/python -m bench.soak --requests 400 --mixed        # + uploads and deletes
    .venv/bin/python -m bench.soak --requests 300 --env MALLOC_ARENA_MAX=0   # a variant

Starts ``rag serve`` on a fresh data folder with examples/ ingested, sends ``--requests``
distinct questions (no two prompts alike, so nothing is cached) from ``--clients``
threads, and samples the server's RSS after every answer; ``--mixed`` makes every
fifth operation an upload of a new small document or the delete of an earlier one. A
poller asks ``/healthz`` and ``/readyz`` twice a second throughout. Afterwards the server idles
``--idle`` seconds and its RSS is read again.

Prints RSS against requests (every tenth of the run), the slope fitted by least squares
after warm-up (the first ``--warm-up`` requests) in MiB per 100 requests, the RSS after
the idle minute against the warm level, the health routes' p50/p99, and the mappings
whose RSS grew most between the warm request and the end of the idle wait
(``bench.server.memory_map``). Targets (issue 14): slope
under 5 MiB per 100 requests, idle RSS within 10 % of the warm level, health p99
≤ 100 ms.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from bench.server import HealthProbe, RagServer, bench_env, ingest_examples, memory_map, rss_mib

ROOT = Path(__file__).resolve().parents[1]
TOPICS = (
    "reciprocal rank fusion", "BM25", "dense retrieval", "chunking", "embeddings",
    "citations", "abstention", "password length", "hybrid search", "FAISS",
    "the sample corpus", "guardrails", "prompt injection", "evaluation", "reranking",
)  # fmt: skip
FORMS = (
    "What does the documentation say about {t}? (case {n})",
    "Explain {t} in one sentence, request {n}.",
    "How is {t} used here? Ticket {n}.",
    "Why would someone choose {t}? Question {n}.",
)


def question(n: int) -> str:
    return FORMS[n % len(FORMS)].format(t=TOPICS[(n // len(FORMS)) % len(TOPICS)], n=n)


class Soak:
    def __init__(self, url: str, pid: int, total: int, mixed: bool, warm_up: int) -> None:
        self.url, self.pid, self.total, self.mixed = url, pid, total, mixed
        self.warm_up = warm_up
        self.warm_map: dict[str, float] = {}
        self.lock = threading.Lock()
        self.next = 0
        self.done = 0
        self.samples: list[tuple[int, float]] = []
        self.statuses: dict[str, int] = {}
        self.uploaded: list[str] = []

    def _take(self) -> int | None:
        with self.lock:
            if self.next >= self.total:
                return None
            self.next += 1
            return self.next - 1

    def _count(self, what: str, status: int) -> None:
        with self.lock:
            key = f"{what} {status}"
            self.statuses[key] = self.statuses.get(key, 0) + 1

    def client(self, worker: int) -> None:
        with httpx.Client(base_url=self.url, timeout=600) as http:
            for op in itertools.count():
                if self.mixed and op % 5 == 4:
                    self._upload_or_delete(http, worker, op)
                    continue
                n = self._take()
                if n is None:
                    return
                resp = http.post("/v1/query", json={"question": question(n)})
                self._count("query", resp.status_code)
                with self.lock:
                    self.done += 1
                    self.samples.append((self.done, rss_mib(self.pid)))
                    if self.done == self.warm_up + 1:
                        self.warm_map = memory_map(self.pid)

    def _upload_or_delete(self, http: httpx.Client, worker: int, op: int) -> None:
        with self.lock:
            victim = self.uploaded.pop(0) if op % 10 == 9 and self.uploaded else None
        if victim is not None:
            resp = http.delete(f"/v1/collections/soak/documents/{victim}")
            self._count("delete", resp.status_code)
            return
        text = f"Soak document {worker}-{op}. " + " ".join(question(op + i) for i in range(20))
        resp = http.post(
            "/v1/collections/soak/documents",
            params={"wait": "true"},
            files={"files": (f"soak-{worker}-{op}.txt", text.encode(), "text/plain")},
        )
        self._count("upload", resp.status_code)
        if resp.status_code == 200:
            ids = [r["document_id"] for r in resp.json()["results"] if r["document_id"]]
            with self.lock:
                self.uploaded.extend(ids)


def start_server(data: Path, env: dict[str, str]) -> RagServer:
    """``rag serve`` on ``data`` with examples/ ingested, once it is ready."""
    ingest_examples(data, env)
    server = RagServer(data, env=env, log_level="WARNING")
    server.start()
    return server


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1000, help="distinct generations")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--mixed", action="store_true", help="uploads and deletes too")
    ap.add_argument("--warm-up", type=int, default=100, help="requests before the fit")
    ap.add_argument("--idle", type=float, default=60.0, help="seconds idle at the end")
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server")
    ap.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = ap.parse_args()
    env = bench_env(dict(kv.split("=", 1) for kv in args.env))
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp), env)
        try:
            soak = Soak(server.url, server.pid, args.requests, args.mixed, args.warm_up)
            rss_start = rss_mib(server.pid)
            began = time.monotonic()
            with HealthProbe(server.url) as health:
                clients = [
                    threading.Thread(target=soak.client, args=(i,)) for i in range(args.clients)
                ]
                for c in clients:
                    c.start()
                for c in clients:
                    c.join()
            elapsed = time.monotonic() - began
            time.sleep(args.idle)
            rss_idle = rss_mib(server.pid)
            idle_map = memory_map(server.pid)
        finally:
            server.stop(60)
    report = render(args, soak, rss_start, rss_idle, elapsed, health)
    report += "\n\n" + growth_table(soak.warm_map, idle_map)
    print(report)
    if args.out:
        args.out.write_text(report + "\n")


def render(args: argparse.Namespace, soak: Soak, rss_start: float, rss_idle: float,
           elapsed: float, health: HealthProbe) -> str:  # fmt: skip
    samples = sorted(soak.samples)
    n = np.array([s[0] for s in samples], dtype=float)
    rss = np.array([s[1] for s in samples])
    after = n > args.warm_up
    slope = float(np.polyfit(n[after], rss[after], 1)[0]) * 100 if after.sum() > 2 else float("nan")
    warm = float(rss[after][0]) if after.any() else float("nan")
    env = " ".join(args.env) or "(default)"
    lines = [
        f"soak: {soak.done} generations, {args.clients} clients, "
        f"{'mixed with uploads/deletes' if args.mixed else 'queries only'}, server env {env}",
        f"{elapsed:.0f} s, {soak.done / max(elapsed, 1e-9):.2f} answers/s; statuses "
        + ", ".join(f"{k}: {v}" for k, v in sorted(soak.statuses.items())),
        "",
        f"{'requests':>9} {'RSS MiB':>8}",
    ]
    step = max(1, len(samples) // 10)
    for i in [*range(0, len(samples), step), len(samples) - 1]:
        lines.append(f"{int(n[i]):>9} {rss[i]:>8.0f}")
    idle_vs_warm = (rss_idle - warm) / warm * 100
    lines += [
        "",
        f"RSS at start (models loaded)     {rss_start:8.0f} MiB",
        f"RSS warm (request {args.warm_up + 1})         {warm:8.0f} MiB",
        f"RSS at the end                   {rss[-1]:8.0f} MiB",
        f"fitted slope after warm-up       {slope:8.1f} MiB per 100 requests (target < 5)",
        f"RSS after {args.idle:.0f} s idle            {rss_idle:8.0f} MiB "
        f"({idle_vs_warm:+.1f} % vs warm; target within 10 %)",
        *health.summary(),
    ]
    return "\n".join(lines)


def growth_table(warm: dict[str, float], idle: dict[str, float], top: int = 6) -> str:
    """Where the RSS grew between the warm request and the end of the idle wait."""
    grown = sorted(idle.keys() | warm.keys(), key=lambda k: warm.get(k, 0) - idle.get(k, 0))
    lines = [f"{'RSS by mapping (MiB)':<28} {'warm':>8} {'idle end':>8} {'change':>8}"]
    for k in grown[:top]:
        w, i = warm.get(k, 0.0), idle.get(k, 0.0)
        lines.append(f"{k:<28} {w:>8.1f} {i:>8.1f} {i - w:>+8.1f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
