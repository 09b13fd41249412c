"""Conversations: a follow-up is made standalone from the conversation's earlier turns
(``generation.rewrite``, the ``conversation.rewrite`` setting) before retrieval, and the
answer is stored as the conversation's next turn.

    chat = Chat(platform)
    turn = chat.prepare(tenant, req)                    # ConversationNotFound
    answer = platform.query.answer(turn.rewrite.text, turn.collection, …)
    body = chat.finish(turn, answer)                    # answer JSON + ids
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from api.answer_records import answer_columns
from api.platform import Platform
from api.schemas import ChatRequest, answer_to_dict
from core import repository
from core.db import AnswerRow
from core.errors import InvalidRequest
from core.types import Answer, CollectionKey
from generation.rewrite import Rewrite, Turn, build_rewriter

_TITLE_CHARS = 80


@dataclass(frozen=True, slots=True)
class ChatTurn:
    """A question of a conversation, ready to be answered."""

    collection: CollectionKey
    question: str  # as asked
    rewrite: Rewrite  # what retrieval uses
    conversation_id: str | None  # None: a new conversation, made when the answer is stored


class Chat:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.settings = platform.settings

    def prepare(self, tenant: str, req: ChatRequest) -> ChatTurn:
        """The turn's collection and standalone question; ``ConversationNotFound`` for an
        unknown or another tenant's conversation, ``InvalidRequest`` when the request
        names another collection than the conversation's."""
        name = req.collection or self.settings.default_collection
        history: list[Turn] = []
        if req.conversation_id is not None:
            with repository.read(self.platform.engine) as s:
                conv, col = repository.get_conversation(s, tenant, req.conversation_id)
                if req.collection is not None and req.collection != col.name:
                    raise InvalidRequest(
                        f"conversation '{conv.id}' is over collection '{col.name}', "
                        f"not '{req.collection}'"
                    )
                name = col.name
                turns = repository.conversation_turns(s, conv.id)
                history = [_turn(a) for a in turns[-self.settings.conversation.history_turns :]]
        kind = self.settings.conversation.rewrite
        rewriter = build_rewriter(kind, self.platform.llm if kind == "model" else None)
        rewrite = rewriter.rewrite(req.question, history)
        return ChatTurn(CollectionKey(tenant, name), req.question, rewrite, req.conversation_id)

    def finish(self, turn: ChatTurn, answer: Answer) -> dict[str, Any]:
        """Store the answer as the conversation's next turn (a new conversation for a
        first turn), in one short transaction; the /v1/chat answer JSON."""
        with repository.write(self.platform.engine) as s:
            collection_id = repository.get_collection(s, turn.collection).id
            conversation_id = turn.conversation_id
            if conversation_id is None:
                title = " ".join(turn.question.split())[:_TITLE_CHARS]
                conversation_id = repository.add_conversation(s, collection_id, title).id
            columns = {
                **answer_columns(answer),
                "question": turn.question,
                "rewritten_question": turn.rewrite.text,
                "rewrite": turn.rewrite.kind,
            }
            row = repository.add_answer(
                s, **columns, collection_id=collection_id, conversation_id=conversation_id
            )
            answer_id = row.id
        return {
            **answer_to_dict(answer),
            "answer_id": answer_id,
            "conversation_id": conversation_id,
            "question": turn.question,
            "rewritten_question": turn.rewrite.text,
            "rewrite": turn.rewrite.kind,
        }


def _turn(row: AnswerRow) -> Turn:
    return Turn(row.rewritten_question or row.question, row.text)


def turn_to_dict(row: AnswerRow) -> dict[str, Any]:
    """One turn of ``GET /v1/conversations/{id}``."""
    return {
        "answer_id": row.id,
        "question": row.question,
        "rewritten_question": row.rewritten_question,
        "rewrite": row.rewrite,
        "answer": row.text,
        "abstained": row.abstained,
        "citations": row.citations,
        "created_at": row.created_at.isoformat(),
    }
