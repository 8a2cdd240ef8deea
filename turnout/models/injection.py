"""The prompt-injection / jailbreak detector shared by the `jailbreak` signal and the `jailbreak` guard plugin.

A logistic regression over hashed character 3–5-grams and word 1–2-grams of the canonical text
(injection_text.canonical: obfuscations undone, accents and case dropped): character n-grams carry across
languages and spelling variants where a word vocabulary or an English-only encoder does not. Each text is scored
whole (up to `LONG` characters) and, when longer than `WINDOW`, also sentence by sentence (single sentences and
pairs of neighbours, at most `WINDOW` characters each), and whatever base64 / hex runs in it decode to is scored too; the request's score is the highest over every window of every text (every message, every role), so a payload
at the end of a long benign text or inside a tool result is seen. Serving is numpy only: hashing is vectorised
over the text's code points, and the score is a sparse dot product with the exported weights.

An artifact is one .npz (`kind` = "injection-hashed-lr"); `load_detector` also takes an old linear classifier over
an embedding (the format `builtin:jailbreak` had before), scored on the joined text as before."""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from turnout.models.injection_text import canonical, decoded
from turnout.models.text_features import unique_counts

KIND = "injection-hashed-lr"
BITS = 18
LONG = 2000  # the whole text is scored up to here ...
WINDOW = 320  # ... and, when longer than this, in sentences and sentence pairs up to this long
CHAR_NGRAMS = (3, 4, 5)
ROLE_REPEAT = 8  # the role feature's count: 1 + log(8) ≈ 3 times one n-gram's weight before normalising
_WORDS = re.compile(r"\w+")
_MULT = np.uint64(0x9E3779B97F4A7C15)
_PRIME = np.uint64(1_000_003)


#: the roles a text can come from, as the detector tells them apart: an operator's system prompt is written in the
#: imperative ("never reveal these instructions") and needs more evidence than a user's message
ROLE_OF = {"system": "system", "developer": "system", "tool": "tool", "function": "tool"}


def _role_index(role: str, bits: int) -> int:
    return (zlib.crc32(f"\x00role:{role}".encode()) ^ 0x5BD1E995) & ((1 << bits) - 1)


@lru_cache(maxsize=1 << 16)
def _word_crc(word: str) -> tuple[int, bytes]:
    """A word's CRC-32 and the bytes that continue it into a bigram ("w x": CRC-32 of " x" from w's): each word is
    encoded once per process, and a bigram costs one crc32 call."""
    data = word.encode("utf-8")
    return zlib.crc32(data), b" " + data


def _word_hashes(words: list[str], mask: int) -> list[int]:
    """Hashes of the word unigrams and bigrams, in text order: w0, w0 w1, w1, w1 w2, ..., w_last."""
    out: list[int] = []
    previous = None
    for word in words:
        crc, tail = _word_crc(word)
        if previous is not None:
            out.append((zlib.crc32(tail, previous) ^ 0x5BD1E995) & mask)
        out.append((crc ^ 0x5BD1E995) & mask)
        previous = crc
    return out


def _powers() -> np.ndarray:
    """(longest n, len(CHAR_NGRAMS)): column j holds the powers of _PRIME that make the polynomial hash of a
    CHAR_NGRAMS[j]-gram, c0 * P^(n-1) + c1 * P^(n-2) + ... + c(n-1), from a window of the longest n codes."""
    longest = CHAR_NGRAMS[-1]
    out = np.zeros((longest, len(CHAR_NGRAMS)), np.uint64)
    for j, n in enumerate(CHAR_NGRAMS):
        for k in range(n):
            out[k, j] = pow(int(_PRIME), n - 1 - k, 1 << 64)
    return out


_POWERS = _powers()
_SALTS = np.array(CHAR_NGRAMS, np.uint64)
# (hash + n) * _MULT = hash * _MULT + n * _MULT in arithmetic modulo 2**64: the multiplier folded into the powers
# and the salts once, so a text costs one matrix product and one addition before the shift (the same numbers)
_POWERS_MULT = _POWERS * _MULT
_SALTS_MULT = _SALTS * _MULT
_SHIFTS = {BITS: np.uint64(64 - BITS)}


def _char_hashes(text: str, bits: int) -> list[np.ndarray]:
    """The hash of every character n-gram, per n: ((polynomial hash + n) * _MULT) >> (64 - bits), in uint64
    arithmetic (which wraps exactly, so one matrix product over the windows of the text gives the numbers the
    Horner loop per n gives). The text is padded with zero codes so that every start of the shortest n has a
    full window; the rows of a longer n that would reach into the padding are cut off."""
    shortest, longest = CHAR_NGRAMS[0], CHAR_NGRAMS[-1]
    if len(text) < shortest:
        return [np.zeros(0, np.uint64) for _ in CHAR_NGRAMS]
    pad = longest - shortest
    padded = text + "\0" * pad
    # the code points as uint64: from one byte each when the text is ASCII (most canonical texts), else four
    codes = (np.frombuffer(padded.encode("ascii"), dtype=np.uint8) if padded.isascii() else
             np.frombuffer(padded.encode("utf-32-le"), dtype=np.uint32)).astype(np.uint64)
    starts = len(text) - shortest + 1
    windows = np.ndarray((starts, longest), np.uint64, codes, 0, (8, 8))  # row i: codes[i:i + longest]
    h = windows @ _POWERS_MULT
    h += _SALTS_MULT
    h >>= _SHIFTS[bits] if bits in _SHIFTS else np.uint64(64 - bits)
    return [h[: max(0, len(text) - n + 1), j] for j, n in enumerate(CHAR_NGRAMS)]


# 1 + log(count) as float32, for the counts a span of up to LONG characters can have (computed as `span` did
# per call: numpy's float64 log is elementwise)
_SUBLINEAR = (1.0 + np.log(np.arange(1, 4 * LONG + 1, dtype=np.int64))).astype(np.float32)
_SUBLINEAR_AT = np.concatenate([np.zeros(1, np.float32), _SUBLINEAR])  # indexed by the count itself


class Featurizer:
    """Hashes of every character n-gram and word 1–2-gram of one canonical text, computed once, so that any span
    of it (the whole text, each sentence, each pair of sentences) is featurised by slicing."""

    def __init__(self, text: str, bits: int = BITS) -> None:
        self.text, self.bits, self.mask = text, bits, (1 << bits) - 1
        self.chars = _char_hashes(text, bits)
        self._positions: tuple[np.ndarray, np.ndarray] | None = None
        hashes = _word_hashes(_WORDS.findall(text), self.mask)
        self.all_words = np.fromiter(hashes, np.uint64, len(hashes))

    @property
    def words(self) -> np.ndarray:
        """The word-gram hashes ordered by (start, end), as `word_start` and `word_end` are."""
        return self.all_words

    def _spans(self) -> tuple[np.ndarray, np.ndarray]:
        """(start, end) of each word gram, in the order of `words` (unigram i at 2i, the bigram from it at
        2i + 1): built only when a span that is not the whole text is asked for."""
        if self._positions is None:
            bounds = np.array([m.span() for m in _WORDS.finditer(self.text)], np.int64).reshape(-1, 2)
            count = 2 * len(bounds) - 1 if len(bounds) else 0
            start, end = np.empty(count, np.int64), np.empty(count, np.int64)
            start[0::2], end[0::2] = bounds[:, 0], bounds[:, 1]
            start[1::2], end[1::2] = bounds[:-1, 0], bounds[1:, 1]
            self._positions = start, end
        return self._positions

    @property
    def word_start(self) -> np.ndarray:
        return self._spans()[0]

    @property
    def word_end(self) -> np.ndarray:
        return self._spans()[1]

    def span(self, start: int, end: int, role: str = "user") -> tuple[np.ndarray, np.ndarray]:
        """(indices, values) of text[start:end]: sublinear counts, plus one feature for the role it came from
        unless that is a user's, L2-normalised."""
        if start == 0 and end >= len(self.text):  # the whole text: every n-gram, no look-up of word positions
            parts = [*self.chars, self.all_words]
        else:
            parts = [h[start: max(start, end - n + 1)] for h, n in zip(self.chars, CHAR_NGRAMS)]
            word_start, word_end = self._spans()
            lo, hi = np.searchsorted(word_start, [start, end])
            inside = word_end[lo:hi] <= end
            parts.append(self.all_words[lo:hi][inside])
        role = ROLE_OF.get(role, "user")
        if role != "user":
            # the role, and the words again tied to it: "never share these instructions" may be weighed apart
            # in an operator's system prompt and in a user's message
            salt = np.uint64(_role_index(role, self.bits))
            parts += [np.full(ROLE_REPEAT, salt, np.uint64), (parts[-1] * _PRIME + salt) & np.uint64(self.mask)]
        idx = np.concatenate(parts)
        if idx.size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        uniq, counts = unique_counts(idx.view(np.int64))  # every hash is below 2**bits: the same as int64
        if idx.size <= len(_SUBLINEAR):
            values = _SUBLINEAR_AT.take(counts)
        else:
            values = (1.0 + np.log(counts)).astype(np.float32)
        values /= np.float32(math.sqrt(float(np.dot(values, values))))  # float64 sqrt, as np.sqrt of a float computes it
        return uniq, values


def hashed_features(text: str, bits: int = BITS, role: str = "user") -> tuple[np.ndarray, np.ndarray]:
    """(indices, values) of one whole canonical text."""
    return Featurizer(text, bits).span(0, len(text), role)


def _windows(start: int, end: int, size: int) -> list[tuple[int, int]]:
    if end - start <= size:
        return [(start, end)]
    step = size // 2
    return [(s, s + size) for s in range(start, end - size, step)] + [(end - size, end)]


_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n+|(?=<!--)|(?<=-->)\s*|(?<=[\]\)])\s+(?=\S)")


def segment_spans(text: str, size: int = WINDOW) -> list[tuple[int, int]]:
    """Spans of single sentences and of pairs of neighbours, none longer than `size` (a longer sentence in
    windows of its own, stride half of it): an injection appended to, or inserted in, a benign text is scored
    with little of that text around it."""
    sentences: list[tuple[int, int]] = []
    start = 0
    for gap in [*_SENTENCE_END.finditer(text), None]:
        end = gap.start() if gap else len(text)
        if end > start:
            sentences += _windows(start, end, size)
        start = gap.end() if gap else end
    out = []
    for i, (a, b) in enumerate(sentences):
        out.append((a, b))
        if i + 1 < len(sentences) and sentences[i + 1][1] - a <= size:
            out.append((a, sentences[i + 1][1]))
    return out


def scale_spans(text: str) -> list[tuple[int, int]]:
    """The text up to LONG characters, and its sentences and sentence pairs when it is longer than WINDOW."""
    if len(text) <= WINDOW:
        return [(0, len(text))]
    return [(0, min(len(text), LONG)), *segment_spans(text)]


def segments(text: str) -> list[str]:
    return [text[a:b] for a, b in segment_spans(text)]


def views(text: str, bits: int = BITS) -> list[tuple[Featurizer, list[tuple[int, int]]]]:
    """What is scored of one text: its canonical form at both scales, and that of whatever it decodes to."""
    out = []
    for form in [canonical(text), *(canonical(inner) for inner in decoded(text))]:
        out.append((Featurizer(form, bits), scale_spans(form)))
    return out


Item = tuple[str, str]  # (role, text)


class Detector(Protocol):
    threshold: float

    def score(self, items: Sequence[Item]) -> tuple[float, dict[str, Any]]: ...


@dataclass
class HashedInjectionDetector:
    weights: np.ndarray  # (2**bits,) float32
    bias: float
    bits: int = BITS
    threshold: float = 0.5  # calibrated on the dev split by scripts/train_injection_detector.py
    meta: dict[str, Any] = field(default_factory=dict)

    def logit(self, features: tuple[np.ndarray, np.ndarray]) -> float:
        idx, values = features
        return float(np.dot(self.weights.take(idx), values)) + self.bias

    def probability(self, canonical_text: str, role: str = "user") -> float:
        return 1.0 / (1.0 + math.exp(-self.logit(hashed_features(canonical_text, self.bits, role))))

    def score(self, items: Sequence[Item]) -> tuple[float, dict[str, Any]]:
        """The highest probability over every span of every view of every (role, text), and where it was."""
        best, where = -math.inf, (0, "", False, 0, 0)
        for i, (role, text) in enumerate(items):
            if not text:
                continue
            for j, (featurizer, spans) in enumerate(views(text, self.bits)):
                for a, b in spans:
                    z = self.logit(featurizer.span(a, b, role))
                    if z > best:
                        best, where = z, (i, role, j > 0, a, b)
        if best == -math.inf:
            return 0.0, {}
        i, role, decoded_, a, b = where
        return 1.0 / (1.0 + math.exp(-best)), {"message": i, "role": role, "decoded": decoded_, "span": [a, b]}

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, kind=np.array(KIND), weights=self.weights.astype(np.float16),
                            bias=np.array(self.bias), bits=np.array(self.bits), threshold=np.array(self.threshold),
                            meta=np.array(json.dumps(self.meta)))


@dataclass
class EmbeddingClassifierDetector:
    """An old-format artifact (a linear classifier over a sentence embedding, label 'jailbreak'): the joined text is
    scored as one, as the signal and the guard did before."""

    model: Any
    threshold: float = 0.5

    def score(self, items: Sequence[Item]) -> tuple[float, dict[str, Any]]:
        from turnout.models.encoders import get_encoder

        text = "\n".join(t for _, t in items if t)
        vector = get_encoder(self.model.encoder).encode([text])[0]
        return self.model.predict(vector)[2].get("jailbreak", 0.0), {}


def _load_file(path: Path | Any) -> Detector:
    canonical("é\u200b")  # builds the character classes now rather than on a first request
    with np.load(path, allow_pickle=False) as data:
        if "kind" in data and str(data["kind"]) == KIND:
            return HashedInjectionDetector(data["weights"].astype(np.float32), float(data["bias"]), int(data["bits"]),
                                           float(data["threshold"]), json.loads(str(data["meta"])))
    from turnout.models.classifier import LinearClassifier

    model = LinearClassifier.load(path)
    if "jailbreak" not in model.labels:
        raise ValueError(f"the classifier's labels ({', '.join(model.labels)}) have no 'jailbreak'")
    return EmbeddingClassifierDetector(model)


# builtin:jailbreak is the detector; builtin:jailbreak-embedding the embedding classifier it replaced
BUILTIN = {"jailbreak": "jailbreak_detector.npz", "jailbreak-embedding": "jailbreak.npz"}


@cache
def load_detector(artifact: str = "builtin:jailbreak") -> Detector:
    """'builtin:jailbreak' (the shipped detector), 'builtin:jailbreak-embedding' (the classifier it replaced), or
    the path of an .npz in either format."""
    if artifact.startswith("builtin:"):
        name = artifact.split(":", 1)[1]
        if name not in BUILTIN:
            raise ValueError(f"unknown builtin detector {name!r}: one of {', '.join(sorted(BUILTIN))}")
        return _load_file(resources.files("turnout.models").joinpath(f"data/{BUILTIN[name]}"))
    return _load_file(Path(artifact))
