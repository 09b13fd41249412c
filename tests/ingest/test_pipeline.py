"""The ingestion pipeline against a real SQLite file and the real embedding model.

The indexer is an in-memory recording one: these tests check the pipeline's bookkeeping
(what it writes where, and in which order), not search answers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from core.db import ChunkRow, CollectionRow, DocumentRow, IngestionJobRow
from core.errors import InvalidRequest, ModelNotFound
from core.repository import blob_to_vector
from core.settings import IngestSettings
from core.types import CollectionKey, IngestOutcome
from ingest.embedding import SentenceTransformerEmbedder
from ingest.jsonl import JsonlFields
from ingest.pipeline import IngestPipeline, upload_source
from tests.ingest.conftest import RecordingIndexer, make_docx, make_pdf

K = CollectionKey.default  # a collection of the default tenant

PARAGRAPH = (
    "The travel policy covers trains, flights and hotels. Trains are preferred for trips "
    "under four hours. Hotels are booked through the portal and capped per city. "
)


def collection_id(engine: Engine, name: str) -> str:
    with Session(engine) as s:
        return s.scalars(select(CollectionRow.id).where(CollectionRow.name == name)).one()


def sql_chunk_ids(engine: Engine, document_id: str | None = None) -> set[str]:
    with Session(engine) as s:
        stmt = select(ChunkRow.id)
        if document_id is not None:
            stmt = stmt.where(ChunkRow.document_id == document_id)
        return set(s.scalars(stmt))


def document(engine: Engine, document_id: str) -> DocumentRow:
    with Session(engine, expire_on_commit=False) as s:
        return s.get_one(DocumentRow, document_id)


def by_source(outcomes: Sequence[IngestOutcome]) -> dict[str, IngestOutcome]:
    return {o.source: o for o in outcomes}


def test_folder_of_mixed_files_with_one_bad_file(
    tmp_path: Path, pipeline: IngestPipeline, engine: Engine, indexer: RecordingIndexer
) -> None:
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "a.md").write_text("# Policy\n\n" + PARAGRAPH * 3)
    (root / "sub" / "b.txt").write_text("Plain notes about expenses.")
    (root / "sub" / "c.html").write_text("<html><body><h1>Web</h1><p>Page.</p></body></html>")
    (root / "d.pdf").write_bytes(make_pdf(["First page.", "Second page."]))
    (root / "e.docx").write_bytes(make_docx())
    (root / "broken.pdf").write_bytes(make_pdf(["cut"])[:300])
    (root / ".hidden.txt").write_text("never ingested")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("never ingested")
    seen: list[IngestOutcome] = []

    report = pipeline.ingest_paths(
        [root], K("handbook"), metadata={"team": "ops"}, on_progress=seen.append
    )

    outcomes = by_source(report.outcomes)
    assert sorted(outcomes) == ["a.md", "broken.pdf", "d.pdf", "e.docx", "sub/b.txt", "sub/c.html"]
    assert [o.source for o in report.outcomes] == sorted(outcomes)  # input order
    assert len(seen) == 6
    bad = outcomes["broken.pdf"]
    assert bad.status == "failed" and bad.error_code == "corrupt_document"
    assert bad.error is not None and bad.error.startswith("broken.pdf: ")
    assert all(o.status == "ingested" and o.chunks > 0 for o in report.outcomes if o is not bad)

    cid = collection_id(engine, "handbook")
    assert indexer.ids(cid) == sql_chunk_ids(engine)
    with Session(engine) as s:
        docs = {d.source: d for d in s.scalars(select(DocumentRow))}
        assert {d.status for d in docs.values()} == {"ready"}
        assert docs["e.docx"].meta == {"title": "Handbook", "team": "ops"}
        assert docs["d.pdf"].meta["pages"] == 2
        pages = s.scalars(
            select(ChunkRow.page).where(ChunkRow.document_id == docs["d.pdf"].id)
        ).all()
        assert sorted(pages) == [1, 2]
        for row in s.scalars(select(ChunkRow)):
            assert row.embedding is not None
            vec = blob_to_vector(row.embedding)
            assert vec.shape == (384,)
            np.testing.assert_allclose(vec, indexer.entries[cid][row.id][1], atol=1e-6)
        job = s.scalars(select(IngestionJobRow)).one()
        assert (job.status, job.n_inputs, job.n_ingested, job.n_failed) == ("done", 6, 5, 1)
        assert job.n_chunks == report.chunks
        assert len(job.summary["outcomes"]) == 6
    # Small documents are embedded and indexed together: one upsert for the batch.
    assert [c[0] for c in indexer.calls] == ["upsert"]


def test_unchanged_then_replaced_then_deleted(
    tmp_path: Path, pipeline: IngestPipeline, engine: Engine, indexer: RecordingIndexer
) -> None:
    f = tmp_path / "policy.txt"
    f.write_text(PARAGRAPH * 4)
    first = pipeline.ingest_paths([f], K("c")).outcomes[0]
    assert (first.source, first.status) == ("policy.txt", "ingested")
    assert first.document_id is not None
    doc_id = first.document_id
    cid = collection_id(engine, "c")
    old_ids = sql_chunk_ids(engine, doc_id)
    assert len(old_ids) == first.chunks > 1
    calls = len(indexer.calls)

    again = pipeline.ingest_paths([f], K("c")).outcomes[0]
    assert (again.status, again.document_id, again.chunks) == ("unchanged", doc_id, 0)
    assert len(indexer.calls) == calls  # no work at all

    f.write_text("A shorter, rewritten policy. " + PARAGRAPH)
    replaced = pipeline.ingest_paths([f], K("c")).outcomes[0]
    assert (replaced.status, replaced.document_id) == ("replaced", doc_id)
    new_ids = sql_chunk_ids(engine, doc_id)
    assert new_ids and not (new_ids & old_ids)
    assert indexer.ids(cid) == new_ids  # old chunks gone from the indexer too
    row = document(engine, doc_id)
    assert (row.version, row.status, row.n_chunks) == (2, "ready", len(new_ids))

    pipeline.delete_document(K("c"), doc_id)
    assert sql_chunk_ids(engine) == set()
    assert indexer.ids(cid) == set()
    with Session(engine) as s:
        assert s.get(DocumentRow, doc_id) is None


def test_other_chunk_settings_reindex_unchanged_bytes(
    tmp_path: Path, pipeline: IngestPipeline, engine: Engine, indexer: RecordingIndexer
) -> None:
    """A document ingested with other chunk settings is re-indexed on re-ingest, though
    its bytes are the same; the recipe stored on it says how its chunks were made."""
    f = tmp_path / "policy.txt"
    f.write_text(PARAGRAPH * 6)
    first = pipeline.ingest_paths([f], K("c")).outcomes[0]
    assert first.document_id is not None
    assert document(engine, first.document_id).recipe == pipeline.recipe
    assert pipeline.recipe.startswith("chunks 64/8 tokens") and "all_minilm" in pipeline.recipe
    small = IngestPipeline(
        engine,
        pipeline._embedder,
        indexer,
        IngestSettings(chunk_size_tokens=32, chunk_overlap_tokens=0),
    )
    assert small.recipe != pipeline.recipe
    again = small.ingest_paths([f], K("c")).outcomes[0]
    assert (again.status, again.document_id) == ("replaced", first.document_id)
    assert again.chunks > first.chunks
    assert document(engine, first.document_id).recipe == small.recipe
    assert small.ingest_paths([f], K("c")).outcomes[0].status == "unchanged"


def test_metadata_change_alone_does_not_reindex(
    tmp_path: Path, pipeline: IngestPipeline, engine: Engine, indexer: RecordingIndexer
) -> None:
    f = tmp_path / "a.txt"
    f.write_text(PARAGRAPH)
    doc_id = pipeline.ingest_paths([f], K("c"), metadata={"v": 1}).outcomes[0].document_id
    assert doc_id is not None
    calls = len(indexer.calls)
    assert pipeline.ingest_paths([f], K("c"), metadata={"v": 2}).outcomes[0].status == "unchanged"
    assert len(indexer.calls) == calls
    assert document(engine, doc_id).meta == {"v": 2}


def test_missing_path_is_a_failed_outcome_and_the_rest_continue(
    tmp_path: Path, pipeline: IngestPipeline
) -> None:
    ok = tmp_path / "ok.txt"
    ok.write_text("Fine.")
    missing = tmp_path / "missing.txt"
    report = pipeline.ingest_paths([missing, ok], K("c"))
    failed, done = report.outcomes
    assert failed.status == "failed" and failed.error_code == "path_not_found"
    assert failed.error == f"{missing}: no such file or directory"
    assert done.status == "ingested"


def test_jsonl_corpus_with_a_bad_line(
    tmp_path: Path, pipeline: IngestPipeline, engine: Engine, indexer: RecordingIndexer
) -> None:
    corpus = tmp_path / "corpus.jsonl"
    lines = [json.dumps({"_id": f"d{i}", "title": f"T{i}", "text": PARAGRAPH}) for i in range(5)]
    lines.insert(2, "{not json")
    corpus.write_text("\n".join(lines) + "\n")
    report = pipeline.ingest_paths([corpus], K("sci"), jsonl=JsonlFields())
    assert [o.source for o in report.outcomes] == ["d0", "d1", "corpus.jsonl:3", "d2", "d3", "d4"]
    (bad,) = report.failed
    assert bad.error is not None and bad.error.startswith("corpus.jsonl line 3: invalid JSON")
    with Session(engine) as s:
        meta = s.scalars(select(DocumentRow.meta).where(DocumentRow.source == "d3")).one()
    assert meta == {"title": "T3", "corpus": "corpus.jsonl"}
    assert indexer.ids(collection_id(engine, "sci")) == sql_chunk_ids(engine)
    # Re-ingesting the corpus: every good line is unchanged.
    again = pipeline.ingest_paths([corpus], K("sci"))
    assert [o.status for o in again.outcomes if o.source != "corpus.jsonl:3"] == ["unchanged"] * 5


def test_uploads_with_metadata_and_a_duplicate_name(
    pipeline: IngestPipeline, engine: Engine
) -> None:
    files = [
        ("notes.md", b"# Notes\n\nMeeting on Monday."),
        ("../../etc/report.pdf", make_pdf(["Quarterly report."])),
        ("notes.md", b"another file with the same name"),
        ("empty.txt", b""),
    ]
    report = pipeline.ingest_files(files, K("uploads"), metadata={"owner": "ana"})
    statuses = [(o.source, o.status, o.error_code) for o in report.outcomes]
    assert statuses == [
        ("notes.md", "ingested", None),
        ("report.pdf", "ingested", None),  # path parts dropped
        ("notes.md", "failed", "ingest_error"),
        ("empty.txt", "failed", "empty_document"),
    ]
    with Session(engine) as s:
        metas = s.scalars(select(DocumentRow.meta)).all()
    assert all(m["owner"] == "ana" for m in metas)


class PoisonEmbedder:
    """The real embedder, except that it fails on one text: an unexpected error."""

    def __init__(self, real: SentenceTransformerEmbedder) -> None:
        self.real = real
        self.dim = real.dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if any("POISON" in t for t in texts):
            raise ValueError("cannot embed this")
        return self.real.embed(texts)

    def count_tokens(self, text: str) -> int:
        return self.real.count_tokens(text)

    @property
    def model_path(self) -> str:
        return self.real.model_path

    @property
    def max_seq_length(self) -> int:
        return self.real.max_seq_length


def test_unexpected_error_in_one_document_fails_only_that_document(
    tmp_path: Path,
    engine: Engine,
    embedder: SentenceTransformerEmbedder,
    indexer: RecordingIndexer,
    settings: IngestSettings,
) -> None:
    pipeline = IngestPipeline(engine, PoisonEmbedder(embedder), indexer, settings)
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in [("a.txt", "Good one."), ("b.txt", "POISON here."), ("c.txt", "Good two.")]:
        (docs / name).write_text(text)
    report = pipeline.ingest_paths([docs], K("c"))
    statuses = {o.source: o.status for o in report.outcomes}
    assert statuses == {"a.txt": "ingested", "b.txt": "failed", "c.txt": "ingested"}
    (bad,) = report.failed
    assert bad.error_code == "internal_error"
    assert bad.error is not None and "b.txt" in bad.error and "cannot embed this" in bad.error
    with Session(engine) as s:
        assert sorted(s.scalars(select(DocumentRow.source))) == ["a.txt", "c.txt"]


def test_index_failure_marks_documents_failed(
    tmp_path: Path, pipeline: IngestPipeline, engine: Engine, indexer: RecordingIndexer
) -> None:
    (tmp_path / "a.txt").write_text("Some text.")
    indexer.fail_upsert = True
    (outcome,) = pipeline.ingest_paths([tmp_path / "a.txt"], K("c")).outcomes
    assert outcome.status == "failed" and outcome.error is not None
    assert "indexes could not be updated" in outcome.error
    with Session(engine) as s:
        row = s.scalars(select(DocumentRow)).one()
        assert row.status == "failed" and "disk full" in (row.error or "")
    # Once the indexer works again, re-ingesting the same file completes it.
    indexer.fail_upsert = False
    again = pipeline.ingest_paths([tmp_path / "a.txt"], K("c")).outcomes[0]
    assert again.status == "replaced"
    assert indexer.ids(collection_id(engine, "c")) == sql_chunk_ids(engine)


class Crash(BaseException):
    """Stands for the process dying in the middle of an index write."""


class CrashingIndexer(RecordingIndexer):
    def upsert(
        self,
        collection_id: str,
        chunk_ids: Sequence[str],
        texts: Sequence[str],
        vectors: np.ndarray,
    ) -> None:
        raise Crash


def test_recover_finishes_documents_left_indexing(
    tmp_path: Path,
    engine: Engine,
    embedder: SentenceTransformerEmbedder,
    settings: IngestSettings,
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text(PARAGRAPH * 3)
    (docs / "b.txt").write_text("Second document.")
    with pytest.raises(Crash):
        IngestPipeline(engine, embedder, CrashingIndexer(), settings).ingest_paths([docs], K("c"))
    with Session(engine) as s:
        assert set(s.scalars(select(DocumentRow.status))) == {"indexing"}
        stored = {r.id: blob_to_vector(r.embedding) for r in s.scalars(select(ChunkRow))}
        assert s.scalars(select(IngestionJobRow.status)).one() == "failed"

    indexer = RecordingIndexer()
    restarted = IngestPipeline(engine, embedder, indexer, settings)
    assert restarted.recover() == 2
    cid = collection_id(engine, "c")
    assert indexer.ids(cid) == set(stored)
    for chunk_id, vec in stored.items():  # the stored embeddings, not new ones
        np.testing.assert_array_equal(indexer.entries[cid][chunk_id][1], vec)
    with Session(engine) as s:
        rows = s.scalars(select(DocumentRow)).all()
        assert {d.status for d in rows} == {"ready"}
        assert sum(d.n_chunks for d in rows) == len(stored)
    assert restarted.recover() == 0
    # After recovery the files are unchanged: nothing to do.
    assert {o.status for o in restarted.ingest_paths([docs], K("c")).outcomes} == {"unchanged"}


def test_delete_collection(
    tmp_path: Path, pipeline: IngestPipeline, engine: Engine, indexer: RecordingIndexer
) -> None:
    (tmp_path / "a.txt").write_text("Text.")
    pipeline.ingest_paths([tmp_path / "a.txt"], K("gone"))
    cid = collection_id(engine, "gone")
    pipeline.delete_collection(K("gone"))
    assert indexer.ids(cid) == set()
    with Session(engine) as s:
        assert s.scalars(select(CollectionRow)).all() == []
        assert s.scalars(select(DocumentRow)).all() == []
        assert s.scalars(select(ChunkRow)).all() == []


def test_many_small_documents_are_embedded_in_groups(
    tmp_path: Path,
    engine: Engine,
    embedder: SentenceTransformerEmbedder,
    indexer: RecordingIndexer,
    settings: IngestSettings,
) -> None:
    corpus = tmp_path / "small.jsonl"
    corpus.write_text(
        "\n".join(json.dumps({"_id": str(i), "text": f"Document number {i}."}) for i in range(40))
    )
    pipeline = IngestPipeline(engine, embedder, indexer, settings, group_chunks=16)
    report = pipeline.ingest_paths([corpus], K("c"))
    assert len(report.outcomes) == 40 and not report.failed
    upserts = [n for kind, _, n in indexer.calls if kind == "upsert"]
    assert sum(upserts) == 40 and len(upserts) <= 3


def test_missing_embedding_model_fails_the_call(
    tmp_path: Path, engine: Engine, indexer: RecordingIndexer, settings: IngestSettings
) -> None:
    (tmp_path / "a.txt").write_text("Text.")
    broken = IngestPipeline(
        engine, SentenceTransformerEmbedder(str(tmp_path / "no-model")), indexer, settings
    )
    with pytest.raises(ModelNotFound, match="no-model"):
        broken.ingest_paths([tmp_path / "a.txt"], K("c"))
    assert indexer.calls == []


def test_jsonl_upload_is_a_corpus_and_an_oversized_one_is_refused(
    pipeline: IngestPipeline, settings: IngestSettings
) -> None:
    corpus = b'{"_id": "x1", "text": "First."}\n{"_id": "x2", "text": "Second."}\n'
    too_big = b'{"_id": "y", "text": "' + b"a" * settings.max_file_bytes + b'"}\n'
    report = pipeline.ingest_files([("c.jsonl", corpus), ("big.jsonl", too_big)], K("up"))
    assert [(o.source, o.status) for o in report.outcomes] == [
        ("x1", "ingested"),
        ("x2", "ingested"),
        ("big.jsonl", "failed"),
    ]
    assert report.outcomes[2].error_code == "document_too_large"


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("notes.txt", "notes.txt"),
        ("../../etc/passwd.txt", "passwd.txt"),
        ("C:\\Users\\me\\report.md", "report.md"),
        ("re\x07port\x00.md", "report.md"),
        ("rtl\u202etxt.exe", "rtltxt.exe"),
        ("  two   spaces .txt", "two spaces .txt"),
        ("zero\u200bwidth\ufeff.txt", "zerowidth.txt"),
    ],
)
def test_upload_names_become_clean_sources(name: str, source: str) -> None:
    assert upload_source(name) == source


@pytest.mark.parametrize("name", ["", "/", "..", "a/..", "\x00\u202e", " \t "])
def test_unusable_upload_names_are_refused_naming_the_rule(name: str) -> None:
    with pytest.raises(InvalidRequest, match="is unusable: an uploaded file's name keeps"):
        upload_source(name)


def test_the_zip_limits_of_the_settings_reach_the_loaders(
    engine: Engine, embedder: SentenceTransformerEmbedder, settings: IngestSettings
) -> None:
    from tests.ingest.conftest import RecordingIndexer, make_docx
    from tests.ingest.test_loader_zip_limits import with_padding

    padded = with_padding(make_docx(), "word/media/image1.bin", 2)  # unpacks to ~2 MiB
    strict = settings.model_copy(update={"max_unzipped_bytes": 1024 * 1024})
    pipe = IngestPipeline(engine, embedder, RecordingIndexer(), strict)
    (outcome,) = pipe.ingest_files([("big.docx", padded)], K("zips")).outcomes
    assert outcome.status == "failed" and outcome.error_code == "unsafe_archive"
    assert "ingest.max_unzipped_bytes" in (outcome.error or "")
    loose = settings.model_copy(update={"max_zip_ratio": 10_000.0})  # zeros deflate ~1000:1
    lenient = IngestPipeline(engine, embedder, RecordingIndexer(), loose)
    (outcome,) = lenient.ingest_files([("big.docx", padded)], K("zips")).outcomes
    assert outcome.status == "ingested"


def test_document_identity_is_the_path_relative_to_the_folder_given(
    pipeline: IngestPipeline, tmp_path: Path
) -> None:
    root = tmp_path / "project"
    (root / "docs" / "guides").mkdir(parents=True)
    (root / "docs" / "guides" / "a.txt").write_text("Guides explain the harbour tides.")
    (root / "docs" / "b.md").write_text("# B\n\nThe ferry leaves at ten.")
    first = pipeline.ingest_paths([root / "docs"], K("ids"))
    assert sorted(o.source for o in first.outcomes) == ["b.md", "guides/a.txt"]
    # The same files from the folder above are other documents: their sources differ...
    above = pipeline.ingest_paths([root], K("ids-above"))
    assert sorted(o.source for o in above.outcomes) == ["docs/b.md", "docs/guides/a.txt"]
    # ...unless the prefix says where the folder sits: then they are the same documents.
    again = pipeline.ingest_paths([root / "docs"], K("ids-above"), source_prefix="docs/")
    assert {o.status for o in again.outcomes} == {"unchanged"}
    single = pipeline.ingest_paths([root / "docs" / "b.md"], K("ids-above"), source_prefix="docs")
    assert [(o.source, o.status) for o in single.outcomes] == [("docs/b.md", "unchanged")]
    for bad in ("../up", "a/../../b", "x\u202ey"):
        with pytest.raises(InvalidRequest, match="--source-prefix"):
            pipeline.ingest_paths([root / "docs"], K("ids"), source_prefix=bad)
