"""POST /v1/completions (legacy text completions) through a real turnout, asked with the official openai client:
passed through to OpenAI-compatible upstreams' own /completions, translated through chat for Anthropic."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import TEST_KEY
from tests.doors.test_embeddings import embeddings_config


@pytest.fixture
def server(serve, upstream):
    return serve(embeddings_config(upstream.url))


def clients(server, upstream) -> tuple[openai.OpenAI, openai.OpenAI]:
    return (openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0),
            openai.OpenAI(base_url=f"{upstream.url}/v1", api_key=TEST_KEY, max_retries=0))


def test_passed_through_as_direct(server, upstream, upstream_requests):
    via, direct = clients(server, upstream)
    kwargs = {"prompt": "Say this is a test", "max_tokens": 7, "temperature": 0, "echo": True, "logprobs": 2}
    raw = via.completions.with_raw_response.create(model="small", **kwargs)
    routed = raw.parse()
    assert routed.model_dump() == direct.completions.create(model="mock-small", **kwargs).model_dump()
    assert routed.object == "text_completion" and routed.choices[0].text == "Say this is a testecho: Say this is a test"
    sent = upstream_requests()[0]
    assert sent["path"] == "/v1/completions"
    assert sent["body"] == {"model": "mock-small", **kwargs}  # suffix/echo/logprobs reach the upstream as sent
    usage = routed.usage
    assert float(raw.headers["x-turnout-cost-usd"]) == pytest.approx(
        (usage.prompt_tokens * 0.1 + usage.completion_tokens * 0.2) / 1e6)


def test_passed_through_stream_as_direct(server, upstream):
    via, direct = clients(server, upstream)
    kwargs = {"prompt": ["one prompt", "two prompt"], "stream": True, "stream_options": {"include_usage": True}}
    routed = list(via.completions.create(model="small", **kwargs))
    assert [c.model_dump() for c in routed] == \
        [c.model_dump() for c in direct.completions.create(model="mock-small", **kwargs)]
    assert "".join(c.choices[0].text for c in routed if c.choices and c.choices[0].index == 1) == "echo: two prompt"
    assert routed[-1].usage is not None


def test_routed_by_alias_and_to_azure(server, upstream_requests):
    via = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    raw = via.completions.with_raw_response.create(model="auto", prompt="plain words")
    assert raw.headers["x-turnout-decision"] == "default" and raw.parse().choices[0].text == "echo: plain words"
    routed = via.completions.with_raw_response.create(model="auto", prompt="def f(): pass")
    assert routed.headers["x-turnout-decision"] == "code" and routed.headers["x-turnout-model"] == "strong"
    assert via.completions.create(model="azure-gpt", prompt="hi azure").choices[0].text == "echo: hi azure"
    sent = upstream_requests()[-1]
    assert sent["path"] == "/openai/deployments/gpt-dep/completions" and sent["query"] == "api-version=2024-10-21"


def test_translated_through_chat_for_anthropic(server, upstream_requests):
    via = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    answer = via.completions.create(model="claude", prompt=["first question", "second one"], max_tokens=50,
                                    echo=True, stop=["\n\n"])
    assert answer.object == "text_completion"
    assert [(c.index, c.text, c.finish_reason) for c in answer.choices] == [
        (0, "first questionecho: first question", "stop"), (1, "second oneecho: second one", "stop")]
    sent = sorted(upstream_requests(), key=lambda r: str(r["body"]["messages"]))
    assert [r["path"] for r in sent] == ["/v1/messages"] * 2
    assert sent[0]["body"]["messages"][0]["role"] == "user"
    assert "first question" in str(sent[0]["body"]["messages"][0]["content"])
    assert sent[0]["body"]["max_tokens"] == 50 and sent[0]["body"]["stop_sequences"] == ["\n\n"]
    assert answer.usage.prompt_tokens == sum(len(t) // 4 for t in ("first question", "second one"))


def test_translated_stream_for_anthropic(server):
    via = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    chunks = list(via.completions.create(model="claude", prompt="stream these words", stream=True,
                                         stream_options={"include_usage": True}))
    assert all(c.object == "text_completion" for c in chunks)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "echo: stream these words"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4


def test_what_chat_cannot_carry_is_refused_naming_the_field(server):
    via = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    for kwargs, param in (({"suffix": "end"}, "suffix"), ({"logprobs": 1}, "logprobs"), ({"best_of": 2}, "best_of")):
        with pytest.raises(openai.BadRequestError) as exc:
            via.completions.create(model="claude", prompt="x", **kwargs)
        assert exc.value.body["param"] == param and "chat completions" in exc.value.body["message"]
    with pytest.raises(openai.BadRequestError) as exc:
        via.completions.create(model="claude", prompt=[1, 2, 3])
    assert exc.value.body["param"] == "prompt"


@pytest.mark.parametrize("body, param", [
    ({"model": "small"}, "prompt"),
    ({"model": "small", "prompt": ["a", None]}, "prompt[1]"),
    ({"model": "small", "prompt": "x", "max_tokens": -1}, "max_tokens"),
    ({"model": "small", "prompt": "x", "stream": "yes"}, "stream"),
    ({"model": "small", "prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"model": "embed-small", "prompt": "x"}, "model"),
])
def test_bad_requests_name_the_field(server, body, param):
    response = httpx.post(f"{server.url}/v1/completions", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


def test_upstream_errors_and_midstream_failures(server):
    via = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.RateLimitError) as exc:
        via.completions.create(model="small", prompt="#error:429")
    assert exc.value.body["code"] == "mock_429"
    for model in ("small", "claude"):  # passed through, and translated
        response = httpx.post(f"{server.url}/v1/completions", json={"model": model, "prompt": "#leakerror:400"})
        assert response.status_code == 400 and "[redacted]" in response.text, response.text
        assert TEST_KEY not in response.text and TEST_KEY not in str(response.headers)
    with httpx.stream("POST", f"{server.url}/v1/completions",
                      json={"model": "small", "prompt": "one two three four #midstream-fail", "stream": True}) as r:
        body = r.read().decode()
    assert r.status_code == 200 and '"error"' in body and "[DONE]" not in body


def guarded_config(upstream_url: str) -> dict:
    """Every request meets a PII plugin that redacts e-mail addresses, on every door."""
    config = embeddings_config(upstream_url)
    config["plugins"] = [{"pii": {"action": "redact", "types": ["email"]}}]
    return config


@pytest.mark.parametrize("stream", [False, True])
def test_plugins_are_no_way_around(serve, upstream, upstream_requests, stream):
    """The legacy endpoint is no way around a route's plugins: the prompt goes through them in the chat form."""
    server = serve(guarded_config(upstream.url))
    via = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    prompt = "write to jane.doe@example.com about the invoice"
    if stream:
        text = "".join(c.choices[0].text for c in via.completions.create(model="small", prompt=prompt, stream=True)
                       if c.choices)
    else:
        text = via.completions.create(model="small", prompt=prompt).choices[0].text
    sent = upstream_requests()[-1]
    assert sent["path"] == "/v1/chat/completions"  # not passed through: the plugins need the chat form
    assert "jane.doe@example.com" not in str(sent["body"])
    assert text.startswith("echo: write to") and "jane.doe@example.com" not in text
    with pytest.raises(openai.BadRequestError) as refused:  # two prompts are two conversations: refused by name
        via.completions.create(model="small", prompt=["one", "two"])
    assert refused.value.body["param"] == "prompt"
