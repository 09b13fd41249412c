"""One settings tree for the whole platform, built once at the edge.

Environment variables use the prefix ``RAG_`` and ``__`` between sections, e.g.
``RAG_RETRIEVAL__TOP_K=8`` or ``RAG_LLM__MODEL_PATH=/models/qwen.gguf``.

    settings = Settings(data_dir=tmp_path)          # tests
    settings = Settings()                           # CLI / server: env + defaults
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.types import PromptStyle


class FusionMode(StrEnum):
    """How BM25 and dense result lists are combined."""

    RRF = "rrf"  # reciprocal-rank fusion: sum 1 / (k + rank)
    WEIGHTED = "weighted"  # alpha * norm(dense) + (1 - alpha) * norm(bm25)


class IngestSettings(BaseModel):
    chunk_size_tokens: int = Field(200, ge=16, le=8192)
    chunk_overlap_tokens: int = Field(30, ge=0, le=4096)
    max_file_bytes: int = Field(50 * 1024 * 1024, ge=1)
    # Zip-based files (docx, pptx, xlsx, epub) are refused before parsing when their members
    # unpack to more than this in all, or a member over 1 MiB unpacks to more than
    # max_zip_ratio times its compressed size (zip bombs).
    max_unzipped_bytes: int = Field(200 * 1024 * 1024, ge=1)
    max_zip_ratio: float = Field(100.0, ge=1.0)
    # Text under an extension no loader reads (.log, .py, none) is refused naming the
    # supported ones; True reads it as plain text.
    unknown_as_text: bool = False
    # An upload job (202) that ingests nothing into a collection it created: the
    # collection (and the job's record) goes this long after the job ended, so the job's
    # report can still be read (GET /v1/jobs/{id}, its event stream).
    refused_upload_keep_s: float = Field(300.0, ge=0.0)
    embed_batch_size: int = Field(64, ge=1)
    # A sentence-transformers folder; None means the bundled all-MiniLM-L6-v2.
    embedding_model_path: str | None = None
    embedding_device: str = "cpu"


class BM25Settings(BaseModel):
    k1: float = 0.9  # BEIR / Anserini values; SciFact train nDCG@10 0.683 vs 0.676 (1.5, 0.75)
    b: float = 0.4
    epsilon: float = 0.25  # rank_bm25.BM25Okapi's idf floor factor
    lowercase: bool = True
    stopwords: Literal["en", "none"] = "en"
    stemmer: Literal["english", "none"] = "english"


class DenseSettings(BaseModel):
    # Exact (flat inner product) below this many vectors, HNSW above it.
    hnsw_threshold: int = Field(50_000, ge=1)
    hnsw_m: int = 32
    hnsw_ef_construction: int = 200
    hnsw_ef_search: int = 128


class RetrievalSettings(BaseModel):
    top_k: int = Field(5, ge=1, le=200)
    candidate_k: int = Field(100, ge=1)  # per retriever, before fusion
    # Weighted alpha=0.5 beat RRF k=60 on SciFact train (nDCG@10 .731 vs .712) and SQuAD dev
    # (.900 vs .867); `rag tune` stores a collection's own best.
    fusion: FusionMode = FusionMode.WEIGHTED
    rrf_k: int = Field(60, ge=1)
    alpha: float = Field(0.5, ge=0.0, le=1.0)  # weight of dense in weighted fusion
    mmr: bool = False
    mmr_lambda: float = Field(0.7, ge=0.0, le=1.0)
    reranker_path: str | None = None  # local sentence-transformers CrossEncoder folder
    bm25: BM25Settings = BM25Settings()
    dense: DenseSettings = DenseSettings()


class LLMSettings(BaseModel):
    backend: Literal["llama_cpp", "openai"] = "llama_cpp"
    # A GGUF file; None means the bundled default model (see ``bundled``).
    model_path: str | None = None
    bundled: Literal["gemma3-270m", "smollm2-135m"] = "gemma3-270m"
    prompt_style: PromptStyle | None = None  # None: the measured best for the model
    n_ctx: int = Field(2048, ge=256)
    n_threads: int = Field(2, ge=1)
    n_gpu_layers: int = 0
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(40, ge=0)
    max_tokens: int = Field(64, ge=1, le=4096)
    seed: int = 0
    repeat_penalty: float = Field(1.1, ge=0.0)
    # None: the prompt's default stop strings (generation.prompt.stop_strings); a list
    # (RAG_LLM__STOP='["###"]') replaces them. A COMPLETION answer still ends at its line end.
    stop: list[str] | None = None
    # OpenAI-compatible server (backend="openai").
    openai_base_url: str = "http://127.0.0.1:8080/v1"
    openai_api_key: str = "not-needed"
    openai_model: str = "local"
    request_timeout_s: float = 120.0


class GuardSettings(BaseModel):
    max_question_chars: int = Field(2000, ge=1)
    # An answer sentence needs at least this support (0..1) from its cited source.
    min_support: float = Field(0.35, ge=0.0, le=1.0)
    # Abstain ("not in the documents") when no retrieved chunk is this similar to the question.
    min_retrieval_similarity: float = Field(0.10, ge=-1.0, le=1.0)
    # True: every answer is text copied from the sources: the model's answer copied back
    # to a source span, else the source sentence most similar to the question, else an
    # abstention. The bundled 270M model's own wording is too often wrong in ways overlap
    # checks miss. False: wording that passes the support check is kept (bigger models).
    verbatim_answers: bool = True
    # True: abstain when the model itself says the sources do not hold the answer. The
    # answer-or-abstain decision is otherwise the fitted abstention model's (rag tune
    # --abstention); the bundled 270M model's "not found" is measured in the README.
    model_not_found: bool = True


class DBSettings(BaseModel):
    # Any SQLAlchemy URL; None means a SQLite file in data_dir.
    url: str | None = None
    echo: bool = False


class APISettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8000
    max_files_per_upload: int = 100
    # True: every /v1 request needs a valid API key (`rag keys create`). False: a request
    # without a key acts as tenant "default"; one that sends a key is still checked.
    auth_required: bool = False
    # SIGTERM: seconds running requests get to finish before the server stops (new ones
    # get 503 + Retry-After meanwhile); a second SIGTERM exits at once
    shutdown_grace_s: float = Field(30.0, ge=0.0)
    # rag serve's glibc allocator (api.allocator): a fixed mmap threshold in KiB (0: glibc's
    # adaptive default, which grew the server ~45 MiB per 100 answers) and a periodic
    # malloc_trim in seconds (0: never), so an idle server gives memory back
    malloc_mmap_threshold_kib: int = Field(128, ge=0)
    malloc_trim_every_s: float = Field(30.0, ge=0.0)


class LimitsSettings(BaseModel):
    """What one API key may ask at once, and how much generation the server queues
    (api.limits, generation.queue): over them the API answers 429 or 503 with Retry-After
    instead of hanging. /healthz, /readyz, /metrics and / are never limited."""

    # /v1 requests per minute per API key (the key-less caller counts as one key); 0: off.
    requests_per_minute: int = Field(600, ge=0)
    # Generations one key may have running or waiting at once (more: 429); 0: no limit.
    concurrent_generations: int = Field(2, ge=0)
    # Threads that run the LLM: every generation runs on one of these, never on a request
    # thread (llama.cpp uses n_threads cores each; more workers only help with more cores).
    generation_workers: int = Field(1, ge=1)
    # Generations that may wait for a worker (more: 503 overloaded).
    generation_queue: int = Field(16, ge=0)
    # Seconds a generation may wait for a worker; one that would likely wait longer (the
    # generations ahead of it times their moving average) is refused at once with 503.
    queue_wait_s: float = Field(30.0, gt=0)


class ConversationSettings(BaseModel):
    # How /v1/chat makes a follow-up standalone before retrieval (generation.rewrite).
    # Measured on evals/labelled/followups.jsonl over examples/ (bench/followup_rewrite.py,
    # 15 follow-ups): none hit@1 .800 MRR .856; rules 1.000 / 1.000 in < 5 ms; the model
    # (Gemma 3 270M, falling back to rules) 1.000 / 1.000 in 1.9 s median: rules.
    rewrite: Literal["rules", "model", "none"] = "rules"
    history_turns: int = Field(3, ge=1, le=20)  # earlier turns the rewriter sees


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RAG_", env_nested_delimiter="__", env_file=None, extra="ignore"
    )

    data_dir: Path = Path("data")
    default_collection: str = "default"
    # The public data sets (`rag eval`, `rag tune`): None finds ../shared/datasets from the
    # working directory, else beside a source checkout (see ``default_datasets_dir``).
    datasets_dir: Path | None = None
    ingest: IngestSettings = IngestSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    llm: LLMSettings = LLMSettings()
    guards: GuardSettings = GuardSettings()
    db: DBSettings = DBSettings()
    api: APISettings = APISettings()
    limits: LimitsSettings = LimitsSettings()
    conversation: ConversationSettings = ConversationSettings()

    @property
    def db_url(self) -> str:
        return self.db.url or f"sqlite:///{(self.data_dir / 'rag.sqlite3').resolve()}"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "indexes"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"


def default_datasets_dir(configured: str | Path | None = None) -> Path:
    """The data sets folder: ``configured`` (the ``datasets_dir`` setting,
    ``RAG_DATASETS_DIR``) when given; else ``../shared/datasets`` from the working
    directory when it exists; else the one beside the source checkout this code runs
    from (after a non-editable ``pip install .`` there is none: the working directory's is
    returned, and ``require_datasets_dir`` names the setting)."""
    if configured is not None:
        return Path(configured)
    here = Path.cwd().parent / "shared" / "datasets"
    if here.is_dir():
        return here
    repo = Path(__file__).resolve().parents[1]
    if (repo / "pyproject.toml").is_file():
        return repo.parent / "shared" / "datasets"
    return here


def require_datasets_dir(root: Path) -> Path:
    """``root`` when it exists; else ``PathNotFound`` naming the setting to set."""
    if not root.exists():
        from core.errors import PathNotFound

        raise PathNotFound(
            f"'{root}' does not exist (the data sets folder is the datasets_dir setting, "
            "RAG_DATASETS_DIR: the folder that holds scifact/, squad-v1.1-dev/, xquad-en/, "
            "clapnq-tune/…)"
        )
    return root
