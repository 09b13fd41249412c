"""Eval suites: a YAML file of questions, each with assertions its answer must pass.

    suite = load_suite("evals/suites/examples.yaml")   # SuiteError naming file, case, field
    suite.sha256                                       # of the canonical content: stored with runs
    for case in suite.cases:
        run = suite.settings_for(case)                 # collection, top_k, filter, sampling
        ...                                            # ask, then evals.assertions.score_case

The file:

    description: Questions over the sample documents
    defaults:
      collection: default          # a case may override collection, top_k and filter
      top_k: 5
      sampling: {temperature: 0, seed: 0}
      filter: {sources: [faq.html]}
      judge: {base_url: http://127.0.0.1:8080/v1, min_agreement: 0.6}
    cases:
      - id: sql-truth              # optional: derived from the question when left out
        question: What is the source of truth?
        reference: The SQL database            # a text or a list of texts
        expected_sources: [data-and-consistency.txt]
        answerable: true                       # false: the documents cannot answer it
        tags: [storage]
        threshold: 1.0                         # weighted share of passed assertions needed
        assert:
          - type: icontains
            value: SQL
          - type: not-contains                 # not- negates any type
            value: Excel
          - {type: recall@5, weight: 2}

The assertion types and their values are in ``evals.assertions``. Ids must be unique;
two cases with the same question and no id collide (give one an id).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from core.errors import InvalidRequest
from core.types import Filter, MetadataValue, SamplingParams, check_collection_name
from evals.assertions import AssertionSpec

_ID_RE = re.compile(r"[\w.:/-]{1,128}")


class SuiteError(InvalidRequest):
    """A suite file that cannot be used: the message names the file, the case (index, id,
    question) and the field of every problem; ``problems`` holds them one by one."""

    code = "invalid_suite"

    def __init__(self, message: str, problems: tuple[SuiteProblem, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


@dataclass(frozen=True, slots=True)
class SuiteProblem:
    """One problem of a suite: where (``path`` like ``cases[2].assert[0].value``, the case
    and the YAML line when known) and what."""

    path: str
    message: str
    case_index: int | None = None
    case_id: str | None = None
    line: int | None = None  # 1-based line in the file

    def __str__(self) -> str:
        at = f"line {self.line}: " if self.line else ""
        return f"{at}{self.path or 'the suite'}: {self.message}"


class _Located(ValueError):
    """A validator's error about a place below the model being validated."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


# -- the model ----------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SamplingSpec(_Model):
    """Sampling of every answer of the run; unset fields keep the platform's settings.
    Temperature 0 and seed 0 unless the suite says otherwise."""

    temperature: float = Field(default=0.0, ge=0.0)
    seed: int = 0
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=1)
    repeat_penalty: float | None = Field(default=None, gt=0.0)

    def apply(self, base: SamplingParams) -> SamplingParams:
        """``base`` (the platform's defaults) with this spec's set fields."""
        return replace(base, **{k: v for k, v in self.model_dump().items() if v is not None})


class FilterSpec(_Model):
    """``core.types.Filter`` as a suite writes it."""

    document_ids: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    media_types: tuple[str, ...] = ()
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)

    @field_validator("metadata", mode="before")
    @classmethod
    def _scalars(cls, v: Any) -> Any:
        # one message here, not one per member of the MetadataValue union
        if isinstance(v, Mapping):
            for key, value in v.items():
                if not isinstance(value, str | int | float | bool | None):
                    raise ValueError(
                        f"{key}: a metadata value is a text, a number, true/false or null, "
                        f"not {value!r}"
                    )
        return v

    def to_filter(self) -> Filter:
        return Filter(self.document_ids, self.sources, self.media_types, dict(self.metadata))


class JudgeSpec(_Model):
    """The judge of ``llm-rubric`` assertions: a GGUF file or an OpenAI-compatible
    endpoint; ``min_agreement``: the least Cohen's kappa its judge check must have shown
    before its verdicts count."""

    model_path: str | None = None
    base_url: str | None = None
    model: str | None = None  # the model name at base_url
    min_agreement: float | None = Field(default=None, ge=-1.0, le=1.0)

    @model_validator(mode="after")
    def _one_backend(self) -> JudgeSpec:
        if self.model_path and self.base_url:
            raise ValueError("give model_path (a GGUF file) or base_url, not both")
        return self


def _collection(v: str) -> str:
    try:
        return check_collection_name(v)
    except InvalidRequest as e:
        raise ValueError(e.message) from None


CollectionName = Annotated[str, AfterValidator(_collection)]
# a text or a list of texts in the file; a tuple in the model
Texts = Annotated[tuple[str, ...], BeforeValidator(lambda v: (v,) if isinstance(v, str) else v)]


class Defaults(_Model):
    """What every case of the suite runs with unless it says otherwise."""

    collection: CollectionName | None = None
    top_k: int | None = Field(default=None, ge=1)
    sampling: SamplingSpec = SamplingSpec()
    filter: FilterSpec = FilterSpec()
    judge: JudgeSpec | None = None


def derived_id(question: str) -> str:
    """The id of a case written without one: stable over runs and whitespace changes."""
    text = " ".join(question.split())
    return "q-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


class Case(_Model):
    """One question and what its answer must do."""

    id: str
    question: str = Field(min_length=1)
    reference: Texts = ()  # gold answer(s)
    expected_sources: tuple[str, ...] = ()
    answerable: bool = True
    tags: tuple[str, ...] = ()
    assertions: tuple[AssertionSpec, ...] = Field(alias="assert")
    threshold: float = Field(default=1.0, gt=0.0, le=1.0)
    collection: CollectionName | None = None
    top_k: int | None = Field(default=None, ge=1)
    filter: FilterSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _derive_id(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if data.get("id") is None and isinstance(data.get("question"), str):
                data = {**data, "id": derived_id(data["question"])}
            elif isinstance(data.get("id"), int) and not isinstance(data["id"], bool):
                data = {**data, "id": str(data["id"])}
        return data

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID_RE.fullmatch(v):
            raise ValueError(
                f"{v!r} is not a usable id: 1 to 128 letters, digits, '_', '.', ':', '/' or '-'"
            )
        return v

    @field_validator("assertions")
    @classmethod
    def _some_assertions(cls, v: tuple[AssertionSpec, ...]) -> tuple[AssertionSpec, ...]:
        if not v:
            raise ValueError("a case needs at least one assertion")
        return v

    @field_validator("question")
    @classmethod
    def _question(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("the question is blank")
        return v

    @model_validator(mode="after")
    def _assertions_have_inputs(self) -> Case:
        for i, a in enumerate(self.assertions):
            need = a.kind.needs
            if need and a.value is None and not getattr(self, need):
                raise _Located(
                    ("assert", i, "value"),
                    f"{a.type} needs a value or the case's {need}, and the case has none",
                )
        if not any(a.weight > 0 for a in self.assertions):
            raise _Located(("assert",), "every assertion has weight 0: nothing would count")
        return self


class Suite(_Model):
    """A loaded, validated suite. ``sha256`` names its content for stored runs."""

    description: str = ""
    defaults: Defaults = Defaults()
    cases: tuple[Case, ...]

    @field_validator("cases")
    @classmethod
    def _some_cases(cls, v: tuple[Case, ...]) -> tuple[Case, ...]:
        # here, not min_length: pydantic would also report a list whose items failed as empty
        if not v:
            raise ValueError("a suite needs at least one case")
        return v

    @model_validator(mode="after")
    def _unique_ids(self) -> Suite:
        first: dict[str, int] = {}
        for i, case in enumerate(self.cases):
            if case.id in first:
                raise _Located(
                    ("cases", i, "id"),
                    f"duplicate id {case.id!r}: cases[{first[case.id]}] has it too"
                    + (
                        " (both derived from the question: give one an id)"
                        if case.id == derived_id(case.question)
                        else ""
                    ),
                )
            first[case.id] = i
        return self

    @property
    def sha256(self) -> str:
        """Of the canonical content: formatting, comments, key order and values equal to the
        defaults do not change it."""
        data = self.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        canon = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canon.encode("utf-8")).hexdigest()

    def case(self, case_id: str) -> Case:
        for c in self.cases:
            if c.id == case_id:
                return c
        raise KeyError(case_id)

    def settings_for(self, case: Case) -> CaseSettings:
        """What ``case`` runs with: its own collection / top_k / filter, else the defaults."""
        d = self.defaults
        return CaseSettings(
            collection=case.collection or d.collection,
            top_k=case.top_k or d.top_k,
            filter=(case.filter or d.filter).to_filter(),
            sampling=d.sampling,
        )


@dataclass(frozen=True, slots=True)
class CaseSettings:
    """The query settings of one case. ``collection`` is a name: the runner makes the
    ``CollectionKey`` with its tenant; None here means the runner's own choice."""

    collection: str | None
    top_k: int | None  # None: the platform's retrieval.top_k
    filter: Filter
    sampling: SamplingSpec


# -- loading --------------------------------------------------------------------------------


def load_suite(path: str | Path) -> Suite:
    """The suite in the YAML file ``path``; ``SuiteError`` naming the file, and for each
    problem the case (index, id, question), the field and the line.

        suite = load_suite("evals/suites/examples.yaml")
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SuiteError(f"{p}: no such suite file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SuiteError(f"{p}: cannot read the suite file ({e})") from None
    return parse_suite(text, name=str(p))


def parse_suite(text: str | Mapping[str, Any], name: str = "<suite>") -> Suite:
    """The suite in YAML ``text`` (or an already parsed mapping, e.g. a JSON request body);
    ``name`` names it in errors."""
    node = None
    if isinstance(text, str):
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            at = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
            problem = getattr(e, "problem", None) or str(e)
            raise SuiteError(f"{name}{at}: not valid YAML: {problem}") from None
    else:
        data = text
    if not isinstance(data, Mapping):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise SuiteError(
            f"{name}: a suite is a mapping with description, defaults and cases; got {got}"
        )
    try:
        return Suite.model_validate(data)
    except ValidationError as e:
        problems = tuple(_problem(err, data, node) for err in e.errors())
        raise SuiteError(_message(name, problems), problems) from None


# -- error messages ------------------------------------------------------------------------


def _message(name: str, problems: tuple[SuiteProblem, ...]) -> str:
    if len(problems) == 1:
        p = problems[0]
        return f"{name}{f' line {p.line}' if p.line else ''}: {p.path or 'the suite'}: {p.message}"
    lines = "\n".join(f"  {p}" for p in problems)
    return f"{name}: {len(problems)} problems:\n{lines}"


def _problem(err: Mapping[str, Any], data: Mapping[str, Any], node: Any) -> SuiteProblem:
    loc = tuple(err["loc"])
    error = (err.get("ctx") or {}).get("error")
    if isinstance(error, _Located):
        loc += error.loc
    message = _readable(err, loc, error)
    case_index = case_id = None
    path = _path(loc)
    if len(loc) >= 2 and loc[0] == "cases" and isinstance(loc[1], int):
        case_index = loc[1]
        raw = data.get("cases")
        case = raw[case_index] if isinstance(raw, list) and case_index < len(raw) else None
        label, case_id = _case_label(case)
        rest = _path(loc[2:])
        path = f"cases[{case_index}] ({label})" + (f": {rest}" if rest else "")
    return SuiteProblem(path, message, case_index, case_id, _line(node, loc))


def _case_label(case: Any) -> tuple[str, str | None]:
    """'id 'a01', question "..."' for a case as written, and its id (derived when unset)."""
    if not isinstance(case, Mapping):
        return "not a mapping", None
    question = case.get("question")
    case_id = case.get("id")
    if case_id is None and isinstance(question, str):
        case_id = derived_id(question)
    parts = []
    if case_id is not None:
        parts.append(f"id {str(case_id)!r}")
    if isinstance(question, str):
        q = " ".join(question.split())
        parts.append(f'question "{q if len(q) <= 60 else q[:59] + "…"}"')
    return ", ".join(parts) or "no id or question", None if case_id is None else str(case_id)


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _readable(err: Mapping[str, Any], loc: tuple[Any, ...], error: Any) -> str:
    kind = err["type"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        fields = _fields_at(loc[:-1])
        known = f" (the fields here: {', '.join(fields)})" if fields else ""
        return f"unknown field{known}"
    if error is not None:  # our own validators' messages
        return str(error)
    got = err.get("input")
    shown = repr(got) if len(repr(got)) <= 60 else f"a {type(got).__name__}"
    return f"{err['msg']}, got {shown}"


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """The field names (aliases) of the model at ``loc`` below ``Suite``."""
    model: Any = Suite
    for part in loc:
        if isinstance(part, int):
            continue
        fields = {f.alias or n: f for n, f in model.model_fields.items()}
        if part not in fields:
            return []
        model = _model_in(fields[part].annotation)
        if model is None:
            return []
    return [f.alias or n for n, f in model.model_fields.items()]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _line(node: Any, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the deepest YAML node on ``loc``."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == part), None)
            if child is None:  # an unknown or missing field: point at the key if there
                child = next((k for k, _ in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            child = node.value[part] if part < len(node.value) else None
        if child is None:
            break
        node, line = child, child.start_mark.line + 1
    return line
