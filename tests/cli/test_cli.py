"""The CLI, run as a user runs it: a real `turnout` process."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import base_config
from turnout.testing import free_port


def turnout(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "turnout.cli", *args], capture_output=True, text=True, timeout=120,
                          env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})


def test_version():
    from turnout import __version__

    result = turnout("--version")
    assert result.returncode == 0 and result.stdout == f"turnout {__version__}\n"
    assert __version__ == importlib.metadata.version("turnout")  # the package and its metadata agree


def test_mock_upstream_entry_point_runs_without_warnings():
    """`python -W error -m turnout.testing.mock_upstream` dies at start-up if anything warns (it used to: the
    package imported the module before runpy ran it)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-W", "error", "-m", "turnout.testing.mock_upstream", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                reply = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=2,
                                   json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
                break
            except httpx.HTTPError:
                assert proc.poll() is None, proc.communicate()[1]
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"] == "echo: hi"
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=15)
    assert "Warning" not in stderr, stderr


def test_validate_good_and_bad(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(base_config("http://127.0.0.1:9")))
    result = turnout("validate", str(good))
    assert result.returncode == 0 and "ok" in result.stdout and "4 models" in result.stdout

    config = base_config("http://127.0.0.1:9")
    config["decisions"][0]["models"] = ["gpt5"]
    config["signals"]["code"]["kind"] = "keywrd"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    result = turnout("validate", str(bad))
    assert result.returncode == 1
    assert "decisions[0].models[0]: unknown model 'gpt5'" in result.stderr
    result = turnout("validate", str(tmp_path / "missing.yaml"))
    assert result.returncode == 1 and "cannot read" in result.stderr


def test_validate_reports_every_registry_problem(tmp_path):
    config = base_config("http://127.0.0.1:9")
    config["signals"]["code"]["kind"] = "keywrd"
    config["decisions"][1]["algorithm"] = {"name": "magic"}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    result = turnout("validate", str(bad))
    assert result.returncode == 1
    assert "signals.code.kind: unknown signal kind 'keywrd'; did you mean 'keyword'?" in result.stderr
    assert "decisions[1].algorithm.name: unknown selection algorithm 'magic'" in result.stderr


def test_route_prints_the_explanation_table():
    result = turnout("route", "What is 15 percent of 80?")
    assert result.returncode == 0, result.stderr
    for expected in ("signals", "hard_math", "percent", "decisions", "hard", "yes ← wins", "gpt-4-1106-preview"):
        assert expected in result.stdout


def test_route_json_and_direct_model(tmp_path):
    result = turnout("route", "hello", "--json")
    explanation = json.loads(result.stdout)
    assert explanation["decision"] == "default" and explanation["algorithm"] == "svm"  # the shipped learned router
    assert {c["model"] for c in explanation["candidates"]} == {"mixtral-8x7b-instruct-v0.1", "gpt-4-1106-preview"}
    assert explanation["model"] == max(explanation["candidates"], key=lambda c: c["score"])["model"]
    assert [s["name"] for s in explanation["signals"]] == ["hard_math", "long_prompt"]
    result = turnout("route", "hello", "--json", "--model", "gpt-4-1106-preview")
    assert json.loads(result.stdout)["mode"] == "direct"
    result = turnout("route", "hello", "--model", "gpt-9")
    assert result.returncode == 1 and "does not exist" in result.stderr


def test_models_lists_prices(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(base_config("http://127.0.0.1:9")))
    result = turnout("models", "--config", str(path))
    assert result.returncode == 0
    assert "claude-mock" in result.stdout and "anthropic" in result.stdout and "2.5" in result.stdout
    assert "routing aliases: auto" in result.stdout


SHIPPED = Path(__file__).resolve().parents[1] / "data" / "shared"  # a sample, see its README
FULL = Path(__file__).resolve().parents[3] / "shared" / "data"
DATA = [pytest.param(SHIPPED, id="shipped-sample")] + ([pytest.param(FULL, id="full")] if FULL.exists() else [])


@pytest.mark.parametrize("shared", DATA)
def test_eval_signals_reports_held_out_quality(tmp_path, shared):
    out = tmp_path / "signals.json"
    result = turnout("eval-signals", "--shared", str(shared), "--json", str(out),
                     "--pii-set", str(Path(__file__).resolve().parents[1] / "data" / "pii_labelled.jsonl"))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["jailbreak"]["f1"] >= 0.95
    assert report["domain"]["accuracy"] >= 0.75 and report["complexity"]["auc"] >= 0.7
    assert report["pii"]["recall"] >= 0.95 and report["pii"]["false_positives_on_clean_prompts"] == 0
    for task in ("domain", "complexity", "jailbreak"):  # the table shows each accuracy with its interval
        r = report[task]
        assert "{:.3f} ({:.3f}–{:.3f})".format(r["accuracy"], *r["accuracy_ci95"]) in result.stdout, task


def test_train_classifier_on_a_users_csv(tmp_path):
    data = tmp_path / "mine.csv"
    rows = ["text,label"] + [f"refund for order {i},billing" for i in range(6)] + \
        [f"the app crashes on screen {i},bug" for i in range(6)]
    data.write_text("\n".join(rows) + "\n")
    out = tmp_path / "mine.npz"
    result = turnout("train-classifier", "--data", str(data), "--out", str(out))
    assert result.returncode == 0, result.stderr
    config = base_config("http://127.0.0.1:9")
    config["signals"]["billing"] = {"kind": "domain", "domains": ["billing"], "artifact": str(out)}
    config["decisions"][0]["when"] = {"signal": "billing"}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    explanation = json.loads(turnout("route", "I want a refund for my last order", "--json", "--config",
                                     str(path)).stdout)
    assert explanation["decision"] == "code"
    bad = turnout("train-classifier", "--data", str(data), "--out", str(out), "--label-column", "kind")
    assert bad.returncode == 1 and "no column kind" in bad.stderr


def test_train_and_eval_on_a_users_csv(tmp_path):
    rows = ["prompt,model,score,cost_usd,split"]
    math = [f"Solve {i}x + {i + 1} = {3 * i} for x." for i in range(1, 31)]
    chat = [f"Write a short poem about the colour number {i}." for i in range(1, 31)]
    for i, p in enumerate(math + chat):
        split = "test" if i % 5 == 0 else "train"
        big = int(p in math or i % 2 == 0)  # the big model solves all math and half the poems
        rows += [f'"{p}",small,{int(p in chat)},0.001,{split}', f'"{p}",big,{big},0.01,{split}']
    data = tmp_path / "mine.csv"
    data.write_text("\n".join(rows) + "\n")
    result = turnout("train", "--data", str(data), "--router", "knn", "--params", "k=3", "--out", str(tmp_path / "knn"))
    assert result.returncode == 0, result.stderr
    report_path = tmp_path / "eval.json"
    result = turnout("eval", "--data", str(data), "--routers", str(tmp_path / "knn"), "--json", str(report_path),
                     "--plot", str(tmp_path / "curves.png"))
    assert result.returncode == 0, result.stderr
    report = json.loads(report_path.read_text())
    knn, random = report["routers"]["knn"], report["baselines"]["random"]
    assert knn["aiq"] > random["aiq"] and knn["apgr"] > 0.8 > random["apgr"]  # separable toy data
    assert (tmp_path / "curves.png").stat().st_size > 10_000
    result = turnout("calibrate", "--router", str(tmp_path / "knn"), "--data", str(data), "--target", "rate=0.2")
    assert result.returncode == 0, result.stderr
    weight = json.loads((tmp_path / "knn" / "router.json").read_text())["params"]["cost_weight"]
    assert weight > 0 and "strong-model calls" in result.stdout
    assert turnout("calibrate", "--router", str(tmp_path / "knn"), "--data", str(data), "--target",
                   "speed=1").returncode == 1
    bad = turnout("train", "--data", str(data), "--router", "knn", "--params", "k=many", "--out", str(tmp_path / "x"))
    assert bad.returncode == 1 and "--params: k:" in bad.stderr
    bad = turnout("train", "--data", str(data), "--router", "cheapest", "--out", str(tmp_path / "x"))
    assert bad.returncode == 1 and "learns nothing" in bad.stderr


def test_validate_warns_on_unset_secrets_but_serve_refuses(tmp_path):
    config = base_config("http://127.0.0.1:9")
    config["models"]["claude"]["api_key"] = "env:TURNOUT_TEST_UNSET_KEY"
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    result = turnout("validate", str(path))
    assert result.returncode == 0 and "1 warning(s)" in result.stdout
    assert "models.claude.api_key: environment variable TURNOUT_TEST_UNSET_KEY is not set" in result.stderr
    served = turnout("serve", "--config", str(path), "--port", "0")
    assert served.returncode == 1 and "TURNOUT_TEST_UNSET_KEY is not set" in served.stderr


def test_serve_refuses_an_unknown_log_level():
    run = subprocess.run([sys.executable, "-m", "turnout.cli", "serve", "--log-level", "loud"], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2 and "'loud' is not one of" in run.stdout + run.stderr
