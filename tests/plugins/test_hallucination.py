"""The hallucination plugin through the real server, the openai client and scripted upstream answers."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.plans.helpers import chat_requests, cost_of, plan_config
from turnout.config import ConfigError, parse_config
from turnout.pipeline import Router

CONTEXT = "Reference card: two plus two equals 4. The answer is 4."
JUDGE = {"sources": ["system"], "min_words": 1}


def config(upstream_url: str, plugin: dict, plan: dict | None = None) -> dict:
    cfg = plan_config(upstream_url, plan or {"name": "cascade", "params": {"judge": {"name": "format"}}},
                      models=["cheap"])
    if plan is None:
        del cfg["decisions"][0]["plan"]
    cfg["decisions"][0]["plugins"] = [{"name": "hallucination", "params": {"judge": JUDGE, **plugin}}]
    return cfg


def ask(server, directives: str, stream: bool = False):
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    messages = [{"role": "system", "content": CONTEXT}, {"role": "user", "content": f"What is 2+2? {directives}"}]
    if stream:
        return client.chat.completions.create(model="auto", messages=messages, stream=True)
    return client.chat.completions.with_raw_response.create(model="auto", messages=messages)


def test_annotate_adds_the_score_header_and_per_sentence_detail(serve, upstream):
    server = serve(config(upstream.url, {"action": "annotate"}))
    good = ask(server, "#as:mock-cheap=say:right")
    assert float(good.headers["x-turnout-grounded"]) > 0.5 and good.headers["x-turnout-grounded-unsupported"] == "0"
    detail = good.parse().model_extra["turnout_grounded"]
    assert detail["passed"] is True and detail["sentences"][0]["text"] == "The answer is 4."
    bad = ask(server, "#as:mock-cheap=say:wrong")
    assert bad.parse().choices[0].message.content == "The answer is 5."  # annotated, not changed
    assert float(bad.headers["x-turnout-grounded"]) < 0.5 and bad.headers["x-turnout-grounded-unsupported"] == "1"
    sentence = bad.parse().model_extra["turnout_grounded"]["sentences"][0]
    assert sentence["supported"] is False and "numbers not in the context: 5" in sentence["reasons"][0]


def test_block_refuses_an_ungrounded_answer_with_a_422_in_openai_shape(serve, upstream):
    server = serve(config(upstream.url, {"action": "block", "detail": False}))
    assert "turnout_grounded" not in (ask(server, "#as:mock-cheap=say:right").parse().model_extra or {})
    with pytest.raises(openai.UnprocessableEntityError) as err:
        ask(server, "#as:mock-cheap=say:wrong")
    assert err.value.status_code == 422
    assert err.value.body["code"] == "ungrounded_answer" and err.value.body["type"] == "invalid_request_error"
    assert err.value.response.headers["x-turnout-grounded-unsupported"] == "1"


def test_escalate_asks_the_stronger_model_returns_its_better_answer_and_bills_both(serve, upstream,
                                                                                  upstream_requests):
    server = serve(config(upstream.url, {"action": "escalate", "escalate_to": "strong"}))
    raw = ask(server, "#as:mock-cheap=say:wrong #as:mock-strong=say:right")
    answer = raw.parse()
    assert answer.choices[0].message.content == "The answer is 4."
    assert raw.headers["x-turnout-model"] == "strong" and raw.headers["x-turnout-escalated-to"] == "strong"
    assert chat_requests(upstream_requests()) == ["mock-cheap", "mock-strong"]
    log = [r["body"] for r in upstream_requests() if r["path"].endswith("/chat/completions")]
    usage = [httpx.post(f"{upstream.url}/scripted/v1/chat/completions", json=b).json()["usage"] for b in log]
    billed = cost_of("cheap", usage[0]) + cost_of("strong", usage[1])
    assert float(raw.headers["x-turnout-cost-usd"]) == pytest.approx(billed, rel=1e-6)
    assert answer.usage.prompt_tokens == usage[0]["prompt_tokens"] + usage[1]["prompt_tokens"]  # both calls
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'turnout_plan_attempts_total{model="strong",outcome="accepted",plan="plugin"}' in metrics
    httpx.delete(f"{upstream.url}/_requests")  # a grounded first answer is kept: no second call
    kept = ask(server, "#as:mock-cheap=say:right #as:mock-strong=say:wrong")
    assert kept.headers["x-turnout-model"] == "cheap" and "x-turnout-escalated-to" not in kept.headers
    assert chat_requests(upstream_requests()) == ["mock-cheap"]


def test_escalation_that_is_no_better_keeps_the_first_answer(serve, upstream):
    server = serve(config(upstream.url, {"action": "escalate", "escalate_to": "strong"}))
    raw = ask(server, "#as:mock-cheap=say:wrong #as:mock-strong=say:wrong")
    assert raw.headers["x-turnout-model"] == "cheap" and raw.parse().choices[0].message.content == "The answer is 5."
    assert raw.headers["x-turnout-grounded-unsupported"] == "1"


def test_a_planned_stream_is_checked_before_it_starts(serve, upstream):
    server = serve(config(upstream.url, {"action": "block"}, plan={"name": "cascade",
                                                                    "params": {"judge": {"name": "format"}}}))
    text = "".join(c.choices[0].delta.content or "" for c in ask(server, "#as:mock-cheap=say:right", stream=True)
                   if c.choices)
    assert text == "The answer is 4."
    with pytest.raises(openai.UnprocessableEntityError):
        list(ask(server, "#as:mock-cheap=say:wrong", stream=True))


def test_config_errors_name_the_field(upstream):
    cfg = config(upstream.url, {"action": "escalate"})
    with pytest.raises(ConfigError) as err:
        Router.build(parse_config(cfg))
    assert any(i.path.endswith("plugins[0].hallucination.escalate_to") for i in err.value.issues)
    cfg = config(upstream.url, {"action": "escalate", "escalate_to": "strongest"})
    with pytest.raises(ConfigError) as err:
        Router.build(parse_config(cfg))
    assert any("strongest" in str(i) for i in err.value.issues)
    cfg = config(upstream.url, {"action": "annotate", "judge": {"lexical_wieght": 0.2}})
    with pytest.raises(ConfigError) as err:
        Router.build(parse_config(cfg))
    assert any("lexical_wieght" in str(i) and "judge" in i.path for i in err.value.issues)
