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
from functools import cache
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from turnout.models.injection_text import canonical, decoded

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


class Featurizer:
    """Hashes of every character n-gram and word 1–2-gram of one canonical text, computed once, so that any span
    of it (the whole text, each sentence, each pair of sentences) is featurised by slicing."""

    def __init__(self, text: str, bits: int = BITS) -> None:
        self.text, self.bits, self.mask = text, bits, (1 << bits) - 1
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        self.chars: list[np.ndarray] = []
        for n in CHAR_NGRAMS:
            if len(codes) < n:
                self.chars.append(np.zeros(0, np.uint64))
                continue
            h = codes[: len(codes) - n + 1].copy()
            for k in range(1, n):
                h = h * _PRIME + codes[k: len(codes) - n + 1 + k]
            self.chars.append(((h + np.uint64(n)) * _MULT) >> np.uint64(64 - bits))
        words = [(m.start(), m.end(), m.group(0)) for m in _WORDS.finditer(text)]
        mask = (1 << bits) - 1
        grams = [(a, b, w) for a, b, w in words]
        grams += [(a, d, f"{w} {x}") for (a, _, w), (_, d, x) in pairwise(words)]
        grams.sort()
        self.word_start = np.array([g[0] for g in grams], np.int64)
        self.word_end = np.array([g[1] for g in grams], np.int64)
        self.words = np.array([(zlib.crc32(g[2].encode("utf-8")) ^ 0x5BD1E995) & mask for g in grams], np.uint64)

    def span(self, start: int, end: int, role: str = "user") -> tuple[np.ndarray, np.ndarray]:
        """(indices, values) of text[start:end]: sublinear counts, plus one feature for the role it came from
        unless that is a user's, L2-normalised."""
        parts = [h[start: max(start, end - n + 1)] for h, n in zip(self.chars, CHAR_NGRAMS)]
        lo, hi = np.searchsorted(self.word_start, [start, end])
        inside = self.word_end[lo:hi] <= end
        parts.append(self.words[lo:hi][inside])
        role = ROLE_OF.get(role, "user")
        if role != "user":
            # the role, and the words again tied to it: "never share these instructions" may be weighed apart
            # in an operator's system prompt and in a user's message
            salt = np.uint64(_role_index(role, self.bits))
            parts += [np.full(ROLE_REPEAT, salt, np.uint64), (parts[-1] * _PRIME + salt) & np.uint64(self.mask)]
        idx = np.concatenate(parts)
        if idx.size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        uniq, counts = np.unique(idx, return_counts=True)
        values = (1.0 + np.log(counts)).astype(np.float32)
        values /= np.float32(np.sqrt(float(values @ values)))
        return uniq.astype(np.int64), values


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
        return float(self.weights[idx] @ values) + self.bias

    def probability(self, canonical_text: str, role: str = "user") -> float:
        return 1.0 / (1.0 + math.exp(-self.logit(hashed_features(canonical_text, self.bits, role))))

    def score(self, items: Sequence[Item]) -> tuple[float, dict[str, Any]]:
        """The highest probability over every span of every view of every (role, text), and where it was."""
        best, where = -math.inf, {}
        for i, (role, text) in enumerate(items):
            if not text:
                continue
            for j, (featurizer, spans) in enumerate(views(text, self.bits)):
                for a, b in spans:
                    z = self.logit(featurizer.span(a, b, role))
                    if z > best:
                        best, where = z, {"message": i, "role": role, "decoded": j > 0, "span": [a, b]}
        return (0.0, {}) if best == -math.inf else (1.0 / (1.0 + math.exp(-best)), where)

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
