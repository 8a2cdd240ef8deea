"""The feature-rich `ensemble` router: its features come from the request alone, its artifact carries what it
read at fit time, its calibration is monotone and its cross-validated knob meets its target on the training data."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from turnout.config import Cost
from turnout.context import RoutingContext
from turnout.eval.table import RoutingTable
from turnout.models.encoders import get_encoder
from turnout.models.request import request_embedding
from turnout.selection import Candidate, selectors
from turnout.selection.ensemble import SHAPE, prompt_shape

SHORT = ["What is 2 + 2?", "Name a colour.", "Say hi.", "Capital of France?", "Spell cat.", "Count to three.",
         "Is ice cold?", "Add 5 and 7.", "Name a fruit.", "What day follows Monday?"]
LONG = [("Read the following passage carefully and answer the question at the end. " * 6) + f"Question {i}: "
        "which of the options is implied?\nA) first\nB) second\nC) third\nD) fourth" for i in range(10)]


@pytest.fixture(scope="module")
def table():
    # the small model answers the short prompts, only the big one the long multiple-choice ones
    prompts = SHORT + LONG
    scores = np.array([[1.0, 1.0]] * len(SHORT) + [[0.0, 1.0]] * len(LONG))
    costs = np.tile([0.0001, 0.01], (len(prompts), 1))
    return RoutingTable(prompts, ["small", "big"], scores, costs, splits=["train"] * len(prompts), name="shape")


def fitted(table, **params):
    return selectors.get("ensemble")(members=2, hidden=16, max_iter=600, **params).fit(table)


def test_prompt_shape_counts_what_it_says():
    row = dict(zip(SHAPE, prompt_shape(["Pick one?\nA) 1\nB) 22\nC) x = f(y)"])[0]))
    text = "Pick one?\nA) 1\nB) 22\nC) x = f(y)"
    assert row["log characters"] == pytest.approx(np.log1p(len(text)))
    assert row["log lines"] == pytest.approx(np.log1p(3))
    assert row["answer options"] == 3 and row["question marks"] == 1
    assert row["digit share"] == pytest.approx(3 / len(text))
    assert prompt_shape([]).shape == (0, len(SHAPE))


def test_select_reads_the_request_text_as_training_did(table):
    selector = fitted(table)

    async def scores(text):
        ctx = RoutingContext({"messages": [{"role": "user", "content": text}]})
        await request_embedding(ctx, selector.encoder)
        choice = selector.select(ctx, [Candidate("small", Cost(input=1, output=1)), Candidate("big", Cost(input=1, output=1))])
        return choice, np.asarray(ctx.cache[f"embedding:{selector.encoder}:last_user"])

    for text in (SHORT[0], LONG[0]):
        choice, vector = asyncio.run(scores(text))
        expected = selector.predict([text], vector[None, :])[0]
        assert [choice.scores["small"], choice.scores["big"]] == pytest.approx(expected.tolist(), abs=1e-6)
    # the shape features separate the two kinds even though both are in English prose
    encode = get_encoder().encode
    assert selector.predict(LONG[:3], encode(LONG[:3]))[:, 0].max() < selector.predict(SHORT[:3], encode(SHORT[:3]))[:, 0].min()


def test_artifact_keeps_the_signal_weights_it_was_fitted_with(table, tmp_path, monkeypatch):
    from turnout.models.classifier import load_classifier

    selector = fitted(table)
    assert np.array_equal(selector.domain_w_, load_classifier("builtin:domain").coef)
    selector.save(tmp_path / "ens")

    def retrained(_name):
        raise AssertionError("a fitted ensemble must not read the shipped classifiers again")

    monkeypatch.setattr("turnout.models.classifier.load_classifier", retrained)
    loaded = selectors.get("ensemble").load(tmp_path / "ens")
    x = get_encoder().encode(SHORT[:2] + LONG[:2])
    assert np.allclose(loaded.predict(SHORT[:2] + LONG[:2], x), selector.predict(SHORT[:2] + LONG[:2], x), atol=1e-6)


def test_calibration_is_monotone_per_model(table):
    selector = fitted(table)
    for grid, values in zip(selector.calibration_x_, selector.calibration_y_):
        assert np.all(np.diff(grid) > 0) and np.all(np.diff(values) >= -1e-7)


def test_target_quality_sets_a_knob_that_meets_it_out_of_fold(table):
    free = fitted(table)
    assert free.cost_weight == 0.0
    knob = fitted(table, target_quality=0.9)
    assert knob.cost_weight > 0  # the small model answers half the prompts: some cost weight keeps 90 % of "big"
    with pytest.raises(ValueError, match="target_quality"):
        fitted(table, target_quality=0.0)
