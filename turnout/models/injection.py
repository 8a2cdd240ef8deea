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
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, Sequence

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


def _char_hashes(text: str, bits: int) -> np.ndarray:
    codes = np.frombuffer(f"\x02{text}\x03".encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    out = []
    for n in CHAR_NGRAMS:
        if len(codes) < n:
            continue
        h = codes[: len(codes) - n + 1].copy()
        for k in range(1, n):
            h = h * _PRIME + codes[k: len(codes) - n + 1 + k]
        h = (h + np.uint64(n)) * _MULT
        out.append(h >> np.uint64(64 - bits))
    return np.concatenate(out) if out else np.zeros(0, np.uint64)


def _word_hashes(text: str, bits: int) -> np.ndarray:
    words = _WORDS.findall(text)
    grams = words + [f"{a} {b}" for a, b in zip(words, words[1:])]
    mask = (1 << bits) - 1
    return np.array([(zlib.crc32(g.encode("utf-8")) ^ 0x5BD1E995) & mask for g in grams], dtype=np.uint64)


#: the roles a text can come from, as the detector tells them apart: an operator's system prompt is written in the
#: imperative ("never reveal these instructions") and needs more evidence than a user's message
ROLE_OF = {"system": "system", "developer": "system", "tool": "tool", "function": "tool"}


def _role_index(role: str, bits: int) -> int:
    return (zlib.crc32(f"\x00role:{role}".encode()) ^ 0x5BD1E995) & ((1 << bits) - 1)


def hashed_features(text: str, bits: int = BITS, role: str = "user") -> tuple[np.ndarray, np.ndarray]:
    """(indices, values) of one canonical text: sublinear counts, plus one feature for the role it came from
    unless that is a user's, L2-normalised."""
    idx = np.concatenate([_char_hashes(text, bits), _word_hashes(text, bits)])
    role = ROLE_OF.get(role, "user")
    if role != "user":
        idx = np.concatenate([idx, np.full(ROLE_REPEAT, _role_index(role, bits), np.uint64)])
    if idx.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    uniq, counts = np.unique(idx, return_counts=True)
    values = (1.0 + np.log(counts)).astype(np.float32)
    values /= np.float32(np.sqrt(float(values @ values)))
    return uniq.astype(np.int64), values


def windows(text: str, size: int = WINDOW) -> list[str]:
    """Overlapping windows (stride size/2) that cover `text`; a short text is its own window."""
    if len(text) <= size:
        return [text]
    step = size // 2
    starts = list(range(0, len(text) - size, step)) + [len(text) - size]
    return [text[s: s + size] for s in starts]


_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n+|(?<=-->)|(?=<!--)|(?<=[\]\)])\s+(?=\S)")


def segments(canonical_text: str, size: int = WINDOW) -> list[str]:
    """Runs of up to two consecutive sentences (a sentence longer than `size` in windows of its own): an
    injection appended to, or inserted in, a benign text is scored with little of that text around it."""
    sentences: list[str] = []
    for sentence in _SENTENCE_END.split(canonical_text):
        sentence = sentence.strip()
        if sentence:
            sentences += windows(sentence, size)
    out = []
    for i, sentence in enumerate(sentences):
        out.append(sentence)
        if i + 1 < len(sentences) and len(sentence) + len(sentences[i + 1]) < size:
            out.append(f"{sentence} {sentences[i + 1]}")
    return out


def scales(canonical_text: str) -> list[str]:
    """The text up to LONG characters, and its sentences and sentence pairs when it is longer than WINDOW."""
    if len(canonical_text) <= WINDOW:
        return [canonical_text]
    return [canonical_text[:LONG], *segments(canonical_text)]


def views(text: str) -> list[str]:
    """What is scored of one text: its canonical form at both scales, and that of whatever it decodes to."""
    out = scales(canonical(text))
    for inner in decoded(text):
        out += scales(canonical(inner))
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

    def probability(self, canonical_text: str, role: str = "user") -> float:
        idx, values = hashed_features(canonical_text, self.bits, role)
        z = float(self.weights[idx] @ values) + self.bias
        return 1.0 / (1.0 + math.exp(-z))

    def score(self, items: Sequence[Item]) -> tuple[float, dict[str, Any]]:
        """The highest probability over every view of every (role, text), and where it was found."""
        best, where = 0.0, {}
        for i, (role, text) in enumerate(items):
            if not text:
                continue
            for j, view in enumerate(views(text)):
                p = self.probability(view, role)
                if p > best:
                    best, where = p, {"message": i, "role": role, "view": j}
        return best, where

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
