"""benchmarks/sessions.py on a few conversations: the figures it reports come from the real Router, so a sticky
run never switches inside a tool loop while a free random one does, and MT-Bench's turns get judged scores."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
sys.path.insert(0, str(BENCHMARKS))
import sessions


def test_tool_loops_sticky_never_switch_inside_a_loop():
    loops = sessions.tool_loops(40, seed=3)
    assert all(c[1][-1]["role"] == "tool" for c in loops)  # every conversation has at least one tool round
    result = asyncio.run(sessions.measure("random", "t", loops, None))["metrics"]
    assert result["sticky_loop_switches"]["mean"] == 0 and result["free_loop_switches"]["mean"] > 0.5
    assert result["delta_switches"]["ci95"][1] < 0


@pytest.mark.skipif(not (SHARED / "routellm").exists(), reason="the shared RouteLLM data is not here")
def test_mt_bench_turns_are_scored_by_the_judge():
    questions, scores = sessions.mt_bench(SHARED)
    assert len(questions) == 72
    sample = questions[:10]
    result = asyncio.run(sessions.measure("random", "m", [sessions.mt_requests(q) for q in sample],
                                          sessions.mt_quality(sample, scores)))
    assert 1 <= result["metrics"]["free_score"]["mean"] <= 10 and result["turns"] == 20
