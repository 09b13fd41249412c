"""The real all-MiniLM-L6-v2, offline."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from core.errors import ModelNotFound
from ingest.embedding import SentenceTransformerEmbedder, bundled_embedding_model_path


def test_bundled_model_folder_exists() -> None:
    assert (Path(bundled_embedding_model_path()) / "config.json").is_file()


def test_embed_shape_dtype_norm_and_order(embedder: SentenceTransformerEmbedder) -> None:
    texts = ["The cat sits on the mat.", "Quarterly revenue grew by four percent.", "A kitten."]
    v = embedder.embed(texts)
    assert v.shape == (3, embedder.dim) == (3, 384)
    assert v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    # Batched and one-by-one agree, so order is kept through length sorting.
    single = np.vstack([embedder.embed([t]) for t in texts])
    np.testing.assert_allclose(v, single, atol=1e-5)
    assert v[0] @ v[2] > v[0] @ v[1]  # cat ~ kitten more than cat ~ revenue


def test_weights_are_not_read_from_the_mapped_file(embedder: SentenceTransformerEmbedder) -> None:
    # Weights left mapped from model.safetensors are paged in word by word as new text
    # arrives: a server's memory crept up for hours. They are copied at load.
    embedder.warm_up()
    mapped = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        if line.endswith(".safetensors"):
            start, end = (int(x, 16) for x in line.split()[0].split("-"))
            mapped.append((start, end))
    model = embedder._model
    assert model is not None
    tensors = [*model.parameters(), *model.buffers()]
    assert tensors
    for t in tensors:
        assert not any(start <= t.data_ptr() < end for start, end in mapped)


def test_empty_input(embedder: SentenceTransformerEmbedder) -> None:
    assert embedder.embed([]).shape == (0, 384)


def test_count_tokens_without_special_tokens_or_truncation(
    embedder: SentenceTransformerEmbedder,
) -> None:
    assert embedder.count_tokens("") == 0
    assert embedder.count_tokens("hello world") == 2
    long = "word " * 1000
    assert embedder.count_tokens(long) == 1000 > embedder.max_seq_length
    assert embedder.count_tokens_batch(["hello world", ""]) == [2, 0]
    assert embedder.model_path == bundled_embedding_model_path()


def test_missing_model_folder_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-model"
    e = SentenceTransformerEmbedder(str(missing))
    with pytest.raises(ModelNotFound, match=str(missing)):
        e.warm_up()
    with pytest.raises(ModelNotFound):
        e.embed(["x"])


def test_folder_that_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("not a model")
    with pytest.raises(ModelNotFound, match=str(tmp_path)):
        SentenceTransformerEmbedder(str(tmp_path)).warm_up()


def test_concurrent_first_use_loads_once() -> None:
    e = SentenceTransformerEmbedder()
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(e.dim)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [384] * 4
