"""The grounded prompt: numbered sources [1]..[n], fitted to the model's context window.

    builder = GroundedPromptBuilder(PromptStyle.COMPLETION, llm.count_tokens, llm.n_ctx,
                                    max_tokens=64, count_chat_tokens=llm.count_chat_tokens)
    prompt = builder.build("When was the tower built?", retrieved)   # -> core.types.Prompt

Sources keep their rank order; ``prompt.sources[i]`` is ``[i + 1]``. Fitting uses the
model's own tokenizer (the ``count_tokens`` callable) so that
``prompt.prompt_tokens + max_tokens <= n_ctx`` always holds: a source longer than
``max_source_tokens`` is cut, the lowest-ranked sources are dropped first, and when
not even the question with one source fits, ``ContextOverflow`` is raised.
``prompt.question`` is the question as the prompt asks it: nothing parses prompt text back.

COMPLETION style is a few-shot extractive prompt ending in ``Answer:`` (measured best
for the base Gemma 3 270M, notes/small-llm-baseline.md); the worked examples use
made-up passages, never the real ones. CHAT style is a system + user message pair.

The stop strings that end an answer are defined here, once (``stop_strings``): the
settings, the query pipeline and the reader eval all take them from here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from core.errors import ContextOverflow
from core.types import Prompt, PromptStyle, ScoredChunk

NOT_IN_SOURCES = "The answer is not in the sources."

# Where an answer ends unless the settings or the request name other stop strings: a blank
# line, or the model starting the prompt's next label (a new example, a new question).
DEFAULT_STOP: tuple[str, ...] = ("\n\n", "Question:", "Passages:")
# A COMPLETION answer is one line ("Answer: ..."): it ends at the line end whatever is set.
_LINE_END = "\n"

INSTRUCTION = (
    "Answer the question using only the numbered passages. Copy the answer words from "
    "the passage and cite it as [n]. If the passages do not contain the answer, write: "
    f"{NOT_IN_SOURCES}"
)

SYSTEM_MESSAGE = (
    "You answer questions using only the numbered sources the user gives you. "
    "Answer briefly with words copied from the sources and cite the source you used as [n], "
    "for example: Paris [2]. If the sources do not contain the answer, reply exactly: "
    f"{NOT_IN_SOURCES}"
)

# Two short worked examples with made-up passages (never the user's documents).
FEW_SHOT = (
    "Passages:\n"
    "[1] (astronomy-notes.txt) The Sun is a star at the centre of the Solar System. "
    "Light from the Sun reaches Earth in about 8 minutes.\n"
    "[2] (baking.md) Bread is made from flour, water, salt and yeast.\n"
    "Question: How long does sunlight take to reach Earth?\n"
    "Answer: about 8 minutes [1]\n"
    "\n"
    "Passages:\n"
    "[1] (city-guide.pdf, p. 4) The old bridge was rebuilt in stone after a flood.\n"
    "[2] (rivers.html) The Danube flows through ten countries and ends in the Black Sea.\n"
    "Question: Where does the Danube end?\n"
    "Answer: the Black Sea [2]\n"
    "\n"
)

_WS = re.compile(r"\s+")


def stop_strings(
    style: PromptStyle | None = None, stop: Sequence[str] | None = None
) -> tuple[str, ...]:
    """The stop strings that end an answer: ``stop`` when given (``RAG_LLM__STOP``, a
    request's ``sampling.stop``: they replace the defaults), else ``DEFAULT_STOP``; for a
    COMPLETION ``style`` the line end is added, its answer being one line. ``style`` None:
    before a prompt is built (sampling from the settings).

        stop_strings()                          # ("\\n\\n", "Question:", "Passages:")
        stop_strings(PromptStyle.COMPLETION)    # the same and "\\n"
        stop_strings(PromptStyle.CHAT, ["##"])  # ("##",)
    """
    out = DEFAULT_STOP if stop is None else tuple(stop)
    if style is PromptStyle.COMPLETION and _LINE_END not in out:
        out += (_LINE_END,)
    return out


def _clean(text: str) -> str:
    """One line per source: newlines inside a passage would look like the answer's end."""
    return _WS.sub(" ", text).strip()


def source_header(n: int, source: ScoredChunk) -> str:
    chunk = source.chunk
    where = chunk.source + (f", p. {chunk.page}" if chunk.page is not None else "")
    return f"[{n}] ({where})"


class GroundedPromptBuilder:
    """``generation.ports.PromptBuilder``: question + ranked chunks -> ``Prompt``."""

    def __init__(
        self,
        style: PromptStyle,
        count_tokens: Callable[[str], int],
        n_ctx: int,
        max_tokens: int,
        max_source_tokens: int = 300,
        *,
        count_chat_tokens: Callable[[Sequence[tuple[str, str]]], int] | None = None,
        few_shot: bool = True,
    ) -> None:
        """``count_chat_tokens`` counts a rendered chat (the LLM's own template); without
        it a chat is counted as its contents plus a per-message allowance."""
        if max_source_tokens < 8:
            raise ValueError("max_source_tokens must be at least 8")
        self.style = style
        self._count = count_tokens
        self._count_chat = count_chat_tokens
        self.n_ctx = n_ctx
        self.max_tokens = max_tokens
        self.max_source_tokens = max_source_tokens
        self.few_shot = few_shot

    # -- rendering ------------------------------------------------------------------------

    def _passages(self, texts: Sequence[str], sources: Sequence[ScoredChunk]) -> str:
        if not sources:
            return "(no passages)"
        return "\n".join(
            f"{source_header(i, s)} {t}"
            for i, (s, t) in enumerate(zip(sources, texts, strict=True), 1)
        )

    def _render(
        self, question: str, texts: Sequence[str], sources: Sequence[ScoredChunk]
    ) -> tuple[str, tuple[tuple[str, str], ...]]:
        q = _clean(question)
        passages = self._passages(texts, sources)
        if self.style == PromptStyle.COMPLETION:
            shots = FEW_SHOT if self.few_shot else ""
            text = f"{INSTRUCTION}\n\n{shots}Passages:\n{passages}\nQuestion: {q}\nAnswer:"
            return text, ()
        user = f"Sources:\n{passages}\n\nQuestion: {q}"
        return "", (("system", SYSTEM_MESSAGE), ("user", user))

    def _tokens_of(self, text: str, messages: tuple[tuple[str, str], ...]) -> int:
        if self.style == PromptStyle.COMPLETION:
            return self._count(text)
        if self._count_chat is not None:
            return self._count_chat(messages)
        return sum(self._count(c) + 8 for _, c in messages) + 8

    # -- fitting --------------------------------------------------------------------------

    def _truncate(self, text: str) -> str:
        """Cut ``text`` to at most ``max_source_tokens`` tokens at a word boundary."""
        text = _clean(text)
        if self._count(text) <= self.max_source_tokens:
            return text
        words = text.split(" ")
        lo, hi = 0, len(words)  # largest k with count(words[:k] + "…") <= limit
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._count(" ".join(words[:mid]) + " …") <= self.max_source_tokens:
                lo = mid
            else:
                hi = mid - 1
        return (" ".join(words[:lo]) + " …").strip()

    def build(
        self, question: str, sources: Sequence[ScoredChunk], max_tokens: int | None = None
    ) -> Prompt:
        """``max_tokens`` (the request's answer budget) overrides the builder's default."""
        answer_tokens = self.max_tokens if max_tokens is None else max_tokens
        budget = self.n_ctx - answer_tokens
        texts = [self._truncate(s.chunk.text) for s in sources]
        srcs = list(sources)

        # Estimate: the frame plus each passage line counted on its own (each count
        # includes a BOS where the model adds one, so the sum over-estimates).
        frame_text, frame_msgs = self._render(question, [], [])
        used = self._tokens_of(frame_text, frame_msgs)
        keep = 0
        for i, (s, t) in enumerate(zip(srcs, texts, strict=True), 1):
            cost = self._count(f"{source_header(i, s)} {t}\n")
            if used + cost > budget and keep >= 1:
                break
            used += cost
            keep += 1

        # Exact: the whole rendered prompt; drop more from the bottom while it overflows.
        while True:
            text, messages = self._render(question, texts[:keep], srcs[:keep])
            n = self._tokens_of(text, messages)
            if n <= budget:
                break
            if keep <= 1:
                raise ContextOverflow(
                    f"the question with {'one source' if keep else 'no sources'} needs {n} "
                    f"prompt tokens + {answer_tokens} answer tokens, more than the context "
                    f"window of {self.n_ctx}"
                )
            keep -= 1
        return Prompt(
            style=self.style,
            text=text,
            messages=messages,
            question=_clean(question),
            sources=tuple(srcs[:keep]),
            prompt_tokens=n,
            dropped_sources=len(srcs) - keep,
        )
