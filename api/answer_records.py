"""Every answer is stored (table ``answers``): what was asked, the standalone question
retrieval used, what was answered from which chunks. The record's id is the answer's
``answer_id``, which ``POST /v1/feedback`` and a conversation's turns refer to.

    answer_id = store_answer(platform.engine, key, answer)
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from core import repository
from core.types import Answer, CollectionKey


def answer_columns(answer: Answer) -> dict[str, Any]:
    """The ``answers`` columns an ``Answer`` fills (question: the one it answered)."""
    return {
        "question": answer.question,
        "text": answer.text,
        "abstained": answer.abstained,
        "citations": [
            {
                "n": c.n,
                "chunk_id": c.source.chunk.id,
                "document_id": c.source.chunk.document_id,
                "source": c.source.chunk.source,
            }
            for c in answer.citations
        ],
        "retrieved": [sc.chunk.id for sc in answer.retrieved],
        "model": answer.model.sha256,
    }


def store_answer(engine: Engine, collection: CollectionKey, answer: Answer) -> str:
    """Store an answer given outside a conversation, in one short write transaction;
    returns its id."""
    with repository.write(engine) as s:
        collection_id = repository.get_collection(s, collection).id
        return repository.add_answer(s, **answer_columns(answer), collection_id=collection_id).id
