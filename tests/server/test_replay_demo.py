"""The embedded default: `turnout serve` with no config answers from recorded answers of real models."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from importlib import resources

import httpx
import openai
import pytest

from turnout.testing import free_port


def recorded():
    raw = resources.files("turnout.demo").joinpath("gsm8k_replay.jsonl.gz").read_bytes()
    return [json.loads(line) for line in gzip.decompress(raw).decode().splitlines()]


@pytest.fixture(scope="module")
def demo():
    """A real `turnout serve` process with no flags but a port."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "turnout.cli", "serve", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
    yield openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0)
    proc.terminate()
    proc.wait(10)


def test_recording_is_real_data():
    rows = recorded()
    assert len(rows) == 1319
    assert set(rows[0]["answers"]) == {"gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1"}


def test_recorded_prompt_gets_the_recorded_answer_at_real_cost(demo):
    row = next(r for r in recorded() if "percent" in r["prompt"])
    raw = demo.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user",
                                                                                  "content": row["prompt"]}])
    result = raw.parse()
    assert raw.headers["x-turnout-model"] == "gpt-4-1106-preview" and raw.headers["x-turnout-decision"] == "hard"
    assert result.choices[0].message.content == row["answers"]["gpt-4-1106-preview"]
    assert result.model_extra["turnout_replay"]["match"] == "exact"
    expected = (result.usage.prompt_tokens * 10 + result.usage.completion_tokens * 30) / 1e6
    assert float(raw.headers["x-turnout-cost-usd"]) == pytest.approx(expected, rel=1e-6)


def test_unrecorded_prompt_says_it_is_the_nearest(demo):
    raw = demo.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "Tom has 3 apples and buys 5 more. How many apples?"}])
    result = raw.parse()
    # the learned router of the default decision sends this easy one to the cheap model
    assert raw.headers["x-turnout-decision"] == "default" and raw.headers["x-turnout-model"] == "mixtral-8x7b-instruct-v0.1"
    assert result.choices[0].message.content.startswith("[turnout replay: this prompt is not in the recording")
    meta = result.model_extra["turnout_replay"]
    assert meta["match"] == "nearest" and 0 < meta["similarity"] < 1 and "apple" in meta["recorded_prompt"].lower()


def test_demo_streams(demo):
    row = recorded()[1]
    chunks = list(demo.chat.completions.create(model="mixtral-8x7b-instruct-v0.1", stream=True,
                                               stream_options={"include_usage": True},
                                               messages=[{"role": "user", "content": row["prompt"]}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == row["answers"]["mixtral-8x7b-instruct-v0.1"]
    assert chunks[-1].usage.completion_tokens > 0
