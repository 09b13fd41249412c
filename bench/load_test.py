"""Load against the real ``rag serve``: do the limits hold, is any upload lost, does
memory stay bounded?

    .venv/bin/python -m bench.load_test                          # 32 clients, 60 s
    .venv/bin/python -m bench.load_test --clients 4 --seconds 5 --big-upload-mb 0

Starts ``rag serve`` on a fresh data folder with examples/ ingested and ``--keys`` API
keys of the default tenant. First, on the quiet server, one ``--big-upload-mb`` text
file is uploaded while the server's RSS is sampled (the upload streams to disk: it
never sits in memory whole). Then ``--clients`` threads, each with one of the keys,
send a weighted mix (``--mix``) for ``--seconds``: ``retrieve`` (/v1/retrieve),
``query`` (/v1/query, the real LLM), ``upload`` (a new small document, alternately 202
and ``?wait=true``) and ``delete`` (one of the run's own uploads). A client that is
refused for load (429/503) waits the Retry-After it was given, as a well-behaved
client does. At the end every job is waited for and every acknowledged upload not
deleted by the run must be in the collection.

Prints, per endpoint, the count, the statuses, p50/p99 latency of the successful
requests (and of all), the 5xx count, lost uploads and the server's RSS at start, peak
and end; writes the same to ``--out`` (bench/results/load.txt).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from bench.server import HealthProbe, bench_env, rss_mib
from bench.soak import start_server as serve

COLLECTION = "load"
TOPICS = (
    "reciprocal rank fusion", "BM25", "dense retrieval", "chunking", "embeddings",
    "citations", "abstention", "hybrid search", "FAISS", "guardrails", "reranking",
)  # fmt: skip
ENDED = {"done", "failed", "cancelled"}
ANSWERABLE = (
    "Which model embeds the question for dense retrieval?",
    "Which command adds files or whole folders?",
)


class RssSampler:
    """The server's RSS every ``every`` seconds, on a thread of its own."""

    def __init__(self, pid: int, every: float = 0.25) -> None:
        self.pid, self.every = pid, every
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(rss_mib(self.pid))
            self._stop.wait(self.every)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(rss_mib(self.pid))


@dataclass
class Tally:
    """What the clients saw, shared between their threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    ok_seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    acknowledged: set[str] = field(default_factory=set)  # sources of 200/202 uploads
    deleted: set[str] = field(default_factory=set)
    deletable: list[tuple[str, str]] = field(default_factory=list)  # (document id, source)
    jobs: list[str] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)  # transport errors
    abstained: int = 0

    def record(self, endpoint: str, status: int, seconds: float) -> None:
        with self.lock:
            self.seconds[endpoint].append(seconds)
            self.statuses[endpoint][status] += 1
            if status < 400:
                self.ok_seconds[endpoint].append(seconds)


class Client:
    """One simulated user: a key of its own and the weighted mix until the deadline."""

    def __init__(self, n: int, url: str, key: str, mix: dict[str, int], tally: Tally) -> None:
        self.n, self.tally = n, tally
        self.http = httpx.Client(
            base_url=url, timeout=300, headers={"Authorization": f"Bearer {key}"}
        )
        self.rng = random.Random(n)
        self.ops = list(mix)
        self.weights = [mix[o] for o in self.ops]

    def run(self, deadline: float) -> None:
        with self.http:
            for op_n in range(1_000_000):
                if time.monotonic() >= deadline:
                    return
                op = self.rng.choices(self.ops, self.weights)[0]
                try:
                    resp = getattr(self, op)(op_n)
                except httpx.HTTPError as e:
                    with self.tally.lock:
                        self.tally.errors[f"{op} {type(e).__name__}"] += 1
                    continue
                if resp is not None and resp.status_code in (429, 503):
                    wait = float(resp.headers.get("Retry-After", "1"))
                    time.sleep(max(0.0, min(wait, deadline - time.monotonic())))

    def _timed(self, endpoint: str, method: str, url: str, **kw: object) -> httpx.Response:
        start = time.perf_counter()
        resp = self.http.request(method, url, **kw)  # type: ignore[arg-type]
        self.tally.record(endpoint, resp.status_code, time.perf_counter() - start)
        return resp

    def _question(self, op_n: int) -> str:
        topic = TOPICS[self.rng.randrange(len(TOPICS))]
        return f"What does the documentation say about {topic}? (client {self.n}, {op_n})"

    def retrieve(self, op_n: int) -> httpx.Response:
        body = {"query": self._question(op_n), "collection": "default"}
        return self._timed("retrieve", "POST", "/v1/retrieve", json=body)

    def query(self, op_n: int) -> httpx.Response:
        # questions examples/ answers (others abstain before the model runs), each asked
        # once: no two prompts alike
        asked = ANSWERABLE[self.rng.randrange(len(ANSWERABLE))]
        body = {"question": f"{asked} (ticket {self.n}-{op_n})", "collection": "default"}
        resp = self._timed("query", "POST", "/v1/query", json=body)
        if resp.status_code == 200 and resp.json().get("abstained"):
            with self.tally.lock:
                self.tally.abstained += 1  # decided before the model ran: no generation
        return resp

    def upload(self, op_n: int) -> httpx.Response:
        source = f"load-{self.n}-{op_n}.txt"
        text = f"Load document {self.n}-{op_n}. " + " ".join(
            self._question(op_n + i) for i in range(12)
        )
        wait = op_n % 2 == 1
        resp = self._timed(
            "upload?wait" if wait else "upload 202", "POST",
            f"/v1/collections/{COLLECTION}/documents",
            params={"wait": "true"} if wait else {},
            files={"files": (source, text.encode(), "text/plain")},
        )  # fmt: skip
        if resp.status_code in (200, 202):
            body = resp.json()
            with self.tally.lock:
                self.tally.acknowledged.add(source)
                if resp.status_code == 202:
                    self.tally.jobs.append(body["id"])
                else:
                    ids = [r["document_id"] for r in body["results"] if r.get("document_id")]
                    self.tally.deletable.extend((i, source) for i in ids)
        return resp

    def delete(self, op_n: int) -> httpx.Response | None:
        with self.tally.lock:
            if not self.tally.deletable:
                victim = None
            else:
                victim = self.tally.deletable.pop(self.rng.randrange(len(self.tally.deletable)))
        if victim is None:
            return self.retrieve(op_n)
        doc_id, source = victim
        resp = self._timed("delete", "DELETE", f"/v1/collections/{COLLECTION}/documents/{doc_id}")
        if resp.status_code < 300:
            with self.tally.lock:
                self.tally.deleted.add(source)
        return resp


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    keys: list[str]


def start_server(data: Path, n_keys: int, env: dict[str, str]) -> Server:
    """``rag serve`` on ``data`` with examples/ ingested (bench.soak), and ``n_keys`` keys."""
    started = serve(data, env)
    keys = []
    for i in range(n_keys):
        out = subprocess.run(
            [sys.executable, "-m", "api.cli", "--data-dir", str(data), "keys", "create",
             "--tenant", "default", "--label", f"load{i}", "--json"],
            env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        keys.append(json.loads(out.stdout)["secret"])
    assert started.proc is not None
    return Server(started.proc, started.url, keys)


def big_upload(server: Server, mib: int, tmp: Path) -> tuple[float, float, int]:
    """Upload one ``mib`` MiB text file (streamed from disk); the server's RSS before and
    at its peak during the upload, and the status."""
    path = tmp / "big.txt"
    line = b"The harbour ferry leaves at seven and the lighthouse keeper logs the tide.\n"
    with path.open("wb") as f:
        for _ in range(mib * 1024 * 1024 // len(line) + 1):
            f.write(line)
    before = rss_mib(server.proc.pid)
    auth = {"Authorization": f"Bearer {server.keys[0]}"}
    with RssSampler(server.proc.pid, every=0.05) as rss, path.open("rb") as f:
        resp = httpx.post(
            f"{server.url}/v1/collections/big/documents",
            files={"files": ("big.txt", f, "text/plain")},
            headers=auth,
            timeout=300,
        )
        if resp.status_code == 202:  # refused as too large at once, or cut short here
            job = resp.json()["id"]
            httpx.post(f"{server.url}/v1/jobs/{job}/cancel", headers=auth, timeout=60)
            _wait_jobs(server, [job])
    return before, max(rss.samples), resp.status_code


def _wait_jobs(server: Server, jobs: list[str], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(
        base_url=server.url, timeout=60, headers={"Authorization": f"Bearer {server.keys[0]}"}
    ) as http:
        for job in jobs:
            while http.get(f"/v1/jobs/{job}").json()["status"] not in ENDED:
                if time.monotonic() > deadline:
                    raise SystemExit(f"job {job} did not end in {timeout:.0f} s")
                time.sleep(0.2)


def lost_uploads(server: Server, tally: Tally) -> list[str]:
    """Acknowledged uploads that are not in the collection and were not deleted."""
    _wait_jobs(server, tally.jobs)
    resp = httpx.get(
        f"{server.url}/v1/collections/{COLLECTION}/documents",
        headers={"Authorization": f"Bearer {server.keys[0]}"}, timeout=60,
    )  # fmt: skip
    present = {d["source"] for d in resp.json()["data"]} if resp.status_code == 200 else set()
    return sorted(tally.acknowledged - tally.deleted - present)


def _say_server_errors(log: Path) -> None:
    """The server's tracebacks (what a 5xx was), on stderr."""
    text = log.read_text(errors="replace") if log.is_file() else ""
    for block in text.split("Traceback (most recent call last):")[1:6]:
        _say("server error:\n" + "\n".join(block.strip().splitlines()[-12:]))


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _ms(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q) * 1000:.0f}" if values else "-"


def render(args: argparse.Namespace, tally: Tally, rss: list[float], big: tuple[float, float,
           int] | None, lost: list[str], elapsed: float) -> Iterator[str]:  # fmt: skip
    yield (
        f"load: {args.clients} clients over {args.keys} API keys for {elapsed:.0f} s, mix "
        + ", ".join(f"{k}={v}" for k, v in args.mix.items())
        + f"; server env {' '.join(args.env) or '(default limits)'}"
    )
    yield (
        f"machine: {os.cpu_count()} cores, load average {args.load_before:.1f} before the "
        f"run and {os.getloadavg()[0]:.1f} after it (other work on the machine slows it)"
    )
    yield ""
    yield (
        f"{'endpoint':<12} {'count':>6} {'ok p50':>7} {'ok p99':>7} {'all p50':>7} "
        f"{'all p99':>7}  statuses"
    )
    for ep in sorted(tally.seconds):
        statuses = ", ".join(f"{s}: {n}" for s, n in sorted(tally.statuses[ep].items()))
        ok, every = tally.ok_seconds[ep], tally.seconds[ep]
        yield (
            f"{ep:<12} {len(every):>6} {_ms(ok, 50):>7} {_ms(ok, 99):>7} {_ms(every, 50):>7} "
            f"{_ms(every, 99):>7}  {statuses}"
        )
    yield "(latencies in ms; ok: 2xx only)"
    total = sum(len(v) for v in tally.seconds.values())
    fivexx = sum(n for c in tally.statuses.values() for s, n in c.items() if s >= 500)
    refused = sum(c[503] for c in tally.statuses.values())  # overloaded, with Retry-After
    yield ""
    yield (
        f"requests {total} ({total / max(elapsed, 1e-9):.1f}/s); 5xx: {fivexx} "
        f"({refused} of them 503 overloaded with Retry-After, {fivexx - refused} errors)"
    )
    if tally.abstained:
        yield f"queries answered by abstaining (the model not run): {tally.abstained}"
    if tally.errors:
        yield "transport errors: " + ", ".join(f"{k}: {v}" for k, v in tally.errors.items())
    yield (
        f"uploads acknowledged {len(tally.acknowledged)}, deleted by the run "
        f"{len(tally.deleted)}, lost {len(lost)}" + (f": {lost[:5]}" if lost else "")
    )
    yield (f"server RSS: start {rss[0]:.0f} MiB, peak {max(rss):.0f} MiB, end {rss[-1]:.0f} MiB")
    if big is not None:
        before, peak, status = big
        yield (
            f"{args.big_upload_mb} MiB upload (status {status}): RSS {before:.0f} MiB before, "
            f"peak {peak:.0f} MiB during (+{peak - before:.0f} MiB)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--keys", type=int, default=8, help="API keys the clients share")
    ap.add_argument(
        "--mix", default="retrieve=4,query=2,upload=1,delete=1",
        help="op=weight,... of retrieve, query, upload, delete",
    )  # fmt: skip
    ap.add_argument("--big-upload-mb", type=int, default=60, help="0: skip it")
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server")
    ap.add_argument("--out", type=Path, default=None, help="also write the report here")
    args = ap.parse_args()
    args.mix = {k: int(v) for k, v in (kv.split("=") for kv in args.mix.split(","))}
    env = bench_env(dict(kv.split("=", 1) for kv in args.env))
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp) / "data", args.keys, env)
        try:
            _say(f"server ready at {server.url}; {args.big_upload_mb} MiB upload")
            big = big_upload(server, args.big_upload_mb, Path(tmp)) if args.big_upload_mb else None
            tally = Tally()
            clients = [
                Client(i, server.url, server.keys[i % args.keys], args.mix, tally)
                for i in range(args.clients)
            ]
            _say(f"{args.clients} clients for {args.seconds:g} s")
            args.load_before = os.getloadavg()[0]
            began = time.monotonic()
            with RssSampler(server.proc.pid) as rss, HealthProbe(server.url) as health:
                threads = [
                    threading.Thread(target=c.run, args=(began + args.seconds,)) for c in clients
                ]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                elapsed = time.monotonic() - began
                _say("waiting for the upload jobs to end")
                lost = lost_uploads(server, tally)
        finally:
            server.proc.terminate()
            try:
                server.proc.wait(60)
            except subprocess.TimeoutExpired:
                server.proc.kill()
            _say_server_errors(Path(tmp) / "data" / "serve.log")
    report = "\n".join([*render(args, tally, rss.samples, big, lost, elapsed), *health.summary()])
    print(report)
    if args.out:
        args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
