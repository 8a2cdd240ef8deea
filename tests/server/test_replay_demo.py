"""The embedded default: `turnout serve` with no config answers from recorded answers of real models."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

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


def quickstart_prompts() -> list[str]:
    """The user messages of the README's quickstart, as a reader copies them."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Quickstart\n", 1)[1].split("\n## ", 1)[0]
    return list(dict.fromkeys(re.findall(r'"content": "([^"]+)"', section)))


def test_the_quickstart_examples_get_the_answers_to_their_own_questions(demo):
    prompts = quickstart_prompts()
    assert len(prompts) >= 3
    answers = {r["prompt"]: r["answers"] for r in recorded()}
    for prompt in prompts:
        raw = demo.chat.completions.with_raw_response.create(model="auto",
                                                             messages=[{"role": "user", "content": prompt}])
        result = raw.parse()
        meta = result.model_extra["turnout_replay"]
        assert meta["match"] == "exact" and meta["similarity"] == 1.0 and meta["recorded_prompt"] == prompt
        assert result.choices[0].message.content == answers[prompt][raw.headers["x-turnout-model"]]
        chunks = list(demo.chat.completions.create(model="auto", stream=True,
                                                   messages=[{"role": "user", "content": prompt}]))
        assert chunks[0].model_extra["turnout_replay"]["match"] == "exact"
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) in answers[prompt].values()
    # the README says the percent one goes to GPT-4 by the keyword rule
    percent = next(p for p in prompts if "%" in p or "percent" in p)
    route = httpx.post(str(demo.base_url) + "route", json={"model": "auto",
                                                           "messages": [{"role": "user", "content": percent}]}).json()
    assert route["decision"] == "hard" and route["model"] == "gpt-4-1106-preview"


def test_a_recorded_question_typed_with_straight_quotes_is_the_recorded_question(demo):
    row = next(r for r in recorded() if "\u2019" in r["prompt"])
    typed = row["prompt"].replace("\u2019", "'")
    result = demo.chat.completions.create(model="mixtral-8x7b-instruct-v0.1",
                                          messages=[{"role": "user", "content": typed}])
    assert result.model_extra["turnout_replay"]["match"] == "exact"
    assert result.choices[0].message.content == row["answers"]["mixtral-8x7b-instruct-v0.1"]


def test_a_reworded_question_gets_the_nearest_answer_and_says_whose(demo):
    row = next(r for r in recorded() if r["prompt"].startswith("The price of a laptop is $1000."))
    raw = demo.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": (
        "If you get a 20% discount on a laptop priced at $1000, how much do you have to pay?")}])
    result = raw.parse()
    content = result.choices[0].message.content
    meta = result.model_extra["turnout_replay"]
    assert meta["match"] == "nearest" and meta["recorded_prompt"] == row["prompt"] and 0.5 <= meta["similarity"] < 1
    assert content.startswith("[turnout replay: this prompt is not in the recording")
    assert f"similarity {meta['similarity']:.2f}" in content and row["prompt"][:60] in content
    assert content.endswith(row["answers"][raw.headers["x-turnout-model"]])


@pytest.mark.parametrize("prompt", ["What is 15 percent of 80?", "hello",
                                    "Tom has 3 apples and buys 5 more. How many apples?"])
def test_a_question_the_recording_does_not_hold_gets_no_other_questions_answer(demo, prompt):
    """These got the answers to questions about deer, Janet's ducks and Jenna's apples (similarity 0.21, 0.00
    and 0.20), presented as if they answered the question."""
    answers = {r["prompt"]: r["answers"] for r in recorded()}
    for stream in (False, True):
        if stream:
            chunks = list(demo.chat.completions.create(model="auto", stream=True,
                                                       messages=[{"role": "user", "content": prompt}]))
            meta = chunks[0].model_extra["turnout_replay"]
            content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        else:
            result = demo.chat.completions.create(model="auto", messages=[{"role": "user", "content": prompt}])
            meta, content = result.model_extra["turnout_replay"], result.choices[0].message.content
        assert meta["match"] == "none" and 0 <= meta["similarity"] < 0.5
        assert content.startswith("[turnout replay: no recorded answer fits this prompt.")
        assert f"similarity {meta['similarity']:.2f}" in content and "1,319 prompts" in content
        assert not any(answer in content for answer in answers[meta["recorded_prompt"]].values())


def test_a_prompt_far_longer_than_any_recorded_one_is_not_looked_up(demo):
    """Matching normalised and vectorised the whole prompt on the event loop (3.5 s for an 8 MB body, every other
    request waiting); a prompt over four times the longest recorded one is none of them, and is not looked up."""
    row = recorded()[0]
    prompt = row["prompt"] + " and then" * 50_000  # 450 kB that starts with a recorded question
    result = demo.chat.completions.create(model="mixtral-8x7b-instruct-v0.1",
                                          messages=[{"role": "user", "content": prompt}])
    meta, content = result.model_extra["turnout_replay"], result.choices[0].message.content
    assert meta == {"match": "none", "similarity": 0.0, "recorded_prompt": None}
    assert content.startswith("[turnout replay: no recorded answer fits this prompt.") and "longer than" in content
    padded = demo.chat.completions.create(model="mixtral-8x7b-instruct-v0.1",  # surrounding blanks do not count
                                          messages=[{"role": "user", "content": "\n" * 100_000 + row["prompt"] + " " * 100_000}])
    assert padded.model_extra["turnout_replay"]["match"] == "exact"


def test_every_choice_of_n_is_counted_and_billed(demo):
    """n copies of the answer are n answers' tokens, as a provider bills them (the usage counted one, so a key's
    budget was charged for one answer of up to 128)."""
    row = recorded()[2]
    messages = [{"role": "user", "content": row["prompt"]}]
    one = demo.chat.completions.create(model="mixtral-8x7b-instruct-v0.1", messages=messages)
    raw = demo.chat.completions.with_raw_response.create(model="mixtral-8x7b-instruct-v0.1", messages=messages, n=3)
    three = raw.parse()
    assert [c.message.content for c in three.choices] == [row["answers"]["mixtral-8x7b-instruct-v0.1"]] * 3
    assert three.usage.completion_tokens == 3 * one.usage.completion_tokens > 0
    assert three.usage.prompt_tokens == one.usage.prompt_tokens
    expected = (three.usage.prompt_tokens * 0.6 + three.usage.completion_tokens * 0.6) / 1e6
    assert float(raw.headers["x-turnout-cost-usd"]) == pytest.approx(expected, rel=1e-6)
    chunks = list(demo.chat.completions.create(model="mixtral-8x7b-instruct-v0.1", messages=messages, n=3,
                                               stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].usage.completion_tokens == three.usage.completion_tokens


def test_demo_streams(demo):
    row = recorded()[1]
    chunks = list(demo.chat.completions.create(model="mixtral-8x7b-instruct-v0.1", stream=True,
                                               stream_options={"include_usage": True},
                                               messages=[{"role": "user", "content": row["prompt"]}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == row["answers"]["mixtral-8x7b-instruct-v0.1"]
    assert chunks[-1].usage.completion_tokens > 0
