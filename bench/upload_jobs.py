"""Upload jobs: how fast the 202 comes back, and what each file costs once the worker runs.

    .venv/bin/python -m bench.upload_jobs --files 200 --size 4000

Uploads N text files (about SIZE bytes each) in one request to the real app (SQLite,
FAISS, BM25, the bundled embedding model), measures the time to the 202 (spooling + the
job rows), then the time until the worker has ended the job, and the per-file seconds
it recorded; then the same upload with ?wait=true (every file unchanged), and the same
files through ``IngestPipeline.ingest_files`` directly, with no job, for comparison.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from core.settings import Settings
from core.types import CollectionKey

WORDS = [
    "tide",
    "harbour",
    "ferry",
    "lighthouse",
    "beacon",
    "pier",
    "island",
    "spring",
    "season",
    "boat",
    "office",
    "keeper",
    "northern",
    "southern",
    "channel",
    "buoy",
    "storm",
    "gale",
    "current",
    "shipping",
    "schedule",
    "weekday",
]


def _text(n: int, size: int) -> bytes:
    words: list[str] = []
    i = n
    while sum(len(w) + 1 for w in words) < size:
        words.append(WORDS[(i * 7 + len(words) * 3) % len(WORDS)])
        i += 1
    return (f"Document {n}. " + " ".join(words) + ".").encode()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--size", type=int, default=4000, help="bytes per file")
    args = ap.parse_args()
    files = [("files", (f"doc{n:05d}.txt", _text(n, args.size), "text/plain"))
             for n in range(args.files)]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp))
        settings = settings.model_copy(
            update={"api": settings.api.model_copy(update={"max_files_per_upload": 100_000})}
        )
        with TestClient(create_app(settings)) as client:
            client.app.state.platform.embedder.warm_up()  # type: ignore[attr-defined]
            # the content checks and indexes load on first use: not part of the figures
            client.post("/v1/collections/warm/documents?wait=true", files=files[:1])
            t0 = time.perf_counter()
            r = client.post("/v1/collections/bench/documents", files=files)
            accepted = time.perf_counter() - t0
            assert r.status_code == 202, r.text
            job_id = r.json()["id"]
            while (job := client.get(f"/v1/jobs/{job_id}").json())["status"] not in (
                "done", "failed", "cancelled",
            ):  # fmt: skip
                time.sleep(0.05)
            ended = time.perf_counter() - t0
            seconds = [f["seconds"] for f in job["files"] if f["seconds"] is not None]
            t1 = time.perf_counter()
            r = client.post("/v1/collections/bench/documents?wait=true", files=files)
            again = time.perf_counter() - t1
            # the same files through the pipeline directly (no job), on a new collection
            platform = client.app.state.platform  # type: ignore[attr-defined]
            t2 = time.perf_counter()
            platform.ingest.ingest_files(
                [(f[1][0], f[1][1]) for f in files], CollectionKey("default", "direct")
            )
            direct = time.perf_counter() - t2
            assert r.status_code == 200 and r.json()["unchanged"] == args.files, r.text
    mib = sum(len(f[1][1]) for f in files) / 2**20
    print(f"upload of {args.files} files, {mib:.2f} MiB in all ({args.size} bytes each)")
    print(f"| step | seconds |\n|---|---|\n| 202 answered | {accepted:.3f} |")
    print(f"| job ended (202 included) | {ended:.2f} |")
    print(f"| files/s through the worker | {args.files / ended:.1f} |")
    print(f"| per-file seconds, median | {statistics.median(seconds):.3f} |")
    print(f"| per-file seconds, max | {max(seconds):.3f} |")
    print(f"| same upload again, ?wait=true (all unchanged) | {again:.2f} |")
    print(f"| the same files, IngestPipeline.ingest_files directly (no job) | {direct:.2f} |")
    print(f"job status {job['status']}: {job['ingested']} ingested, {job['failed']} failed, "
          f"{job['chunks']} chunks")  # fmt: skip


if __name__ == "__main__":
    main()
