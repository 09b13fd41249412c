"""Shared test helpers for the answer stages (citations, attribution, extraction, guards,
pipeline): the real embedding model, XQuAD paragraphs as ScoredChunks, prompts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from core.types import Chunk, Prompt, PromptStyle, ScoredChunk
from generation.prompt import GroundedPromptBuilder
from ingest.embedding import SentenceTransformerEmbedder

XQUAD = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "xquad-en" / "xquad.en.json"


@cache
def embedder() -> SentenceTransformerEmbedder:
    """The platform's embedder on the bundled all-MiniLM-L6-v2 (loaded once per session)."""
    emb = SentenceTransformerEmbedder(device="cpu")
    emb.warm_up()
    return emb


@cache
def xquad() -> list[dict]:
    """Articles of XQuAD-en: each {"title", "paragraphs": [{"context", "qas"}]}."""
    return json.loads(XQUAD.read_text(encoding="utf-8"))["data"]


def chunk(
    text: str, i: int = 0, *, dense: float | None = 0.6, source: str = "doc.txt"
) -> ScoredChunk:
    c = Chunk(
        id=f"c{i}",
        document_id=f"d{i}",
        collection="test",
        ordinal=i,
        text=text,
        char_start=0,
        char_end=len(text),
        source=source,
        media_type="text/plain",
    )
    return ScoredChunk(chunk=c, score=1.0 / (i + 1), dense_rank=i + 1, dense_score=dense)


def chunks(texts: Sequence[str], dense: float | None = 0.6) -> tuple[ScoredChunk, ...]:
    return tuple(chunk(t, i, dense=dense, source=f"doc{i}.txt") for i, t in enumerate(texts))


def scored(question: str, texts: Sequence[str]) -> tuple[ScoredChunk, ...]:
    """``texts`` as retrieved chunks in the given order, each with its real dense score
    (MiniLM cosine to ``question``), as the hybrid retriever would report it."""
    vecs = embedder().embed([question, *texts])
    out = []
    for i, t in enumerate(texts):
        sc = chunk(t, i, dense=float(vecs[0] @ vecs[i + 1]), source=f"doc{i}.txt")
        out.append(sc)
    return tuple(out)


def builder(style: PromptStyle = PromptStyle.COMPLETION) -> GroundedPromptBuilder:
    """The platform's prompt builder; words stand in for tokens (these tests run no LLM)."""
    return GroundedPromptBuilder(style, lambda t: len(t.split()), n_ctx=4096, max_tokens=64)


def completion_prompt(question: str, sources: Sequence[ScoredChunk]) -> Prompt:
    return builder(PromptStyle.COMPLETION).build(question, sources)


def chat_prompt(question: str, sources: Sequence[ScoredChunk]) -> Prompt:
    return builder(PromptStyle.CHAT).build(question, sources)


def xquad_case(title: str, needle: str) -> tuple[str, str, str]:
    """(question, gold answer, paragraph) of the first XQuAD question of article ``title``
    whose gold answer contains ``needle``."""
    for art in xquad():
        if art["title"] != title:
            continue
        for para in art["paragraphs"]:
            for qa in para["qas"]:
                if needle in qa["answers"][0]["text"]:
                    return qa["question"], qa["answers"][0]["text"], para["context"]
    raise LookupError(f"no XQuAD question in {title!r} with answer {needle!r}")


def paragraph(title: str, index: int = 0) -> str:
    """Paragraph ``index`` of XQuAD article ``title``."""
    art = next(a for a in xquad() if a["title"] == title)
    return art["paragraphs"][index]["context"]
