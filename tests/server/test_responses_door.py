"""POST /v1/responses end to end: a real turnout, the mock upstream, the openai SDK as the caller. Translated to
chat for the upstream (and back), stored per API key, or passed through to an upstream that speaks it."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from pydantic import BaseModel

from tests.conftest import TEST_KEY, base_config
from tests.plugins.conftest import redis_server  # noqa: F401 - the fixture
from turnout.config import ConfigError, parse_config

WEATHER = {"type": "function", "name": "get_weather", "description": "weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
KEY_A, KEY_B = "sk-team-a-key-0123456789", "sk-team-b-key-0123456789"


def config(upstream_url: str, **extra) -> dict:
    cfg = base_config(upstream_url)
    cfg["models"]["native"] = {"provider": "openai", "base_url": f"{upstream_url}/v1", "model": "mock-native",
                               "api_key": TEST_KEY, "responses_api": True, "cost": {"input": 1, "output": 2}}
    cfg["signals"]["json"] = {"kind": "keyword", "words": ["as json"]}
    cfg["signals"]["careful"] = {"kind": "keyword", "words": ["carefully"]}
    cfg["decisions"].insert(0, {"name": "careful", "priority": 70, "when": {"signal": "careful"}, "models": ["native"],
                                "plugins": [{"system_prompt": {"text": "Be careful."}}]})
    cfg["decisions"].insert(0, {"name": "json", "priority": 60, "when": {"signal": "json"}, "models": ["small"],
                                "plugins": [{"fast_response": {"content": '{"city": "Paris", "celsius": 18}'}}]})
    cfg.update(extra)
    return cfg


@pytest.fixture
def server(serve, upstream):
    return serve(config(upstream.url))


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


def test_plain_response_with_routing_and_cost_headers(client, upstream_requests):
    raw = client.responses.with_raw_response.create(model="auto", input="hello there", instructions="be brief",
                                                    max_output_tokens=40, metadata={"ticket": "7"})
    response = raw.parse()
    assert response.output_text == "echo: hello there" and response.status == "completed"
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.instructions == "be brief" and response.metadata == {"ticket": "7"} and response.store is True
    assert response.usage.input_tokens == 2 and response.usage.output_tokens == 3 and response.usage.total_tokens == 5
    assert raw.headers["x-turnout-model"] == "small" and raw.headers["x-turnout-decision"] == "default"
    assert raw.headers["x-turnout-request-id"]
    assert float(raw.headers["x-turnout-cost-usd"]) == pytest.approx((2 * 0.1 + 3 * 0.2) / 1e6)
    sent = upstream_requests()[-1]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"]["messages"] == [{"role": "system", "content": "be brief"},
                                        {"role": "user", "content": "hello there"}]
    assert sent["body"]["max_completion_tokens"] == 40 and "metadata" not in sent["body"]


def test_stream_events_then_stored(client, server):
    with client.responses.stream(model="auto", input="stream me please") as stream:
        types = [event.type for event in stream]
        final = stream.get_final_response()
    assert types[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert types.count("response.output_text.delta") == 4 and types[-1] == "response.completed"
    assert final.output_text == "echo: stream me please" and final.usage.output_tokens == 4
    assert client.responses.retrieve(final.id).output_text == "echo: stream me please"
    with httpx.stream("POST", f"{server.url}/v1/responses", json={"model": "auto", "input": "hi", "stream": True}) as r:
        text = r.read().decode()
    assert r.headers["x-turnout-model"] == "small" and r.headers["content-type"].startswith("text/event-stream")
    assert "event: response.completed\ndata: " in text and ": turnout cost_usd=" in text


def test_function_tools_over_two_turns(client, upstream_requests):
    first = client.responses.create(model="auto", input="weather in Paris #tool", tools=[WEATHER],
                                    tool_choice="required")
    call = first.output[0]
    assert call.type == "function_call" and call.name == "get_weather" and call.call_id == "call_mock_1"
    assert json.loads(call.arguments) == {"city": "Paris", "unit": "celsius"} and call.id.startswith("fc_")
    sent = upstream_requests()[-1]["body"]
    assert sent["tools"] == [{"type": "function", "function": {k: WEATHER[k] for k in
                                                               ("name", "description", "parameters")}}]
    assert sent["tool_choice"] == "required"
    second = client.responses.create(model="auto", previous_response_id=first.id, tools=[WEATHER], input=[
        {"type": "function_call_output", "call_id": call.call_id, "output": "18C and sunny"}])
    assert second.output_text == "echo: weather in Paris #tool" and second.previous_response_id == first.id
    messages = upstream_requests()[-1]["body"]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
    assert messages[1]["tool_calls"][0]["id"] == "call_mock_1"
    assert messages[2] == {"role": "tool", "tool_call_id": "call_mock_1", "content": "18C and sunny"}
    # the same without stored state: the caller sends the items back itself
    third = client.responses.create(model="auto", store=False, tools=[WEATHER], input=[
        {"role": "user", "content": "weather in Paris #tool"}, call.model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": call.call_id, "output": "18C"}])
    assert third.output_text == "echo: weather in Paris #tool"


def test_previous_response_id_continues_the_conversation(client, upstream_requests):
    first = client.responses.create(model="auto", input="my name is Ada", instructions="first instructions")
    second = client.responses.create(model="auto", input="what is my name?", previous_response_id=first.id)
    third = client.responses.create(model="auto", input="and again?", previous_response_id=second.id,
                                    instructions="new instructions")
    assert third.output_text == "echo: and again?"
    messages = upstream_requests()[-1]["body"]["messages"]
    # instructions are not carried over from an earlier response (as OpenAI does)
    assert messages[0] == {"role": "system", "content": "new instructions"}
    assert [(m["role"], m["content"] if isinstance(m["content"], str) else m["content"][0]["text"])
            for m in messages[1:]] == [("user", "my name is Ada"), ("assistant", "echo: my name is Ada"),
                                       ("user", "what is my name?"), ("assistant", "echo: what is my name?"),
                                       ("user", "and again?")]


def test_a_conversation_longer_than_a_request_may_be_is_refused(serve, upstream):
    """Each turn replays the stored conversation: it may not grow past what one request may carry."""
    server = serve(config(upstream.url, server={"retry": {"attempts": 0}, "max_body_bytes": 4000}))
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    more: dict = {}
    with pytest.raises(openai.APIStatusError) as refused:
        for _ in range(10):  # each turn adds about 2 KB to the conversation (the input and its echo)
            more = {"previous_response_id": client.responses.create(model="auto", input="x" * 1000, **more).id}
    assert refused.value.status_code == 413 and refused.value.body["param"] == "previous_response_id"
    assert refused.value.body["code"] == "conversation_too_large"


class Weather(BaseModel):
    city: str
    celsius: int


def test_json_schema_output(client, upstream_requests):
    parsed = client.responses.parse(model="auto", input="the weather as json", text_format=Weather)
    assert parsed.output_parsed == Weather(city="Paris", celsius=18)
    with client.responses.stream(model="auto", input="stream the weather as json", text_format=Weather) as stream:
        assert stream.get_final_response().output_parsed == Weather(city="Paris", celsius=18)
    client.responses.create(model="auto", input="weather", text={"format": {
        "type": "json_schema", "name": "weather", "strict": True, "schema": Weather.model_json_schema()}})
    sent = upstream_requests()[-1]["body"]
    assert sent["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "weather", "schema": Weather.model_json_schema(), "strict": True}}


def test_store_false_keeps_nothing(client):
    response = client.responses.create(model="auto", input="forget me", store=False)
    assert response.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError) as err:
        client.responses.create(model="auto", input="more", previous_response_id=response.id)
    assert err.value.body["param"] == "previous_response_id"
    assert err.value.body["code"] == "previous_response_not_found"


def test_get_input_items_and_delete(client):
    first = client.responses.create(model="auto", input="one")
    second = client.responses.create(model="auto", previous_response_id=first.id, input=[
        {"role": "user", "content": "two"}, {"role": "user", "content": [{"type": "input_text", "text": "three"}]}])
    got = client.responses.retrieve(second.id)
    assert got.id == second.id and got.output_text == "echo: three" and got.previous_response_id == first.id
    items = client.responses.input_items.list(second.id, order="asc")
    assert [i.content[0].text for i in items.data] == ["two", "three"] and items.has_more is False
    assert all(i.id.startswith("msg_") and i.type == "message" for i in items.data)
    newest = client.responses.input_items.list(second.id, limit=1)
    assert [i.content[0].text for i in newest.data] == ["three"] and newest.has_more is True
    after = client.responses.input_items.list(second.id, limit=1, after=newest.data[0].id)
    assert [i.content[0].text for i in after.data] == ["two"] and after.has_more is False
    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.delete(first.id)
    assert client.responses.retrieve(second.id).id == second.id  # its conversation is its own
    bad = httpx.get(f"{client.base_url}responses/{second.id}/input_items", params={"limit": "0"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "limit"
    bad = httpx.get(f"{client.base_url}responses/{second.id}/input_items", params={"order": "up"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "order"


def test_another_key_cannot_read_or_continue(serve, upstream):
    cfg = config(upstream.url, auth={"keys": [{"name": "team-a", "key": KEY_A}, {"name": "team-b", "key": KEY_B}]})
    server = serve(cfg)
    a = openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY_A, max_retries=0)
    b = openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY_B, max_retries=0)
    mine = a.responses.create(model="auto", input="a secret of team a")
    unknown = "resp_" + "0" * 48
    for response_id in (mine.id, unknown):
        with pytest.raises(openai.NotFoundError) as err:
            b.responses.retrieve(response_id)
        assert response_id in err.value.body["message"]
        with pytest.raises(openai.NotFoundError):
            b.responses.create(model="auto", input="x", previous_response_id=response_id)
        with pytest.raises(openai.NotFoundError):
            b.responses.input_items.list(response_id)
        with pytest.raises(openai.NotFoundError):
            b.responses.delete(response_id)
    assert a.responses.retrieve(mine.id).output_text == "echo: a secret of team a"
    assert a.responses.create(model="auto", input="go on", previous_response_id=mine.id).output_text == "echo: go on"
    anonymous = httpx.get(f"{server.url}/v1/responses/{mine.id}")
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "auto"}, "input"),
    ({"model": "auto", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}]},
     "input[0].content[0].file_id"),
    ({"model": "auto", "input": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                                 {"role": "user", "content": [{"type": "input_audio"}]}]}, "input[2].content[0].type"),
    ({"model": "auto", "input": "x", "tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"model": "auto", "input": "x", "text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
    ({"model": "auto", "input": "x", "temperature": 5}, "temperature"),
    ({"model": "auto", "input": "x", "previous_response_id": ""}, "previous_response_id"),
    ({"model": "no-such-model", "input": "x"}, "model"),
])
def test_malformed_requests_name_the_field(server, body, param):
    response = httpx.post(f"{server.url}/v1/responses", json=body)
    assert response.status_code in (400, 404), response.text
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error", error


def test_not_json_wrong_method_and_unknown_paths_are_openai_shaped(server):
    response = httpx.post(f"{server.url}/v1/responses", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400 and "error" in response.json()
    assert httpx.get(f"{server.url}/v1/responses").status_code == 405
    response = httpx.post(f"{server.url}/v1/responses/resp_x/cancel")
    assert response.status_code == 404 and response.json()["error"]["type"] == "invalid_request_error"


def test_upstream_errors_and_failures_mid_stream(client):
    with pytest.raises(openai.RateLimitError) as err:
        client.responses.create(model="auto", input="busy #error:429")
    assert "sk-mockupstream" not in json.dumps(err.value.body)
    events = list(client.responses.create(model="auto", input="break #midstream-fail", stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.failed"
    assert events[-1].response.status == "failed" and events[-1].response.error.code == "server_error"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(events[-1].response.id)  # a failed response is not stored


def test_passthrough_to_an_upstream_that_speaks_responses(client, upstream_requests):
    raw = client.responses.with_raw_response.create(model="native", input="hello native", instructions="sys",
                                                    tools=[WEATHER])
    first = raw.parse()
    sent = upstream_requests()[-1]
    assert sent["path"] == "/v1/responses"
    assert sent["body"] == {"model": "mock-native", "input": "hello native", "instructions": "sys", "tools": [WEATHER]}
    assert first.output_text == "echo: hello native" and first.id.startswith("resp_") and first.id != "resp_mock_upstream"
    assert raw.headers["x-turnout-model"] == "native"
    assert float(raw.headers["x-turnout-cost-usd"]) == pytest.approx((3 * 1 + 3 * 2) / 1e6)  # from its usage
    second = client.responses.create(model="native", input="again", previous_response_id=first.id)
    body = upstream_requests()[-1]["body"]
    assert "previous_response_id" not in body and second.previous_response_id == first.id
    assert body["input"] == [{"type": "message", "role": "user",
                              "content": [{"type": "input_text", "text": "hello native"}]},
                             {"type": "message", "role": "assistant",
                              "content": [{"type": "output_text", "text": "echo: hello native", "annotations": []}]},
                             {"role": "user", "content": "again"}]
    with client.responses.stream(model="native", input="stream natively", previous_response_id=second.id) as stream:
        types = [event.type for event in stream]
        final = stream.get_final_response()
    assert types[0] == "response.created" and types[-1] == "response.completed"
    assert final.output_text == "echo: stream natively" and final.previous_response_id == second.id
    assert client.responses.retrieve(final.id).output_text == "echo: stream natively"
    assert len(upstream_requests()[-1]["body"]["input"]) == 5


def test_passthrough_stream_failure_and_a_route_with_plugins_is_translated(client, upstream_requests):
    events = list(client.responses.create(model="native", input="leak #leakstream", stream=True))
    assert events[-1].type == "response.failed"
    assert TEST_KEY not in json.dumps([e.model_dump() for e in events])
    # a route with plugins is translated even to a Responses upstream: plugins work on the internal form
    raw = client.responses.with_raw_response.create(model="auto", input="answer carefully")
    assert raw.headers["x-turnout-model"] == "native" and raw.headers["x-turnout-decision"] == "careful"
    assert raw.parse().output_text == "echo: answer carefully"
    sent = upstream_requests()[-1]
    assert sent["path"] == "/v1/chat/completions" and sent["body"]["model"] == "mock-native"
    assert sent["body"]["messages"][0] == {"role": "system", "content": "Be careful."}
    tool = client.responses.create(model="native", input="weather #tool", tools=[WEATHER])
    assert tool.output[0].type == "function_call" and tool.output[0].call_id == "call_mock_1"


def test_what_only_a_responses_upstream_takes_is_passed_through_or_refused(client, upstream_requests):
    content = [{"type": "input_text", "text": "summarise"}, {"type": "input_file", "file_id": "file_1"}]
    body = {"input": [{"role": "user", "content": content}, {"type": "web_search_call", "id": "ws_1",
                                                             "status": "completed"}],
            "tools": [{"type": "web_search"}, WEATHER], "tool_choice": {"type": "web_search"}}
    response = client.responses.create(model="native", **body)
    assert response.output_text == "echo: summarise"
    assert upstream_requests()[-1]["body"] == {"model": "mock-native", **body}
    # continued on a chat model: the past turn's web search call is left out of the history, its answer kept
    client.responses.create(model="small", input="and then?", previous_response_id=response.id)
    assert [m["role"] for m in upstream_requests()[-1]["body"]["messages"]] == ["user", "assistant", "user"]
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="small", **body)  # translated: no chat model takes these
    assert err.value.body["param"] == "input[0].content[1].type"
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model="small", input="x", tools=[{"type": "web_search"}], stream=True)
    assert err.value.body["param"] == "tools[0].type"


def test_passthrough_to_azure(serve, upstream, upstream_requests):
    cfg = config(upstream.url)
    cfg["models"]["azure-gpt"]["responses_api"] = True
    client = openai.OpenAI(base_url=f"{serve(cfg).url}/v1", api_key="x", max_retries=0)
    assert client.responses.create(model="azure-gpt", input="hello azure").output_text == "echo: hello azure"
    sent = upstream_requests()[-1]
    assert sent["path"] == "/openai/v1/responses" and sent["body"]["model"] == "gpt-dep"
    assert sent["headers"]["api-key"] == TEST_KEY


def test_responses_api_only_for_openai_and_azure(upstream):
    cfg = base_config(upstream.url)
    cfg["models"]["claude"]["responses_api"] = True
    with pytest.raises(ConfigError) as err:
        parse_config(cfg)
    assert "models.claude.responses_api" in str(err.value)


def test_two_servers_share_stored_responses_through_redis(serve, upstream, redis_server):  # noqa: F811
    cfg = config(upstream.url, state={"store": "redis", "redis_url": redis_server.url, "namespace": "t-resp"},
                 responses={"ttl_s": 60})
    one, two = serve(cfg), serve(cfg)
    first = openai.OpenAI(base_url=f"{one.url}/v1", api_key="x", max_retries=0).responses.create(
        model="auto", input="remember this")
    other = openai.OpenAI(base_url=f"{two.url}/v1", api_key="x", max_retries=0)
    assert other.responses.retrieve(first.id).output_text == "echo: remember this"
    assert other.responses.create(model="auto", input="next", previous_response_id=first.id).output_text == "echo: next"
    redis_server.stop()  # the store is gone: an answer still comes, marked unstored; a continuation is refused
    response = other.responses.create(model="auto", input="while redis is down")
    assert response.output_text == "echo: while redis is down" and response.store is False
    with pytest.raises(openai.InternalServerError) as err:
        other.responses.retrieve(first.id)
    assert err.value.status_code == 503
