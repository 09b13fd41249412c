"""The PII check (generation/checks/pii.py) with the real presidio, offline.

The values here are written for this test (valid check digits where the format has one),
not taken from the labelled sample."""

from __future__ import annotations

import json
import threading
import time

import pytest

from evals.make_pii_sample import OUT as SAMPLE_PATH
from generation.checks.base import Finding, Stage
from generation.checks.pii import (
    DEFAULT_ENTITIES,
    SUPPORTED_ENTITIES,
    PiiCheck,
    default_pii_check,
)


@pytest.fixture(scope="module")
def check() -> PiiCheck:
    c = default_pii_check()
    c.warm_up()
    return c


# One realistic sentence per default entity, with the value to find.
CASES = [
    (
        "EMAIL_ADDRESS",
        "Please send the signed form to maria.lopez@contoso.es by Friday.",
        "maria.lopez@contoso.es",
    ),
    (
        "PHONE_NUMBER",
        "For delivery questions call our depot on +44 20 7946 0321 (9-5).",
        "+44 20 7946 0321",
    ),
    (
        "CREDIT_CARD",
        "The hotel charged the deposit to Visa 4539 1488 0343 6467 on arrival.",
        "4539 1488 0343 6467",
    ),
    (
        "IBAN_CODE",
        "Salary is paid into IBAN DE89 3704 0044 0532 0130 00 every month.",
        "DE89 3704 0044 0532 0130 00",
    ),
    (
        "IP_ADDRESS",
        "sshd[812]: Failed password for root from 203.0.113.77 port 52144",
        "203.0.113.77",
    ),
    ("US_SSN", "Applicant SSN: 536-22-1234, employer ID on file.", "536-22-1234"),
    ("UK_NHS", "Patient NHS number 943 476 5919, seen in clinic today.", "943 476 5919"),
    ("UK_NINO", "Her National Insurance number is JG 10 34 56 C.", "JG 10 34 56 C"),
    ("ES_NIF", "El arrendatario, con DNI 12345678Z, declara conocer el inmueble.", "12345678Z"),
    ("ES_NIE", "Residence permit holder, NIE X-1234567-L, registered in Valencia.", "X-1234567-L"),
    (
        "IT_FISCAL_CODE",
        "Intestatario: Mario Rossi, codice fiscale RSSMRA85T10A562S.",
        "RSSMRA85T10A562S",
    ),
    ("PL_PESEL", "Pacjent: Jan Nowak, PESEL 44051401359, skierowanie do poradni.", "44051401359"),
]

SCIENCE = (
    "Background: In a cohort of 1,204 adults followed for a median of 36.5 months, the "
    "hazard ratio for the primary outcome was 0.74 (95% CI 1.2-3.4; p = 0.002). Expression "
    "of ENSG00000139618 and the rs1801133 variant was measured in 2014-2016 (doi:10.1038/"
    "s41586-019-1335-8; ISBN 978-0-306-40615-7), using version 3.10.12 of the pipeline "
    "released on 2023-10-02."
)


def test_every_default_entity_has_a_case() -> None:
    assert {label for label, _, _ in CASES} == set(DEFAULT_ENTITIES)
    assert set(DEFAULT_ENTITIES) <= SUPPORTED_ENTITIES


@pytest.mark.parametrize(("label", "text", "value"), CASES, ids=[c[0] for c in CASES])
def test_each_entity_found_with_its_span(
    check: PiiCheck, label: str, text: str, value: str
) -> None:
    f = check.inspect(text, Stage.DOCUMENT)
    start = text.index(value)
    assert f.flagged and f.check == "pii"
    assert list(zip(f.spans, f.labels, strict=True)) == [((start, start + len(value)), label)]
    assert f.reasons == (label,)
    assert 0.4 <= f.score <= 1.0


def test_spans_sorted_labels_parallel_reasons_distinct(check: PiiCheck) -> None:
    text = (
        "From 198.51.100.23: ann@example.org paid with 4539 1488 0343 6467, "
        "refund to bob@example.org."
    )
    f = check.inspect(text, Stage.DOCUMENT)
    assert f.spans == tuple(sorted(f.spans))
    assert f.labels == ("IP_ADDRESS", "EMAIL_ADDRESS", "CREDIT_CARD", "EMAIL_ADDRESS")
    assert f.reasons == ("IP_ADDRESS", "EMAIL_ADDRESS", "CREDIT_CARD")
    assert f.score == 1.0  # the Luhn-validated card and the e-mail score 1.0


def test_luhn_invalid_card_not_flagged(check: PiiCheck) -> None:
    f = check.inspect("The test card 4539 1488 0343 6468 was declined.", Stage.DOCUMENT)
    assert "CREDIT_CARD" not in f.labels


def test_iban_with_wrong_check_digits_not_flagged(check: PiiCheck) -> None:
    f = check.inspect("Transfer to DE88 3704 0044 0532 0130 00 please.", Stage.DOCUMENT)
    assert "IBAN_CODE" not in f.labels


def test_nhs_like_number_needs_its_context_word(check: PiiCheck) -> None:
    # 9434765919 passes the NHS mod-11 check; without "NHS" nearby it is not taken as one
    # (it is a valid US phone number, though, and is found as that).
    f = check.inspect("Your order 9434765919 ships today.", Stage.DOCUMENT)
    assert "UK_NHS" not in f.labels
    assert "UK_NHS" in check.inspect("NHS no. 9434765919", Stage.DOCUMENT).labels


def test_amounts_are_not_phone_numbers(check: PiiCheck) -> None:
    # phonenumbers takes "1685" for a German short number; the IBAN makes the text reach
    # presidio, so the 7-digit floor has to hold there too.
    text = "IBAN DE89 3704 0044 0532 0130 00\nAmount: 1685.75 EUR"
    assert check.inspect(text, Stage.DOCUMENT).labels == ("IBAN_CODE",)


def test_ordinary_scientific_text_not_flagged(check: PiiCheck) -> None:
    f = check.inspect(SCIENCE, Stage.DOCUMENT)
    assert f == Finding("pii", False)


def test_no_pii_chunk_takes_the_fast_path(check: PiiCheck) -> None:
    chunk = (SCIENCE.split("Expression")[0] + " The museum opens at nine. ") * 4
    assert check.candidates(chunk) == []
    t = time.perf_counter()
    for _ in range(50):
        assert not check.inspect(chunk, Stage.DOCUMENT).flagged
    assert (time.perf_counter() - t) / 50 < 0.002  # measured ~0.03 ms; generous for CI


def test_anonymize_replaces_spans_by_entity_type(check: PiiCheck) -> None:
    text = "Call +44 20 7946 0321 or write to maria.lopez@contoso.es about 4539 1488 0343 6467."
    f = check.inspect(text, Stage.ANSWER)
    assert check.anonymize(text, f) == (
        "Call <PHONE_NUMBER> or write to <EMAIL_ADDRESS> about <CREDIT_CARD>."
    )
    clean = "Nothing personal here."
    assert check.anonymize(clean, check.inspect(clean, Stage.ANSWER)) == clean


def test_question_and_answer_stages(check: PiiCheck) -> None:
    q = check.inspect("why was my card 4539 1488 0343 6467 declined?", Stage.QUESTION)
    assert q.labels == ("CREDIT_CARD",)
    a = check.inspect("The account holder can be reached at ann@example.org.", Stage.ANSWER)
    assert a.labels == ("EMAIL_ADDRESS",)
    assert check.stages == frozenset(Stage)
    assert not check.inspect("", Stage.QUESTION).flagged


def test_configuration_is_checked() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        PiiCheck(entities=["PERSON"])
    with pytest.raises(ValueError, match="min_score"):
        PiiCheck(min_score=1.5)
    only_mail = PiiCheck(entities=["EMAIL_ADDRESS"])
    f = only_mail.inspect("ann@example.org, 4539 1488 0343 6467", Stage.DOCUMENT)
    assert f.labels == ("EMAIL_ADDRESS",)


def test_tokenizer_vocabulary_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    # spaCy keeps every new word; new numbers in every text grew a server without end.
    # Past the limit the tokenizer starts afresh, and finding goes on the same.
    import generation.checks.pii as pii

    check = default_pii_check()
    nlp_engine = check._engines()[0].nlp_engine
    base = len(nlp_engine.nlp.vocab)
    monkeypatch.setattr(pii, "VOCAB_LIMIT", base + 200)
    sizes = []
    for i in range(60):
        text = f"Ticket {i}: call {i:03d}-555-0{i:03d} or +44 20 7946 0{i:03d}, ref q{i}z w{i}y."
        assert "PHONE_NUMBER" in check.inspect(text, Stage.DOCUMENT).labels
        sizes.append(len(nlp_engine.nlp.vocab))
    assert max(sizes) <= base + 200 + 20  # one text's words past the limit at most
    assert min(sizes[10:]) < max(sizes)  # it did start afresh


def test_shared_instance_is_thread_safe(check: PiiCheck) -> None:
    text, value = CASES[0][1], CASES[0][2]
    errors: list[BaseException] = []
    out: list[Finding] = []

    def work() -> None:
        try:
            for _ in range(20):
                out.append(check.inspect(text, Stage.DOCUMENT))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert {f.spans for f in out} == {((text.index(value), text.index(value) + len(value)),)}


def test_sample_file_parses_and_labels_are_in_range() -> None:
    rows = [json.loads(line) for line in SAMPLE_PATH.read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 600
    assert len({r["id"] for r in rows}) == len(rows)
    labels = set()
    for r in rows:
        assert r["half"] in ("tune", "heldout")
        for e in r["entities"]:
            assert 0 <= e["start"] < e["end"] <= len(r["text"])
            assert r["text"][e["start"] : e["end"]].strip() == r["text"][e["start"] : e["end"]]
            labels.add(e["label"])
    assert labels == set(DEFAULT_ENTITIES)
    assert sum(not r["entities"] for r in rows) >= 250  # negatives
