"""PII signal: e-mail addresses, phone numbers, payment cards (Luhn-checked), IBANs (mod-97-checked), national
IDs, IP addresses and API keys/secrets. Patterns plus checksums: no model, microseconds per request.

The spans found are cached on the context so the pii plugin can redact exactly what the signal saw."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from turnout.context import RoutingContext, SignalResult
from turnout.params import Params
from turnout.signals.base import Signal, register

PiiType = Literal["email", "phone", "credit_card", "iban", "us_ssn", "uk_nino", "ip_address", "secret"]
ALL_TYPES: tuple[str, ...] = ("email", "phone", "credit_card", "iban", "us_ssn", "uk_nino", "ip_address", "secret")


@dataclass(frozen=True)
class PiiSpan:
    type: str
    start: int
    end: int


def _luhn(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = int(ch)
        if i % 2 == parity:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _iban_ok(raw: str) -> bool:
    code = re.sub(r"\s", "", raw).upper()
    if not 15 <= len(code) <= 34:
        return False
    rearranged = code[4:] + code[:4]
    try:
        return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1
    except ValueError:
        return False


def _ip_ok(raw: str) -> bool:
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return False
    return not (address.is_loopback or address.is_unspecified) and raw.count(".") in (0, 3)


_CHECKS = {"credit_card": lambda s: 13 <= len(d := re.sub(r"\D", "", s)) <= 19 and _luhn(d),
           "iban": _iban_ok, "ip_address": _ip_ok, "phone": lambda s: 8 <= len(re.sub(r"\D", "", s)) <= 15}

_PATTERNS: dict[str, re.Pattern[str]] = {
    "email": re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"),
    "credit_card": re.compile(r"\b(?:\d[ -]?){12,18}\d\b"),
    "iban": re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"),
    "us_ssn": re.compile(r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b"),
    "uk_nino": re.compile(r"\b(?![DFIQUV])[A-Z](?![DFIQUVO])[A-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"),
    "phone": re.compile(r"(?<![\w+-])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,6}(?![\w-])"
                        r"|(?<![\w-])(?:\(\d{2,4}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\w-])"),
    "ip_address": re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b"
                             r"|\b(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}\b"),
    "secret": re.compile(
        r"\b(?:sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{16,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|"
        r"xox[baprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_\-]{35}|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})"
        r"|-----BEGIN (?:RSA |EC |OPENSSH )?PRIVATE KEY-----"),
}
# the order decides overlaps: a card number is not also reported as a phone number
_ORDER = ("secret", "email", "iban", "credit_card", "us_ssn", "uk_nino", "ip_address", "phone")


# Fast paths. Python's re scans quickly only for patterns that start with a literal or a character class, so
# the expensive boundary-led patterns above run only on candidate stretches found by cheap scans.
_NUMERIC_TYPES = ("credit_card", "us_ssn", "ip_address", "phone")
# ASCII character classes: Python's re scans them several times faster than \d
_NUMERIC_CANDIDATE = re.compile(r"[+(0-9][0-9 .()/-]{5,60}[0-9]")
_UPPER_CANDIDATE = re.compile(r"[A-Z][A-Z] ?[0-9]")
_LITERAL_TRIGGERS = {"email": ("@",), "secret": ("sk-", "AKIA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "xox",
                                                "AIza", "eyJ", "-----BEGIN")}


def _windows(pattern: re.Pattern[str], text: str, before: int, after: int) -> list[tuple[int, str]]:
    out = []
    for match in pattern.finditer(text):
        lo, hi = max(0, match.start() - before), min(len(text), match.end() + after)
        out.append((lo, text[lo:hi]))
    return out


def _candidates(text: str) -> dict[str, list[tuple[int, str]]]:
    """Per kind, the (offset, stretch) pairs of text that may hold it: the whole text for kinds that a literal
    announces (an @, a key prefix), short stretches around digit runs and capital-letter codes for the rest."""
    out: dict[str, list[tuple[int, str]]] = {
        kind: [(0, text)] for kind, literals in _LITERAL_TRIGGERS.items() if any(t in text for t in literals)}
    numeric = _windows(_NUMERIC_CANDIDATE, text, 2, 2)  # context for the boundary checks
    for kind in _NUMERIC_TYPES:
        out[kind] = numeric
    out["ip_address"] = numeric + _ipv6_windows(text)
    out["iban"] = out["uk_nino"] = _windows(_UPPER_CANDIDATE, text, 2, 45)
    return out


_HEX = frozenset("0123456789abcdefABCDEF")


def _ipv6_windows(text: str) -> list[tuple[int, str]]:
    """Stretches around a colon with hex digits on both sides (where an IPv6 address could be)."""
    out = []
    i = text.find(":")
    while i != -1:
        if 0 < i < len(text) - 1 and text[i - 1] in _HEX and text[i + 1] in _HEX:
            lo = max(0, i - 40)
            out.append((lo, text[lo:i + 40]))  # an address is at most 39 characters
            i = text.find(":", i + 40)
        else:
            i = text.find(":", i + 1)
    return out


def find_pii(text: str, types: tuple[str, ...] = ALL_TYPES) -> list[PiiSpan]:
    spans: list[PiiSpan] = []
    taken: list[tuple[int, int]] = []
    candidates = _candidates(text)
    for kind in _ORDER:
        if kind not in types:
            continue
        pieces = candidates.get(kind, ())
        check = _CHECKS.get(kind)
        for offset, piece in pieces:
            for match in _PATTERNS[kind].finditer(piece):
                start, end = match.start() + offset, match.end() + offset
                if any(start < e and s < end for s, e in taken):
                    continue
                if check is not None and not check(match.group()):
                    continue
                spans.append(PiiSpan(kind, start, end))
                taken.append((start, end))
    return sorted(spans, key=lambda s: s.start)


class PiiParams(Params):
    types: list[PiiType] = Field(default_factory=lambda: list(ALL_TYPES), min_length=1)
    scope: Literal["last_user", "user", "all"] = "user"
    min_count: int = Field(1, ge=1)


@register("pii")
class PiiSignal(Signal):
    """Matched when at least `min_count` PII items of `types` are found; score = min(1, items / min_count)."""

    Params = PiiParams

    async def evaluate(self, ctx: RoutingContext) -> SignalResult:
        key = f"pii:{self.params.scope}"
        if key not in ctx.cache:
            ctx.cache[key] = find_pii(ctx.text(self.params.scope))
        spans = [s for s in ctx.cache[key] if s.type in self.params.types]
        counts: dict[str, int] = {}
        for span in spans:
            counts[span.type] = counts.get(span.type, 0) + 1
        return SignalResult(len(spans) >= self.params.min_count, min(1.0, len(spans) / self.params.min_count),
                            {"types": counts} if counts else {})
