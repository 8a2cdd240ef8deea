"""What the injection detector reads: every text a request carries (every role, every text-bearing part type), put
into a canonical form with the usual obfuscations undone (zero-width and format characters, homoglyphs, accents,
spaced-out letters, leetspeak), plus whatever base64 or hex runs in it decode to.

Each step keeps benign text as it was as far as possible: leetspeak is undone only inside words that mix letters
with digits or symbols, letters are joined only in runs of at least four single letters, and a base64 or hex run
counts only when it decodes to mostly printable UTF-8 text with spaces in it."""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Callable
from functools import cache
from typing import Any

from turnout.context import clean_text

MAX_CHARS = 100_000  # per message; see bounded()

# Cyrillic and Greek letters that look like Latin ones (the common confusables an attacker uses)
_CONFUSABLES = str.maketrans({
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c", "т": "t",
    "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ɡ": "g",
    "α": "a", "β": "b", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x",
    "ɑ": "a", "ı": "i", "ℓ": "l",
})
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "@": "a", "$": "s",
                       "!": "i", "|": "l", "+": "t"})
# a run of word characters and leet symbols (atomic: a long run without a leet character is not re-scanned)
_LEET_TOKEN = re.compile(r"(?>[a-z0-9@$!|+]+)")
_HAS_LETTER = re.compile(r"[a-z]")
_HAS_LEET = re.compile(r"[013457@$!|+]")
# a _LEET_TOKEN run with at least two leet characters (the only runs _is_leet can accept), found by the regex
# engine rather than a Python call per word: at a run's start (the lookbehind), the lookahead's classes are
# disjoint (letters and the other digits, then a leet character), so each start is one linear look
_LEET_CANDIDATE = re.compile(r"(?<![a-z0-9@$!|+])(?=[a-z2689]*+[013457@$!|+][a-z2689]*+[013457@$!|+])"
                             r"(?>[a-z0-9@$!|+]+)")
# four or more single letters separated by one non-letter each ("i g n o r e", "i.g.n.o.r.e", "i-g-n")
_SPACED = re.compile(r"(?<!\w)\w(?:[ .\-_*·]{1,3}\w){3,}(?!\w)")
_WORD_GAP = re.compile(r"[ .\-_*·]{2,}")
_SEPARATOR = re.compile(r"[ .\-_*·]")
_BASE64 = re.compile(r"[A-Za-z0-9+/]{16,}={0,2}|[A-Za-z0-9_\-]{24,}={0,2}")
_HEX = re.compile(r"(?:[0-9a-fA-F]{2}){10,}")
# every _BASE64 or _HEX match is a run of at least 16 of these: a text without one has nothing to decode
_ENCODED_RUN = re.compile(r"[A-Za-z0-9+/_\-]{16}")
_SPACES = re.compile(r"\s+")
_TEXT_KEYS = ("text", "content", "output", "refusal", "input")
_SKIP_TYPES = frozenset({"image_url", "input_image", "image", "input_audio", "audio", "file", "input_file"})


def _despace(match: re.Match[str]) -> str:
    # a gap of two or more separators inside the run parts words: "i g n o r e   a l l" → "ignore all"
    return " ".join(_SEPARATOR.sub("", word) for word in _WORD_GAP.split(match.group(0)))


@cache
def _classes() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Format characters (zero-width, bidi controls) and combining marks, as two character classes: built once
    (a scan of every code point, under a second), on the first non-ASCII text or when a detector is loaded."""
    def ranges(keep: Callable[[str], bool]) -> str:
        out, start = [], None
        for c in range(0x110001):
            inside = c < 0x110000 and keep(chr(c))
            if inside and start is None:
                start = c
            elif not inside and start is not None:
                out.append(f"{re.escape(chr(start))}-{re.escape(chr(c - 1))}")
                start = None
        return "[" + "".join(out) + "]"

    return (re.compile(ranges(lambda ch: unicodedata.category(ch) == "Cf")),
            re.compile(ranges(lambda ch: unicodedata.combining(ch) != 0)))


def _pieces(text: str, matches: list[re.Match[str]]) -> list[str]:
    out, at = [], 0
    for m in matches:
        out += [text[at:m.start()], m.group(0).translate(_LEET)]
        at = m.end()
    return out + [text[at:]]


def _is_leet(token: str) -> bool:
    """A word that mixes letters with digits or symbols ("1gn0r3"), but not a number with a unit ("3pm", "4k")."""
    return 4 <= len(token) <= 40 and bool(_HAS_LETTER.search(token)) and len(_HAS_LEET.findall(token)) >= 2


def bounded(text: str, limit: int = MAX_CHARS) -> str:
    """At most `limit` characters: a longer text keeps its head and its tail (where an appended payload sits)."""
    return text if len(text) <= limit else f"{text[: limit // 2]}\n{text[-(limit // 2):]}"


def canonical(text: str) -> str:
    """Lower-case, accent-free, confusable-free text with spaced letters joined and leetspeak undone."""
    text = clean_text(bounded(text))
    if text.isascii():
        text = text.lower()
    else:
        format_chars, combining = _classes()
        # zero-width, bidi controls; bounded again, as NFKC grows some characters 18-fold (U+FDFA)
        text = format_chars.sub("", bounded(unicodedata.normalize("NFKC", text)))
        text = combining.sub("", unicodedata.normalize("NFKD", text.lower().translate(_CONFUSABLES)))
    text = _SPACED.sub(_despace, text)
    leet = [m for m in _LEET_CANDIDATE.finditer(text) if _is_leet(m.group(0))] if _HAS_LEET.search(text) else []
    if len(leet) >= 3 and len(leet) >= 0.25 * text.count(" "):  # leetspeak throughout: "70 5h0w 7h3 ..."
        text = text.translate(_LEET)
    elif leet:
        text = "".join(_pieces(text, leet))
    return _SPACES.sub(" ", text).strip()


def _readable(raw: bytes) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(ch.isprintable() or ch in "\n\t" for ch in text)
    if len(text) < 8 or printable < 0.95 * len(text) or " " not in text or sum(ch.isalpha() for ch in text) < 0.5 * len(text):
        return None
    return text


def decoded(text: str, depth: int = 2) -> list[str]:
    """The texts that base64 or hex runs in `text` decode to (nested encodings up to `depth` levels)."""
    found: list[str] = []
    text = bounded(text)
    if not _ENCODED_RUN.search(text):
        return found
    for match in _HEX.finditer(text):
        out = _readable(binascii.unhexlify(match.group(0)))
        if out:
            found.append(out)
    for match in _BASE64.finditer(text):
        run = match.group(0)
        if _HEX.fullmatch(run):
            continue
        run = run.rstrip("=")
        try:
            raw = base64.b64decode(run + "=" * (-len(run) % 4), altchars=b"-_" if ("-" in run or "_" in run) else None)
        except (binascii.Error, ValueError):
            continue
        out = _readable(raw)
        if out:
            found.append(out)
        elif depth > 1 and raw.isascii() and _BASE64.fullmatch(raw.decode("ascii")):  # encoded twice
            found += decoded(raw.decode("ascii"), depth - 1)
    if depth > 1:
        found += [inner for out in list(found) for inner in decoded(out, depth - 1)]
    return found


def _strings(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        if value:
            out.append(value)
    elif isinstance(value, list):
        for item in value:
            _strings(item, out)
    elif isinstance(value, dict) and value.get("type") not in _SKIP_TYPES:
        for key in _TEXT_KEYS:
            if key in value:
                _strings(value[key], out)


def message_texts(messages: list[Any], roles: frozenset[str] | None = None) -> list[tuple[str, str]]:
    """(role, text) of each message (every part type that carries text: text, input_text, output_text, refusal,
    tool_result and function-call outputs); `roles` limits which messages are read. A Responses item without a
    role (a function_call_output) counts as a tool's."""
    texts = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        role = str(message.get("role") or ("tool" if "output" in message else "user"))
        if roles is not None and role not in roles:
            continue
        parts: list[str] = []
        for key in ("content", "output"):
            _strings(message.get(key), parts)
        if parts:
            texts.append((role, "\n".join(parts)))
    return texts


def request_texts(body: dict[str, Any], scope: str = "all") -> list[tuple[str, str]]:
    """The texts of a chat, Responses or Messages-shaped body that `scope` covers: 'all' (every role, tool output
    included), 'user' (user and tool messages: what arrives from outside), or 'last_user'."""
    messages: list[Any] = list(body.get("messages") or []) if isinstance(body.get("messages"), list) else []
    if isinstance(body.get("input"), str):
        messages.append({"role": "user", "content": body["input"]})
    elif isinstance(body.get("input"), list):
        messages += body["input"]
    if scope == "all":
        texts = message_texts(messages)
        for key in ("system", "instructions"):
            if body.get(key):
                texts[:0] = message_texts([{"role": "system", "content": body[key]}])
        return texts
    if scope == "user":
        return message_texts(messages, frozenset({"user", "tool", "function"}))
    if scope == "last_user":
        users = [m for m in messages if isinstance(m, dict) and m.get("role", "user") == "user"]
        return message_texts(users[-1:])
    raise ValueError(f"unknown scope {scope!r}: one of all, user, last_user")
