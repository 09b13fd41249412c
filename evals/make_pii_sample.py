"""Build the labelled PII sample, evals/labelled/pii-sample.jsonl (seeded, deterministic).

    python -m evals.make_pii_sample [--out evals/labelled/pii-sample.jsonl]

Positives: realistic texts (support tickets, e-mail signatures, invoices, HR records,
server logs, bank transfer notes, forms, chat questions…) filled with values from our
own generators: Luhn-valid card numbers, IBANs with correct mod-97 check digits and
national layouts, NHS numbers with their mod-11 check, NIF/NIE check letters, Italian
fiscal codes with their check character, PESEL check digits, SSNs in issued ranges,
phone numbers in real national numbering plans. Negatives: SciFact abstracts and SQuAD
paragraphs as they are (and every SciFact abstract with an "@": authors' e-mail
addresses and phone numbers, labelled by hand, or "IGH@" gene names), and look-alikes (ISBNs, DOIs, dates, versions, order and
tracking numbers, statistics, gene ids, Luhn-invalid card numbers, IBANs with wrong
check digits…). Every template belongs to a family; families alternate between the
"tune" half and the "heldout" half, so the held-out half has wordings never used to
choose settings. Values are never produced or checked with presidio.
"""

# ruff: noqa: E501  (the templates and value formats read best as one line each)

from __future__ import annotations

import argparse
import json
import random
import re
import string
from collections.abc import Callable
from pathlib import Path

from evals.datasets import default_datasets_dir

OUT = Path(__file__).resolve().parent / "labelled" / "pii-sample.jsonl"
SEED = 20261202

# ------------------------------------------------------------------------ value generators

FIRST = [
    "Anna",
    "James",
    "María",
    "Luca",
    "Katarzyna",
    "Oliver",
    "Sophie",
    "Javier",
    "Giulia",
    "Piotr",
    "Emma",
    "Noah",
    "Lucía",
    "Marco",
    "Agnieszka",
    "Liam",
    "Chloé",
    "Daniel",
    "Francesca",
    "Tomasz",
    "Hannah",
    "Mateo",
    "Isabel",
    "Jonas",
]
LAST = [
    "Smith",
    "García",
    "Rossi",
    "Kowalski",
    "Müller",
    "Brown",
    "Martínez",
    "Bianchi",
    "Nowak",
    "Dubois",
    "Taylor",
    "Fernández",
    "Ricci",
    "Wiśniewski",
    "Schmidt",
    "O'Connor",
    "Johnson",
    "López",
    "Romano",
    "Lewandowski",
    "Evans",
    "Moreau",
]
DOMAINS = [
    "gmail.com",
    "outlook.com",
    "yahoo.co.uk",
    "acme-logistics.com",
    "web.de",
    "northwind.co.uk",
    "telefonica.es",
    "unimi.it",
    "wp.pl",
    "example-clinic.org",
    "mail.bigbank.de",
    "fastmail.fm",
    "proton.me",
    "contoso.io",
    "libero.it",
    "hospital.nhs.uk",
    "cs.stanford.edu",
    "orange.fr",
]


def _ascii(s: str) -> str:
    table = str.maketrans("áéíóúñçüöäśńłżźąęćèàìòéČ", "aeiouncuoasnlzzaeceaioec")
    return s.lower().translate(table).replace("'", "")


def email(r: random.Random) -> str:
    f, la = _ascii(r.choice(FIRST)), _ascii(r.choice(LAST))
    local = r.choice(
        [
            f"{f}.{la}",
            f"{f[0]}{la}",
            f"{f}_{la}{r.randint(1, 99)}",
            f"{la}.{f}",
            f"{f}+billing",
            f"{f}{r.randint(70, 99)}",
            "support",
            "info",
            f"{f}.{la}-ext",
        ]
    )
    return f"{local}@{r.choice(DOMAINS)}"


def _digits(r: random.Random, n: int) -> str:
    return "".join(r.choice(string.digits) for _ in range(n))


def phone(r: random.Random) -> str:
    kind = r.randrange(17)
    if kind == 14:  # national formats: Germany, Spain, Italy
        return f"0{r.choice(['30', '89', '40', '221'])} {r.randint(2, 9)}{_digits(r, 3)} {_digits(r, 3)}"
    if kind == 15:
        return f"91{r.randint(2, 7)} {_digits(r, 3)} {_digits(r, 3)}"
    if kind == 16:
        return f"06 {r.randint(2, 9)}{_digits(r, 3)} {_digits(r, 4)}"
    if kind == 0:  # US, national
        return f"({r.choice(['212', '415', '617', '312', '206', '512'])}) {r.randint(201, 989)}-{_digits(r, 4)}"
    if kind == 1:
        return f"{r.choice(['646', '303', '404', '702'])}-{r.randint(201, 989)}-{_digits(r, 4)}"
    if kind == 2:
        return f"+1 {r.choice(['415', '617', '213', '305'])} {r.randint(201, 989)} {_digits(r, 4)}"
    if kind == 3:  # UK London / mobile
        return f"+44 20 7{_digits(r, 3)} {_digits(r, 4)}"
    if kind == 4:
        return f"07{r.choice(['700', '911', '723', '854'])} {_digits(r, 6)}"
    if kind == 5:
        return f"020 7{_digits(r, 3)} {_digits(r, 4)}"
    if kind == 6:  # Germany
        return f"+49 30 {r.randint(2, 9)}{_digits(r, 7)}"
    if kind == 7:
        return f"+49 (0) 89 {r.randint(2, 9)}{_digits(r, 3)} {_digits(r, 4)}"
    if kind == 8:  # France
        return f"+33 1 {r.randint(40, 79)} {_digits(r, 2)} {_digits(r, 2)} {_digits(r, 2)}"
    if kind == 9:
        return f"06 {_digits(r, 2)} {_digits(r, 2)} {_digits(r, 2)} {_digits(r, 2)}"
    if kind == 10:  # Spain
        return f"+34 91{r.randint(2, 7)} {_digits(r, 3)} {_digits(r, 3)}"
    if kind == 11:  # Italy
        return f"+39 06 {_digits(r, 4)} {_digits(r, 4)}"
    if kind == 12:  # Poland
        return f"+48 22 {r.randint(2, 8)}{_digits(r, 2)} {_digits(r, 2)} {_digits(r, 2)}"
    return f"+31 20 {r.randint(2, 7)}{_digits(r, 2)} {_digits(r, 4)}"  # Netherlands


def luhn_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return str((10 - total % 10) % 10)


def card_number(r: random.Random, valid: bool = True) -> str:
    kind = r.randrange(4)
    prefix, length = [
        ("4", 16),
        (str(r.randint(51, 55)), 16),
        (r.choice(["34", "37"]), 15),
        ("6011", 16),
    ][kind]
    body = prefix + _digits(r, length - len(prefix) - 1)
    check = luhn_digit(body)
    if not valid:
        check = str((int(check) + r.randint(1, 9)) % 10)
    num = body + check
    sep = r.choice([" ", " ", "-", ""])
    if length == 15:
        return sep.join([num[:4], num[4:10], num[10:]])
    return sep.join(num[i : i + 4] for i in range(0, 16, 4))


def card(r: random.Random) -> str:
    return card_number(r, True)


# IBAN layouts: country -> BBAN as (kind, length) parts; a = upper letter, n = digit,
# c = letter or digit.
IBAN_LAYOUT = {
    "DE": [("n", 18)],
    "GB": [("a", 4), ("n", 14)],
    "FR": [("n", 10), ("c", 11), ("n", 2)],
    "ES": [("n", 20)],
    "IT": [("a", 1), ("n", 10), ("c", 12)],
    "NL": [("a", 4), ("n", 10)],
    "PL": [("n", 24)],
    "BE": [("n", 12)],
    "CH": [("n", 5), ("c", 12)],
    "AT": [("n", 16)],
}


def iban_check(country: str, bban: str) -> str:
    moved = bban + country + "00"
    number = "".join(str(int(ch, 36)) for ch in moved)
    return f"{98 - int(number) % 97:02d}"


def iban_value(r: random.Random, valid: bool = True, grouped: bool | None = None) -> str:
    country = r.choice(list(IBAN_LAYOUT))
    chars = {
        "a": string.ascii_uppercase,
        "n": string.digits,
        "c": string.ascii_uppercase + string.digits,
    }
    bban = "".join(
        "".join(
            r.choice(chars[k] if k != "c" else string.digits * 3 + string.ascii_uppercase)
            for _ in range(n)
        )
        for k, n in IBAN_LAYOUT[country]
    )
    check = iban_check(country, bban)
    if not valid:
        check = f"{(int(check) + r.randint(1, 40)) % 97 + 2:02d}"
    full = country + check + bban
    if grouped is None:
        grouped = r.random() < 0.6
    return " ".join(full[i : i + 4] for i in range(0, len(full), 4)) if grouped else full


def iban(r: random.Random) -> str:
    return iban_value(r, True)


def ip(r: random.Random) -> str:
    kind = r.randrange(6)
    if kind == 0:
        return f"192.168.{r.randint(0, 255)}.{r.randint(1, 254)}"
    if kind == 1:
        return f"10.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}"
    if kind in (2, 3):
        return f"{r.choice([81, 84, 91, 145, 185, 203, 62, 37])}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}"
    if kind == 4:
        return (
            "2001:db8:"
            + ":".join(f"{r.randint(0, 0xFFFF):x}" for _ in range(3))
            + "::"
            + f"{r.randint(1, 0xFFFF):x}"
        )
    return "2a02:" + ":".join(f"{r.randint(0, 0xFFFF):x}" for _ in range(7))


def _ssn_digits(r: random.Random) -> tuple[str, str, str]:
    area = r.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}", f"{r.randint(1, 99):02d}", f"{r.randint(1, 9999):04d}"


def ssn(r: random.Random) -> str:
    a, g, s = _ssn_digits(r)
    return r.choice([f"{a}-{g}-{s}", f"{a}-{g}-{s}", f"{a} {g} {s}", f"{a}{g}{s}"])


def nhs(r: random.Random) -> str:
    while True:
        body = str(r.randint(4, 9)) + _digits(r, 8)
        total = sum(int(d) * (10 - i) for i, d in enumerate(body))
        check = 11 - total % 11
        if check == 11:
            check = 0
        if check != 10:
            break
    num = body + str(check)
    return r.choice([f"{num[:3]} {num[3:6]} {num[6:]}", f"{num[:3]}-{num[3:6]}-{num[6:]}", num])


def nino(r: random.Random) -> str:
    first = "ABCEGHJKLMNOPRSTWXYZ"
    second = "ABCEGHJKLMNPRSTWXYZ"
    while True:
        pre = r.choice(first) + r.choice(second)
        if pre not in {"BG", "GB", "NK", "KN", "TN", "NT", "ZZ"}:
            break
    d = _digits(r, 6)
    suf = r.choice("ABCD")
    return r.choice([f"{pre} {d[:2]} {d[2:4]} {d[4:]} {suf}", f"{pre}{d}{suf}"])


NIF_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def nif(r: random.Random) -> str:
    n = r.randint(1_000_000, 99_999_999)
    s = f"{n:08d}"
    return f"{s}{NIF_LETTERS[n % 23]}" if r.random() < 0.7 else f"{s}-{NIF_LETTERS[n % 23]}"


def nie(r: random.Random) -> str:
    p = r.choice("XYZ")
    n = r.randint(0, 9_999_999)
    letter = NIF_LETTERS[int(str("XYZ".index(p)) + f"{n:07d}") % 23]
    return f"{p}{n:07d}{letter}" if r.random() < 0.7 else f"{p}-{n:07d}-{letter}"


_CF_ODD = {
    **dict(zip("0123456789", [1, 0, 5, 7, 9, 13, 15, 17, 19, 21], strict=True)),
    **dict(
        zip(
            string.ascii_uppercase,
            [
                1,
                0,
                5,
                7,
                9,
                13,
                15,
                17,
                19,
                21,
                2,
                4,
                18,
                20,
                11,
                3,
                6,
                8,
                12,
                14,
                16,
                10,
                22,
                25,
                24,
                23,
            ],
            strict=True,
        )
    ),
}


def _cf_part(word: str, is_name: bool) -> str:
    w = re.sub(r"[^A-Z]", "", _ascii(word).upper())
    cons = [c for c in w if c not in "AEIOU"]
    vows = [c for c in w if c in "AEIOU"]
    if is_name and len(cons) >= 4:
        cons = [cons[0], cons[2], cons[3]]
    return ("".join(cons + vows) + "XXX")[:3]


def fiscal_code(r: random.Random) -> str:
    female = r.random() < 0.5
    code = _cf_part(r.choice(LAST), False) + _cf_part(r.choice(FIRST), True)
    code += f"{r.randint(40, 99):02d}" + r.choice("ABCDEHLMPRST")
    code += f"{r.randint(1, 28) + (40 if female else 0):02d}"
    code += r.choice(["H501", "F205", "A562", "L219", "G273", "D612", "A944", "F839"])
    total = 0
    for i, ch in enumerate(code):
        total += _CF_ODD[ch] if i % 2 == 0 else (int(ch) if ch.isdigit() else ord(ch) - 65)
    return code + chr(65 + total % 26)


def pesel(r: random.Random) -> str:
    year = r.randint(1940, 2009)
    month = r.randint(1, 12) + (20 if year >= 2000 else 0)
    body = f"{year % 100:02d}{month:02d}{r.randint(1, 28):02d}{_digits(r, 4)}"
    weights = [1, 3, 7, 9, 1, 3, 7, 9, 1, 3]
    check = (10 - sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 10) % 10
    return body + str(check)


VALUES: dict[str, tuple[str, Callable[[random.Random], str]]] = {
    "EMAIL": ("EMAIL_ADDRESS", email),
    "PHONE": ("PHONE_NUMBER", phone),
    "CARD": ("CREDIT_CARD", card),
    "IBAN": ("IBAN_CODE", iban),
    "IP": ("IP_ADDRESS", ip),
    "SSN": ("US_SSN", ssn),
    "NHS": ("UK_NHS", nhs),
    "NINO": ("UK_NINO", nino),
    "NIF": ("ES_NIF", nif),
    "NIE": ("ES_NIE", nie),
    "CF": ("IT_FISCAL_CODE", fiscal_code),
    "PESEL": ("PL_PESEL", pesel),
}

# Fillers that are not PII (names are not in scope of this check).
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


def _date(r: random.Random) -> str:
    y, m, d = r.randint(2019, 2026), r.randint(1, 12), r.randint(1, 28)
    return r.choice(
        [
            f"{y}-{m:02d}-{d:02d}",
            f"{d:02d}/{m:02d}/{y}",
            f"{d} {MONTHS[m - 1]} {y}",
            f"{MONTHS[m - 1]} {d}, {y}",
        ]
    )


FILLERS: dict[str, Callable[[random.Random], str]] = {
    "NAME": lambda r: f"{r.choice(FIRST)} {r.choice(LAST)}",
    "FIRST": lambda r: r.choice(FIRST),
    "DATE": _date,
    "TIME": lambda r: f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}",
    "AMOUNT": lambda r: f"{r.randint(12, 9800)}.{r.randint(0, 99):02d}",
    "ORDER": lambda r: r.choice(
        [
            f"#{r.randint(100000, 999999)}",
            f"ORD-{r.randint(2019, 2026)}-{r.randint(10000, 99999)}",
            f"INV-{r.randint(1000, 99999)}",
        ]
    ),
    "TICKET": lambda r: f"{r.choice(['SR', 'INC', 'TCK'])}-{r.randint(10000, 999999)}",
    "CITY": lambda r: r.choice(
        [
            "London",
            "Madrid",
            "Milano",
            "Warszawa",
            "Berlin",
            "Paris",
            "Boston",
            "Manchester",
            "Sevilla",
            "Roma",
            "Kraków",
        ]
    ),
    "COMPANY": lambda r: r.choice(
        [
            "Acme Logistics Ltd",
            "Northwind GmbH",
            "Contoso S.p.A.",
            "Fabrikam S.L.",
            "Globex sp. z o.o.",
            "Initech Inc.",
        ]
    ),
    "PORT": lambda r: str(r.choice([22, 443, 8080, 5432, 3389, 51234])),
    "LAST4": lambda r: _digits(r, 4),
    "VERSION": lambda r: f"{r.randint(1, 9)}.{r.randint(0, 20)}.{r.randint(0, 40)}",
    "PCT": lambda r: f"{r.randint(1, 99)}.{r.randint(0, 9)}%",
}

# ------------------------------------------------------------------------------ templates

# family -> templates. Slots: {EMAIL} {PHONE} {CARD} {IBAN} {IP} {SSN} {NHS} {NINO} {NIF}
# {NIE} {CF} {PESEL} (labelled) and the non-PII fillers above.
POSITIVE: dict[str, list[str]] = {
    "support_ticket": [
        "Ticket {TICKET} opened {DATE}\nCustomer: {NAME} <{EMAIL}>\nIssue: cannot log in since the last update ({VERSION}). Please call back on {PHONE} after 5pm.",
        "Hi team, the customer {NAME} ({EMAIL}) says the refund for order {ORDER} never arrived. The charge was on card {CARD}. Can someone check?",
        "Escalated: user reports repeated lockouts from {IP}. Contact {EMAIL}, mobile {PHONE}. Priority high.",
    ],
    "email_signature": [
        "Kind regards,\n{NAME}\nAccount Manager | {COMPANY}\nT: {PHONE}\nE: {EMAIL}\n{CITY}",
        "Best,\n{FIRST}\n--\n{NAME}, Head of Procurement\nDirect line {PHONE} · {EMAIL}",
        "Saludos,\n{NAME}\n{COMPANY} — Departamento de Administración\nTel. {PHONE}\nNIF del titular: {NIF}",
    ],
    "invoice": [
        "INVOICE {ORDER}\nDate: {DATE}\nBill to: {NAME}, {CITY}\nAmount due: EUR {AMOUNT}\nPlease pay by bank transfer to IBAN {IBAN} quoting the invoice number.",
        "Payment received for {ORDER}: {AMOUNT} GBP charged to card ending {LAST4}. Remittance to {IBAN}. Questions: {EMAIL}",
        "Factura {ORDER} emitida el {DATE} a nombre de {NAME} (NIF {NIF}). Total: {AMOUNT} EUR. Pago por transferencia a {IBAN}.",
        "Fattura n. {ORDER} del {DATE}. Cliente: {NAME}, codice fiscale {CF}. Importo: EUR {AMOUNT}. Bonifico su IBAN {IBAN}.",
    ],
    "hr_record": [
        "Employee record\nName: {NAME}\nStart date: {DATE}\nNational Insurance number: {NINO}\nPersonal e-mail: {EMAIL}\nEmergency contact: {PHONE}",
        "New hire checklist for {NAME}: SSN {SSN} verified on {DATE}; direct deposit set up; payroll questions to {EMAIL}.",
        "Dane pracownika: {NAME}, PESEL {PESEL}, zatrudniony od {DATE}. Kontakt: {PHONE}, {EMAIL}.",
    ],
    "server_log": [
        "{DATE} {TIME} WARN auth: failed password for admin from {IP} port {PORT} ssh2",
        '{TIME} nginx[2231]: {IP} - - "GET /api/v2/orders?page=2 HTTP/1.1" 200 5120 "-" "Mozilla/5.0"',
        "[{DATE} {TIME}] ERROR mailer: delivery to {EMAIL} failed (550 mailbox unavailable), relay {IP}",
    ],
    "bank_transfer": [
        "Transfer of EUR {AMOUNT} to {NAME}, IBAN {IBAN}, reference {ORDER}, executed {DATE}.",
        "Please refund the {AMOUNT} EUR to the card I paid with, {CARD}, not to the old account. {NAME}",
        "Please update my payout account to {IBAN} (old account closed). Thanks, {NAME}",
        "Beneficiary: {COMPANY}\nIBAN: {IBAN}\nAmount: {AMOUNT}\nPurpose: {ORDER}",
    ],
    "web_form": [
        "name={NAME}&email={EMAIL}&phone={PHONE}&city={CITY}&consent=yes",
        "Form submission ({DATE})\nFull name: {NAME}\nEmail: {EMAIL}\nSocial Security Number: {SSN}\nComments: please send the W-2 to my new address.",
        "Solicitud de alta — Nombre: {NAME}; NIE: {NIE}; Teléfono: {PHONE}; Correo: {EMAIL}",
    ],
    "chat_question": [
        "why was my card {CARD} declined yesterday at the checkout?",
        "can you tell me which account {IBAN} belongs to and whether the payment of {AMOUNT} went through",
        "my NHS number is {NHS}, can I book the flu jab online or do I have to phone the surgery?",
        "I changed my email to {EMAIL}, how do I update it in the portal?",
    ],
    "medical": [
        "Referral letter\nPatient: {NAME}\nNHS number: {NHS}\nDOB: {DATE}\nReferred to cardiology for an echocardiogram. GP surgery: {PHONE}",
        "Discharge summary for {NAME} (NHS No. {NHS}). Follow-up in 6 weeks; results will be sent to {EMAIL}.",
    ],
    "contract": [
        "CONTRATO DE ARRENDAMIENTO. De una parte, D./Dña. {NAME}, con DNI {NIF}, y de otra, {COMPANY}, con domicilio en {CITY}.",
        "Il sottoscritto {NAME}, nato il {DATE}, codice fiscale {CF}, dichiara di aver ricevuto la somma di EUR {AMOUNT}.",
        "Umowa zawarta w dniu {DATE} pomiędzy {COMPANY} a Panem/Panią {NAME}, PESEL: {PESEL}, zam. {CITY}.",
    ],
    "crm_note": [
        "Call with {NAME} on {DATE}: wants to upgrade the plan. Callback number {PHONE}. Sent the quote to {EMAIL}.",
        "Account holder {NAME}, NI {NINO}, requested a statement; verified identity with DOB and postcode.",
        "Klient {NAME} (PESEL {PESEL}) prosi o kontakt pod numerem {PHONE} w sprawie reklamacji {ORDER}.",
        "Customer {NAME} gave SSN {SSN} over the phone for the credit check; card on file {CARD}.",
    ],
    "it_admin": [
        "Whitelist request: please allow {IP} and {IP} on the VPN gateway for the {COMPANY} contractors.",
        "Host db-prod-3 ({IP}) unreachable since {TIME}; on-call engineer {NAME}, {PHONE}.",
        "Firewall rule #{PORT}: deny from {IP} to any. Requested by {EMAIL} on {DATE}.",
    ],
    "order_confirmation": [
        "Thank you for your order {ORDER} of {DATE}. A receipt was sent to {EMAIL}. Total: {AMOUNT} USD, paid with card {CARD}.",
        "Your parcel {TICKET} ships on {DATE}. The courier may call {PHONE} before delivery.",
        "Order {ORDER} — payment by SEPA direct debit from {IBAN}; mandate signed on {DATE}.",
    ],
    "id_check": [
        "KYC check passed for {NAME}: document DNI {NIF}, verified {DATE} by the onboarding team.",
        "Identity documents received: NIE {NIE} (residence card), proof of address dated {DATE}.",
        "Tax residence form: Italian fiscal code {CF}; foreign tax id on file; contact {EMAIL}.",
        "Patient identifiers: PESEL {PESEL}; tel. {PHONE}; skierowanie z dnia {DATE}.",
    ],
    "complaint_letter": [
        "Dear Sir or Madam, I am writing about a payment of {AMOUNT} taken twice from my card {CARD} on {DATE}. You can reach me on {PHONE}. Yours faithfully, {NAME}",
        "To whom it may concern: my NHS number is {NHS} and I have still not received my appointment letter. Please reply to {EMAIL}.",
        "I object to the processing of my data. My National Insurance number is {NINO} and my SSN (US) is {SSN}.",
    ],
    "meeting_notes": [
        "Notes {DATE}: {NAME} to send the signed NDA; dial-in {PHONE}; shared folder owner {EMAIL}.",
        "Action items: move staging to {IP}; {NAME} ({EMAIL}) to rotate the keys by {DATE}.",
    ],
}

NEGATIVE: dict[str, list[str]] = {
    "neg_bibliographic": [
        "See Smith et al. (2019), Nature 571:95-98, doi:10.1038/s41586-019-1335-8, and the ISBN 978-0-306-40615-7 edition of the textbook.",
        "Reference: J. Clin. Oncol. 2014;32(15):1605-1612. PMID: 24733799. ISBN 0-262-13360-1.",
        "Proceedings of ACL 2020, pages 4171-4186. arXiv:1810.04805v2 [cs.CL], 11 Oct 2018.",
    ],
    "neg_statistics": [
        "The hazard ratio was 0.74 (95% CI 0.61-0.90; p=0.002) over a median follow-up of 36.5 months in 1,204 patients.",
        "Mean age 54.3 ± 12.1 years; BMI 27.4 kg/m2; 312 of 1024 (30.5%) were smokers; OR 1.2-3.4.",
        "Population grew from 8 336 817 in 2010 to 8 804 190 in 2020, a rise of 5.6%.",
    ],
    "neg_versions_dates": [
        "Release 3.10.12 (2023-10-02) fixes CVE-2023-40217; upgrade from 3.9.18 is recommended. Build 20231002.1.",
        "The meeting moved from 12/03/2024 10:30 to 14.03.2024 09:00 CET, room 2.104.",
        "Firmware v2.4.1-rc3 build 1187, released 2021-07-15 12:45:00 UTC.",
    ],
    "neg_order_numbers": [
        "Order ORD-2024-55812 shipped; tracking number 1Z999AA10123456784; invoice INV-20240311-0042.",
        "Your reference 2024/118/4420 and case number 100234567 have been recorded.",
        "Part no. 6205-2RS-C3, batch 20230914, serial SN 4471-8820-1193.",
    ],
    "neg_genes_codes": [
        "Expression of ENSG00000139618 (BRCA2) and rs1801133 variants was measured on chromosome 17q21.31.",
        "The compound (CAS 50-78-2) was dissolved at 10 mM; GenBank accession NM_000546.6.",
        "Patent US 7,654,321 B2 and EP 1 234 567 A1 cover the method.",
    ],
    "neg_invalid_values": [
        "Test card 4111 1111 1111 1112 was rejected by the validator as expected.",
        "The string GB82 WEST 1234 5698 7654 33 in the docs has a wrong check digit.",
        "Address 999.300.12.1 is not a valid IPv4 address; 256.1.1.1 neither.",
    ],
    "neg_money_measures": [
        "Revenue was $1,234,567.89 in FY2023, up from $987,654.32; the 10-K lists 4,512 employees.",
        "The bridge is 1,280 m long, carries 112,000 vehicles a day and cost 36,500,000 euros.",
        "Coordinates 40.7128° N, 74.0060° W; elevation 10 m; area 783.8 km2.",
    ],
    "neg_sports_history": [
        "Between 1914 and 1918 the regiment lost 1,203 men; in 1939-1945 another 2,117.",
        "He scored 37 goals in 2012-13 and 41 in 2013-14, finishing with 412 goals in 637 games.",
        "The 2008 Summer Olympics in Beijing ran from 8 to 24 August 2008 with 10,942 athletes.",
    ],
}


def _fill(template: str, r: random.Random, *, invalid_card: bool = False) -> tuple[str, list[dict]]:
    out: list[str] = []
    ents: list[dict] = []
    pos = 0
    length = 0
    for m in re.finditer(r"\{([A-Z0-9]+)\}", template):
        lit = template[pos : m.start()]
        out.append(lit)
        length += len(lit)
        slot = m.group(1)
        if slot in VALUES:
            label, gen = VALUES[slot]
            value = gen(r)
            ents.append({"start": length, "end": length + len(value), "label": label})
        else:
            value = FILLERS[slot](r)
        out.append(value)
        length += len(value)
        pos = m.end()
    out.append(template[pos:])
    return "".join(out), ents


def look_alikes(r: random.Random, n: int) -> list[tuple[int, str]]:
    """Generated look-alikes that are not PII, (maker, text): Luhn-invalid cards, bad IBAN
    check digits, ISBN-13s, dates and times, versions, order numbers, amounts."""
    makers: list[Callable[[], str]] = [
        lambda: (
            f"Card number {card_number(r, valid=False)} failed the checksum, so the form refused it."
        ),
        lambda: f"Example IBAN with a typo: {iban_value(r, valid=False)} (the bank rejected it).",
        lambda: (
            f"ISBN 978-{r.randint(0, 1)}-{r.randint(100, 999)}-{r.randint(10000, 99999)}-{r.randint(0, 9)}, {r.randint(180, 640)} pages, {r.randint(1990, 2024)}."
        ),
        lambda: (
            f"Logged at {r.randint(2019, 2026)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}T{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}Z by job {r.randint(1000, 9999)}."
        ),
        lambda: (
            f"Order {r.randint(2019, 2026)}{r.randint(100000, 999999)} contains {r.randint(1, 9)} items, total {r.randint(10, 999)}.{r.randint(0, 99):02d} EUR."
        ),
        lambda: (
            f"Upgrade to version {r.randint(1, 9)}.{r.randint(0, 30)}.{r.randint(0, 99)} before {r.randint(1, 28)} {r.choice(MONTHS)} {r.randint(2024, 2027)}."
        ),
        lambda: (
            f"In {r.randint(1800, 2020)} the town had {r.randint(1000, 99999):,} inhabitants and {r.randint(10, 999)} farms."
        ),
        lambda: (
            f"Sample sizes ranged from {r.randint(10, 99)} to {r.randint(100, 9999)} (median {r.randint(20, 500)}; IQR {r.randint(5, 50)}-{r.randint(60, 300)})."
        ),
        lambda: (
            f"Statement {r.randint(2019, 2026)}-{r.randint(1, 12):02d}: opening balance {r.randint(100000, 9999999)}.{r.randint(0, 99):02d} EUR, {r.randint(3, 60)} transactions, fees {r.randint(1, 99)}.{r.randint(0, 99):02d}."
        ),
        lambda: (
            f"Shipment weighed {r.randint(1000, 99999)}.{r.randint(0, 9)} kg on pallet {r.randint(100, 999)}/{r.randint(1000, 9999)}, dock {r.randint(1, 40)}, {r.randint(6, 20)}:{r.randint(0, 59):02d}."
        ),
    ]
    return [(i % len(makers), makers[i % len(makers)]()) for i in range(n)]


# Real PII in real text: every SciFact abstract with an "@" in it, labelled by hand
# (authors' e-mail addresses, telephone and fax numbers). Two of them hold only the
# gene notation "IGH@" and are negatives.
REAL_SCIFACT: dict[str, list[tuple[str, str]]] = {
    "3743071": [
        ("gaog@mail.cbi.pku.edu.cn", "EMAIL_ADDRESS"),
        ("gsds@mail.cbi.pku.edu.cn", "EMAIL_ADDRESS"),
    ],
    "4890578": [
        ("+31-20-5665-633", "PHONE_NUMBER"),
        ("+31-20-914-738", "PHONE_NUMBER"),
        ("a.c.vanderwal@amc.uva.nl", "EMAIL_ADDRESS"),
    ],
    "5650232": [
        ("aaronquinlan@gmail.com", "EMAIL_ADDRESS"),
        ("imh4y@virginia.edu", "EMAIL_ADDRESS"),
    ],
    "7324039": [("usadel@bio1.rwth-aachen.de", "EMAIL_ADDRESS")],
    "10827901": [("yhzhao@nsd.edu.cn", "EMAIL_ADDRESS")],
    "15969637": [
        ("johan.elf@icm.uu.se", "EMAIL_ADDRESS"),
        ("johan.hattne@embl-hamburg.de", "EMAIL_ADDRESS"),
    ],
    "18333304": [("pfbaldi@ics.uci.edu", "EMAIL_ADDRESS")],
    "39291138": [("j-massague@ski.mskcc.org", "EMAIL_ADDRESS"), ("(212) 717-3298", "PHONE_NUMBER")],
    "27306942": [],
    "40323454": [],
}


def _scifact_rows() -> list[dict]:
    path = default_datasets_dir() / "scifact" / "corpus.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _scifact(n: int, r: random.Random) -> list[tuple[str, str]]:
    rows = [row for row in _scifact_rows() if row["_id"] not in REAL_SCIFACT]
    picked = r.sample(rows, n)
    return [(f"scifact-{row['_id']}", row["text"]) for row in picked]


def _squad(n: int, r: random.Random) -> list[tuple[str, str]]:
    path = default_datasets_dir() / "squad-v1.1-dev" / "dev-v1.1.json"
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    paras = [
        (f"squad-{a_i}-{p_i}", p["context"])
        for a_i, art in enumerate(data)
        for p_i, p in enumerate(art["paragraphs"])
    ]
    return r.sample(paras, n)


def build(seed: int = SEED, per_template: int = 8) -> list[dict]:
    r = random.Random(seed)
    rows: list[dict] = []
    for f_i, (family, templates) in enumerate(POSITIVE.items()):
        half = "tune" if f_i % 2 == 0 else "heldout"
        for t_i, template in enumerate(templates):
            for k in range(per_template):
                text, ents = _fill(template, r)
                rows.append(
                    {
                        "id": f"{family}-{t_i}-{k}",
                        "text": text,
                        "entities": ents,
                        "family": family,
                        "half": half,
                        "kind": "positive",
                    }
                )
    for f_i, (family, templates) in enumerate(NEGATIVE.items()):
        half = "tune" if f_i % 2 == 0 else "heldout"
        for t_i, template in enumerate(templates):
            rows.append(
                {
                    "id": f"{family}-{t_i}",
                    "text": template,
                    "entities": [],
                    "family": family,
                    "half": half,
                    "kind": "lookalike",
                }
            )
    for i, (maker, text) in enumerate(look_alikes(r, 60)):
        half = "tune" if maker % 2 == 0 else "heldout"
        rows.append(
            {
                "id": f"neg_generated-{i}",
                "text": text,
                "entities": [],
                "family": f"neg_generated_{maker}",
                "half": half,
                "kind": "lookalike",
            }
        )
    picks = random.Random(seed + 1)  # its own stream: editing templates keeps these texts
    for i, (doc_id, text) in enumerate(_scifact(100, picks) + _squad(100, picks)):
        rows.append(
            {
                "id": doc_id,
                "text": text,
                "entities": [],
                "family": doc_id.split("-")[0],
                "half": "tune" if i % 2 == 0 else "heldout",
                "kind": "ordinary",
            }
        )
    real = [row for row in _scifact_rows() if row["_id"] in REAL_SCIFACT]
    for i, row in enumerate(real):
        text = row["text"]
        ents = [
            {"start": text.index(value), "end": text.index(value) + len(value), "label": label}
            for value, label in REAL_SCIFACT[row["_id"]]
        ]
        rows.append(
            {
                "id": f"scifact-{row['_id']}",
                "text": text,
                "entities": ents,
                "family": "scifact_real" if ents else "scifact",
                "half": "tune" if i % 2 == 0 else "heldout",
                "kind": "real" if ents else "ordinary",
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    rows = build()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    n_pos = sum(row["kind"] == "positive" for row in rows)
    n_ent = sum(len(row["entities"]) for row in rows)
    print(f"{len(rows)} texts ({n_pos} with PII, {n_ent} labelled spans) -> {args.out}")


if __name__ == "__main__":
    main()
