"""The benchmarks' load generators and scenario configs against a real `turnout serve` process: every request
counted once, failures counted as failures, odd bodies delivered byte for byte (the wrk script quotes them in
Lua), the cache scenarios' hit/miss check, and the CPU of the server's process tree measured."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import yaml

from tests.process import turnout_process
from turnout.config import parse_config

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
from _load import drive

GENERATORS = [pytest.param("aiohttp"),
              pytest.param("wrk", marks=pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed"))]
# a Lua long string ends at "]]" or "]=]"; quotes, backslashes and non-ASCII text must arrive unchanged too
ODD = ["a list [[1, 2]] and a ]=] bracket", 'quotes " and \\ backslash', "naïve café — ünïcode ✓", "x" * 3000]


def config(name: str, upstream_url: str) -> dict:
    return yaml.safe_load((BENCHMARKS / "configs" / name).read_text().replace("${UPSTREAM}", upstream_url))


@pytest.mark.parametrize("name", sorted(p.name for p in (BENCHMARKS / "configs").glob("*.yaml")))
def test_every_scenario_config_is_valid(name, upstream):
    parse_config(config(name, upstream.url))


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("generator", GENERATORS)
def test_each_request_is_counted_and_delivered(generator, stream, upstream, upstream_requests, tmp_path):
    bodies = [{"model": "auto", "stream": stream, "messages": [{"role": "user", "content": text}]} for text in ODD]
    with turnout_process(config("heuristic.yaml", upstream.url), tmp_path) as server:
        result = drive(f"{server.url}/v1/chat/completions", bodies, requests=40, concurrency=4, stream=stream,
                       pids=[server.proc.pid], generator=generator, warmup=4)
    assert (result.requests, result.errors) == (40, 0)
    assert result.sent >= 40 and len(result.latencies) >= 40 and result.rps > 0
    assert result.server_cpu_s > 0 and result.loadgen_cpu_s > 0
    received = {r["body"]["messages"][-1]["content"] for r in upstream_requests()}
    assert received == set(ODD)


@pytest.mark.parametrize("generator", GENERATORS)
def test_failed_requests_are_errors_not_answers(generator, upstream, tmp_path):
    body = {"model": "auto", "messages": [{"role": "user", "content": "fail please #error:500"}]}
    with turnout_process(config("heuristic.yaml", upstream.url), tmp_path) as server:
        result = drive(f"{server.url}/v1/chat/completions", body, requests=12, concurrency=3, stream=False,
                       generator=generator, warmup=0)
    assert result.requests == 12 and result.errors == 12 and result.rps == 0


@pytest.mark.parametrize("generator", GENERATORS)
def test_cache_scenario_outcomes_are_read_from_each_response(generator, upstream, tmp_path):
    prompts = ["How do I bake sourdough bread at home?", "What is the boiling point of ethanol?",
               "Summarise the causes of the French Revolution.", "Write a haiku about autumn rain.",
               "Which planets have rings?", "How does TCP congestion control work?"]
    bodies = [{"model": "auto", "messages": [{"role": "user", "content": p}]} for p in prompts]
    with turnout_process(config("cache.yaml", upstream.url), tmp_path) as server:
        url = f"{server.url}/v1/chat/completions"
        first = drive(url, bodies, requests=6, concurrency=1, stream=False, generator=generator, warmup=0,
                      mark_header="x-turnout-cache")
        again = drive(url, bodies, requests=6, concurrency=1, stream=False, generator=generator, warmup=0,
                      mark_header="x-turnout-cache")
    assert first.marks == {"miss": 6}
    assert again.marks == {"hit": 6}


@pytest.mark.parametrize("stream", [False, True])
def test_cascade_scenario_is_accepted_at_the_first_attempt(stream, upstream, tmp_path):
    """benchmarks/scenarios.py's cascade scenario claims to measure a cascade whose cheap answer is accepted:
    every response says so (x-turnout-plan-attempts), plain and streamed."""
    bodies = [{"model": "auto", "stream": stream, "messages": [{"role": "user", "content": text}]} for text in ODD]
    with turnout_process(config("cascade.yaml", upstream.url), tmp_path) as server:
        result = drive(f"{server.url}/v1/chat/completions", bodies, requests=8, concurrency=2, stream=stream,
                       generator="aiohttp", warmup=0, mark_header="x-turnout-plan-attempts")
    assert (result.requests, result.errors) == (8, 0)
    assert result.marks == {"small:answer:accepted": 8}, result.marks


@pytest.mark.parametrize("name", sorted(p.name for p in (BENCHMARKS / "configs").glob("*.yaml")))
def test_every_part_of_every_scenario_config_is_a_valid_config(name, upstream):
    from config_parts import variants

    whole = config(name, upstream.url)
    parts = variants(whole)
    assert parts["whole config"] == whole and "no signals, no plugins" in parts
    assert sum(label.startswith("signal ") for label in parts) == len(whole.get("signals") or {})
    for part in parts.values():
        parse_config(part)
