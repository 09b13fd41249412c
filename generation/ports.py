"""Ports the generation stage consumes: the LLM, the retriever and the prompt builder.

The composition root (api/) wires retrieval's retriever and generation's own prompt
builder (``generation.prompt``) into these.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np

from core.types import (
    Completion,
    ModelInfo,
    Prompt,
    PromptStyle,
    Query,
    SamplingParams,
    ScoredChunk,
)


class LLM(Protocol):
    """A text generator. Temperature 0 must give the same text for the same prompt,
    also on repeated calls in one process."""

    @property
    def info(self) -> ModelInfo: ...

    @property
    def n_ctx(self) -> int: ...

    @property
    def default_style(self) -> PromptStyle:
        """The prompt style measured best for this model."""
        ...

    def count_tokens(self, text: str) -> int: ...

    def count_chat_tokens(self, messages: Sequence[tuple[str, str]]) -> int:
        """Length of ``messages`` rendered with the model's chat template, in tokens."""
        ...

    def warm_up(self) -> None:
        """Load what the first request would otherwise wait for (a no-op if nothing)."""
        ...

    def complete(self, prompt: str, params: SamplingParams) -> Completion: ...

    def chat(self, messages: Sequence[tuple[str, str]], params: SamplingParams) -> Completion: ...

    def stream(self, prompt: Prompt, params: SamplingParams) -> Iterator[str]: ...


class Retriever(Protocol):
    def retrieve(self, query: Query) -> list[ScoredChunk]: ...


class PromptBuilder(Protocol):
    def build(
        self, question: str, sources: Sequence[ScoredChunk], max_tokens: int | None = None
    ) -> Prompt:
        """Number the sources and fit them, leaving ``max_tokens`` for the answer."""
        ...


class SentenceEmbedder(Protocol):
    """L2-normalised vectors, used to attribute answer sentences to sources."""

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...
