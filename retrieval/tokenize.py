"""BM25 tokenizer: unicode word split, lower-casing, English stop words, Snowball stems.

    tok = Bm25Tokenizer(BM25Settings())
    tok.tokenize("Running dogs ran")        # ['run', 'dog', 'ran']
    tok.tokenize_many(["a b", "c d"])        # one stemming call for the whole batch
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

import Stemmer
from bm25s.stopwords import STOPWORDS_EN

from core.settings import BM25Settings

_WORD = re.compile(r"\w+", re.UNICODE)
_CACHE_MAX = 500_000


class Bm25Tokenizer:
    """Turns texts into BM25 terms. Deterministic and thread-safe; stems are cached."""

    def __init__(self, settings: BM25Settings | None = None) -> None:
        self.settings = settings or BM25Settings()
        self._lower = self.settings.lowercase
        self._stop: frozenset[str] = (
            frozenset(STOPWORDS_EN) if self.settings.stopwords == "en" else frozenset()
        )
        self._stemmer = (
            Stemmer.Stemmer(self.settings.stemmer) if self.settings.stemmer != "none" else None
        )
        self._cache: dict[str, str] = {}
        self._lock = threading.Lock()  # PyStemmer objects are not thread-safe

    def describe(self) -> dict[str, object]:
        """The options that change the terms; an index records them to detect a mismatch."""
        return {
            "lowercase": self._lower,
            "stopwords": self.settings.stopwords,
            "stemmer": self.settings.stemmer,
        }

    def _words(self, text: str) -> list[str]:
        if self._lower:
            text = text.lower()
        words = _WORD.findall(text)
        if self._stop:
            stop = self._stop
            # Stop words are lower-case; compare case-insensitively when not lower-casing.
            words = [w for w in words if (w if self._lower else w.lower()) not in stop]
        return words

    def _stem_all(self, words_per_text: list[list[str]]) -> list[list[str]]:
        if self._stemmer is None:
            return words_per_text
        cache = self._cache
        table: dict[str, str] = {}
        unknown: list[str] = []
        for words in words_per_text:
            for w in words:
                if w not in table:
                    stem = cache.get(w)
                    if stem is None:
                        unknown.append(w)
                        table[w] = w  # placeholder, filled below
                    else:
                        table[w] = stem
        if unknown:
            with self._lock:
                stems = self._stemmer.stemWords(unknown)
                if len(cache) + len(unknown) > _CACHE_MAX:
                    cache.clear()
                cache.update(zip(unknown, stems, strict=True))
            table.update(zip(unknown, stems, strict=True))
        return [[table[w] for w in words] for words in words_per_text]

    def tokenize(self, text: str) -> list[str]:
        return self._stem_all([self._words(text)])[0]

    def tokenize_many(self, texts: Sequence[str]) -> list[list[str]]:
        return self._stem_all([self._words(t) for t in texts])
