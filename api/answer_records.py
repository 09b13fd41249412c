"""Every answer is stored (table ``answers``): what was asked, the standalone question
retrieval used, what was answered from which chunks. The record's id is the answer's
``answer_id``, which ``POST /v1/feedback`` and a conversation's turns refer to.

    answer_id = store_answer(platform.engine, key, answer)
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

from core import repository
from core.types import Answer, CollectionKey
from generation.rewrite import Rewrite


def store_answer(
    engine: Engine,
    collection: CollectionKey,
    answer: Answer,
    *,
    question: str | None = None,
    rewrite: Rewrite | None = None,
    conversation_id: str | None = None,
) -> str:
    """Store ``answer`` in one short write transaction; returns its id. ``question`` is
    the question as asked (default: the answer's), ``rewrite`` the standalone question
    retrieval used instead, if any."""
    citations = [
        {
            "n": c.n,
            "chunk_id": c.source.chunk.id,
            "document_id": c.source.chunk.document_id,
            "source": c.source.chunk.source,
        }
        for c in answer.citations
    ]
    with repository.write(engine) as s:
        row = repository.add_answer(
            s,
            collection_id=repository.get_collection(s, collection).id,
            conversation_id=conversation_id,
            question=question if question is not None else answer.question,
            rewritten_question=None if rewrite is None else rewrite.text,
            rewrite="none" if rewrite is None else rewrite.kind,
            text=answer.text,
            abstained=answer.abstained,
            citations=citations,
            retrieved=[sc.chunk.id for sc in answer.retrieved],
            model=answer.model.sha256,
        )
        return row.id
