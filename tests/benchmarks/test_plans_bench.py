"""benchmarks/plans.py on a tiny setting: a real server and the scripted mock, every case run, and each case's
responses carry the attempts the case claims (no timed assertions: the figures are the script's to report)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.benchmarks import ROOT, load_benchmark

EXPECTED = {
    "single": "-",
    "cascade_accept": "cheap:answer:accepted",
    "cascade_3": "cheap:answer:rejected,mid:answer:rejected,strong:answer:accepted",
    "vote": "cheap:answer:picked,mid:answer:candidate,strong:answer:candidate",
    "judge_pick": "cheap:answer:candidate,mid:answer:picked,strong:answer:candidate,judge:judge:judge",
    "fuse": "cheap:answer:candidate,mid:answer:candidate,strong:answer:candidate,judge:judge:accepted",
    "first_valid": "cheap:answer:accepted,mid:answer:cancelled,strong:answer:cancelled",
    "multi_round": "strong:answer:tool,cheap:tool:tool,strong:answer:accepted",
}


def bench():
    return load_benchmark("plans")


def test_every_case_runs_the_attempts_it_names(tmp_path):
    out = tmp_path / "plans.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks/plans.py"), "--json", str(out), "--requests", "8",
                           "--rounds", "1", "--loadgen", "aiohttp"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert set(EXPECTED) == set(bench().CASES)
    for scenario in ("non_stream", "stream"):
        assert set(results[scenario]) == set(EXPECTED), scenario
        for case, row in results[scenario].items():
            assert row["errors"] == 0, (scenario, case)
            assert row["marks"] == {EXPECTED[case]: row["requests"]}, (scenario, case, row["marks"])
            assert row["cpu_ms_per_request"] > 0 and row["loadgen_cpu_ms_per_request"] >= 0
            assert row["cpu_ratio_to_single"] == pytest.approx(
                row["cpu_ms_per_request"] / results[scenario]["single"]["cpu_ms_per_request"], rel=0.01)
    assert results["meta"]["cases"]["cascade_3"]["plan"]["name"] == "cascade"
    assert "× single" in done.stdout


def test_an_unknown_case_is_refused_by_name(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks/plans.py"), "--json", str(tmp_path / "x.json"),
                           "--only", "cascade_accept,casade"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode != 0 and "unknown case(s) casade" in done.stderr


def test_the_config_gives_each_case_its_own_decision():
    b = bench()
    config = b.config("http://127.0.0.1:1", list(b.CASES))
    from turnout.config.loader import parse_config

    loaded = parse_config(config)
    assert [d.name for d in loaded.decisions] == [*b.CASES, "default"]
    tags = [b.tag(c) for c in b.CASES]
    assert not any(a != c and a in c for a in tags for c in tags)  # no case's tag matches another's decision
