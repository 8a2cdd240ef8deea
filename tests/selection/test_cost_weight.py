"""cost_weight prices a model's cost against its predicted quality, so it is never negative: a negative weight
pays the selector to pick the dearer model. Rejected in a config and in an artifact's router.json by a real
`turnout serve`, never produced by `turnout calibrate`, and the shipped routers are calibrated within range."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from tests.conftest import base_config
from tests.process import turnout_process
from turnout.eval.table import RoutingTable
from turnout.selection import selectors
from turnout.selection.base import BUILTIN_ROUTERS
from turnout.testing import free_port

GPT4, MIXTRAL = "gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1"


def svm_config(upstream_url: str, algorithm: dict) -> dict:
    config = base_config(upstream_url)
    config["models"] = {name: {"provider": "openai", "base_url": f"{upstream_url}/v1", "model": "mock-small",
                               "cost": cost} for name, cost in ((GPT4, {"input": 10, "output": 30}),
                                                                (MIXTRAL, {"input": 0.6, "output": 0.6}))}
    config["signals"] = {}
    config["decisions"] = [{"name": "default", "priority": 0, "models": [GPT4, MIXTRAL], "algorithm": algorithm}]
    return config


def serve_and_fail(config: dict, tmp_path: Path) -> str:
    """`turnout serve` on a config it must refuse: returns what it printed; fails the test if it serves."""
    path = tmp_path / "turnout.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.run([sys.executable, "-m", "turnout.cli", "serve", "--config", str(path), "--port",
                           str(free_port()), "--no-watch"], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output
    return output


def test_serve_refuses_a_negative_cost_weight_in_the_config(upstream, tmp_path):
    config = svm_config(upstream.url, {"name": "svm", "artifact": "builtin:gsm8k-svm", "params": {"cost_weight": -0.04}})
    output = serve_and_fail(config, tmp_path)
    assert "decisions[0].algorithm.params.cost_weight" in output and "greater than or equal to 0" in output


def test_serve_refuses_an_artifact_whose_router_json_has_a_negative_cost_weight(upstream, tmp_path):
    artifact = tmp_path / "routers" / "svm"
    shutil.copytree(BUILTIN_ROUTERS / "gsm8k-svm", artifact)
    meta = json.loads((artifact / "router.json").read_text())
    meta["params"]["cost_weight"] = -0.0437  # what the shipped gsm8k-svm once held
    (artifact / "router.json").write_text(json.dumps(meta))
    output = serve_and_fail(svm_config(upstream.url, {"name": "svm", "artifact": str(artifact)}), tmp_path)
    assert "params.cost_weight" in output and "greater than or equal to 0" in output


def test_the_shipped_routers_have_a_cost_weight_in_range_and_serve(upstream, tmp_path):
    for directory in BUILTIN_ROUTERS.iterdir():
        assert json.loads((directory / "router.json").read_text())["params"]["cost_weight"] >= 0, directory.name
    config = svm_config(upstream.url, {"name": "svm", "artifact": "builtin:gsm8k-svm"})
    with turnout_process(config, tmp_path) as server:
        answer = httpx.post(f"{server.url}/v1/route", timeout=30, json={
            "model": "auto", "messages": [{"role": "user", "content": "Natalia sold clips to 48 of her friends in "
                                           "April, and then she sold half as many clips in May. How many clips did "
                                           "Natalia sell altogether in April and May?"}]})
        assert answer.status_code == 200, answer.text


def test_a_learned_router_cannot_be_trained_with_a_negative_cost_weight(tmp_path):
    from pydantic import ValidationError

    from turnout.eval.harness import train

    table = RoutingTable(["a", "b", "c", "d"], ["x", "y"], np.array([[1, 0], [0, 1], [1, 0], [0, 1.0]]),
                         np.ones((4, 2)), splits=["train"] * 4)
    with pytest.raises(ValidationError, match="cost_weight"):
        train(table, "knn", {"k": 2, "cost_weight": -1}, tmp_path / "knn")
    with pytest.raises(ValidationError, match="latency_weight"):
        train(table, "multi_objective", {"latency_weight": -0.5}, tmp_path / "mo")


@pytest.fixture
def timid_router(tmp_path):
    """A router whose predicted qualities favour the cheap model on every prompt while the dear model is the
    better one: only a negative cost_weight would send it to the dear model."""
    prompts = [f"Solve problem number {i}: what is {i} + {2 * i}?" for i in range(40)]
    scores = np.tile([1.0, 0.0], (40, 1))
    scores[::2] = [1.0, 1.0]
    costs = np.tile([0.01, 0.001], (40, 1))
    table = RoutingTable(prompts, ["dear", "cheap"], scores, costs, splits=["test"] * 40)
    selector = selectors.get("best_single")().fit(table)
    selector.mean_quality_ = np.array([0.4, 0.6])  # wrong on purpose
    selector.save(tmp_path / "timid")
    rows = ["prompt,model,score,cost_usd,split"] + [f'"{p}",{m},{scores[i, j]},{costs[i, j]},test'
                                                    for i, p in enumerate(prompts) for j, m in enumerate(table.models)]
    (tmp_path / "table.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "timid", tmp_path / "table.csv"


def test_calibrate_searches_only_non_negative_weights(timid_router):
    router, data = timid_router
    before = (router / "router.json").read_text()
    result = subprocess.run([sys.executable, "-m", "turnout.cli", "calibrate", "--router", str(router), "--data",
                             str(data), "--target", "quality=0.95"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "no cost_weight ≥ 0" in result.stderr and "Traceback" not in result.stderr
    assert (router / "router.json").read_text() == before  # nothing negative written


def test_svm_predicts_calibrated_qualities_so_weight_zero_prefers_the_better_model():
    # no prompt tells the models apart; the dear model is right 85 % of the time, the cheap one 35 %
    rng = np.random.default_rng(0)
    prompts = [f"question {i} about {w}" for i, w in enumerate(rng.choice(["cats", "tax", "rivers", "jazz"], 240))]
    scores = np.column_stack([rng.random(240) < 0.85, rng.random(240) < 0.35]).astype(float)
    table = RoutingTable(prompts, ["dear", "cheap"], scores, np.tile([0.01, 0.001], (240, 1)), splits=["train"] * 240)
    svm = selectors.get("svm")().fit(table)
    from turnout.models.encoders import get_encoder

    predicted = svm.predict_quality(get_encoder(svm.encoder).encode(prompts)).mean(axis=0)
    assert predicted == pytest.approx([0.85, 0.35], abs=0.08)


SHIPPED = Path(__file__).resolve().parents[1] / "data" / "shared"  # a sample, see its README
FULL = Path(__file__).resolve().parents[3] / "shared" / "data"
DATA = [pytest.param(SHIPPED, id="shipped-sample")] + ([pytest.param(FULL, id="full")] if FULL.exists() else [])


# the sample holds the whole test split of both tables, in the full data's order (the bootstrap resamples by
# position), so it must give the published figures exactly
@pytest.mark.parametrize("shared", DATA)
def test_the_shipped_routers_published_test_figures_reproduce(shared):
    from turnout.eval.datasets import load_named
    from turnout.eval.harness import operating_point

    for name, dataset in (("gsm8k-svm", "gsm8k"), ("llmrouter-hybrid", "llmrouter"), ("llmrouter-ensemble", "llmrouter")):
        published = json.loads((BUILTIN_ROUTERS / name / "router.json").read_text())["held_out_test"]
        assert operating_point(load_named(dataset, shared), BUILTIN_ROUTERS / name, "test") == published, name
        low, high = published["quality_share_ci95"]
        assert low <= published["quality_share"] <= high


def test_platt_sigmoid_is_platts_method():
    from turnout.selection.ranking import platt_sigmoid

    rng = np.random.default_rng(0)
    margins = rng.normal(size=2000)
    positive = rng.random(2000) < 1 / (1 + np.exp(-(2 * margins - 0.5)))
    a, c = platt_sigmoid(margins, positive)
    assert (a, c) == (pytest.approx(2, abs=0.3), pytest.approx(-0.5, abs=0.2))
    try:  # scikit-learn's own implementation of Platt's procedure (smoothed targets): P = 1 / (1 + exp(A·f + B))
        from sklearn.calibration import _sigmoid_calibration
    except ImportError:
        return
    big_a, big_b = _sigmoid_calibration(margins, positive)
    assert (a, c) == (pytest.approx(-big_a, rel=1e-4), pytest.approx(-big_b, rel=1e-4))
    # separable margins: the smoothed targets keep the slope finite
    a, _ = platt_sigmoid(np.array([-2.0, -1.0, 1.0, 2.0]), np.array([False, False, True, True]))
    assert 0 < a < 50
