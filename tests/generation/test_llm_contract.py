"""The LLM contract (generation.ports.LLM): every backend runs the same tests.

Backends: LlamaCppLLM on both bundled models, and OpenAICompatibleLLM against a real
llama-cpp-python server serving SmolLM2.
"""

from __future__ import annotations

import pytest

from core.errors import ContextOverflow
from core.types import Prompt, PromptStyle, SamplingParams
from generation.ports import LLM

pytestmark = pytest.mark.slow

BACKENDS = ["gemma_llm", "smollm_llm", "openai_llm"]

PASSAGE_PROMPT = (
    "Passages:\n"
    "[1] (towers.txt) The Eiffel Tower in Paris was built in 1889 by Gustave Eiffel's company "
    "for the World's Fair.\n"
    "[2] (rivers.txt) The Danube ends in the Black Sea.\n"
    "Question: When was the Eiffel Tower built?\n"
    "Answer:"
)
# Shares PASSAGE_PROMPT's first line: with prompt-prefix reuse this changes the next call.
OTHER_PROMPT = (
    "Passages:\n[1] (cats.txt) Cats sleep for most of the day.\nQuestion: Do cats sleep?\nAnswer:"
)
MESSAGES = (
    ("system", "You answer briefly."),
    ("user", "Name a large city in France."),
)


@pytest.fixture(params=BACKENDS)
def llm(request: pytest.FixtureRequest) -> LLM:
    return request.getfixturevalue(request.param)


def greedy(max_tokens: int = 24, stop: tuple[str, ...] = ()) -> SamplingParams:
    return SamplingParams(temperature=0.0, max_tokens=max_tokens, stop=stop)


def test_count_tokens_positive_and_growing(llm: LLM) -> None:
    counts = [llm.count_tokens("word " * k + "end") for k in (1, 10, 100)]
    assert counts[0] > 0
    assert counts[0] < counts[1] < counts[2]
    assert llm.n_ctx == 2048


def test_complete_returns_text_and_usage(llm: LLM) -> None:
    out = llm.complete(PASSAGE_PROMPT, greedy(16, stop=("\n",)))
    assert out.text.strip()
    assert out.usage.prompt_tokens > 10
    assert 0 < out.usage.completion_tokens <= 16
    assert out.finish_reason in ("stop", "length")


def test_max_tokens_honoured(llm: LLM) -> None:
    out = llm.complete("Once upon a time, in a small village,", greedy(5))
    assert out.usage.completion_tokens <= 5
    assert out.finish_reason == "length"


def test_stop_honoured(llm: LLM) -> None:
    free = llm.complete("Count: 1, 2, 3, 4,", greedy(16)).text
    words = free.split()
    assert len(words) >= 3, free
    stop = " " + words[1]  # the second word the model writes on its own
    stopped = llm.complete("Count: 1, 2, 3, 4,", greedy(16, stop=(stop,)))
    assert stopped.text == free[: free.index(stop)]
    assert stop not in stopped.text


def test_temperature_zero_is_deterministic_across_calls(llm: LLM) -> None:
    texts = set()
    for _ in range(5):
        texts.add(llm.complete(PASSAGE_PROMPT, greedy(24)).text)
        llm.complete(OTHER_PROMPT, greedy(4))  # a prompt with a shared prefix in between
    assert len(texts) == 1, texts


def test_chat_works(llm: LLM) -> None:
    out = llm.chat(MESSAGES, greedy(16))
    assert out.text.strip()
    assert out.usage.prompt_tokens > 0
    assert 0 < out.usage.completion_tokens <= 16
    again = llm.chat(MESSAGES, greedy(16))
    assert again.text == out.text


def test_overlong_prompt_raises_context_overflow(llm: LLM) -> None:
    prompt = "lorem ipsum dolor " * 2000
    with pytest.raises(ContextOverflow) as err:
        llm.complete(prompt, greedy(8))
    assert "2048" in str(err.value)
    with pytest.raises(ContextOverflow):
        llm.chat((("user", prompt),), greedy(8))
    with pytest.raises(ContextOverflow):
        llm.stream(Prompt(PromptStyle.COMPLETION, prompt, (), "", (), 0), greedy(8))
    # The backend is still usable afterwards.
    assert llm.complete("Hello", greedy(2)).usage.completion_tokens > 0


def test_stream_joins_to_complete_text(llm: LLM) -> None:
    params = greedy(24, stop=("\n",))
    prompt = Prompt(
        PromptStyle.COMPLETION, PASSAGE_PROMPT, (), "When was the Eiffel Tower built?", (), 0
    )
    pieces = list(llm.stream(prompt, params))
    assert len(pieces) > 1
    assert "".join(pieces) == llm.complete(PASSAGE_PROMPT, params).text


def test_stream_chat_joins_to_chat_text(llm: LLM) -> None:
    params = greedy(16)
    prompt = Prompt(PromptStyle.CHAT, "", MESSAGES, MESSAGES[-1][1], (), 0)
    assert "".join(llm.stream(prompt, params)) == llm.chat(MESSAGES, params).text
