"""Write tests/data/pii_labelled.jsonl: synthetic prompts with labelled PII (valid card numbers, IBANs, ...)
and prompts without PII that are full of look-alikes (dates, versions, prices, order numbers).
Deterministic (seeded). Run from the repository root: python scripts/make_pii_set.py"""

from __future__ import annotations

import json
import random
from pathlib import Path

rng = random.Random(20261123)


def luhn_complete(prefix: str, length: int) -> str:
    digits = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    for check in "0123456789":
        candidate = digits + check
        total = 0
        for i, ch in enumerate(reversed(candidate)):
            d = int(ch)
            if i % 2 == 1:
                d = d * 2 - 9 if d > 4 else d * 2
            total += d
        if total % 10 == 0:
            return candidate
    raise AssertionError


def iban(country: str, length: int) -> str:
    bban = "".join(rng.choice("0123456789") for _ in range(length - 4))
    numeric = "".join(str(int(ch, 36)) for ch in bban + country + "00")
    check = 98 - int(numeric) % 97
    code = f"{country}{check:02d}{bban}"
    return " ".join(code[i:i + 4] for i in range(0, len(code), 4)) if rng.random() < 0.5 else code


NAMES = ["Alice Martin", "Bob Chen", "Chloé Dubois", "Diego Alvarez", "Emma Schulz", "Farah Khan"]
VALUES = {
    "email": lambda: f"{rng.choice(['j.doe', 'alice', 'm_chen', 'contact', 'ops-team'])}{rng.randint(1, 99)}@"
                     f"{rng.choice(['example.com', 'mail.co.uk', 'corp.io', 'uni-bonn.de'])}",
    "phone": lambda: rng.choice([f"+1 415-555-{rng.randint(1000, 9999)}", f"(212) 555-{rng.randint(1000, 9999)}",
                                 f"+44 20 7946 {rng.randint(1000, 9999)}", f"+33 6 12 34 {rng.randint(10, 99)} "
                                 f"{rng.randint(10, 99)}", f"+4915123{rng.randint(100000, 999999)}"]),
    "credit_card": lambda: (lambda n: rng.choice([n, " ".join(n[i:i + 4] for i in range(0, 16, 4)),
                                                  "-".join(n[i:i + 4] for i in range(0, 16, 4))]))(
        luhn_complete(rng.choice(["4", "51", "37"]), 16)),
    "iban": lambda: iban(rng.choice(["DE", "FR", "GB", "NL"]), rng.choice([22, 27, 22, 18])),
    "us_ssn": lambda: f"{rng.randint(100, 665)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}",
    "uk_nino": lambda: f"{rng.choice('ABCEGHJKLMNPRSTWXYZ')}{rng.choice('ABCEGHJKLMNPRSTWXYZ')}"
                       f"{rng.randint(100000, 999999)}{rng.choice('ABCD')}",
    "ip_address": lambda: f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
    "secret": lambda: rng.choice([
        "sk-proj-" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789") for _ in range(32)),
        "AKIA" + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for _ in range(16)),
        "ghp_" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(36))]),
}
TEMPLATES = {
    "email": ["Please send the invoice to {v} by Friday.", "My address is {v}, can you draft a reply?"],
    "phone": ["Call me on {v} tomorrow morning.", "The customer's number is {v}; summarise the complaint."],
    "credit_card": ["I paid with card {v} but was charged twice.", "Is {v} a valid card number format?"],
    "iban": ["Transfer 200 EUR to IBAN {v} please.", "Our supplier's bank account: {v}. Write the payment note."],
    "us_ssn": ["My SSN is {v}, fill in the tax form.", "Employee record: SSN {v}, hired 2019."],
    "uk_nino": ["My national insurance number is {v}.", "NI number {v} appears on the payslip, explain the deductions."],
    "ip_address": ["Why can't I reach the server at {v}?", "Block requests from {v} in nginx."],
    "secret": ["Here is my key {v}, why does the API return 401?", "config: api_key={v} -- what is wrong?"],
}
NEGATIVES = [
    "The meeting moved to 2024-03-15 at 10:30; version 2.14.1 ships then.",
    "Order #48213 costs $1,299.99 including 20% VAT.",
    "Solve 3x + 7 = 22 and explain each step.",
    "In 1969, 600 million people watched the moon landing.",
    "Our revenue grew from 4.2M to 5.9M between Q1 and Q3.",
    "Set the timeout to 30000 ms and retry 3 times.",
    "The ISBN 978-0-13-468599-1 belongs to a classic textbook.",
    "Use port 8080 and 443; the build number is 20240315.",
    "Write a haiku about the number 42 and the year 2025.",
    "A marathon is 42.195 km; I ran it in 3:45:12.",
    "Compare Python 3.11 and 3.12 performance on 1000000 iterations.",
    "The recipe needs 250 g flour, 2 eggs and 1/2 cup of milk.",
]


def main() -> None:
    rows = []
    for kind, templates in TEMPLATES.items():
        for i in range(20):
            value = VALUES[kind]()
            text = rng.choice(templates).format(v=value)
            spans = [{"type": kind, "value": value}]
            if i % 4 == 0:  # some prompts carry two kinds
                other = rng.choice([k for k in TEMPLATES if k != kind])
                second = VALUES[other]()
                text += " " + rng.choice(TEMPLATES[other]).format(v=second)
                spans.append({"type": other, "value": second})
            rows.append({"text": f"{rng.choice(NAMES)}: {text}", "spans": spans})
    for i in range(40):
        rows.append({"text": NEGATIVES[i % len(NEGATIVES)] + ("" if i < len(NEGATIVES) else f" (note {i})"),
                     "spans": []})
    path = Path("tests/data/pii_labelled.jsonl")
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {path}: {len(rows)} prompts")


if __name__ == "__main__":
    main()
