"""Personal data (PII) in chunks, questions and answers, found by presidio, offline.

presidio-analyzer's pattern recognizers (regex + checksum: Luhn for cards, mod-97 for
IBANs, the check letter of a Spanish NIF…) and its ``phonenumbers``-based phone
recognizer do the finding; presidio-anonymizer does the replacing. No model is loaded:
the analyzer runs on a tokenizer-only NLP engine (a ``spacy.blank("en")`` tokenizer,
lower-cased tokens as lemmas) so that presidio's context words ("card", "SSN",
"phone"…) still raise a match's score, and the e-mail recognizer's domain check uses
``tldextract``'s bundled suffix list instead of fetching it. A cheap prefilter (one
regex per entity, each a superset of what presidio's recognizer can match) skips a
text that cannot hold any of the entities and restricts presidio to the entities whose
prefilter fired: a chunk without candidates costs ~0.03 ms, one that reaches presidio a
few ms (mostly ``phonenumbers``), and 99% of SQuAD's paragraphs never reach it
(bench/results/pii.txt). Loading costs seconds (presidio imports spaCy, torch and
transformers), once per process, at the first use or at ``warm_up()``.

    check = default_pii_check()
    f = check.inspect("Card 4111 1111 1111 1111, mail ann@example.org", Stage.DOCUMENT)
    f.labels                      # ('CREDIT_CARD', 'EMAIL_ADDRESS')
    check.anonymize(text, f)      # 'Card <CREDIT_CARD>, mail <EMAIL_ADDRESS>'
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from generation.checks.base import Finding, Stage

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine, EntityRecognizer, RecognizerResult
    from presidio_anonymizer import AnonymizerEngine

NAME = "pii"

# The entities looked for unless told otherwise: the generic ones, the US social security
# number, and the national ids of the EU/UK formats presidio recognizes with a checksum or
# a strict format (so that ordinary numbers in text rarely pass). Other national ids
# (SUPPORTED_ENTITIES) are there on request: most have no checksum and fire on ordinary
# numbers (German postcodes, Indian vehicle plates, Australian business numbers…).
DEFAULT_ENTITIES: tuple[str, ...] = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "IP_ADDRESS",
    "US_SSN",
    "UK_NHS",
    "UK_NINO",
    "ES_NIF",
    "ES_NIE",
    "IT_FISCAL_CODE",
    "PL_PESEL",
)

# Chosen on the tuning half of evals/labelled/pii-sample.jsonl (python -m evals.pii_eval):
# 0.3 and 0.4 measure the same; from 0.5 up the phone numbers without a context word
# (presidio scores them 0.4) are lost, recall 0.99 -> 0.85. Presidio's very weak SSN
# patterns (a bare 9-digit number, 0.05) pass 0.4 only with a context word ("SSN").
DEFAULT_MIN_SCORE = 0.4

_P = "presidio_analyzer.predefined_recognizers"
# entity -> presidio recognizer class (module, name); all pattern/rule based, no model.
_RECOGNIZERS: dict[str, tuple[str, str]] = {
    "EMAIL_ADDRESS": (__name__, "_OfflineEmailRecognizer"),
    "PHONE_NUMBER": (_P, "PhoneRecognizer"),
    "CREDIT_CARD": (_P, "CreditCardRecognizer"),
    "IBAN_CODE": (_P, "IbanRecognizer"),
    "IP_ADDRESS": (_P, "IpRecognizer"),
    "US_SSN": (_P, "UsSsnRecognizer"),
    "US_ITIN": (_P, "UsItinRecognizer"),
    "US_PASSPORT": (_P, "UsPassportRecognizer"),
    "UK_NHS": (_P, "NhsRecognizer"),
    "UK_NINO": (_P, "UkNinoRecognizer"),
    "ES_NIF": (_P, "EsNifRecognizer"),
    "ES_NIE": (_P, "EsNieRecognizer"),
    "IT_FISCAL_CODE": (_P, "ItFiscalCodeRecognizer"),
    "IT_VAT_CODE": (_P, "ItVatCodeRecognizer"),
    "PL_PESEL": (_P, "PlPeselRecognizer"),
    "FI_PERSONAL_IDENTITY_CODE": (_P, "FiPersonalIdentityCodeRecognizer"),
    "SE_PERSONNUMMER": (_P, "SePersonnummerRecognizer"),
    "DE_TAX_ID": (_P, "DeTaxIdRecognizer"),
    "IN_AADHAAR": (_P, "InAadhaarRecognizer"),
    "IN_PAN": (_P, "InPanRecognizer"),
    "AU_TFN": (_P, "AuTfnRecognizer"),
    "AU_MEDICARE": (_P, "AuMedicareRecognizer"),
    "CA_SIN": (_P, "CaSinRecognizer"),
    "SG_NRIC_FIN": (_P, "SgFinRecognizer"),
}
SUPPORTED_ENTITIES: frozenset[str] = frozenset(_RECOGNIZERS)

# Phone numbers: national formats of these regions (international "+..." numbers are
# found whatever the region); each region is one more pass of phonenumbers' matcher.
# presidio's default is US, GB, DE, FR, IL, IN, BR, CA: CA is covered by the US +1 plan,
# and an Indian mobile is any 10-digit number starting 6-9; ES and IT are the countries
# of the ids below. phonenumbers' leniency 2 (STRICT_GROUPING: digit groups as the
# country writes them) instead of presidio's 1 (VALID): German short numbers otherwise
# turn amounts ("3698.63") and 6-digit order numbers into phones. Both chosen on the
# tuning half (bench/results/pii.txt).
PHONE_REGIONS: tuple[str, ...] = ("US", "GB", "DE", "FR", "ES", "IT")
PHONE_LENIENCY = 2
# Fewer digits than this is not taken as a phone number (see _plausible).
MIN_PHONE_DIGITS = 7

# Entities presidio finds by a checksum on a bare run of digits: 1 random 10-digit number
# in 11 passes the NHS check, 1 in 10 the PESEL one, so phone and order numbers would.
# These count only with one of the recognizer's context words ("NHS", "PESEL") in the
# five words before them.
CONTEXT_REQUIRED: frozenset[str] = frozenset({"UK_NHS", "PL_PESEL"})

# Prefilter, for the default entities (any other entity always runs presidio). A text
# goes to presidio only if it holds an "@", an IPv6-like ":hex:", or a digit that starts
# a run of 6+ digits (separators allowed), an IPv4-like quad, an IBAN's check digits
# after two letters, or an Italian fiscal code's year after six letters (_GATE, one pass
# over the text). Then presidio looks only for the entities whose own pattern below
# fires. Each pattern matches inside every string presidio's recognizer can match (so
# skipping loses nothing), and whatever these patterns match also sets off the gate.
_SEP = r"[\s\-./()]"  # separators inside phone-like digit runs
_PREFILTER: dict[str, str] = {
    "EMAIL_ADDRESS": r"\w@\w",
    "IP_ADDRESS": r"\d\.\d{1,3}\.\d{1,3}\.\d|:[0-9A-Fa-f]{0,4}:",
    # MIN_PHONE_DIGITS (7)+ digits: the shortest national numbers of PHONE_REGIONS with
    # their trunk 0, or a "+" country code and 6 digits ("1806-07" is left alone)
    "PHONE_NUMBER": rf"\d(?:{_SEP}{{0,3}}\d){{6,}}",
    "CREDIT_CARD": r"\d(?:[- ]?\d){11,}",
    "IBAN_CODE": r"(?<=[A-Za-z]{2}\d)\d[ -]?[A-Za-z0-9]{4}",
    "US_SSN": r"\d(?:[- .]?\d){8}",
    "UK_NHS": r"\d{3}[- ]?\d{3}[- ]?\d{4}",
    "UK_NINO": r"\d{2} ?\d{2} ?\d{2} ?[A-Da-d]",
    "ES_NIF": r"\d{7}-?[A-Za-z]",
    "ES_NIE": r"\d{7}-?[A-Za-z]",
    # the year's first digit (omocodia replaces digits from the right, this one last)
    "IT_FISCAL_CODE": r"(?<=[A-Za-z]{6}\d)[\dLMNP-Vlmnp-v][A-Za-z]",
    "PL_PESEL": r"\d{11}",
}
_NIE_DASHED = r"\b[X-Z]-[0-9]{7}-?[A-Z]\b"

_PREFILTER_RE: dict[str, re.Pattern[str]] = {e: re.compile(p) for e, p in _PREFILTER.items()}
_GATE = re.compile(
    r"\d(?:"
    rf"(?:{_SEP}{{0,3}}\d){{5,}}"  # 6+ digits: phone, card, ids, most IBANs
    r"|\.\d{1,3}\.\d{1,3}\.\d"  # IPv4
    r"|(?<=[A-Za-z]{2}\d)\d[ -]?[A-Za-z0-9]{4}"  # IBAN
    r"|(?<=[A-Za-z]{6}\d)[\dLMNP-Vlmnp-v][A-Za-z]"  # Italian fiscal code
    r")"
    r"|:[0-9A-Fa-f]{0,4}:"  # IPv6
)


class PiiCheck:
    """PII spans in a text, by presidio's offline recognizers. ``entities``: presidio entity
    names (``SUPPORTED_ENTITIES``; default ``DEFAULT_ENTITIES``); ``min_score``: the lowest
    recognizer score (after context words) that counts as a finding. Presidio loads at
    the first ``inspect`` (or ``warm_up()``); one instance is safe to share between threads.
    """

    name = NAME
    stages = frozenset(Stage)

    def __init__(
        self, entities: Sequence[str] | None = None, min_score: float = DEFAULT_MIN_SCORE
    ) -> None:
        chosen = tuple(dict.fromkeys(entities if entities is not None else DEFAULT_ENTITIES))
        unknown = [e for e in chosen if e not in SUPPORTED_ENTITIES]
        if unknown:
            raise ValueError(
                f"unsupported PII entities {unknown}; choose from {sorted(SUPPORTED_ENTITIES)}"
            )
        if not chosen:
            raise ValueError("PiiCheck needs at least one entity")
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be in 0..1, got {min_score}")
        self.entities = chosen
        self.min_score = min_score
        self._prefilters = [(e, _PREFILTER_RE.get(e)) for e in chosen]
        self._all_prefiltered = all(rx is not None for _, rx in self._prefilters)
        self._lock = threading.Lock()
        self._analyzer: AnalyzerEngine | None = None
        self._anonymizer: AnonymizerEngine | None = None

    # -- loading ----------------------------------------------------------------------------

    def warm_up(self) -> None:
        """Load presidio now (seconds: it imports spaCy) instead of at the first text."""
        self._engines()

    def _engines(self) -> tuple[AnalyzerEngine, AnonymizerEngine]:
        if self._analyzer is None or self._anonymizer is None:
            with self._lock:
                if self._analyzer is None or self._anonymizer is None:
                    self._analyzer, self._anonymizer = _build(self.entities)
        return self._analyzer, self._anonymizer

    # -- checking ---------------------------------------------------------------------------

    def candidates(self, text: str) -> list[str]:
        """The entities whose prefilter fires on ``text`` (those presidio then looks for)."""
        if self._all_prefiltered and "@" not in text and not _GATE.search(text):
            return []
        return [e for e, rx in self._prefilters if rx is None or rx.search(text)]

    def inspect(self, text: str, stage: Stage) -> Finding:
        """The PII spans of ``text`` (sorted, one label each), score = the best match's."""
        if stage not in self.stages:
            raise ValueError(f"{NAME} does not run on {stage}")
        wanted = self.candidates(text) if text else []
        if not wanted:
            return Finding(NAME, False)
        analyzer, _ = self._engines()
        with self._lock:  # spaCy's tokenizer cache is not meant for concurrent writers
            raw = analyzer.analyze(
                text,
                language="en",
                entities=wanted,
                score_threshold=self.min_score,
                return_decision_process=True,  # keeps the context word that raised a score
            )
        kept = _resolve_overlaps(r for r in raw if _plausible(r, text))
        if not kept:
            return Finding(NAME, False)
        kept.sort(key=lambda r: (r.start, r.end))
        labels = tuple(r.entity_type for r in kept)
        return Finding(
            NAME,
            True,
            score=max(float(r.score) for r in kept),
            reasons=tuple(dict.fromkeys(labels)),
            spans=tuple((r.start, r.end) for r in kept),
            labels=labels,
        )

    def anonymize(self, text: str, finding: Finding) -> str:
        """``text`` with each of ``finding``'s spans replaced by ``<LABEL>`` (presidio's
        replace operator). ``finding`` must come from ``inspect`` on this same text."""
        if not finding.spans:
            return text
        from presidio_anonymizer.entities import RecognizerResult as AnonResult

        _, anonymizer = self._engines()
        labels = finding.labels or (finding.reasons[:1] or ("PII",)) * len(finding.spans)
        results = [
            AnonResult(entity_type=label, start=a, end=b, score=finding.score or 1.0)
            for (a, b), label in zip(finding.spans, labels, strict=True)
        ]
        return str(anonymizer.anonymize(text=text, analyzer_results=results).text)


def _context_word(result: RecognizerResult) -> str:
    explanation = result.analysis_explanation
    return str(explanation.supportive_context_word or "") if explanation is not None else ""


def _plausible(result: RecognizerResult, text: str) -> bool:
    """Drop what presidio's own rules let through but ours do not: an NHS number or PESEL
    without its context word; a "phone number" of under 7 digits (phonenumbers takes
    German short numbers: "Amount: 1685.75" gives "1685"), the same bound the prefilter
    uses, so a number is judged the same whatever else the text holds."""
    if result.entity_type in CONTEXT_REQUIRED and not _context_word(result):
        return False
    if result.entity_type == "PHONE_NUMBER":
        return sum(ch.isdigit() for ch in text[result.start : result.end]) >= MIN_PHONE_DIGITS
    return True


def _resolve_overlaps(results: Iterable[RecognizerResult]) -> list[RecognizerResult]:
    """One label per stretch of text: the best-scored match wins, on a tie the one with a
    context word nearby ("SSN 389380495": an SSN, not a phone), then the longest; matches
    overlapping a kept one are dropped (a PESEL inside a card number, NIF vs NIE…)."""
    kept: list[RecognizerResult] = []
    ranked = sorted(
        results,
        key=lambda r: (-r.score, not _context_word(r), -(r.end - r.start), r.start),
    )
    for r in ranked:
        if all(r.end <= k.start or k.end <= r.start for k in kept):
            kept.append(r)
    return kept


@lru_cache(maxsize=1)
def default_pii_check() -> PiiCheck:
    """The shared ``PiiCheck`` with the default entities and threshold (loads lazily)."""
    return PiiCheck()


# -- presidio, offline ----------------------------------------------------------------------


def _build(entities: Sequence[str]) -> tuple[AnalyzerEngine, AnonymizerEngine]:
    try:
        from presidio_analyzer import AnalyzerEngine, Pattern, RecognizerRegistry
        from presidio_anonymizer import AnonymizerEngine
    except ImportError as e:  # pragma: no cover - the packages are core dependencies
        raise RuntimeError(
            "the PII check needs presidio-analyzer and presidio-anonymizer "
            "(pip install the versions pinned in pyproject.toml)"
        ) from e
    recognizers: list[EntityRecognizer] = []
    for entity in entities:
        module, cls_name = _RECOGNIZERS[entity]
        cls = getattr(importlib.import_module(module), cls_name)
        # Country recognizers default to their country's language; the analyzer runs "en".
        kwargs: dict[str, Any] = {"supported_language": "en"}
        if entity == "PHONE_NUMBER":
            kwargs.update(supported_regions=PHONE_REGIONS, leniency=PHONE_LENIENCY)
        elif entity == "ES_NIE":
            # NIEs are often written X-1234567-L; presidio's pattern has no dash after
            # the letter (its check-letter validation strips dashes).
            kwargs["patterns"] = [*cls.PATTERNS, Pattern("NIE (dashed)", _NIE_DASHED, 0.5)]
        recognizers.append(cls(**kwargs))
    registry = RecognizerRegistry(recognizers=recognizers, supported_languages=["en"])
    analyzer = AnalyzerEngine(
        registry=registry, nlp_engine=_tokenizer_engine(), supported_languages=["en"]
    )
    return analyzer, AnonymizerEngine()


VOCAB_LIMIT = 20_000  # words the tokenizer keeps before it starts afresh (~7 MiB)


def _tokenizer_engine() -> Any:
    """A presidio ``NlpEngine`` with spaCy's blank English tokenizer and no model: tokens
    and lower-cased "lemmas" for presidio's context words, no named entities."""
    import spacy
    from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine

    class TokenizerNlpEngine(NlpEngine):  # type: ignore[misc]
        engine_name = "tokenizer"
        is_available = True

        def __init__(self) -> None:
            self.nlp: Any = None

        def load(self) -> None:
            self.nlp = spacy.blank("en")

        def is_loaded(self) -> bool:
            return self.nlp is not None

        def process_text(self, text: str, language: str) -> NlpArtifacts:
            if len(self.nlp.vocab) > VOCAB_LIMIT:
                # spaCy keeps every word it has tokenized (vocab, string store, tokenizer
                # cache) for the life of the pipeline: new numbers and names grew a
                # server by ~7 MiB per 1,000 texts without end (issue 14's soak). A
                # fresh blank tokenizer costs ~0.1 s; earlier docs keep their own vocab.
                self.load()
            doc = self.nlp.make_doc(text)
            return NlpArtifacts(
                entities=[],
                tokens=doc,
                tokens_indices=[t.idx for t in doc],
                lemmas=[t.lower_ for t in doc],
                nlp_engine=self,
                language=language,
                scores=[],
            )

        def process_batch(
            self,
            texts: Iterable[str],
            language: str,
            batch_size: int = 1,
            n_process: int = 1,
            **kwargs: Any,
        ) -> Iterator[tuple[str, NlpArtifacts]]:
            for text in texts:
                yield text, self.process_text(text, language)

        def is_stopword(self, word: str, language: str) -> bool:
            return bool(self.nlp.vocab[word].is_stop)

        def is_punct(self, word: str, language: str) -> bool:
            return bool(self.nlp.vocab[word].is_punct)

        def get_supported_entities(self) -> list[str]:
            return []

        def get_supported_languages(self) -> list[str]:
            return ["en"]

    engine = TokenizerNlpEngine()
    engine.load()
    return engine


def _email_recognizer_class() -> Any:
    import tldextract
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    # tldextract's module-level extract() fetches the public suffix list from the network
    # on first use; this one only reads the snapshot bundled with the package.
    offline = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

    class OfflineEmailRecognizer(EmailRecognizer):  # type: ignore[misc]
        """presidio's e-mail recognizer, its domain check on tldextract's bundled list."""

        def validate_result(self, pattern_text: str) -> bool:
            return bool(offline(pattern_text).fqdn)

    return OfflineEmailRecognizer


def __getattr__(name: str) -> Any:
    # The e-mail recognizer class is built on first access so that importing this module
    # does not import presidio.
    if name == "_OfflineEmailRecognizer":
        cls = _email_recognizer_class()
        globals()[name] = cls
        return cls
    raise AttributeError(name)
