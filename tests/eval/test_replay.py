"""`turnout replay` on a small table: the JSON's fields, regret against the oracle never negative, the PNG."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

MODELS = {"cheap": 0.1, "good": 1.0, "bad": 0.5}


def _table(path, n=120):
    rng = np.random.default_rng(0)
    with path.open("w") as f:
        for i in range(n):
            for model, price in MODELS.items():
                p = {"cheap": 0.4, "good": 0.8, "bad": 0.1}[model]
                f.write(json.dumps({"prompt": f"question number {i}", "model": model, "score": float(rng.random() < p),
                                    "cost_usd": price * 1e-4}) + "\n")


def _config(path, algorithm):
    models = "\n".join(f"  {m}: {{provider: openai, base_url: 'http://127.0.0.1:9/v1', cost: {{input: {p}, output: {p}}}}}"
                       for m, p in MODELS.items())
    path.write_text(f"models:\n{models}\ndecisions:\n  - name: learn\n    models: [cheap, good, bad]\n"
                    f"    algorithm: {{name: {algorithm}, params: {{seed: 1}}}}\n")


def _replay(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "turnout.cli", "replay", *args], check=False, capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)


def test_replay_reports_regret_load_and_writes_a_plot(tmp_path):
    _table(tmp_path / "t.jsonl")
    _config(tmp_path / "c.yaml", "thompson")
    done = _replay(tmp_path, "--config", "c.yaml", "--data", "t.jsonl", "--json", "out.json", "--plot", "out.png",
                   "--order", "random", "--seed", "3")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "out.json").read_text())
    for key in ("mean_quality", "mean_cost_usd", "total_cost_usd", "mean_reward", "best_fixed", "oracle",
                "regret_vs_best_fixed", "regret_vs_oracle", "explore_share", "load", "switches", "curve"):
        assert key in report, key
    assert report["rows"] == 120 and report["order"] == "random" and report["seed"] == 3
    assert report["regret_vs_oracle"] >= 0
    assert all(r >= -1e-9 for r in report["curve"]["regret_vs_oracle"])
    assert 0 < report["explore_share"] < 1
    assert abs(sum(report["load"].values()) - 1) < 1e-9
    assert report["best_fixed"]["model"] == "good"
    assert (tmp_path / "out.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "regret vs oracle" in done.stdout


def test_an_online_learner_beats_its_frozen_self_and_limit_and_order_apply(tmp_path):
    _table(tmp_path / "t.jsonl", n=300)
    _config(tmp_path / "c.yaml", "ucb1")
    learn = _replay(tmp_path, "--config", "c.yaml", "--data", "t.jsonl", "--json", "a.json", "--order", "table")
    frozen = _replay(tmp_path, "--config", "c.yaml", "--data", "t.jsonl", "--json", "b.json", "--feedback", "none",
                     "--limit", "200")
    assert learn.returncode == 0 and frozen.returncode == 0, learn.stderr + frozen.stderr
    a, b = json.loads((tmp_path / "a.json").read_text()), json.loads((tmp_path / "b.json").read_text())
    assert b["rows"] == 200 and a["order"] == "table"
    assert a["load"]["good"] > 0.5 > b["load"]["good"]


def test_a_config_naming_a_model_the_table_lacks_is_refused(tmp_path):
    _table(tmp_path / "t.jsonl", n=10)
    _config(tmp_path / "c.yaml", "ucb1")
    (tmp_path / "c.yaml").write_text((tmp_path / "c.yaml").read_text().replace("[cheap, good, bad]", "[cheap, good, other]")
                                     .replace("models:\n", "models:\n  other: {provider: openai, base_url: 'http://127.0.0.1:9/v1'}\n", 1))
    done = _replay(tmp_path, "--config", "c.yaml", "--data", "t.jsonl")
    assert done.returncode == 1 and "no scores for other" in done.stderr
