"""A Bedrock model behind turnout looks like any OpenAI model to the openai client: the official client →
real turnout → the mock Bedrock, which checks every request's SigV4 signature as AWS does. And botocore's own
client parses what the mock sends, so the mock speaks the real format."""

from __future__ import annotations

import asyncio
import datetime
import json
from typing import Any

import anthropic
import botocore.session
import httpx
import openai
import pytest
from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.server.test_openai_passthrough import WEATHER_TOOL
from turnout.testing.mock_bedrock import (
    TEST_ACCESS_KEY_ID,
    TEST_SECRET_ACCESS_KEY,
    TEST_SESSION_TOKEN,
    TEST_TEMP_ACCESS_KEY_ID,
    TEST_TEMP_SECRET_ACCESS_KEY,
)

MODEL_ID = "anthropic.claude-3-haiku-20240307-v1:0"
REGION = "eu-west-1"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="


def bedrock_config(url: str, retry: dict[str, Any] | None = None, **options: Any) -> dict[str, Any]:
    creds = {"access_key_id": TEST_ACCESS_KEY_ID, "secret_access_key": TEST_SECRET_ACCESS_KEY}
    return {
        "server": {"retry": retry or {"attempts": 0}},
        "models": {"nova": {"provider": "bedrock", "base_url": url, "model": MODEL_ID, "cost": {"input": 1, "output": 2},
                            "options": {"region": REGION, **creds, **options}}},
        "decisions": [{"name": "default", "models": ["nova"]}],
    }


def client_of(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


@pytest.fixture
def client(serve, upstream):
    return client_of(serve(bedrock_config(upstream.url)))


def test_plain_completion_signed_and_translated(client, upstream_requests):
    result = client.chat.completions.with_raw_response.create(
        model="nova", max_tokens=50, temperature=0.2, top_p=0.9, stop="END",
        messages=[{"role": "user", "content": "hello bedrock"}])
    parsed = result.parse()
    assert parsed.choices[0].message.content == "echo: hello bedrock"
    assert parsed.choices[0].finish_reason == "stop"
    assert parsed.usage.prompt_tokens == 3 and parsed.usage.completion_tokens == 3
    assert result.headers["x-turnout-model"] == "nova"
    sent = upstream_requests()[-1]
    assert sent["raw_path"] == "/model/anthropic.claude-3-haiku-20240307-v1:0/converse"
    auth = sent["headers"]["authorization"]
    assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={TEST_ACCESS_KEY_ID}/") and f"/{REGION}/bedrock/" in auth
    assert "content-type;host;x-amz-date" in auth  # every header turnout sets is signed
    assert sent["body"] == {"messages": [{"role": "user", "content": [{"text": "hello bedrock"}]}],
                            "inferenceConfig": {"maxTokens": 50, "temperature": 0.2, "topP": 0.9,
                                                "stopSequences": ["END"]}}


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
def test_both_connection_layers_send_what_was_signed(serve, upstream, upstream_requests, transport):
    config = bedrock_config(upstream.url)
    config["models"]["nova"].update(transport=transport, headers={"x-team": "blue"},
                                    model="arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.x-v1:0")
    client = client_of(serve(config))
    for stream in (False, True):
        answer = client.chat.completions.create(model="nova", stream=stream, messages=[{"role": "user", "content": "hi"}])
        assert list(answer) if stream else answer.choices
    sent = upstream_requests()[-1]
    assert sent["raw_path"] == "/model/arn:aws:bedrock:eu-west-1:123456789012:inference-profile%2Feu.x-v1:0/converse-stream"
    assert "SignedHeaders=content-type;host;x-amz-date;x-team," in sent["headers"]["authorization"]


def test_system_and_multi_turn(client, upstream_requests):
    answer = client.chat.completions.create(model="nova", messages=[
        {"role": "system", "content": "be brief"}, {"role": "developer", "content": "and kind"},
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
        {"role": "user", "content": [{"type": "text", "text": "how are you"}]}])
    assert answer.choices[0].message.content == "echo: how are you"
    body = upstream_requests()[-1]["body"]
    assert body["system"] == [{"text": "be brief"}, {"text": "and kind"}]
    assert body["messages"] == [{"role": "user", "content": [{"text": "hi"}]},
                                {"role": "assistant", "content": [{"text": "hello"}]},
                                {"role": "user", "content": [{"text": "how are you"}]}]


def test_tool_use_over_two_turns(client, upstream_requests):
    first = client.chat.completions.create(model="nova", tools=[WEATHER_TOOL], tool_choice="required",
                                           messages=[{"role": "user", "content": "weather in Paris #tool"}])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content == "Let me check."
    call = choice.message.tool_calls[0]
    assert call.id == "tooluse_mock_1" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "celsius"}
    assert upstream_requests()[-1]["body"]["toolConfig"] == {
        "tools": [{"toolSpec": {"name": "get_weather", "description": "weather for a city",
                                "inputSchema": {"json": WEATHER_TOOL["function"]["parameters"]}}}],
        "toolChoice": {"any": {}}}

    second = client.chat.completions.create(model="nova", tools=[WEATHER_TOOL], messages=[
        {"role": "user", "content": "weather in Paris and Rome"},
        {**choice.message.model_dump(exclude_none=True),
         "tool_calls": [call.model_dump(), {**call.model_dump(), "id": "tooluse_mock_2"}]},
        {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"},
        {"role": "tool", "tool_call_id": "tooluse_mock_2", "content": "21C"},
        {"role": "user", "content": "thanks, and tomorrow?"},
    ])
    assert second.choices[0].message.content == "echo: thanks, and tomorrow?"  # the mock accepted the shape
    sent = upstream_requests()[-1]["body"]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"][1] == {"toolUse": {"toolUseId": "tooluse_mock_1", "name": "get_weather",
                                                 "input": {"city": "Paris", "unit": "celsius"}}}
    assert sent[2]["content"] == [
        {"toolResult": {"toolUseId": "tooluse_mock_1", "content": [{"text": "18C and sunny"}]}},
        {"toolResult": {"toolUseId": "tooluse_mock_2", "content": [{"text": "21C"}]}},
        {"text": "thanks, and tomorrow?"}]


def test_stream_with_usage(client, upstream_requests):
    chunks = list(client.chat.completions.create(model="nova", stream=True, stream_options={"include_usage": True},
                                                 messages=[{"role": "user", "content": "stream from bedrock"}]))
    assert upstream_requests()[-1]["raw_path"].endswith("/converse-stream")
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: stream from bedrock"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == 4 and chunks[-1].usage.completion_tokens == 4
    assert len({c.id for c in chunks}) == 1


def test_stream_tool_call(client):
    chunks = list(client.chat.completions.create(model="nova", stream=True, tools=[WEATHER_TOOL],
                                                 messages=[{"role": "user", "content": "weather #tool"}]))
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].id == "tooluse_mock_1" and calls[0].function.name == "get_weather" and calls[0].index == 0
    assert json.loads("".join(tc.function.arguments or "" for tc in calls)) == {"city": "Paris", "unit": "celsius"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_stream_broken_midway_ends_with_an_error(client):
    with pytest.raises(openai.APIError) as info:
        list(client.chat.completions.create(model="nova", stream=True,
                                            messages=[{"role": "user", "content": "one two three #midstream-fail"}]))
    assert "broke off" in str(info.value.message)


def test_image_data_url_and_http_url(client, upstream_requests):
    client.chat.completions.create(model="nova", messages=[{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}])
    blocks = upstream_requests()[-1]["body"]["messages"][0]["content"]
    assert blocks[1] == {"image": {"format": "png", "source": {"bytes": PNG}}}
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="nova", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.invalid/cat.png"}}]}])
    assert info.value.body["param"] == "messages[0].content[0].image_url"
    assert "data: URL" in info.value.body["message"]


def test_throttling_is_retried_then_answers(serve, upstream, upstream_requests):
    client = client_of(serve(bedrock_config(upstream.url, retry={"attempts": 2, "backoff_s": 0.01})))
    answer = client.chat.completions.create(model="nova", messages=[{"role": "user", "content": "busy #throttle:1"}])
    assert answer.choices[0].message.content == "echo: busy #throttle:1"
    assert len(upstream_requests()) == 2  # a fresh signature on the retry: the mock accepted both


@pytest.mark.parametrize("text", ["x #streamexception", "x #streamexception #trickle:0.05"])  # one read, or two
def test_throttling_exception_before_the_answer_is_retried(serve, upstream, upstream_requests, text):
    client = client_of(serve(bedrock_config(upstream.url, retry={"attempts": 1, "backoff_s": 0.01})))
    with pytest.raises(openai.RateLimitError) as info:  # a 429 before any byte, not an event inside a 200
        list(client.chat.completions.create(model="nova", stream=True, messages=[{"role": "user", "content": text}]))
    assert info.value.body["code"] == "throttlingException"
    assert len(upstream_requests()) == 2


def test_throttling_is_a_429_when_retries_run_out(client):
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="nova", messages=[{"role": "user", "content": "#error:429"}])
    assert info.value.body["code"] == "ThrottlingException" and "mock failure 429" in info.value.body["message"]
    assert info.value.response.headers["retry-after"] == "1"


def test_validation_error_is_a_400(client):
    with pytest.raises(openai.BadRequestError) as info:  # Converse wants the first turn to be the user's
        client.chat.completions.create(model="nova", messages=[{"role": "assistant", "content": "I start"}])
    assert info.value.body["code"] == "ValidationException"


def test_wrong_secret_is_refused_by_the_signature_check(serve, upstream):
    client = client_of(serve(bedrock_config(upstream.url, secret_access_key="not-the-secret-0123456789")))
    with pytest.raises(openai.PermissionDeniedError) as info:
        client.chat.completions.create(model="nova", messages=[{"role": "user", "content": "hi"}])
    assert info.value.body["code"] == "InvalidSignatureException"
    assert "not-the-secret-0123456789" not in json.dumps(info.value.body)


def test_temporary_credentials_sign_the_session_token(serve, upstream, upstream_requests):
    client = client_of(serve(bedrock_config(upstream.url, access_key_id=TEST_TEMP_ACCESS_KEY_ID,
                                            secret_access_key=TEST_TEMP_SECRET_ACCESS_KEY,
                                            session_token=TEST_SESSION_TOKEN)))
    assert client.chat.completions.create(model="nova", messages=[{"role": "user", "content": "hi"}]).choices
    assert "x-amz-security-token" in upstream_requests()[-1]["headers"]["authorization"]


@pytest.mark.parametrize("stream", [False, True])
def test_no_secret_in_any_error_body(serve, upstream, stream):
    client = client_of(serve(bedrock_config(upstream.url, access_key_id=TEST_TEMP_ACCESS_KEY_ID,
                                            secret_access_key=TEST_TEMP_SECRET_ACCESS_KEY,
                                            session_token=TEST_SESSION_TOKEN)))
    for text in ("#leakerror:403", "#leakerror:400", "#leakerror:500", *(("#leakstream", "#leakstream:first")
                                                                         if stream else ())):
        with pytest.raises(openai.APIError) as info:
            result = client.chat.completions.create(model="nova", stream=stream,
                                                    messages=[{"role": "user", "content": text}])
            if stream:
                list(result)
        seen = json.dumps(info.value.body) + str(info.value.message)
        assert "rejected" in seen, text  # the hostile upstream's words came through, its quotes did not
        for secret in (TEST_TEMP_SECRET_ACCESS_KEY, TEST_SESSION_TOKEN, TEST_SESSION_TOKEN[:40], TEST_TEMP_ACCESS_KEY_ID):
            assert secret not in seen, text


def _sign(url: str, body: bytes, secret: str, when: datetime.datetime | None = None) -> dict[str, str]:
    request = AWSRequest(method="POST", url=url, data=body, headers={"content-type": "application/json"})
    signer = SigV4Auth(Credentials(TEST_ACCESS_KEY_ID, secret), "bedrock", REGION)
    if when is None:
        signer.add_auth(request)
    else:  # botocore signs at the current time only: sign at `when` with its own steps
        request.context["timestamp"] = stamp = when.strftime(SIGV4_TIMESTAMP)
        request.headers["X-Amz-Date"] = stamp
        signature = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
        signer._inject_signature_to_request(request, signature)
    return dict(request.headers.items())


@pytest.mark.parametrize("case, kind", [("missing", "MissingAuthenticationTokenException"),
                                        ("wrong", "InvalidSignatureException"),
                                        ("stale", "InvalidSignatureException"),
                                        ("unknown key", "UnrecognizedClientException"),
                                        ("tampered body", "InvalidSignatureException")])
def test_mock_refuses_what_aws_refuses(upstream, case, kind):
    url = f"{upstream.url}/model/m/converse"
    body = json.dumps({"messages": [{"role": "user", "content": [{"text": "hi"}]}]}).encode()
    good = _sign(url, body, TEST_SECRET_ACCESS_KEY)
    assert httpx.post(url, content=body, headers=good).status_code == 200
    headers = {
        "missing": {"content-type": "application/json"},
        "wrong": _sign(url, body, "wrong-secret"),
        "stale": _sign(url, body, TEST_SECRET_ACCESS_KEY,
                       datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=6)),
        "unknown key": {**good, "Authorization": good["Authorization"].replace(TEST_ACCESS_KEY_ID, "AKIAUNKNOWN0000000")},
        "tampered body": good,
    }[case]
    response = httpx.post(url, content=body.replace(b"hi", b"ho") if case == "tampered body" else body,
                          headers=headers)
    assert response.status_code == 403 and response.headers["x-amzn-errortype"].startswith(kind)
    assert "message" in response.json()


def test_botocore_client_parses_the_mock(upstream):
    """The official AWS client, against the mock: the mock's JSON, errors and event-stream frames are real."""
    def run() -> tuple[dict[str, Any], list[dict[str, Any]], str]:
        client = botocore.session.get_session().create_client(
            "bedrock-runtime", endpoint_url=upstream.url, region_name=REGION,
            aws_access_key_id=TEST_ACCESS_KEY_ID, aws_secret_access_key=TEST_SECRET_ACCESS_KEY)
        messages = [{"role": "user", "content": [{"text": "hello boto #tool"}]}]
        tools = {"tools": [{"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object"}}}}]}
        answer = client.converse(modelId=MODEL_ID, messages=messages, toolConfig=tools)
        events = list(client.converse_stream(modelId=MODEL_ID, messages=messages, toolConfig=tools)["stream"])
        try:
            client.converse(modelId=MODEL_ID, messages=[{"role": "user", "content": [{"text": "#error:400"}]}])
        except client.exceptions.ValidationException as exc:
            return answer, events, exc.response["Error"]["Message"]
        return answer, events, ""

    answer, events, error = asyncio.run(asyncio.to_thread(run))  # botocore blocks: off this thread's loop
    assert answer["stopReason"] == "tool_use" and answer["usage"]["totalTokens"] > 0
    assert answer["output"]["message"]["content"][1]["toolUse"]["input"] == {"city": "Paris", "unit": "celsius"}
    kinds = [next(iter(e)) for e in events]
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    assert events[-2]["messageStop"]["stopReason"] == "tool_use"
    arguments = "".join(e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in events
                        if "toolUse" in e.get("contentBlockDelta", {}).get("delta", {}))
    assert json.loads(arguments) == {"city": "Paris", "unit": "celsius"}
    assert error == "mock failure 400"


def test_a_body_that_is_not_converse_is_a_502(client):
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="nova", messages=[{"role": "user", "content": "#malformed"}])
    assert info.value.status_code == 502 and "not a Converse response" in info.value.body["message"]


def test_another_door_reaches_bedrock_too(serve, upstream):
    """The Anthropic Messages door, translated to the internal form, then to Converse: no pair-wise code."""
    sdk = anthropic.Anthropic(base_url=serve(bedrock_config(upstream.url)).url, api_key="unused", max_retries=0)
    message = sdk.messages.create(model="nova", max_tokens=32, messages=[{"role": "user", "content": "via messages"}])
    assert message.content[0].text == "echo: via messages" and message.stop_reason == "end_turn"
    with sdk.messages.stream(model="nova", max_tokens=32, messages=[{"role": "user", "content": "a b"}]) as stream:
        assert "".join(stream.text_stream) == "echo: a b"
        assert stream.get_final_message().usage.output_tokens == 3
