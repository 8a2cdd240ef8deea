"""find_pii's cheaper pre-checks (the detectors picked once per type list, the tighter triggers of the IP-address and
secret patterns, ASCII text not folded) find exactly what the code they replaced found (kept here as the
reference: every detector's pattern tried whenever its old triggers were present), on texts dense with every kind
of item, near-misses and Unicode."""

from __future__ import annotations

import random

import pytest

from tests.models.test_injection_speed_equivalence import TEXTS as INJECTION_TEXTS
from turnout.plugins.pii import Redactor, map_body
from turnout.signals import pii
from turnout.signals.pii import ALL_TYPES, PiiSpan, find_pii

# the triggers each pattern had before: the IP address on any "." or ":", the secret on "gh" among others
OLD_TRIGGERS = {"email": (b"@",), "us_ssn": (b"-",), "phone": (b"+", b"00"), "ip_address": (b".", b":"),
                "secret": (b"sk-", b"AKIA", b"gh", b"xox", b"AIza", b"eyJ", b"-----BEGIN")}


def reference_find_pii(text: str, types: tuple[str, ...] = ALL_TYPES) -> list[PiiSpan]:
    folded = pii.fold(text)
    data = folded.text.encode("ascii", "replace")
    digits = sum(data.count(d) for d in b"0123456789")
    taken: list[tuple[int, int, str]] = []
    for name in pii._ORDER:
        kind = pii._KIND.get(name, name)
        detector = pii._DETECTORS[name]
        triggers = OLD_TRIGGERS.get(name, ())
        if kind not in types or digits < detector.min_digits or (triggers and not any(t in data for t in triggers)) \
                or (detector.needs_upper and data == data.lower()):
            continue
        found = pii._matches(detector, data, folded.text)
        if found:
            taken = pii._merge(taken, found, kind)
    return [PiiSpan(kind, *folded.span(start, end)) for start, end, kind in taken]


ITEMS = ["john.doe@example.com", "+44 20 7946 0958", "0044 20 7946 0958", "(212) 555-0199", "212-555-0199",
         "4111 1111 1111 1111", "4111-1111-1111-1112", "GB82 WEST 1234 5698 7654 32", "DE89370400440532013000",
         "078-05-1120", "000-12-3456", "AB 12 34 56 C", "QQ123456C", "192.168.1.20", "127.0.0.1", "10.0.0",
         "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "fe80::1", "sk-proj-abcdefghijklmnop1234", "AKIAABCDEFGHIJKLMNOP",
         "ghp_" + "a1" * 18, "gho_short", "xoxb-1234567890-abc", "AIza" + "B" * 35, "eyJhbGciOi.eyJzdWIiOi.SflKxwRJSM",
         "-----BEGIN RSA PRIVATE KEY-----", "right though", "v1.2.3.4", "1.2.3.4.5", "3:4:5:6:7:8:9:10",
         "ｊｏｈｎ＠ｅｘａｍｐｌｅ．ｃｏｍ", "4111\u200b1111 1111 1111", "ﬁle 192.168.0.1", "x@y", "+1", "00 00 00"]


def _made(rng: random.Random) -> str:
    parts = [rng.choice(ITEMS) if rng.random() < 0.4 else rng.choice(INJECTION_TEXTS)[:80] for _ in range(rng.randint(1, 8))]
    return rng.choice([" ", ", ", "\n", "-", ".", ""]).join(parts)


RNG = random.Random(0)
TEXTS = INJECTION_TEXTS + ITEMS + [_made(RNG) for _ in range(3000)]


@pytest.mark.parametrize("types", [ALL_TYPES, ("ip_address",), ("secret", "phone"), ("email", "credit_card", "iban")])
def test_find_pii_finds_what_the_reference_finds(types):
    different = [text[:60] for text in TEXTS if find_pii(text, types) != reference_find_pii(text, types)]
    assert not different, different[:5]
    assert sum(bool(reference_find_pii(text, types)) for text in TEXTS) > 500  # the texts do hold items


def test_the_redacted_bodies_are_the_reference_redactions(monkeypatch):
    bodies = [{"messages": [{"role": "system", "content": a}, {"role": "user", "content": b}], "user": a[:30]}
              for a, b in zip(TEXTS[::2], TEXTS[1::2])]
    roles = ["system", "user"]
    redacted = [map_body(body, roles, Redactor(ALL_TYPES).redact) for body in bodies]
    monkeypatch.setattr("turnout.plugins.pii.find_pii", reference_find_pii)
    assert redacted == [map_body(body, roles, Redactor(ALL_TYPES).redact) for body in bodies]
