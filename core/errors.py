"""Typed errors the user can act on. Mapped once to HTTP statuses (api/) and exit codes (CLI).

Each error has a stable ``code`` (shown in API error bodies) and a message that names
the thing at fault (the file, the collection) and the problem.
"""

from __future__ import annotations


class RagError(Exception):
    code = "error"
    http_status = 500
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# -- input files ---------------------------------------------------------------------


class IngestError(RagError):
    code = "ingest_error"
    http_status = 422
    exit_code = 3


class UnsupportedFormat(IngestError):
    code = "unsupported_format"
    http_status = 415


class EmptyDocument(IngestError):
    code = "empty_document"


class CorruptDocument(IngestError):
    code = "corrupt_document"


class EncryptedDocument(IngestError):
    code = "encrypted_document"


class OcrUnavailable(IngestError):
    """A scanned page needs OCR and the tesseract-ocr program is not installed."""

    code = "ocr_unavailable"


class UnsafeArchive(IngestError):
    """A zip-based file (docx, pptx, xlsx, epub) that would unpack past the limits
    (``ingest.max_unzipped_bytes``, ``ingest.max_zip_ratio``): a possible zip bomb."""

    code = "unsafe_archive"


class DocumentTooLarge(IngestError):
    code = "document_too_large"
    http_status = 413


class PathNotFound(IngestError):
    code = "path_not_found"
    http_status = 404


# -- collections and documents ---------------------------------------------------------


class DocumentRefused(IngestError):
    """A collection's policy refuses the document (``block``: e.g. injected instructions)."""

    code = "document_refused"


class NotFound(RagError):
    code = "not_found"
    http_status = 404
    exit_code = 4


class CollectionNotFound(NotFound):
    code = "collection_not_found"


class DocumentNotFound(NotFound):
    code = "document_not_found"


class EvalRunNotFound(NotFound):
    code = "eval_run_not_found"


class JobNotFound(NotFound):
    code = "job_not_found"


class ChunkNotFound(NotFound):
    code = "chunk_not_found"


class ConversationNotFound(NotFound):
    code = "conversation_not_found"


class AnswerNotFound(NotFound):
    code = "answer_not_found"


class JobRunning(RagError):
    """The job has not ended (a retry needs an ended job)."""

    code = "job_running"
    http_status = 409
    exit_code = 4


class NothingToRetry(RagError):
    """A retry of a job that has no failed or cancelled file left to retry."""

    code = "nothing_to_retry"
    http_status = 409
    exit_code = 4


class CollectionEmpty(RagError):
    code = "collection_empty"
    http_status = 409
    exit_code = 4


class InvalidRequest(RagError):
    code = "invalid_request"
    http_status = 422
    exit_code = 2


class QuestionRefused(InvalidRequest):
    """A collection's policy refuses the question (``block``): an injected instruction, a
    banned phrase or topic, personal data, an over-long question."""

    code = "question_refused"


class ApiKeyNotFound(NotFound):
    code = "api_key_not_found"


# -- authentication ----------------------------------------------------------------------


class Unauthorized(RagError):
    """The request carries no valid API key (answered with ``WWW-Authenticate: Bearer``)."""

    code = "unauthorized"
    http_status = 401
    exit_code = 6


class MissingApiKey(Unauthorized):
    code = "api_key_missing"


class InvalidApiKey(Unauthorized):
    code = "api_key_invalid"


class RevokedApiKey(Unauthorized):
    code = "api_key_revoked"


# -- models and generation -------------------------------------------------------------


class ContextOverflow(RagError):
    """The prompt cannot fit the model's context window even with one source."""

    code = "context_overflow"
    http_status = 422
    exit_code = 5


class ModelNotFound(RagError):
    code = "model_not_found"
    http_status = 503
    exit_code = 5


class BackendUnavailable(RagError):
    """An optional backend or an external server is missing or not answering."""

    code = "backend_unavailable"
    http_status = 503
    exit_code = 5


# -- limits (api.limits, generation.queue) -------------------------------------------------


class LimitExceeded(RagError):
    """Refused for load, not for what was asked: the same request may succeed after
    ``retry_after`` seconds (the API sends it as the ``Retry-After`` header)."""

    code = "limit_exceeded"
    http_status = 429
    exit_code = 7

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after + 0.999))  # whole seconds, at least 1


class RateLimited(LimitExceeded):
    """The API key sent more requests in the last minute than ``limits.requests_per_minute``."""

    code = "rate_limited"


class TooManyGenerations(LimitExceeded):
    """The API key already has ``limits.concurrent_generations`` answers being generated."""

    code = "too_many_generations"


class Overloaded(LimitExceeded):
    """The generation queue is full, or a generation waited ``limits.queue_wait_s`` for a
    worker: the server as a whole is at capacity."""

    code = "overloaded"
    http_status = 503
