"""Ingest speed on SciFact: the whole pipeline vs raw ``SentenceTransformer.encode``.

    HF_HUB_OFFLINE=1 python -m tests.ingest.bench_scifact [corpus.jsonl] [--limit N]

Ingests the corpus through the JSONL path into a fresh SQLite file with an in-memory
indexer (index speed is measured by the retrieval benchmarks), then encodes the very
same chunk texts with the model's own ``encode`` (batch size 64, normalised) and prints
both throughputs. Not a test: pytest does not collect it.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import ChunkRow, make_engine
from core.settings import IngestSettings
from core.types import CollectionKey
from ingest.embedding import SentenceTransformerEmbedder
from ingest.jsonl import JsonlFields
from ingest.pipeline import IngestPipeline

K = CollectionKey.default  # a collection of the default tenant


DEFAULT_CORPUS = Path(__file__).resolve().parents[3] / "shared/datasets/scifact/corpus.jsonl"


class _CountingIndexer:
    def __init__(self) -> None:
        self.n = 0

    def upsert(
        self,
        collection_id: str,
        chunk_ids: Sequence[str],
        texts: Sequence[str],
        vectors: np.ndarray,
    ) -> None:
        self.n += len(chunk_ids)

    def delete(self, collection_id: str, chunk_ids: Sequence[str]) -> None:
        self.n -= len(chunk_ids)

    def bulk(self, collection_id: str) -> AbstractContextManager[None]:
        return nullcontext()

    def drop_collection(self, collection_id: str) -> None:
        self.n = 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--limit", type=int, default=0, help="first N lines only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = IngestSettings()
    embedder = SentenceTransformerEmbedder(batch_size=settings.embed_batch_size)
    embedder.warm_up()
    embedder.embed(["warm up"] * 8)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = args.corpus
        if args.limit:
            corpus = Path(tmp) / corpus.name
            with args.corpus.open() as f:
                corpus.write_text(
                    "".join(line for _, line in zip(range(args.limit), f, strict=False))
                )
        engine = make_engine(f"sqlite:///{tmp}/bench.sqlite3")
        pipeline = IngestPipeline(engine, embedder, _CountingIndexer(), settings)
        t0 = time.perf_counter()
        report = pipeline.ingest_paths([corpus], K("scifact"), jsonl=JsonlFields())
        pipeline_s = time.perf_counter() - t0
        with Session(engine) as s:
            texts = list(s.scalars(select(ChunkRow.text)))
        model = embedder._loaded()
        t0 = time.perf_counter()
        model.encode(texts, batch_size=settings.embed_batch_size, normalize_embeddings=True)
        raw_s = time.perf_counter() - t0
    docs = sum(1 for o in report.outcomes if o.status != "failed")
    n = len(texts)
    print(f"documents {docs} (failed {len(report.failed)}), chunks {n}")
    print(f"pipeline   {pipeline_s:7.1f} s  {n / pipeline_s:7.1f} chunks/s")
    print(f"raw encode {raw_s:7.1f} s  {n / raw_s:7.1f} chunks/s")
    print(f"ratio      {raw_s / pipeline_s:7.2f}")


if __name__ == "__main__":
    main()
