"""PII signal: e-mail addresses, phone numbers, payment cards (Luhn-checked), IBANs (mod-97-checked), national
IDs, IP addresses and API keys/secrets. Patterns plus checksums: no model.

Every pattern runs on RE2 (`google-re2`), whose matching time is linear in the text, so no prompt can make
detection slow. Text is folded before detection — NFKC (full-width `ｊｏｈｎ＠ｅｘａｍｐｌｅ．ｃｏｍ` becomes ASCII)
and invisible characters (zero-width spaces, soft hyphens, bidi marks) dropped — and every span is mapped back
to the original text, so a redaction covers exactly what the client wrote and leaves the rest untouched.

The spans found are cached on the context so the pii plugin can redact exactly what the signal saw."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import re2
from pydantic import Field

from turnout.context import RoutingContext, SignalResult
from turnout.cpu import off_gil
from turnout.params import Params
from turnout.signals.base import Signal, register

PiiType = Literal["email", "phone", "credit_card", "iban", "us_ssn", "uk_nino", "ip_address", "secret"]
ALL_TYPES: tuple[str, ...] = ("email", "phone", "credit_card", "iban", "us_ssn", "uk_nino", "ip_address", "secret")


@dataclass(frozen=True)
class PiiSpan:
    type: str
    start: int
    end: int


# ----- folding: what detection sees, and the way back to the original offsets -----------------------------

# Default-ignorable code points: invisible, so they can hide PII from a pattern without hiding it from a reader
_IGNORABLE = re.compile("[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
                        "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\U000e0000-\U000e0fff]")
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")  # one character class: linear


def _fold_char(ch: str) -> str:
    return "" if _IGNORABLE.match(ch) else unicodedata.normalize("NFKC", ch)


class _FoldTable(dict):
    """Code point → its fold, filled on first sight: `str.translate` then folds at C speed."""

    def __missing__(self, code: int) -> str:
        if len(self) > 65_536:  # a text of a million distinct code points must not grow it for ever
            self.clear()
        out = self[code] = _fold_char(chr(code))
        return out


_FOLDS = _FoldTable()


@dataclass(frozen=True)
class Folded:
    """The folded text and the map from its offsets to the original's: after `marks[k]` (a folded offset),
    folded offset i is original offset `origins[k] + i - marks[k]`, or `origins[k]` itself when `pinned[k]`
    (the characters one original character expanded into, e.g. `ﬁ` → `fi`)."""

    text: str
    marks: tuple[int, ...] = ()
    origins: tuple[int, ...] = ()
    pinned: tuple[bool, ...] = ()

    def original(self, i: int) -> int:
        k = bisect_right(self.marks, i) - 1
        if k < 0:
            return i
        return self.origins[k] if self.pinned[k] else self.origins[k] + i - self.marks[k]

    def span(self, start: int, end: int) -> tuple[int, int]:
        return self.original(start), self.original(end - 1) + 1


def fold(text: str) -> Folded:
    """NFKC, character by character (so each folded character has one original), with ignorables dropped.
    ASCII text (most prompts) is returned as it is."""
    if text.isascii():
        return Folded(text)
    folded = text.translate(_FOLDS)
    dropped = [m.start() for m in _IGNORABLE.finditer(text)]
    if len(folded) == len(text) - len(dropped):  # nothing expanded: only the dropped characters shift offsets
        return Folded(folded, tuple(j - k for k, j in enumerate(dropped)), tuple(j + 1 for j in dropped),
                      (False,) * len(dropped))
    return _fold_walk(text)


def _fold_walk(text: str) -> Folded:
    """fold() where some character expands (`ﬁ` → `fi`, `㎞` → `km`): the non-ASCII runs, one by one."""
    pieces: list[str] = []
    marks: list[int] = []
    origins: list[int] = []
    pinned: list[bool] = []
    copied = folded_len = 0  # original offset copied up to; length of the folded text so far
    for run in _NON_ASCII_RUN.finditer(text):
        pieces.append(text[copied:run.start()])
        folded_len += run.start() - copied
        for j in range(run.start(), run.end()):
            out = _FOLDS[ord(text[j])]
            if len(out) != 1:  # dropped or expanded: the offsets shift from here
                if out:
                    marks.append(folded_len), origins.append(j), pinned.append(True)
                marks.append(folded_len + len(out)), origins.append(j + 1), pinned.append(False)
            pieces.append(out)
            folded_len += len(out)
        copied = run.end()
    pieces.append(text[copied:])
    return Folded("".join(pieces), tuple(marks), tuple(origins), tuple(pinned))


# ----- detectors ------------------------------------------------------------------------------------------

def _luhn(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = int(ch)
        if i % 2 == parity:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _digits(value: str) -> str:
    return "".join(ch for ch in value if "0" <= ch <= "9")


def _card_ok(value: str) -> bool:
    digits = _digits(value)
    return 13 <= len(digits) <= 19 and _luhn(digits)


def _iban_ok(value: str) -> bool:
    code = "".join(value.split()).upper()
    if not 15 <= len(code) <= 34:
        return False
    rearranged = code[4:] + code[:4]
    try:
        return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1
    except ValueError:
        return False


def _ip_ok(value: str) -> bool:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    return not (address.is_loopback or address.is_unspecified) and value.count(".") in (0, 3)


def _phone_ok(value: str) -> bool:
    digits = _digits(value)
    if value.startswith("00"):  # 0044 …: the international call prefix is not part of the number
        digits = digits[2:]
    return 8 <= len(digits) <= 15


def _ssn_ok(value: str) -> bool:
    area, group, serial = value.split("-")
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


@dataclass(frozen=True)
class Detector:
    """An RE2 pattern over the folded text as ASCII bytes; group 1, when the pattern has one, is the item
    (what follows it is a boundary that RE2, having no lookahead, must consume). `check` validates the value;
    `not_preceded_by`: besides word characters, what may not stand right before it (a lookbehind, checked
    here; empty: no lookbehind)."""

    pattern: Any
    check: Callable[[str], bool] | None = None
    not_preceded_by: str = ""
    # cheap tests that skip the pattern (each RE2 call costs microseconds even on a short prompt): the item
    # cannot be there without one of `triggers`, `min_digits` digits, or a capital letter
    triggers: tuple[bytes, ...] = ()
    min_digits: int = 0
    needs_upper: bool = False
    precheck: Callable[[bytes, int], bool] | None = None  # a further necessary condition on (data, digits)

    def may_match(self, data: bytes, digits: int) -> bool:
        return (digits >= self.min_digits and (not self.triggers or any(map(data.__contains__, self.triggers)))
                and (not self.needs_upper or data != data.lower())
                and (self.precheck is None or self.precheck(data, digits)))


def _may_hold_ip(data: bytes, digits: int) -> bool:
    """An IPv4 address has three dots and at least four digits, the (full) IPv6 form seven colons: most prompts
    have a dot, few three dots and four digits."""
    return (digits >= 4 and data.count(b".") >= 3) or data.count(b":") >= 7


def _re(pattern: str) -> Any:
    return re2.compile(pattern.encode("ascii"))


_NOT_WORD_OR_DASH = r"(?:[^A-Za-z0-9_\-]|$)"
_DETECTORS: dict[str, Detector] = {
    "email": Detector(_re(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"), triggers=(b"@",)),
    "credit_card": Detector(_re(r"\b(?:\d[ -]?){12,18}\d\b"), _card_ok, min_digits=13),
    "iban": Detector(_re(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"), _iban_ok, min_digits=2, needs_upper=True),
    "us_ssn": Detector(_re(r"\b\d{3}-\d{2}-\d{4}\b"), _ssn_ok, triggers=(b"-",), min_digits=9),
    # the NINO's prefix letters: not D, F, I, Q, U or V, and not O second
    "uk_nino": Detector(_re(r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"),
                        min_digits=6, needs_upper=True),
    # +44 20 7946 0958, or 0044 20 7946 0958 (the 00 form with a separator after the country code: an
    # unbroken 00123456789 is more often an order number than a phone)
    "phone": Detector(_re(r"((?:\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,6}"
                          r"|00[1-9]\d{0,2}[ .-]\(?\d{1,4}\)?(?:[ .-]?\(?\d{1,4}\)?){1,5}))" + _NOT_WORD_OR_DASH),
                      _phone_ok, not_preceded_by="+-", triggers=(b"+", b"00"), min_digits=8),
    "phone_local": Detector(_re(r"((?:\(\d{2,4}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4})" + _NOT_WORD_OR_DASH),
                            _phone_ok, not_preceded_by="-", min_digits=8),
    "ip_address": Detector(_re(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b"
                               r"|\b(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}\b"), _ip_ok, precheck=_may_hold_ip),
    "secret": Detector(_re(
        r"\b(?:sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{16,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|"
        r"xox[baprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_\-]{35}|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,})"
        r"|-----BEGIN (?:RSA |EC |OPENSSH )?PRIVATE KEY-----"),
        # the GitHub prefixes in full ("gh" alone is in "right", "though": most English prompts)
        triggers=(b"sk-", b"AKIA", b"ghp_", b"gho_", b"ghu_", b"ghs_", b"ghr_", b"xox", b"AIza", b"eyJ", b"-----BEGIN")),
}
# the order decides overlaps: a card number is not also reported as a phone number
_ORDER = ("secret", "email", "iban", "credit_card", "us_ssn", "uk_nino", "ip_address", "phone", "phone_local")
_KIND = {"phone_local": "phone"}
_DIGIT_BYTES = b"0123456789"


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _matches(detector: Detector, data: bytes, text: str) -> list[tuple[int, int]]:
    """(start, end) of every valid item. A value that fails its lookbehind is retried one character further
    on, as a backtracking engine would; the patterns that can fail it are bounded (≤ 50 characters), so the
    retries keep the scan linear."""
    found = []
    pos = 0
    pattern = detector.pattern
    while (match := pattern.search(data, pos)) is not None:
        start, end = match.span(1) if pattern.groups else match.span()
        before = text[start - 1] if start > 0 else " "
        if detector.not_preceded_by and (_is_word(before) or before in detector.not_preceded_by):
            pos = start + 1
            continue
        if detector.check is None or detector.check(text[start:end]):
            found.append((start, end))
        pos = end if end > pos else pos + 1
    return found


@lru_cache(maxsize=64)
def _detectors_for(types: tuple[str, ...]) -> tuple[tuple[str, Detector], ...]:
    """(kind, detector) of each pattern that finds one of `types`, in _ORDER: worked out once per type list."""
    return tuple((_KIND.get(name, name), _DETECTORS[name]) for name in _ORDER if _KIND.get(name, name) in types)


def find_pii(text: str, types: tuple[str, ...] = ALL_TYPES) -> list[PiiSpan]:
    """PII items in `text`, as spans of the original text, in order. Linear in the length of the text."""
    # ASCII text (most prompts) folds to itself, offsets unchanged
    folded = None if text.isascii() else fold(text)
    norm = text if folded is None else folded.text
    # one byte per character (anything outside ASCII becomes "?", which no pattern matches): RE2 then works on
    # bytes, byte offsets are character offsets and nothing is re-encoded when a search resumes
    data = norm.encode("ascii", "replace")
    digits = len(data) - len(data.translate(None, _DIGIT_BYTES))  # one C pass, not one per digit
    taken: list[tuple[int, int, str]] = []  # disjoint, in order
    for kind, detector in _detectors_for(types if isinstance(types, tuple) else tuple(types)):
        if not detector.may_match(data, digits):
            continue
        found = _matches(detector, data, norm)
        if found:
            taken = _merge(taken, found, kind)
    if folded is None:
        return [PiiSpan(kind, start, end) for start, end, kind in taken]
    return [PiiSpan(kind, *folded.span(start, end)) for start, end, kind in taken]


def _merge(taken: list[tuple[int, int, str]], found: list[tuple[int, int]], kind: str) -> list[tuple[int, int, str]]:
    """`taken` plus the spans of `found` that overlap none of it; both in order, so one walk (a check of each
    new span against every taken one would be quadratic in the number of items)."""
    out: list[tuple[int, int, str]] = []
    i = 0
    for start, end in found:
        while i < len(taken) and taken[i][1] <= start:
            out.append(taken[i])
            i += 1
        if i < len(taken) and taken[i][0] < end:
            continue  # overlaps taken[i], which came first
        if out and out[-1][1] > start:
            continue  # overlaps the previous span of this kind (patterns may resume inside a rejected match)
        out.append((start, end, kind))
    out.extend(taken[i:])
    return out


# a scan this long runs off the event loop, in a worker process (turnout.cpu; RE2 releases the GIL while it
# matches, but the Python around it holds it): the worst text of 2,048 characters (one item every few
# characters) takes ~1.5 ms, a hop ~0.1–0.2 ms
OFF_LOOP_CHARS = 2048


async def find_pii_async(text: str, types: tuple[str, ...] = ALL_TYPES) -> list[PiiSpan]:
    return find_pii(text, types) if len(text) <= OFF_LOOP_CHARS else await off_gil(find_pii, text, types)


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
            ctx.cache[key] = await find_pii_async(ctx.text(self.params.scope))
        spans = [s for s in ctx.cache[key] if s.type in self.params.types]
        counts: dict[str, int] = {}
        for span in spans:
            counts[span.type] = counts.get(span.type, 0) + 1
        return SignalResult(len(spans) >= self.params.min_count, min(1.0, len(spans) / self.params.min_count),
                            {"types": counts} if counts else {})
