"""The injection detector's fast featurisation gives bit-identical features to the straightforward one it
replaced (kept here as the reference): each n-gram hashed from scratch, word grams CRC-32'd one by one, sorted by
position, `np.unique` for the counts. The shipped detector's weights were trained on those features, so any
difference, however small, would be a different model."""

from __future__ import annotations

import base64
import json
import math
import random
import re
import zlib
from itertools import pairwise
from pathlib import Path

import numpy as np

from turnout.models.injection import (
    BITS,
    CHAR_NGRAMS,
    ROLE_OF,
    ROLE_REPEAT,
    Featurizer,
    _role_index,
    hashed_features,
    load_detector,
    scale_spans,
    segment_spans,
)
from turnout.models.injection_text import canonical, decoded

DATA = Path(__file__).parents[2] / "turnout" / "eval" / "data" / "injection"
_WORDS = re.compile(r"\w+")
_MULT = np.uint64(0x9E3779B97F4A7C15)
_PRIME = np.uint64(1_000_003)


class ReferenceFeaturizer:
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
        grams = [(a, b, w) for a, b, w in words]
        grams += [(a, d, f"{w} {x}") for (a, _, w), (_, d, x) in pairwise(words)]
        grams.sort()
        self.word_start = np.array([g[0] for g in grams], np.int64)
        self.word_end = np.array([g[1] for g in grams], np.int64)
        self.words = np.array([(zlib.crc32(g[2].encode("utf-8")) ^ 0x5BD1E995) & self.mask for g in grams], np.uint64)

    def span(self, start: int, end: int, role: str = "user") -> tuple[np.ndarray, np.ndarray]:
        parts = [h[start: max(start, end - n + 1)] for h, n in zip(self.chars, CHAR_NGRAMS)]
        lo, hi = np.searchsorted(self.word_start, [start, end])
        inside = self.word_end[lo:hi] <= end
        parts.append(self.words[lo:hi][inside])
        role = ROLE_OF.get(role, "user")
        if role != "user":
            salt = np.uint64(_role_index(role, self.bits))
            parts += [np.full(ROLE_REPEAT, salt, np.uint64), (parts[-1] * _PRIME + salt) & np.uint64(self.mask)]
        idx = np.concatenate(parts)
        if idx.size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        uniq, counts = np.unique(idx, return_counts=True)
        values = (1.0 + np.log(counts)).astype(np.float32)
        values /= np.float32(np.sqrt(float(values @ values)))
        return uniq.astype(np.int64), values


def _strings(value: object, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, list | dict):
        for item in value.values() if isinstance(value, dict) else value:
            _strings(item, out)


def corpus() -> list[str]:
    """Every text of the injection splits, and, built from them, long, encoded, obfuscated and odd texts."""
    texts: list[str] = []
    for path in sorted(DATA.glob("*.jsonl")) + sorted(DATA.glob("train/*.jsonl")):
        texts += [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
    for path in sorted(DATA.glob("train/*.json")):
        _strings(json.loads(path.read_text(encoding="utf-8")), texts)
    rng = random.Random(0)
    made = []
    for i in range(200):
        a, b = rng.choice(texts), rng.choice(texts)
        made.append([" ".join(rng.sample(texts, 12)),  # long: sentences, pairs, windows
                     f"{a} {base64.b64encode(b.encode()).decode()}",
                     f"{a.upper()}\n\n{b} <!-- x --> [y] (z) Ünïcödé ΑΒΓ ѕесrеt",
                     a.replace("e", "3").replace("o", "0") + " i g n o r e  a l l"][i % 4])
    return texts + made + ["", " ", "a", "ab", "abc", "abcd", "a b", "é", "\u200b", "1234", "_" * 50, "x" * 5000]


TEXTS = corpus()


def _same(got: tuple[np.ndarray, np.ndarray], want: tuple[np.ndarray, np.ndarray]) -> bool:
    return got[0].dtype == want[0].dtype and got[1].dtype == want[1].dtype and np.array_equal(got[0], want[0]) \
        and np.array_equal(got[1], want[1])


def test_every_span_of_every_text_has_the_reference_features():
    assert len(TEXTS) > 1000
    different = []
    for i, raw in enumerate(TEXTS):
        role = ("user", "system", "tool")[i % 3]
        text = canonical(raw)
        fast, reference = Featurizer(text), ReferenceFeaturizer(text)
        spans = {*scale_spans(text), (0, len(text)), *segment_spans(text)}
        for a, b in sorted(spans):
            if not _same(fast.span(a, b, role), reference.span(a, b, role)):
                different.append((raw[:60], a, b))
    assert not different, different[:5]


def test_the_whole_text_features_match_the_reference():
    for raw in TEXTS[::7]:
        text = canonical(raw)
        assert _same(hashed_features(text), ReferenceFeaturizer(text).span(0, len(text)))
        assert _same(hashed_features(text, 12, "system"), ReferenceFeaturizer(text, 12).span(0, len(text), "system"))


def test_word_positions_match_the_reference():
    for raw in TEXTS[::11]:
        text = canonical(raw)
        fast, reference = Featurizer(text), ReferenceFeaturizer(text)
        assert np.array_equal(fast.word_start, reference.word_start)
        assert np.array_equal(fast.word_end, reference.word_end)
        assert np.array_equal(fast.words, reference.words)


def reference_score(detector, items: list[tuple[str, str]]) -> tuple[float, dict]:
    """HashedInjectionDetector.score from the reference features: the highest logit over every span of every view
    (the canonical text and what it decodes to) of every text, `weights[idx] @ values + bias`."""
    best, where = -math.inf, (0, "", False, 0, 0)
    for i, (role, text) in enumerate(items):
        if not text:
            continue
        for j, form in enumerate([canonical(text), *(canonical(inner) for inner in decoded(text))]):
            reference = ReferenceFeaturizer(form, detector.bits)
            for a, b in scale_spans(form):
                idx, values = reference.span(a, b, role)
                z = float(detector.weights[idx] @ values) + detector.bias
                if z > best:
                    best, where = z, (i, role, j > 0, a, b)
    if best == -math.inf:
        return 0.0, {}
    i, role, decoded_, a, b = where
    return 1.0 / (1.0 + math.exp(-best)), {"message": i, "role": role, "decoded": decoded_, "span": [a, b]}


def test_the_shipped_detector_scores_every_request_as_the_reference_does():
    detector = load_detector("builtin:jailbreak")
    different = []
    for i, raw in enumerate(TEXTS):
        items = [(("user", "system", "tool")[i % 3], raw), ("user", TEXTS[i - 1])]
        if detector.score(items) != reference_score(detector, items):
            different.append(raw[:60])
    assert not different, different[:5]


def test_canonical_undoes_the_leetspeak_the_scan_of_every_word_found(monkeypatch):
    from turnout.models import injection_text

    rng = random.Random(1)
    texts = TEXTS + ["".join(rng.choice("ab1@3 x!|+9_-.\nZ4") for _ in range(rng.randint(0, 80))) for _ in range(3000)]
    fast = [canonical(text) for text in texts]
    assert sum(a != b.lower() for a, b in zip(fast, texts)) > 1000  # leetspeak undone in many of them
    # the scan it replaced: every run of word and leet characters, each checked by _is_leet
    monkeypatch.setattr(injection_text, "_LEET_CANDIDATE", injection_text._LEET_TOKEN)
    assert fast == [canonical(text) for text in texts]
