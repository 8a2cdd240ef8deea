"""`minilm-onnx` batches texts of like length together: the rows still come back in the order asked."""

from __future__ import annotations

import numpy as np

from turnout.models.encoders import get_encoder


def test_onnx_batches_keep_the_callers_order():
    encoder = get_encoder("minilm-onnx")
    texts = [("word " * (n % 7 * 9 + 1)) + f"item {n}" for n in range(40)]  # lengths out of order, > one batch
    batched = encoder.encode(texts, batch_size=8)
    one_by_one = np.vstack([encoder.encode([t]) for t in texts])
    assert batched.shape == (40, encoder.dim)
    assert np.allclose(batched, one_by_one, atol=1e-4)
