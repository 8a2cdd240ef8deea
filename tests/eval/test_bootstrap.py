"""Bootstrap intervals of the eval metrics, prompt-blind routers as baselines, and `turnout eval` reporting both
(a real `turnout` process on a CSV routing table)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from turnout.eval.bootstrap import Resamples
from turnout.eval.harness import beat_random, score_baselines, score_router
from turnout.eval.table import RoutingTable


def make_table(n: int, seed: int = 0) -> RoutingTable:
    # the strong model (cost 10) solves 80 % of prompts, the weak one (cost 1) 50 %
    rng = np.random.default_rng(seed)
    scores = np.column_stack([rng.random(n) < 0.5, rng.random(n) < 0.8]).astype(float)
    return RoutingTable([f"p{i}" for i in range(n)], ["weak", "strong"], scores, np.tile([1.0, 10.0], (n, 1)),
                        splits=["test"] * n)


def test_intervals_hold_the_estimate_shrink_with_more_prompts_and_repeat_with_the_seed():
    small, big = make_table(60), make_table(960)
    widths = []
    for table in (small, big):
        entry = score_router(table, table.scores, Resamples(table, 400), "oracle-like")
        for metric in ("aiq", "apgr", "quality_at_best_single_cost"):
            low, high = entry["ci95"][metric]
            assert low <= entry[metric] <= high, metric
        widths.append(entry["ci95"]["aiq"][1] - entry["ci95"]["aiq"][0])
    assert widths[1] < widths[0] / 2  # 16× the prompts: about ¼ the width
    again = score_router(small, small.scores, Resamples(small, 400), "oracle-like")
    assert again["ci95"] == score_router(small, small.scores, Resamples(small, 400), "x")["ci95"]
    other_seed = score_router(small, small.scores, Resamples(small, 400, seed=1), "x")["ci95"]
    assert other_seed != again["ci95"]


def test_a_noise_margin_over_random_is_not_called_a_gain():
    # a router that is the random mix except on one prompt of 400: it "beats random" on the sample, barely
    table = make_table(400, seed=3)
    predicted = np.tile([0.5, 0.8], (len(table), 1))
    lucky = int(np.flatnonzero((table.scores[:, 0] == 1) & (table.scores[:, 1] == 0))[0])
    predicted[lucky] = [0.9, 0.1]
    boot = Resamples(table, 400)
    entry = score_router(table, predicted, boot, "lucky")
    assert entry["gain_over_random"]["mean"] > 0 and not entry["prompt_blind"]
    assert entry["ci95"]["gain_over_random_mean"][0] <= 0  # the interval says: not distinguishable from random
    report = {"routers": {"lucky": entry, "best_single": score_router(table, np.tile([0.5, 0.8], (400, 1)), boot,
                                                                        "best_single")}}
    counts = beat_random(report)
    assert counts["prompt_blind_left_out"] == ["best_single"] and counts["routers"] == 1
    assert counts["mean_gain_ci95_above_0"] == []


def test_baselines_are_labelled_and_carry_intervals():
    table = make_table(100)
    out = score_baselines(table, Resamples(table, 200))
    assert set(out) == {"single:weak", "single:strong", "random", "oracle"}
    assert all(entry["baseline"] and "aiq" in entry["ci95"] for entry in out.values())
    assert out["random"]["prompt_blind"] and not out["oracle"]["prompt_blind"]
    low, high = out["single:strong"]["ci95"]["quality_at_best_single_cost"]
    assert low < table.scores[:, 1].mean() < high


def turnout(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "turnout.cli", *args], capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "COLUMNS": "250"})


@pytest.fixture
def data(tmp_path):
    # math prompts: only the big model solves them; chat prompts: both do — a router can tell them apart
    math = [f"Solve for x: {i}x + {i + 3} = {2 * i + 40}." for i in range(1, 31)]
    chat = [f"Write a short poem about the colour number {i}." for i in range(1, 31)]
    rows = ["prompt,model,score,cost_usd,split"]
    for i, p in enumerate(math + chat):
        split = "test" if i % 3 == 0 else "train"
        rows += [f'"{p}",small,{int(p in chat)},0.001,{split}', f'"{p}",big,1,0.01,{split}']
    path = tmp_path / "table.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_turnout_eval_reports_intervals_and_prompt_blind_baselines(data, tmp_path):
    for router in ("knn", "best_single"):
        result = turnout("train", "--data", str(data), "--router", router, "--params", "k=3" if router == "knn"
                         else "cost_weight=0", "--out", str(tmp_path / router))
        assert result.returncode == 0, result.stderr
    out = tmp_path / "eval.json"
    result = turnout("eval", "--data", str(data), "--routers", f"{tmp_path / 'knn'},{tmp_path / 'best_single'}",
                     "--json", str(out), "--resamples", "300")
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["bootstrap"]["resamples"] == 300 and report["bootstrap"]["level"] == 0.95
    for entry in [*report["routers"].values(), *report["baselines"].values()]:
        assert {"aiq", "apgr", "cpt50", "cpt80", "quality_at_best_single_cost", "cost_at_95pct_best_single",
                "gain_over_random_mean"} <= set(entry["ci95"])
    assert report["routers"]["best_single"]["prompt_blind"] and not report["routers"]["knn"]["prompt_blind"]
    assert report["beat_random"]["routers"] == 1 and report["beat_random"]["prompt_blind_left_out"] == ["best_single"]
    low, high = report["routers"]["knn"]["ci95"]["aiq"]
    assert f"{report['routers']['knn']['aiq']:.4f} ({low:.4f}–{high:.4f})" in result.stdout
    assert "prompt-blind baseline" in result.stdout and "of 1 routers" in result.stdout


def test_an_operating_point_has_intervals_around_its_figures(data, tmp_path):
    from turnout.eval.harness import operating_point
    from turnout.eval.table import load_table

    result = turnout("train", "--data", str(data), "--router", "knn", "--params", "k=3", "--params",
                     "cost_weight=0.5", "--out", str(tmp_path / "knn"))
    assert result.returncode == 0, result.stderr
    point = operating_point(load_table(data), tmp_path / "knn", "test", resamples=300)
    assert point["best_single"] == "big" and point["prompts"] == 20
    for key in ("quality_share", "cost_share", "strong_call_share"):
        low, high = point[f"{key}_ci95"]
        assert low <= point[key] <= high, key
    assert point["cost_share"] < 1  # the chat prompts go to the small model
