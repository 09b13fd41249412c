"""A collection's policy: which checks run where, and what each does with what it finds.

Stored per collection in SQL (``collections.policy``, JSON; NULL = the defaults below),
set with ``rag collections policy NAME --set pii.answers=redact`` or ``PUT
/v1/collections/{name}/policy``. Every rule names an ``Action`` per stage; an action
that makes no sense at a stage (``fence`` a question) is refused with the reason.

    policy = CollectionPolicy.from_stored(row.policy)
    policy.injection.documents      # Action.FENCE
    policy = policy.with_updates({"pii.answers": "redact"})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import InvalidRequest
from generation.checks.base import STAGE_ACTIONS, Action, Stage


class Rule(BaseModel):
    """What a check does at each stage."""

    model_config = ConfigDict(extra="forbid", use_enum_values=False)

    documents: Action = Action.ALLOW
    questions: Action = Action.ALLOW
    answers: Action = Action.ALLOW

    @model_validator(mode="after")
    def _actions_fit_stages(self) -> Rule:
        for stage in Stage:
            action = getattr(self, stage.value)
            allowed = STAGE_ACTIONS[stage]
            if action not in allowed:
                names = ", ".join(sorted(a.value for a in allowed))
                raise ValueError(
                    f"{action.value!r} is not an action for {stage.value}; choose one of {names}"
                )
        return self

    def action(self, stage: Stage) -> Action:
        return Action(getattr(self, stage.value))


class InjectionRule(Rule):
    """Injected instructions: fenced off from the model in documents (never returned as the
    answer under any action), refused in questions, an answer carrying one withheld.

    ``question_tasks`` False: a question is an injection when it tries to override the
    platform or hides text; task requests ("summarize it and list the dates") are the
    user's to make and only reported. True: they count too (questions relayed from
    people you do not trust)."""

    documents: Action = Action.FENCE
    questions: Action = Action.BLOCK
    answers: Action = Action.ABSTAIN
    question_tasks: bool = False


class PiiRule(Rule):
    """Personal data: found and counted by default; ``redact`` documents at ingestion,
    questions before retrieval, answers before they are returned."""

    documents: Action = Action.WARN
    questions: Action = Action.WARN
    answers: Action = Action.WARN
    # presidio entity types; None: the check's default set
    entities: list[str] | None = None


class BannedRule(Rule):
    """Banned phrases and topics (none by default). A phrase matches as whole words,
    case-insensitively; a topic matches a question or answer whose meaning is close to it
    (embedding cosine >= ``topic_similarity``)."""

    documents: Action = Action.ALLOW
    questions: Action = Action.BLOCK
    answers: Action = Action.ABSTAIN
    phrases: list[str] = Field(default_factory=list)
    topics: list[str] = Field(default_factory=list)
    topic_similarity: float = Field(0.55, ge=0.0, le=1.0)


class LengthRule(Rule):
    """Question length: over ``max_chars`` (None: settings guards.max_question_chars)."""

    questions: Action = Action.BLOCK
    max_chars: int | None = Field(None, ge=1)


class GroundingRule(Rule):
    """The answer's grounding checks (citations valid, sentences supported by their
    sources, no prompt text leaked): ``abstain`` when one fails, or ``warn`` (the answer
    is returned with the failed verdicts)."""

    answers: Action = Action.ABSTAIN


class CollectionPolicy(BaseModel):
    """Every check's rule for one collection."""

    model_config = ConfigDict(extra="forbid")

    injection: InjectionRule = Field(default_factory=InjectionRule)
    pii: PiiRule = Field(default_factory=PiiRule)
    banned: BannedRule = Field(default_factory=BannedRule)
    question_length: LengthRule = Field(default_factory=LengthRule)
    grounding: GroundingRule = Field(default_factory=GroundingRule)

    @model_validator(mode="after")
    def _stages_supported(self) -> CollectionPolicy:
        if self.question_length.documents is not Action.ALLOW or (
            self.question_length.answers is not Action.ALLOW
        ):
            raise ValueError("question_length applies to questions only")
        if self.grounding.documents is not Action.ALLOW or (
            self.grounding.questions is not Action.ALLOW
        ):
            raise ValueError("grounding applies to answers only")
        if self.grounding.answers not in (Action.ABSTAIN, Action.WARN):
            raise ValueError("grounding.answers is abstain or warn")
        return self

    # -- storage ---------------------------------------------------------------------------

    @classmethod
    def from_stored(cls, data: Mapping[str, Any] | None) -> CollectionPolicy:
        """The stored JSON (None: the defaults). A stored policy that no longer validates
        (a check renamed) falls back to defaults field by field, never to no checks."""
        if not data:
            return cls()
        try:
            return cls.model_validate(dict(data))
        except ValidationError:
            kept: dict[str, Any] = {}
            for name, value in data.items():
                try:
                    kept[name] = getattr(cls.model_validate({name: value}), name)
                except ValidationError:
                    continue
            return cls(**kept)

    def to_stored(self) -> dict[str, Any]:
        """Only what differs from the defaults (so new defaults reach old collections)."""
        return self.model_dump(mode="json", exclude_defaults=True)

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> CollectionPolicy:
        """A user's policy document; ``InvalidRequest`` naming every problem."""
        try:
            return cls.model_validate(dict(data))
        except ValidationError as e:
            raise InvalidRequest(f"invalid policy: {_problems(e)}") from e

    def with_updates(self, updates: Mapping[str, Any]) -> CollectionPolicy:
        """A copy with ``{"check.field": value}`` updates applied (lists as lists or
        comma-separated strings); ``InvalidRequest`` for an unknown check or field."""
        data = self.model_dump(mode="json")
        for key, value in updates.items():
            check, _, field = key.partition(".")
            if check not in data or not field:
                known = ", ".join(data)
                raise InvalidRequest(
                    f"unknown policy setting {key!r}: write CHECK.FIELD, CHECK one of {known}"
                )
            if field not in data[check]:
                known = ", ".join(data[check])
                raise InvalidRequest(f"{check} has no setting {field!r}; it has {known}")
            current = data[check][field]
            listy = isinstance(current, list) or (current is None and field == "entities")
            if listy and isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            data[check][field] = value
        return self.parse(data)

    def rule(self, check: str) -> Rule:
        return getattr(self, check)  # type: ignore[no-any-return]


def _problems(e: ValidationError) -> str:
    out = []
    for err in e.errors():
        where = ".".join(str(p) for p in err["loc"]) or "policy"
        msg = str(err["msg"]).removeprefix("Value error, ")
        out.append(f"{where}: {msg}")
    return "; ".join(out)
