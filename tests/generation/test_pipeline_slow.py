"""The query path end to end with the real Gemma 3 270M model, the real embedder, the real
prompt builder and real XQuAD paragraphs (the retriever is a list: it is the input here)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from core.settings import Settings
from core.types import Answer, CollectionKey, Query, ScoredChunk
from generation.factory import build_llm
from generation.pipeline import QueryPipeline, sampling_from_settings
from generation.prompt import GroundedPromptBuilder
from tests.generation.fixtures_answer import embedder, paragraph, scored, xquad_case

K = CollectionKey.default  # a collection of the default tenant


pytestmark = pytest.mark.slow

QUESTION, GOLD, PARA = xquad_case("University_of_Chicago", "Larry Ellison")


class ListRetriever:
    def __init__(self, items: Sequence[ScoredChunk]) -> None:
        self.items = list(items)

    def retrieve(self, query: Query) -> list[ScoredChunk]:
        return self.items[: query.top_k]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> QueryPipeline:
    settings = Settings(data_dir=Path(tmp_path_factory.mktemp("data")))
    llm = build_llm(settings.llm, settings.models_dir)
    # ranked as hybrid retrieval ranks them, with their real dense scores
    sources = scored(QUESTION, [PARA, paragraph("Rhine", 0), paragraph("Kenya", 0)])
    prompts = GroundedPromptBuilder(
        llm.default_style, llm.count_tokens, llm.n_ctx, settings.llm.max_tokens
    )
    return QueryPipeline(
        ListRetriever(sources),
        llm,
        prompts,
        embedder(),
        settings.guards,
        sampling_from_settings(settings.llm),
    )


def test_real_model_answer_cites_the_paragraph_that_holds_it(pipeline) -> None:
    answer = pipeline.answer(QUESTION, K("docs"), top_k=3)
    assert not answer.abstained, answer.verdicts
    assert GOLD in answer.text
    assert PARA in [c.source.chunk.text for c in answer.citations]
    assert all(len(c.snippet) <= 240 for c in answer.citations)
    assert len(answer.model.sha256) == 64 and answer.model.path.endswith(".gguf")
    assert answer.usage.prompt_tokens > 100 and answer.usage.completion_tokens > 0
    assert answer.timings.generate_ms > 0 and answer.timings.total_ms >= answer.timings.generate_ms
    assert len(answer.retrieved) == 3
    assert all(v.passed for v in answer.verdicts), answer.verdicts


def test_real_model_stream_ends_with_the_same_answer(pipeline) -> None:
    items = list(pipeline.stream(QUESTION, K("docs"), top_k=3))
    final = items[-1]
    assert isinstance(final, Answer)
    assert "".join(p for p in items if isinstance(p, str)) == final.text
    assert final.text == pipeline.answer(QUESTION, K("docs"), top_k=3).text  # temperature 0
