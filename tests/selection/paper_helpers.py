"""Shared by the tests of the routers named after papers (test_routerdc, test_graph, test_mf): a finite-difference
gradient check, an end-to-end train → evaluate run on a slice of the shipped LLMRouter sample, and an artifact
written by an earlier method under the same name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SHIPPED = Path(__file__).resolve().parents[1] / "data" / "shared"


def check_gradient(loss, params: list[np.ndarray], analytic: list[np.ndarray], rng: np.random.Generator,
                   probes: int = 6, step: float = 1e-6) -> None:
    """Central differences at `probes` random coordinates of every parameter against the analytic gradient."""
    for p, g in zip(params, analytic):
        for flat in rng.choice(p.size, min(probes, p.size), replace=False):
            index = np.unravel_index(flat, p.shape)
            keep = p[index]
            p[index] = keep + step
            up = loss()
            p[index] = keep - step
            down = loss()
            p[index] = keep
            numeric = (up - down) / (2 * step)
            assert abs(numeric - g[index]) <= 1e-5 + 1e-4 * abs(numeric), (index, numeric, g[index])


def train_and_evaluate(router: str, params: dict, tmp_path: Path) -> dict:
    """`turnout train` and `turnout eval` (their library calls) on a slice of the shipped LLMRouter sample."""
    from turnout.eval.datasets import load_named
    from turnout.eval.harness import evaluate, train

    table = load_named("llmrouter", SHIPPED)
    rows = [i for i, s in enumerate(table.splits) if s == "train"][:120] + \
           [i for i, s in enumerate(table.splits) if s == "test"][:60]
    data = table.subset(rows, name="llmrouter-slice")
    train(data, router, params, tmp_path / router)
    report = evaluate(data, [tmp_path / router], resamples=50)
    return report["routers"][router]


def write_earlier_artifact(directory: Path, name: str, params: dict) -> Path:
    """A router.json and state.npz as the earlier implementation of `name` wrote them (no `method_`)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "router.json").write_text(json.dumps({
        "name": name, "params": params, "models": ["a", "b"], "encoder": "minilm-static", "fingerprint": "x",
        "turnout_version": "0.1.0", "state": {}}))
    np.savez_compressed(directory / "state.npz", w_=np.zeros((2, 2)))
    return directory
