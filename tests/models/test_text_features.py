"""Hashed n-gram TF-IDF: the cached per-word hashing gives exactly the n-grams' buckets, and the batch matrix the
per-text vectors."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from turnout.models.text_features import (
    fit_idf,
    hashed_counts,
    ngrams,
    tfidf,
    tfidf_matrix,
)

TEXTS = ["Which court hears appeals on tort claims?", "ｆｕｌｌ width and Ünïcödé", "a", "", "the the the cat",
         "def f(x):\n    return x ** 2  # square"]


@pytest.mark.parametrize("text", TEXTS)
def test_hashed_counts_are_the_ngrams_buckets(text):
    expected: dict[int, int] = {}
    for gram in ngrams(text):
        bucket = zlib.crc32(gram.encode("utf-8")) % 4096
        expected[bucket] = expected.get(bucket, 0) + 1
    index, counts = hashed_counts(text, 4096)
    assert dict(zip(index.tolist(), counts.tolist())) == pytest.approx(
        {k: 1 + np.log(v) for k, v in expected.items()})


def test_ngrams_are_words_bigrams_and_character_grams_inside_words():
    assert ngrams("Hi there") == ["w hi", "w there", "b hi there", " hi", "hi ", " hi ", " th", "the", "her", "ere",
                                  "re ", " the", "ther", "here", "ere "]


def test_the_matrix_rows_are_the_normalised_vectors():
    idf = fit_idf(TEXTS, 4096)
    assert idf.shape == (4096,) and idf.min() >= 1.0
    matrix = tfidf_matrix(TEXTS, idf).toarray()
    for row, text in zip(matrix, TEXTS):
        index, values = tfidf(text, idf)
        dense = np.zeros(4096, dtype=np.float32)
        dense[index] = values
        assert np.allclose(row, dense) and (not text or abs(np.linalg.norm(row) - 1) < 1e-5)
