"""benchmarks/scorer_cv.py: the recipe sweep on training prompts only, its cascade arithmetic and its coverage
features, on the GSM8K rows shipped in tests/data/shared."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from tests.benchmarks import ROOT, load_benchmark

SAMPLE = ROOT / "tests/data/shared"


def bench():
    return load_benchmark("scorer_cv")


def test_the_sweep_runs_on_training_prompts_only_and_pairs_every_recipe_with_v3():
    b = bench()
    report = b.run(SAMPLE, reps=2, only=["v3", "plus-gpt4-answers 0.1", "benefit"])
    assert report["prompts"] == 41  # the sample's training prompts; its test prompts never enter
    assert set(report["recipes"]) == {"v3", "plus-gpt4-answers 0.1", "benefit"}
    v3 = report["recipes"]["v3"]
    assert v3["vs_v3"] == {"per_rep": [0.0, 0.0], "mean": 0.0, "lower_in": 0}
    for r in report["recipes"].values():
        assert len(r["auc"]) == len(r["cost_at_95"]) == 2 and all(0 <= a <= 1 for a in r["auc"])
        assert set(r["deployed"]) == {"+0.000", "+0.005", "+0.010"}
        assert all(0 < c <= 2 for c in r["cost_at_95"])  # both calls paid at most
    assert "plus-gpt4-answers 0.1" in b.table_text(report)


def fake(weak_ok, strong_ok, weak_cost, strong_cost):
    return SimpleNamespace(weak_ok=np.array(weak_ok, float), strong_ok=np.array(strong_ok, float),
                           weak_cost=np.array(weak_cost, float), strong_cost=np.array(strong_cost, float))


def test_least_cost_escalates_the_lowest_scores_until_the_target_and_pays_both_calls():
    b = bench()
    d = fake([1, 0, 1, 0], [1, 1, 1, 1], [0.1] * 4, [1.0] * 4)
    # a perfect judge escalates the two wrong answers: 4 × 0.1 + 2 × 1.0, over GPT-4's 4.0
    cost, threshold = b.least_cost(d, np.array([0.9, 0.1, 0.8, 0.2]), np.arange(4))
    assert cost == pytest.approx(2.4 / 4.0) and threshold == 0.8
    # a judge that ranks a right answer lowest must escalate three
    cost, _ = b.least_cost(d, np.array([0.9, 0.3, 0.1, 0.2]), np.arange(4))
    assert cost == pytest.approx(3.4 / 4.0)


def test_coverage_features_read_the_question_against_the_answer():
    b = bench()
    q = "Tom has 3 boxes of 12 pens and gives away two pens. How many pens does he have left?"
    right = b.coverage_features(q, "3 * 12 = 36 pens. He gives away 2: 36 - 2 = 34 pens.\n#### 34")
    sloppy = b.coverage_features(q, "3 * 12 * 12 = 432. 432 - 500 = -68.\n#### 2.5")
    names = ["words_unused", "unused_share", "negative", "fraction_for_count", "overused", "unit_missing",
             "restates", "one_step"]
    r, s = dict(zip(names, right)), dict(zip(names, sloppy))
    assert r["words_unused"] == 0 and r["negative"] == 0 and r["fraction_for_count"] == 0 and r["unit_missing"] == 0
    assert s["words_unused"] == 1 and s["negative"] == 1 and s["fraction_for_count"] == 1 and s["unit_missing"] == 1
    assert s["overused"] == 1  # 12 written once in the question, twice in one step
