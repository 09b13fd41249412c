"""Answers, conversations and feedback in SQL (core.repository on a real SQLite file):
a second feedback replaces the first, a deleted document leaves its answers whole, a
deleted collection takes them along, a gate's promotion hands them over, and another
tenant's conversation or answer is not found."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from core import db, repository
from core.errors import AnswerNotFound, ConversationNotFound
from core.types import CollectionKey

KEY = CollectionKey("acme", "docs")


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return db.make_engine(f"sqlite:///{tmp_path / 'rag.sqlite3'}")


def _turn(engine: Engine) -> tuple[str, str, str, str]:
    """(collection id, document id, conversation id, answer id) of one stored turn."""
    with repository.write(engine) as s:
        col = repository.get_or_create_collection(s, KEY)
        doc = repository.add_document(
            s, collection_id=col.id, source="a.txt", media_type="text/plain", sha256="0" * 64
        )
        s.flush()
        conv = repository.add_conversation(s, col.id, "What is it?")
        answer = repository.add_answer(
            s,
            collection_id=col.id,
            conversation_id=conv.id,
            question="how does it work?",
            rewritten_question="how does fusion work?",
            rewrite="rules",
            text="It adds ranks.",
            citations=[{"n": 1, "chunk_id": "k1", "document_id": doc.id, "source": "a.txt"}],
            retrieved=["k1"],
        )
        return col.id, doc.id, conv.id, answer.id


def _count(engine: Engine, row: type[db.Base]) -> int:
    with repository.read(engine) as s:
        return int(s.scalar(select(func.count()).select_from(row)) or 0)


def test_a_second_feedback_replaces_the_first(engine: Engine) -> None:
    _, _, _, answer_id = _turn(engine)
    with repository.write(engine) as s:
        repository.set_feedback(s, answer_id, rating="up")
    with repository.write(engine) as s:
        repository.set_feedback(s, answer_id, rating="down", correct_source="b.txt")
    with repository.read(engine) as s:
        rows = repository.answers_with_feedback(s, repository.get_collection(s, KEY).id)
        assert [(a.id, f.rating, f.correct_source) for a, f in rows] == [
            (answer_id, "down", "b.txt")
        ]


def test_a_deleted_document_leaves_its_answers(engine: Engine) -> None:
    _, doc_id, conv_id, answer_id = _turn(engine)
    with repository.write(engine) as s:
        repository.delete_document_rows(s, doc_id)
    with repository.read(engine) as s:
        (turn,) = repository.conversation_turns(s, conv_id)
        assert turn.id == answer_id and turn.citations[0]["document_id"] == doc_id


def test_a_deleted_collection_takes_conversations_answers_and_feedback(engine: Engine) -> None:
    col_id, _, _, answer_id = _turn(engine)
    with repository.write(engine) as s:
        repository.set_feedback(s, answer_id, rating="up")
    with repository.write(engine) as s:
        repository.delete_collection_rows(s, col_id)
    counts = [_count(engine, r) for r in (db.ConversationRow, db.AnswerRow, db.FeedbackRow)]
    assert counts == [0, 0, 0]


def test_answers_move_to_the_promoted_version(engine: Engine) -> None:
    col_id, _, conv_id, answer_id = _turn(engine)
    with repository.write(engine) as s:
        new = repository.get_or_create_collection(s, CollectionKey("acme", "docs2"))
        repository.move_answers(s, col_id, new.id)
        new_id = new.id
    with repository.read(engine) as s:
        conv, col = repository.get_conversation(s, "acme", conv_id)
        answer, _ = repository.get_answer(s, "acme", answer_id)
        assert col.id == new_id and answer.collection_id == new_id


def test_another_tenants_rows_are_not_found(engine: Engine) -> None:
    _, _, conv_id, answer_id = _turn(engine)
    with repository.read(engine) as s:
        with pytest.raises(ConversationNotFound):
            repository.get_conversation(s, "other", conv_id)
        with pytest.raises(AnswerNotFound):
            repository.get_answer(s, "other", answer_id)
        assert repository.list_conversations(s, "other") == []
        ((conv, name, turns),) = repository.list_conversations(s, "acme")
        assert (conv.id, name, turns) == (conv_id, "docs", 1)
