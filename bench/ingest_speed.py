"""Ingestion speed: chunks/s through the whole pipeline vs raw SentenceTransformer.encode.

The SciFact corpus (or its first ``--docs`` documents) goes through the real
``IngestPipeline`` (JSONL parse, chunk, embed, SQL write, BM25 + FAISS index write) into
a fresh SQLite file; then the very chunk texts the pipeline produced are encoded by a
bare ``SentenceTransformer.encode`` with the same batch size and device. Raw speed is
measured before and after the pipeline run and averaged, which evens out load drift.
Target: pipeline >= 0.8 x raw.

    python bench/ingest_speed.py                    # whole SciFact corpus (5,183 docs)
    python bench/ingest_speed.py --docs 1000 --out bench/results/ingest_speed.txt
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def raw_encode(model: object, texts: list[str], batch_size: int) -> float:
    """Seconds for one bare ``encode`` of ``texts``."""
    t0 = time.perf_counter()
    model.encode(  # type: ignore[attr-defined]
        texts,
        batch_size=batch_size,
        convert_to_numpy=True,
        normalize_embeddings=True,
        show_progress_bar=False,
    )
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=0, help="first N corpus documents (0: all)")
    ap.add_argument("--datasets-dir", type=Path, default=None)
    ap.add_argument("--out", type=Path, help="also write the table to this file")
    args = ap.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    from api.platform import Platform
    from core import repository
    from core.settings import Settings
    from core.types import CollectionKey
    from evals.datasets import default_datasets_dir

    src = (args.datasets_dir or default_datasets_dir()) / "scifact" / "corpus.jsonl"
    lines = src.read_text(encoding="utf-8").splitlines(keepends=True)
    if args.docs:
        lines = lines[: args.docs]
    tmp = Path(tempfile.mkdtemp(prefix="rag-ingest-bench-"))
    try:
        corpus = tmp / "corpus.jsonl"
        corpus.write_text("".join(lines), encoding="utf-8")
        settings = Settings(data_dir=tmp / "data")
        ing = settings.ingest

        rag = Platform(settings)  # the composition root: the stages `rag ingest` uses
        embedder = rag.embedder
        raw = SentenceTransformer(
            embedder.model_path, device=ing.embedding_device, local_files_only=True
        )
        warm = [json.loads(x)["text"] for x in lines[:64]]
        embedder.embed(warm)
        raw_encode(raw, warm, ing.embed_batch_size)

        engine = rag.engine
        pipeline = rag.ingest

        # Chunk texts for the "before" raw run come from a dry chunking pass.
        from ingest.chunking import Chunker
        from ingest.jsonl import iter_jsonl_documents

        chunker = Chunker(ing, embedder.count_tokens)
        texts = [d.text for doc in iter_jsonl_documents(corpus) for d in chunker.split(doc)]
        raw_before = raw_encode(raw, texts, ing.embed_batch_size)

        # The same corpus without the content checks first (injection, personal data),
        # then with them (the pipeline `rag ingest` runs), and the checks alone.
        from ingest.pipeline import IngestPipeline

        bare = IngestPipeline(engine, embedder, rag.store, ing, screen=None)
        t0 = time.perf_counter()
        bare.ingest_paths([corpus], CollectionKey.default("bench-no-checks"))
        bare_s = time.perf_counter() - t0
        rag.screen.documents(warm[:4], None)  # load the detectors before timing
        t0 = time.perf_counter()
        rag.screen.documents(texts, None)
        checks_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        report = pipeline.ingest_paths([corpus], CollectionKey.default("bench"))
        pipe_s = time.perf_counter() - t0
        n_chunks = report.chunks
        with repository.read(engine) as s:
            cid = repository.get_collection(s, CollectionKey.default("bench")).id
            stored = repository.chunk_texts(s, cid)
        if sorted(stored) != sorted(texts):
            print(
                "warning: the pipeline's chunks differ from the dry chunking pass", file=sys.stderr
            )
        raw_after = raw_encode(raw, stored, ing.embed_batch_size)
        engine.dispose()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    raw_s = (raw_before + raw_after) / 2
    pipe_cps = n_chunks / pipe_s
    raw_cps = len(stored) / raw_s
    ratio = pipe_cps / raw_cps
    failed = len(report.failed)
    rows = [
        ("documents", f"{len(lines):,}", ""),
        ("chunks", f"{n_chunks:,}", f"{failed} failed inputs"),
        (
            "raw SentenceTransformer.encode",
            f"{raw_cps:,.1f} chunks/s",
            f"{raw_s:.1f} s (before {raw_before:.1f} s, after {raw_after:.1f} s)",
        ),
        (
            "whole pipeline (parse, chunk, embed, SQL, BM25+FAISS)",
            f"{pipe_cps:,.1f} chunks/s",
            f"{pipe_s:.1f} s",
        ),
        (
            "the same without content checks",
            f"{n_chunks / bare_s:,.1f} chunks/s",
            f"{bare_s:.1f} s; with checks {100 * (pipe_s - bare_s) / bare_s:+.1f} %",
        ),
        (
            "content checks alone (injection + PII)",
            f"{1000 * checks_s / max(len(texts), 1):.2f} ms/chunk",
            f"{100 * checks_s / pipe_s:.1f} % of the pipeline's time (target < 10 %)",
        ),
        (
            "pipeline / raw",
            f"{ratio:.2f}",
            f"target >= 0.80: {'met' if ratio >= 0.8 else 'MISSED'}",
        ),
    ]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    table = "\n".join(f"{a.ljust(w0)}  {b.rjust(w1)}  {c}" for a, b, c in rows)
    info = (
        f"ingest_speed: SciFact corpus.jsonl, {os.cpu_count()} CPU cores, "
        f"device {ing.embedding_device}, batch {ing.embed_batch_size}, chunk "
        f"{ing.chunk_size_tokens} tokens (overlap {ing.chunk_overlap_tokens}), "
        f"python {platform.python_version()}"
    )
    text = f"{info}\n\n{table}\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
