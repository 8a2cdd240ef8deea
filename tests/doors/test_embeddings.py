"""POST /v1/embeddings through a real turnout, asked with the official openai client, answered by the mock
upstream's OpenAI (and Azure) embeddings endpoints."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.conftest import TEST_KEY, base_config
from turnout.config import ConfigError, parse_config
from turnout.pipeline import Router
from turnout.testing.mock_openai_extra import mock_vector


def embeddings_config(upstream_url: str, *, broken_first: bool = False) -> dict:
    config = base_config(upstream_url)
    embed = {"provider": "openai", "base_url": f"{upstream_url}/v1", "api_key": TEST_KEY, "embeddings": True}
    models = {"embed-small": {**embed, "model": "mock-embed-small", "cost": {"input": 0.02, "output": 99}},
              "embed-large": {**embed, "model": "mock-embed-large", "cost": {"input": 0.13}},
              "azure-embed": {"provider": "azure", "base_url": upstream_url, "deployment": "embed-dep",
                              "api_key": TEST_KEY, "embeddings": True}}
    if broken_first:  # a wrong base URL: the mock answers 404, which falls back at once
        models = {"embed-broken": {**embed, "base_url": f"{upstream_url}/nowhere/v1", "fallbacks": ["embed-small"]},
                  **models}
    config["models"] = {**config["models"], **models}
    return config


@pytest.fixture
def embedder(serve, upstream):
    return serve(embeddings_config(upstream.url))


def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def test_a_string_by_model_name(embedder, upstream_requests):
    raw = client(embedder).embeddings.with_raw_response.create(model="embed-small", input="hello world",
                                                               encoding_format="float")
    result = raw.parse()
    assert result.data[0].embedding == pytest.approx(mock_vector("hello world"))
    assert result.usage.prompt_tokens == len("hello world") // 4
    assert raw.headers["x-turnout-model"] == "embed-small" and raw.headers["x-turnout-decision"] == "direct"
    # billed at the model's input price alone (its output price is never charged for embeddings)
    assert float(raw.headers["x-turnout-cost-usd"]) == pytest.approx(result.usage.prompt_tokens * 0.02 / 1e6)
    sent = upstream_requests()[-1]
    assert sent["path"] == "/v1/embeddings"
    assert sent["body"] == {"model": "mock-embed-small", "input": "hello world", "encoding_format": "float"}
    assert sent["headers"]["authorization"] == f"Bearer {TEST_KEY}"


def test_a_list_in_base64_decoded_by_the_sdk(embedder, upstream_requests):
    texts = ["first text", "second text", "third"]
    result = client(embedder).embeddings.create(model="embed-large", input=texts)  # the SDK asks for base64
    assert upstream_requests()[-1]["body"]["encoding_format"] == "base64"
    assert [d.index for d in result.data] == [0, 1, 2]
    for text, item in zip(texts, result.data):
        assert item.embedding == pytest.approx(mock_vector(text), abs=1e-6)


def test_token_ids_and_dimensions_pass_through(embedder, upstream_requests):
    result = client(embedder).embeddings.create(model="embed-small", input=[[1, 2, 3], [4, 5]], dimensions=16,
                                                encoding_format="float")
    assert [len(d.embedding) for d in result.data] == [16, 16]
    assert upstream_requests()[-1]["body"]["input"] == [[1, 2, 3], [4, 5]]


def test_by_alias_the_first_embeddings_model_in_config_order(embedder):
    raw = client(embedder).embeddings.with_raw_response.create(model="auto", input="routed text")
    assert raw.headers["x-turnout-model"] == "embed-small"  # never a chat model, though the decisions list them
    assert raw.headers["x-turnout-decision"] == "embeddings"
    assert raw.parse().data[0].embedding == pytest.approx(mock_vector("routed text"), abs=1e-6)


def test_azure_deployment_endpoint(embedder, upstream_requests):
    result = client(embedder).embeddings.create(model="azure-embed", input="via azure", encoding_format="float")
    assert result.data[0].embedding == pytest.approx(mock_vector("via azure"))
    sent = upstream_requests()[-1]
    assert sent["path"] == "/openai/deployments/embed-dep/embeddings" and sent["query"] == "api-version=2024-10-21"
    assert sent["headers"]["api-key"] == TEST_KEY


def test_falls_back_when_the_first_model_fails(serve, upstream, upstream_requests):
    server = serve(embeddings_config(upstream.url, broken_first=True))
    for model in ("auto", "embed-broken"):
        raw = client(server).embeddings.with_raw_response.create(model=model, input="fall back")
        assert raw.headers["x-turnout-model"] == "embed-small"
        assert raw.headers["x-turnout-attempts"] == "embed-broken:http_404,embed-small:ok"
        assert raw.parse().data[0].embedding == pytest.approx(mock_vector("fall back"), abs=1e-6)
    # (the mock records only the requests a route of its took: not those it answered 404)
    assert [r["path"] for r in upstream_requests()] == ["/v1/embeddings"] * 2


def test_embeddings_of_a_chat_model_and_chat_of_an_embeddings_model_are_refused(embedder):
    c = client(embedder)
    with pytest.raises(openai.BadRequestError) as exc:
        c.embeddings.create(model="small", input="x")
    assert exc.value.body["param"] == "model" and exc.value.body["code"] == "model_not_embeddings"
    assert "chat model" in exc.value.body["message"]
    with pytest.raises(openai.BadRequestError) as exc:
        c.chat.completions.create(model="embed-small", messages=[{"role": "user", "content": "hi"}])
    assert exc.value.body["param"] == "model" and exc.value.body["code"] == "model_not_chat"
    with pytest.raises(openai.NotFoundError) as exc:
        c.embeddings.create(model="no-such-model", input="x")
    assert exc.value.body["code"] == "model_not_found" and "embed-small" in exc.value.body["message"]


@pytest.mark.parametrize("body, param", [
    ({"model": "auto"}, "input"),
    ({"model": "auto", "input": ""}, "input"),
    ({"model": "auto", "input": []}, "input"),
    ({"model": "auto", "input": ["a", 3]}, "input[1]"),
    ({"model": "auto", "input": [1, -2]}, "input[1]"),
    ({"model": "auto", "input": [[1], ["x"]]}, "input[1][0]"),
    ({"model": "auto", "input": "x", "encoding_format": "hex"}, "encoding_format"),
    ({"model": "auto", "input": "x", "dimensions": 0}, "dimensions"),
    ({"input": "x"}, "model"),
])
def test_bad_requests_name_the_field(embedder, body, param):
    response = httpx.post(f"{embedder.url}/v1/embeddings", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_an_upstream_error_keeps_its_status_and_loses_the_key(embedder):
    with pytest.raises(openai.RateLimitError) as exc:
        client(embedder).embeddings.create(model="embed-small", input="busy #error:429")
    assert exc.value.body["code"] == "mock_429"
    # a hostile upstream quotes the key it was sent in every field of its error
    response = httpx.post(f"{embedder.url}/v1/embeddings", json={"model": "embed-small", "input": "#leakerror:400"})
    assert response.status_code == 400 and "[redacted]" in response.text
    assert TEST_KEY not in response.text and TEST_KEY not in str(response.headers)


def _issues(config: dict) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        Router.build(parse_config(config))
    return [str(i) for i in exc.value.issues]


def test_config_embeddings_only_on_providers_that_embed(upstream):
    config = embeddings_config(upstream.url)
    config["models"]["claude"]["embeddings"] = True
    issues = _issues(config)
    assert any(i.startswith("models.claude.embeddings: provider 'anthropic' does not serve embeddings") for i in issues)


def test_config_decisions_and_fallbacks_keep_to_their_kind(upstream):
    config = embeddings_config(upstream.url)
    config["decisions"][1]["models"].append("embed-small")
    config["models"]["small"]["fallbacks"] = ["embed-large"]
    with pytest.raises(ConfigError) as exc:
        parse_config(config)
    paths = [i.path for i in exc.value.issues]
    assert "decisions[1].models[2]" in paths and "models.small.fallbacks[0]" in paths


def test_with_no_decisions_the_default_decision_holds_chat_models_only(serve, upstream):
    config = embeddings_config(upstream.url)
    config["models"] = {"embed-small": config["models"]["embed-small"], "small": config["models"]["small"]}
    del config["decisions"], config["signals"]
    server = serve(config)
    answer = client(server).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "hi"}])
    assert answer.headers["x-turnout-model"] == "small"
