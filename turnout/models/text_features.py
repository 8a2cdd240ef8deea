"""Hashed word and character n-grams with TF-IDF weights: the lexical half of the classifiers' features.

The sentence embedding says what a prompt is about in general; n-grams catch the words that name a subject
("tort", "mitochondria", "GDP"). Hashing (CRC-32 of each n-gram, modulo `dim`) needs no vocabulary file and
gives the same buckets at training and serving time, in any process. Counts are sublinear (1 + log tf), weighted
by an IDF learned at fit time, and L2-normalised, as scikit-learn's TfidfVectorizer(sublinear_tf=True) does."""

from __future__ import annotations

import functools
import itertools
import math
import re
import unicodedata
import zlib
from collections.abc import Sequence

import numpy as np
from scipy import sparse

WORD = re.compile(r"\w+")
MAX_CHARS = 4000  # the lexical features read a prompt's first 4,000 characters (its subject is stated early)
# ... and at most twice that once normalised: NFKC expands some characters up to 18-fold (U+FDFA), which made 4,000
# of them 72,000 characters of n-grams on the event loop (and counts beyond the sublinear table)
NORMAL_CHARS = 2 * MAX_CHARS


def words_of(text: str) -> list[str]:
    """The words the lexical features read: the first MAX_CHARS characters, NFKC-normalised, cut at NORMAL_CHARS,
    lower-cased."""
    return WORD.findall(unicodedata.normalize("NFKC", text[:MAX_CHARS])[:NORMAL_CHARS].lower())


def ngrams(text: str) -> list[str]:
    """Word unigrams and bigrams, and character 3- and 4-grams inside each word (padded with spaces)."""
    words = words_of(text)
    grams = [f"w {w}" for w in words]
    grams += [f"b {a} {b}" for a, b in itertools.pairwise(words)]
    for w in words:
        padded = f" {w} "
        for n in (3, 4):
            grams += [padded[i:i + n] for i in range(len(padded) - n + 1)]
    return grams


@functools.lru_cache(maxsize=1 << 16)
def _word_buckets(word: str, dim: int) -> tuple[tuple[int, ...], int, bytes]:
    """The buckets of a word's own n-grams (the unigram and its character 3- and 4-grams), and the CRC-32 of
    "b {word}" with the bytes that continue it into a bigram ("b {word} {next}": CRC-32 of " {next}" from it):
    words recur across requests, so each is hashed once per process and a bigram costs one crc32 call."""
    padded = f" {word} "
    grams = [f"w {word}"] + [padded[i:i + n] for n in (3, 4) for i in range(len(padded) - n + 1)]
    data = word.encode("utf-8")
    return tuple(zlib.crc32(g.encode("utf-8")) % dim for g in grams), zlib.crc32(b"b " + data), b" " + data


def unique_counts(index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(index, return_counts=True) for a non-empty 1-D array, without its overhead on short arrays
    (the request path calls it on a hundred or so buckets); sorts `index` in place."""
    index.sort()
    bounds = np.empty(index.size + 1, dtype=bool)
    bounds[0] = bounds[-1] = True
    np.not_equal(index[1:], index[:-1], out=bounds[1:-1])
    starts = bounds.nonzero()[0]  # np.flatnonzero without its Python wrapper
    return index[starts[:-1]], starts[1:] - starts[:-1]


# 1 + log(count) in float32, for counts up to the most n-grams MAX_CHARS characters can have (the same numbers
# as computing it per call: numpy's float32 log is elementwise)
_SUBLINEAR = 1.0 + np.log(np.arange(1, 4 * NORMAL_CHARS + 1).astype(np.float32))


@functools.lru_cache(maxsize=64)
def hashed_counts(text: str, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(bucket indices, sublinear counts) of a text's n-grams (the same as hashing `ngrams(text)` one by one).
    Kept for the last few texts: the domain and complexity signals read the same request text (callers must not
    write to the arrays)."""
    words = words_of(text)
    ids: list[int] = []
    head = None
    for w in words:
        buckets, crc, tail = _word_buckets(w, dim)
        ids.extend(buckets)
        if head is not None:
            ids.append(zlib.crc32(tail, head) % dim)
        head = crc
    if not ids:
        index, counts = np.zeros(0, np.int64), np.zeros(0, np.float32)
    else:
        index, n = unique_counts(np.fromiter(ids, np.int64, len(ids)))
        counts = _SUBLINEAR[n - 1] if n.size and int(n.max()) <= len(_SUBLINEAR) else \
            1.0 + np.log(n.astype(np.float32))
    index.flags.writeable = counts.flags.writeable = False  # shared through the cache
    return index, counts


def tfidf(text: str, idf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(indices, values) of one text's L2-normalised TF-IDF vector."""
    index, tf = hashed_counts(text, len(idf))
    values = tf * idf.take(index)
    # np.linalg.norm's own sum of squares (the BLAS dot product), its square root in float64: rounded to float32
    # for the division, that is the float32 square root np.sqrt gave (double rounding is innocuous for a square
    # root: 53 >= 2 * 24 + 2 bits)
    norm = math.sqrt(float(np.dot(values, values)))
    if norm > 0:
        values /= norm
    return index, values


def fit_idf(texts: Sequence[str], dim: int) -> np.ndarray:
    """Smoothed IDF per bucket: log((1 + n) / (1 + df)) + 1."""
    df = np.zeros(dim, dtype=np.float64)
    for text in texts:
        df[hashed_counts(text, dim)[0]] += 1
    return (np.log((1 + len(texts)) / (1 + df)) + 1).astype(np.float32)


def tfidf_matrix(texts: Sequence[str], idf: np.ndarray) -> sparse.csr_matrix:
    rows, cols, vals = [], [], []
    for i, text in enumerate(texts):
        index, values = tfidf(text, idf)
        rows.append(np.full(len(index), i))
        cols.append(index)
        vals.append(values)
    if not texts:
        return sparse.csr_matrix((0, len(idf)), dtype=np.float32)
    return sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                             shape=(len(texts), len(idf)), dtype=np.float32)
