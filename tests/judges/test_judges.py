"""Each judge on hand-made answers (an env stub stands in for the plan's model calls), and their config errors."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from turnout.config import ConfigError
from turnout.judges import build_judge, judges
from turnout.judges.verifier import VERIFIER_PROMPT

PATH = "decisions[0].plan.params.judge"


def completion(content: str | None, finish: str = "stop", **message: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": content, **message},
                         "finish_reason": finish}]}


class Env:
    def __init__(self, replies: list[str] | None = None, samples: list[str] | None = None) -> None:
        self.replies, self.sample_texts = list(replies or []), list(samples or [])
        self.asked: list[tuple[str, dict[str, Any]]] = []

    async def ask(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        self.asked.append((model, body))
        return completion(self.replies.pop(0))

    async def samples(self, k: int) -> list[dict[str, Any]]:
        return [completion(t) for t in self.sample_texts[:k]]


def judge(spec: dict[str, Any], request: dict[str, Any], answer: dict[str, Any], env: Env | None = None):
    return asyncio.run(build_judge(spec, PATH).judge(request, answer, env or Env()))


def test_every_judge_is_registered():
    assert {"format", "logprob", "verifier", "consistency"} <= set(judges.names())


SCHEMA = {"type": "json_schema", "json_schema": {"name": "a", "schema": {
    "type": "object", "properties": {"answer": {"type": "integer"}, "unit": {"enum": ["m", "km"]},
                                     "tags": {"type": "array", "items": {"type": "string"}}},
    "required": ["answer"], "additionalProperties": False}}}


@pytest.mark.parametrize("content, passed, reason", [
    ('{"answer": 4}', True, "ok"),
    ('{"answer": 4, "unit": "km", "tags": ["x"]}', True, "ok"),
    ('{"answer": "4"}', False, "$.answer: expected integer"),
    ('{"answer": 4, "unit": "mi"}', False, "$.unit: not one of ['m', 'km']"),
    ('{"answer": 4, "tags": [1]}', False, "$.tags[0]: expected string"),
    ('{"answer": 4, "extra": 1}', False, "$.extra: not allowed (additionalProperties false)"),
    ('{}', False, "$.answer: required but missing"),
    ("four", False, None),
    ("", False, "empty answer"),
    ("I'm sorry, but I can't help with that.", False, "refusal"),
])
def test_format_checks_the_response_schema(content, passed, reason):
    verdict = judge({"name": "format"}, {"messages": [], "response_format": SCHEMA}, completion(content))
    assert verdict.passed is passed and verdict.score == (1.0 if passed else 0.0)
    if reason:
        assert verdict.detail["reason"] == reason


def test_format_refusal_field_truncation_and_tools():
    plain = {"messages": []}
    assert not judge({"name": "format"}, plain, completion(None, refusal="no")).passed
    assert not judge({"name": "format"}, plain, completion("half an ans", finish="length")).passed
    assert judge({"name": "format", "params": {"fail_truncated": False}}, plain,
                 completion("half an ans", finish="length")).passed
    tools = {"messages": [], "tool_choice": "required", "tools": [{"type": "function", "function": {
        "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                              "required": ["city"]}}}]}
    call = lambda name, args: completion(None, "tool_calls", tool_calls=[
        {"id": "c", "type": "function", "function": {"name": name, "arguments": args}}])
    assert judge({"name": "format"}, tools, call("get_weather", '{"city": "Paris"}')).passed
    assert judge({"name": "format"}, tools, call("get_weather", "{}")).detail["reason"] == \
        "tool 'get_weather': $.city: required but missing"
    assert "was not offered" in judge({"name": "format"}, tools, call("delete_all", "{}")).detail["reason"]
    assert "not JSON" in judge({"name": "format"}, tools, call("get_weather", "{city")).detail["reason"]
    assert "requires one" in judge({"name": "format"}, tools, completion("It is sunny")).detail["reason"]


def logprobs(values: list[float], top: int = 0) -> dict[str, Any]:
    answer = completion("x " * len(values))
    answer["choices"][0]["logprobs"] = {"content": [
        {"token": "x", "logprob": v, "top_logprobs": [{"token": "x", "logprob": v}] +
         [{"token": f"y{i}", "logprob": math.log((1 - math.exp(v)) / max(1, top - 1) or 1e-9)}
          for i in range(top - 1)]} for v in values]}
    return answer


def test_logprob_scores_the_geometric_mean_probability():
    sure = judge({"name": "logprob"}, {}, logprobs([-0.01, -0.05]))
    assert sure.passed and sure.score == pytest.approx(math.exp(-0.03))
    unsure = judge({"name": "logprob"}, {}, logprobs([-2.0, -1.0]))
    assert not unsure.passed and unsure.score == pytest.approx(math.exp(-1.5))
    assert not judge({"name": "logprob"}, {}, completion("no logprobs")).passed  # missing: fail
    assert judge({"name": "logprob", "params": {"missing": "pass"}}, {}, completion("no logprobs")).passed


def test_logprob_entropy():
    spec = {"name": "logprob", "params": {"metric": "entropy", "top_logprobs": 4}}
    peaked = judge(spec, {}, logprobs([-0.001] * 3, top=4))
    flat = judge(spec, {}, logprobs([math.log(0.25)] * 3, top=4))
    assert peaked.score > 0.95 and peaked.passed
    assert flat.score == pytest.approx(0.0, abs=1e-6) and not flat.passed
    assert build_judge(spec, PATH).request_fields() == {"logprobs": True, "top_logprobs": 4}


def test_verifier_asks_the_documented_prompt():
    env = Env(replies=["Yes.", "no", "maybe"])
    spec = {"name": "verifier", "params": {"model": "judge"}}
    request = {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "2+2?"}]}
    assert judge(spec, request, completion("4"), env).passed
    model, body = env.asked[0]
    assert model == "judge" and body["max_tokens"] == 3
    assert body["messages"] == [{"role": "user", "content": VERIFIER_PROMPT.format(question="2+2?", answer="4")}]
    assert judge(spec, request, completion("5"), env).detail["said"] == "no"
    unclear = judge(spec, request, completion("5"), env)
    assert not unclear.passed and unclear.detail["said"] == "unclear"
    assert build_judge(spec, PATH).referenced_models() == ["judge"]


def test_consistency_closed_and_free_answers():
    spec = {"name": "consistency", "params": {"samples": 3}}
    agree = judge(spec, {}, completion("The answer is 42."), Env(samples=["#### 42", "42", "The answer is 41"]))
    assert agree.score == pytest.approx(2 / 3) and agree.passed and agree.detail["closed"] == "number:42"
    split = judge(spec, {}, completion("B"), Env(samples=["A", "C", "B"]))
    assert not split.passed
    text = "Paris is the capital of France and its largest city, on the Seine."
    same = judge(spec, {}, completion(text), Env(samples=[text, text, text]))
    assert same.passed and same.detail["similarity"] == pytest.approx(1.0, abs=1e-3)
    other = judge(spec, {}, completion(text), Env(samples=["Bananas are yellow fruit that monkeys enjoy eating."] * 3))
    assert not other.passed
    assert not judge(spec, {}, completion("42"), Env(samples=[])).passed


def test_consistency_reads_a_final_number_after_a_long_run_of_spaces():
    """`=` then thousands of spaces and no number took the old pattern quadratic time (16,000 spaces: 6.5 s)."""
    assert judge({"name": "consistency"}, {}, completion("x =" + " " * 100_000 + "y"),
                 Env(samples=["x =" + " " * 50_000 + "y"] * 2)).detail["samples"] == 2
    from turnout.judges.consistency import closed_answer
    assert closed_answer("so x = " + " " * 50_000 + "$  42") == "number:42"
    assert closed_answer("=" + " " * 50_000) is None


def nested_any_of(depth: int) -> dict[str, Any]:
    """2^depth paths: each level's two branches both lead to the next level."""
    defs = {f"A{i}": {"anyOf": [{"$ref": f"#/$defs/A{i + 1}"}, {"$ref": f"#/$defs/A{i + 1}"}]} for i in range(depth)}
    return {"$ref": "#/$defs/A0", "$defs": {**defs, f"A{depth}": {"type": "string"}}}


def schema_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}


def test_format_schema_check_is_bounded_on_a_hostile_schema():
    """The schema is the client's: 40 levels of two anyOf branches were 2^40 steps on the event loop, and a $ref
    to itself recursed until Python gave up. Both now fail the answer with the reason, and a legitimate schema
    with a few anyOf levels is still checked in full."""
    spec = {"name": "format"}
    deep = judge(spec, {"messages": [], "response_format": schema_format(nested_any_of(40))}, completion("1"))
    assert not deep.passed and "gave up after" in deep.detail["reason"]
    assert judge(spec, {"messages": [], "response_format": schema_format(nested_any_of(6))},
                 completion('"x"')).passed
    shallow = judge(spec, {"messages": [], "response_format": schema_format(nested_any_of(6))}, completion("1"))
    assert shallow.detail["reason"] == "$: matches none of anyOf"
    cycle = {"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/a"}}}
    looped = judge(spec, {"messages": [], "response_format": schema_format(cycle)}, completion("1"))
    assert not looped.passed and "gave up" in looped.detail["reason"]
    tools = [{"type": "function", "function": {"name": "f", "parameters": nested_any_of(40)}}]
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "1"}}
    tool = judge(spec, {"messages": [], "tools": tools}, completion(None, tool_calls=[call]))
    assert not tool.passed and "gave up after" in tool.detail["reason"]


def test_format_checks_a_long_answer_in_full():
    """A long answer (checked off the event loop) still gets every item checked."""
    items = {"type": "array", "items": {"type": "object", "properties": {"n": {"type": "integer"}},
                                        "required": ["n"]}}
    good = "[" + ",".join(f'{{"n": {i}}}' for i in range(20_000)) + "]"
    assert judge({"name": "format"}, {"messages": [], "response_format": schema_format(items)}, completion(good)).passed
    bad = good[:-1] + ', {"n": "x"}]'
    verdict = judge({"name": "format"}, {"messages": [], "response_format": schema_format(items)}, completion(bad))
    assert verdict.detail["reason"] == "$[20000].n: expected integer"


@pytest.mark.parametrize("spec, path, words", [
    ({"name": "formt"}, f"{PATH}.name", "did you mean 'format'"),
    ({"params": {}}, f"{PATH}.name", "required"),
    ({"name": "format", "params": {"thresold": 1}}, f"{PATH}.params", "did you mean 'threshold'"),
    ({"name": "logprob", "params": {"metric": "vibes"}}, f"{PATH}.params.metric", "mean_logprob"),
    ({"name": "verifier"}, f"{PATH}.params.model", "required"),
    ({"name": "consistency", "params": {"samples": 0}}, f"{PATH}.params.samples", "greater than or equal"),
    ({"name": "format", "extra": 1}, PATH, "unknown key 'extra'"),
])
def test_config_errors_name_the_field(spec, path, words):
    with pytest.raises(ConfigError) as caught:
        build_judge(spec, PATH)
    issue = caught.value.issues[0]
    assert issue.path == path and words in issue.message
