"""Citation markers in answer text: parse ``[n]``, ``[n, m]``, ``[n-m]``, ``[Source n]``,
map them to the prompt's numbered sources, and drop (and count) those naming no source.

Also the small text helpers the answer stages share: sentence splitting and a
content-word tokenizer (lowercased, stopwords dropped).

    parsed = parse_citations("Paris [1]. It is big [7].", prompt.sources)
    parsed.text        # "Paris [1]. It is big."   (source 7 does not exist)
    parsed.dropped     # 1
    parsed.citations   # (Citation(n=1, source=prompt.sources[0], snippet="…"),)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from core.types import Citation, ScoredChunk

SNIPPET_MAX_CHARS = 240
_MAX_RANGE = 20  # a range wider than this is read as its two endpoints

# One marker: [1] [1, 2] [1-3] [1–3] [Source 2] [sources 1 and 3] (Source 2)
_NUM_LIST = r"\d{1,4}(?:\s*(?:[-–—,;&]|and|to)\s*(?:sources?\s*)?\d{1,4})*"
MARKER_RE = re.compile(
    r"\[\s*(?:sources?\s*)?(?P<b>" + _NUM_LIST + r")\s*\]"
    r"|\(\s*sources?\s*(?P<p>" + _NUM_LIST + r")\s*\)",
    re.IGNORECASE,
)
_RANGE_RE = re.compile(r"(\d{1,4})\s*(?:[-–—]|to)\s*(?:sources?\s*)?(\d{1,4})", re.IGNORECASE)
_NUM_RE = re.compile(r"\d{1,4}")

_STOPWORD_TEXT = """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each
    few for from further had has have having he her here hers herself him himself his how
    i if in into is it its itself just me more most my myself no nor not now of off on once
    only or other our ours ourselves out over own same she should so some such than that
    the their theirs them themselves then there these they this those through to too under
    until up very was we were what when where which while who whom why will with would you
    your yours yourself yourselves s t don didn doesn isn wasn weren won according source
    sources passage passages answer question"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

_WORD_RE = re.compile(r"\w+(?:[-'’.,]\w+)*", re.UNICODE)
_ABBREVIATION_TEXT = (
    "mr mrs ms dr st jr sr vs etc e.g i.e no fig al inc ltd co corp gen col lt sgt prof rev"
)
_ABBREVIATIONS = frozenset(_ABBREVIATION_TEXT.split())
# Sentence end: terminal punctuation (plus closing quotes/brackets and any citation
# markers right after it), whitespace, then something that can start a sentence.
_BOUNDARY_RE = re.compile(
    r"[.!?]+[\"'”’)\]]*(?:\s*(?:\[[^\[\]\n]{1,40}\]|\(\s*(?i:sources?)\s[^()\n]{1,30}\)))*"
    r"(?=\s+[\"'“‘(\[`]?[A-Z0-9`])|\n\s*\n"
)


@dataclass(frozen=True, slots=True)
class AnswerSentence:
    """One answer sentence with its markers removed and the valid sources it cited (1-based)."""

    text: str
    cited: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class ParsedCitations:
    """Answer text with valid markers kept (canonical ``[n]`` / ``[n, m]``) and invalid ones
    removed; one ``Citation`` per cited source in first-cited order."""

    text: str
    citations: tuple[Citation, ...]
    sentences: tuple[AnswerSentence, ...]
    dropped: int


# -- text helpers ------------------------------------------------------------------------


def normalize_word(word: str) -> str:
    """Lowercase and fold a light plural/possessive, so "Broncos'"/"bronco" match."""
    w = word.lower().replace("’", "'").strip("'.,")
    if w.endswith("'s"):
        w = w[:-2]
    if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    return w


def word_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the words of ``text`` (numbers like 1,000 and U.S. stay one word)."""
    return [m.span() for m in _WORD_RE.finditer(text)]


def words(text: str) -> list[str]:
    """All words, normalised (see ``normalize_word``)."""
    return [w for w in (normalize_word(m.group()) for m in _WORD_RE.finditer(text)) if w]


def content_words(text: str) -> list[str]:
    """Normalised words without stopwords; markers are ignored."""
    return [w for w in words(strip_markers(text)) if w not in STOPWORDS]


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text`` (each stripped of surrounding
    whitespace); a citation marker after the full stop stays with its sentence.
    Common abbreviations (Dr., U.S., e.g.) do not end a sentence."""
    out: list[tuple[int, int]] = []
    start = 0

    def add(lo: int, hi: int) -> None:
        piece = text[lo:hi]
        lead = len(piece) - len(piece.lstrip())
        body = piece.strip()
        if body:
            out.append((lo + lead, lo + lead + len(body)))

    for m in _BOUNDARY_RE.finditer(text):
        end = m.end()
        if m.group().startswith((".",)) and _is_abbreviation(text, m.start()):
            continue
        add(start, end)
        start = end
    add(start, len(text))
    return out


def split_sentences(text: str) -> list[str]:
    """Split prose into sentences (see ``sentence_spans``)."""
    return [text[s:e] for s, e in sentence_spans(text)]


def _is_abbreviation(text: str, dot: int) -> bool:
    m = re.search(r"([\w.]+)$", text[:dot])
    if not m:
        return False
    token = m.group(1).lower()
    return token in _ABBREVIATIONS or (len(token) == 1 and token.isalpha()) or "." in token


def strip_markers(text: str) -> str:
    """Remove every citation marker and tidy the spaces it leaves."""
    return _tidy(MARKER_RE.sub("", text))


def _tidy(text: str) -> str:
    text = re.sub(r"[ \t]{2,}", " ", text)
    text = re.sub(r"\s+([.,;:!?])", r"\1", text)
    return text.strip()


# -- markers -----------------------------------------------------------------------------


def marker_numbers(inner: str) -> list[int]:
    """The source numbers a marker's inside names, in order, ranges expanded."""
    nums: list[int] = []
    pos = 0
    for m in _RANGE_RE.finditer(inner):
        nums.extend(int(x) for x in _NUM_RE.findall(inner[pos : m.start()]))
        lo, hi = int(m.group(1)), int(m.group(2))
        if lo <= hi and hi - lo < _MAX_RANGE:
            nums.extend(range(lo, hi + 1))
        else:
            nums.extend([lo, hi])
        pos = m.end()
    nums.extend(int(x) for x in _NUM_RE.findall(inner[pos:]))
    seen: set[int] = set()
    return [n for n in nums if not (n in seen or seen.add(n))]  # type: ignore[func-returns-value]


def format_marker(ns: Sequence[int]) -> str:
    return "[" + ", ".join(str(n) for n in ns) + "]" if ns else ""


def _rewrite(text: str, n_sources: int) -> tuple[str, int, list[int]]:
    """Markers rewritten canonical with invalid numbers removed; (text, dropped, cited order)."""
    dropped = 0
    order: list[int] = []

    def repl(m: re.Match[str]) -> str:
        nonlocal dropped
        nums = marker_numbers(m.group("b") or m.group("p") or "")
        valid = [n for n in nums if 1 <= n <= n_sources]
        dropped += len(nums) - len(valid)
        for n in valid:
            if n not in order:
                order.append(n)
        return format_marker(valid)

    return _tidy(MARKER_RE.sub(repl, text)), dropped, order


def parse_citations(text: str, sources: Sequence[ScoredChunk]) -> ParsedCitations:
    """Map the markers of ``text`` to ``sources`` ([n] is ``sources[n-1]``).

    Markers naming no source are removed and counted in ``dropped``. Each citation's
    snippet is the excerpt of its source that best overlaps the sentences citing it.
    """
    clean, dropped, order = _rewrite(text, len(sources))
    sentences: list[AnswerSentence] = []
    for sent in split_sentences(clean):
        cited: list[int] = []
        for m in MARKER_RE.finditer(sent):
            for n in marker_numbers(m.group("b") or m.group("p") or ""):
                if n not in cited:
                    cited.append(n)
        body = strip_markers(sent)
        if body:
            sentences.append(AnswerSentence(body, tuple(cited)))
        elif sentences and cited:  # a stray marker line belongs to the sentence before
            prev = sentences[-1]
            sentences[-1] = AnswerSentence(
                prev.text, prev.cited + tuple(n for n in cited if n not in prev.cited)
            )
    citations = []
    for n in order:
        citing = " ".join(s.text for s in sentences if n in s.cited) or strip_markers(clean)
        chunk_text = sources[n - 1].chunk.text
        citations.append(Citation(n, sources[n - 1], lexical_snippet(chunk_text, citing)))
    return ParsedCitations(clean, tuple(citations), tuple(sentences), dropped)


# -- snippets ----------------------------------------------------------------------------


def containment(query_words: Sequence[str], target_words: set[str]) -> float:
    """Share of the query's (distinct) words found in the target, 0..1."""
    q = set(query_words)
    return len(q & target_words) / len(q) if q else 0.0


def shorten(text: str, max_chars: int = SNIPPET_MAX_CHARS) -> str:
    """Cut at a word boundary and mark the cut with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars - 1]
    if " " in cut[max_chars // 2 :]:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,;:") + "…"


def lexical_snippet(chunk_text: str, sentence: str, max_chars: int = SNIPPET_MAX_CHARS) -> str:
    """The chunk sentence sharing most content words with ``sentence``, at most
    ``max_chars`` (cut around the matching words when the sentence is longer)."""
    sents = split_sentences(chunk_text) or [chunk_text]
    q = content_words(sentence)
    best = max(sents, key=lambda s: containment(q, set(content_words(s))))
    return window_around(best, q, max_chars)


def window_around(text: str, query_words: Sequence[str], max_chars: int) -> str:
    """``text`` if short enough, else a ``max_chars`` window centred on the query's words."""
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    q = set(query_words)
    hits = [s for s, e in word_spans(text) if normalize_word(text[s:e]) in q]
    centre = (hits[0] + hits[-1]) // 2 if hits else 0
    start = max(0, min(centre - max_chars // 2, len(text) - max_chars))
    if start > 0:
        nxt = text.find(" ", start)
        start = nxt + 1 if 0 <= nxt < start + 30 else start
    piece = shorten(text[start:], max_chars - (1 if start > 0 else 0))
    return ("…" + piece) if start > 0 else piece
