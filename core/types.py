"""Domain types that flow between stages. Frozen dataclasses, never loose dicts.

One chunk type flows end to end: the retriever returns ``ScoredChunk``; the prompt
builder numbers them; the citation parser maps ``[n]`` back to them; the answer
returns them as its sources.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from core.errors import InvalidRequest

MetadataValue = str | int | float | bool | None


DEFAULT_TENANT = "default"
_TENANT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_tenant(tenant: str) -> str:
    """``tenant`` when it is a valid tenant name (1-64 of ``A-Z a-z 0-9 _ . -``, starting
    with a letter or digit), else ``InvalidRequest`` naming the problem."""
    if not isinstance(tenant, str) or _TENANT_RE.fullmatch(tenant) is None:
        raise InvalidRequest(
            f"invalid tenant name {tenant!r}: use 1 to 64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return tenant


# Marks a collection's hidden versions: "<name>~candidate" (CollectionKey.version).
VERSION_MARK = "~"

# A collection name: 1-128 letters, digits, '_', '.' or '-' (Unicode letters and digits
# too), starting with a letter, digit or '_'. No spaces, control or format characters.
_COLLECTION_RE = re.compile(r"\w[\w.-]{0,127}")
COLLECTION_NAME_RULE = (
    "1 to 128 letters, digits, '_', '.' or '-', starting with a letter, digit or '_'"
)


def check_collection_name(name: str) -> str:
    """``name`` when it is a valid collection name, else ``InvalidRequest`` naming the
    rule (``COLLECTION_NAME_RULE``)."""
    if not isinstance(name, str) or _COLLECTION_RE.fullmatch(name) is None:
        shown = name if isinstance(name, str) and len(name) <= 40 else f"{str(name)[:40]}…"
        raise InvalidRequest(f"invalid collection name {shown!r}: use {COLLECTION_NAME_RULE}")
    return name


@dataclass(frozen=True, slots=True)
class CollectionKey:
    """A collection: the tenant that owns it and its name (unique per tenant).

    Not a ``str``: formatting, ``str()`` or string methods cannot turn another tenant's
    collection into the default tenant's, and every stage and SQL lookup refuses a plain
    string (``require_key``). The tenant is resolved once where a request enters (the
    API's auth dependency, the CLI's ``--tenant``).

        key = CollectionKey("acme", "docs")
        CollectionKey.default("docs")          # the default tenant's (auth off, the CLI)
        str(key)                               # "docs": for messages only
    """

    tenant: str
    name: str

    def __post_init__(self) -> None:
        check_tenant(self.tenant)
        check_collection_name(self.name)

    @classmethod
    def default(cls, name: str) -> CollectionKey:
        return cls(DEFAULT_TENANT, name)

    def __str__(self) -> str:
        return self.name

    def version(self, label: str) -> CollectionKey:
        """This collection's hidden version ``label`` ("candidate", "previous": see
        ``evals.gate``), named ``<name>~<label>``: "~" is outside the name rule, so no
        request can name a version and listings can leave versions out."""
        if not label.isidentifier():
            raise ValueError(f"a version label is an identifier, not {label!r}")
        key = object.__new__(CollectionKey)
        object.__setattr__(key, "tenant", self.tenant)
        object.__setattr__(key, "name", f"{self.name}{VERSION_MARK}{label}")
        return key


def require_key(collection: object) -> CollectionKey:
    """``collection`` when it is a ``CollectionKey``; ``TypeError`` for anything else
    (a plain name would silently lose its tenant)."""
    if not isinstance(collection, CollectionKey):
        raise TypeError(
            f"a collection is a CollectionKey(tenant, name), not {type(collection).__name__} "
            f"{collection!r}: a bare name has no tenant"
        )
    return collection


class PromptStyle(StrEnum):
    """How the grounded prompt is rendered for the model."""

    COMPLETION = "completion"  # few-shot extractive completion (best for base models)
    CHAT = "chat"  # the model's own chat template with a system instruction


@dataclass(frozen=True, slots=True)
class TextBlock:
    """A run of a parsed document's text with where it sits (page, heading path).

    ``start`` is the character offset of ``text`` in ``ParsedDocument.text``.
    """

    text: str
    start: int
    page: int | None = None
    heading_path: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ParsedDocument:
    """A loaded, normalised document before chunking."""

    source: str  # user-facing name (file name or path relative to the ingest root)
    media_type: str  # e.g. "text/plain", "application/pdf"
    sha256: str  # of the raw bytes
    text: str  # the whole normalised text
    blocks: tuple[TextBlock, ...]
    size_bytes: int
    metadata: Mapping[str, MetadataValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Chunk:
    id: str
    document_id: str
    collection: str
    ordinal: int
    text: str
    char_start: int
    char_end: int
    source: str
    media_type: str
    page: int | None = None
    heading_path: tuple[str, ...] = ()
    token_count: int = 0
    metadata: Mapping[str, MetadataValue] = field(default_factory=dict)
    # What the document-stage checks found, by check name (generation.checks.screen):
    # {"injection": {"flagged": true, "score": .93, "reasons": [...], "spans": [[a, b]]}}
    flags: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ScoredChunk:
    """A retrieved chunk with its fused score and the ranks each retriever gave it."""

    chunk: Chunk
    score: float
    bm25_rank: int | None = None  # 1-based; None when BM25 did not return it
    dense_rank: int | None = None
    bm25_score: float | None = None
    dense_score: float | None = None  # cosine similarity to the query
    rerank_score: float | None = None


@dataclass(frozen=True, slots=True)
class Filter:
    """Restricts retrieval to matching chunks; every given field must match (AND).

    Within one field any listed value matches (OR). ``metadata`` matches document
    metadata key/values exactly.
    """

    document_ids: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    media_types: tuple[str, ...] = ()
    metadata: Mapping[str, MetadataValue] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return not (self.document_ids or self.sources or self.media_types or self.metadata)


@dataclass(frozen=True, slots=True)
class Query:
    text: str
    collection: CollectionKey
    top_k: int = 5
    filter: Filter = field(default_factory=Filter)


@dataclass(frozen=True, slots=True)
class SamplingParams:
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 40
    max_tokens: int = 64
    seed: int = 0
    repeat_penalty: float = 1.1
    stop: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ModelInfo:
    path: str
    sha256: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Completion:
    """What an LLM backend returns for one prompt."""

    text: str
    usage: Usage
    finish_reason: str = "stop"


@dataclass(frozen=True, slots=True)
class Prompt:
    """A grounded prompt ready for the model, with the sources it numbers [1]..[n].

    ``sources[i]`` is source ``[i + 1]``. For COMPLETION style ``text`` is the whole
    prompt; for CHAT style ``messages`` holds (role, content) pairs and ``text`` is empty.
    ``question`` is the question as the prompt asks it (read it here, never parse it
    back out of the text).
    """

    style: PromptStyle
    text: str
    messages: tuple[tuple[str, str], ...]
    question: str
    sources: tuple[ScoredChunk, ...]
    prompt_tokens: int
    dropped_sources: int = 0  # lowest-ranked sources left out to fit the context window


@dataclass(frozen=True, slots=True)
class Citation:
    """Answer marker ``[n]`` mapped back to the n-th prompt source.

    ``attributed`` is True when the model did not cite and the platform attributed
    the answer text to the source that supports it best.
    """

    n: int
    source: ScoredChunk
    snippet: str
    attributed: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of one guard."""

    guard: str
    passed: bool
    detail: str = ""
    score: float | None = None


@dataclass(frozen=True, slots=True)
class SentenceVerdict:
    """One displayed answer sentence: whether the source it cites supports it, how well
    (0..1), and where the supporting text sits in that source's chunk
    (``chunk.text[char_start:char_end]``), so a page can highlight it."""

    text: str
    supported: bool
    score: float
    citation: int | None  # the [n] it cites (1-based prompt source number)
    chunk_id: str | None = None
    char_start: int | None = None
    char_end: int | None = None


@dataclass(frozen=True, slots=True)
class Timings:
    retrieve_ms: float = 0.0
    generate_ms: float = 0.0
    total_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class Answer:
    question: str
    text: str
    citations: tuple[Citation, ...]
    retrieved: tuple[ScoredChunk, ...]
    model: ModelInfo
    sampling: SamplingParams
    timings: Timings
    usage: Usage
    verdicts: tuple[Verdict, ...] = ()
    dropped_citations: int = 0  # [n] markers naming a source that does not exist
    abstained: bool = False  # True when the platform declined to answer from the sources
    # a verdict for every sentence of ``text`` (empty when abstained)
    sentences: tuple[SentenceVerdict, ...] = ()
    # the short span answering a who / when / how-many question, when the model found one
    # in the cited text (``text`` then holds the sentences around it)
    short_answer: str | None = None
    # the abstention model's probability that the documents do not answer the question
    p_unanswerable: float | None = None


IngestStatus = Literal["ingested", "unchanged", "replaced", "failed"]


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    """What happened to one input of an ingestion batch."""

    source: str
    status: IngestStatus
    document_id: str | None = None
    chunks: int = 0
    error: str | None = None  # the reason, when failed
    error_code: str | None = None  # the RagError code, when failed


@dataclass(frozen=True, slots=True)
class IngestReport:
    collection: str
    job_id: str
    outcomes: tuple[IngestOutcome, ...]

    @property
    def failed(self) -> tuple[IngestOutcome, ...]:
        return tuple(o for o in self.outcomes if o.status == "failed")

    @property
    def chunks(self) -> int:
        return sum(o.chunks for o in self.outcomes)
