"""`minilm-static2`: reads what MiniLM reads (256 tokens, [CLS] and [SEP]), and the numpy pieces that build it."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from turnout.models.encoders import get_encoder

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
from distill_static_encoder import conjugate_gradients, post_map


def test_static2_reads_only_minilms_256_tokens():
    encoder = get_encoder("minilm-static2")
    head = "Summarise the quarterly report for the board. " * 40  # well over 256 tokens
    assert len(encoder.tokenizer.encode(head).ids) == 256
    a, b = encoder.encode([head, head + " Then translate it into Japanese and add a haiku about taxes."])
    assert np.array_equal(a, b)
    short = encoder.encode(["Summarise the quarterly report.", "Summarise the quarterly report. Then translate it."])
    assert not np.allclose(short[0], short[1])


def test_static2_is_the_mapped_mean_of_its_rows():
    encoder = get_encoder("minilm-static2")
    text = "How do I reverse a linked list in Java?"
    ids = [t for t in encoder.tokenizer.encode(text).ids if t != encoder.unk]
    assert ids[0] == encoder.tokenizer.token_to_id("[CLS]") and ids[-1] == encoder.tokenizer.token_to_id("[SEP]")
    mean = encoder.table[ids].mean(axis=0)
    mapped = mean / np.linalg.norm(mean) @ encoder.post_map[:-1] + encoder.post_map[-1]
    assert np.allclose(encoder.encode([text])[0], mapped / np.linalg.norm(mapped), atol=1e-5)


def test_conjugate_gradients_solves_the_ridge_system():
    rng = np.random.default_rng(3)
    a = sp.random(120, 40, density=0.2, random_state=4, format="csr")
    rhs = rng.normal(size=(120, 5))
    exact = np.linalg.solve(a.T @ a + 0.1 * np.eye(40), a.T @ rhs)
    assert np.allclose(conjugate_gradients(a, rhs, 0.1, steps=200), exact, atol=1e-6)
    assert not np.allclose(conjugate_gradients(a, rhs, 0.1, steps=1), exact, atol=1e-3)


def test_post_map_recovers_a_rotation():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(400, 6))
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))  # a rotation keeps unit rows unit: the map is exactly linear
    mapping = post_map(3 * x, x @ q, ridge=1e-9)  # the inputs are normalised first, so the scale must not matter
    assert mapping.shape == (7, 6)
    assert np.allclose(mapping[:-1], q, atol=1e-4) and np.allclose(mapping[-1], 0, atol=1e-4)
