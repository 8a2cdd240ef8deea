"""Converse translation both ways, event-stream decoding (frames from the mock's encoder, checked by botocore's
decoder), and where the bedrock backend finds its region and credentials."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from turnout.backends import build_backend
from turnout.backends.bedrock_wire import (
    EventDecoder,
    StreamException,
    StreamFault,
    StreamTranslator,
    from_converse,
    to_converse,
)
from turnout.config import ConfigError, ModelConfig
from turnout.errors import InvalidRequestError
from turnout.testing.mock_bedrock import event, exception, frame

TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


def test_tool_results_merge_into_one_user_turn_with_the_next_words():
    body = to_converse({"messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}},
            {"id": "b", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "a", "content": [{"type": "text", "text": "one"}]},
        {"role": "tool", "tool_call_id": "b", "content": "two"},
        {"role": "user", "content": "next"}], "tools": [TOOL]})
    assert body["messages"][1] == {"role": "assistant", "content": [
        {"toolUse": {"toolUseId": "a", "name": "f", "input": {"x": 1}}},
        {"toolUse": {"toolUseId": "b", "name": "f", "input": {}}}]}
    assert body["messages"][2] == {"role": "user", "content": [
        {"toolResult": {"toolUseId": "a", "content": [{"text": "one"}]}},
        {"toolResult": {"toolUseId": "b", "content": [{"text": "two"}]}}, {"text": "next"}]}
    assert "toolChoice" not in body["toolConfig"]  # no tool_choice: Bedrock's default (auto)


@pytest.mark.parametrize("choice, expected", [
    ("auto", {"auto": {}}), ("required", {"any": {}}),
    ({"type": "function", "function": {"name": "f"}}, {"tool": {"name": "f"}})])
def test_tool_choice(choice, expected):
    body = to_converse({"messages": [{"role": "user", "content": "q"}], "tools": [TOOL], "tool_choice": choice})
    assert body["toolConfig"]["toolChoice"] == expected
    assert body["toolConfig"]["tools"] == [{"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object"}}}}]


def test_tool_choice_none_sends_no_tools():
    assert "toolConfig" not in to_converse({"messages": [{"role": "user", "content": "q"}], "tools": [TOOL],
                                            "tool_choice": "none"})


def test_inference_config_and_blank_text_left_out():
    body = to_converse({"messages": [{"role": "user", "content": [{"type": "text", "text": ""},
                                                                  {"type": "text", "text": "q"}]}],
                        "max_completion_tokens": 7, "stop": ["a", "b"], "temperature": 0})
    assert body["inferenceConfig"] == {"maxTokens": 7, "stopSequences": ["a", "b"], "temperature": 0}
    assert body["messages"][0]["content"] == [{"text": "q"}]
    assert "inferenceConfig" not in to_converse({"messages": [{"role": "user", "content": "q"}]})


@pytest.mark.parametrize("url, message", [
    ("https://example.com/cat.png", "inline only"), ("data:image/tiff;base64,AAAA", "not supported"),
    ("data:image/png,raw", "base64")])
def test_images_bedrock_cannot_take_are_clear_400s(url, message):
    with pytest.raises(InvalidRequestError) as info:
        to_converse({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]})
    assert message in info.value.message and info.value.param == "messages[0].content[0].image_url"
    assert info.value.status == 400


def test_n_and_bad_tool_arguments_name_their_param():
    with pytest.raises(InvalidRequestError) as info:
        to_converse({"messages": [], "n": 2})
    assert info.value.param == "n"
    with pytest.raises(InvalidRequestError) as info:
        to_converse({"messages": [{"role": "assistant", "tool_calls": [{"id": "a", "function": {"arguments": "{"}}]}]})
    assert info.value.param == "messages[0].tool_calls[0].function.arguments"


@pytest.mark.parametrize("reason, finish", [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
                                            ("tool_use", "tool_calls"), ("guardrail_intervened", "content_filter"),
                                            ("content_filtered", "content_filter")])
def test_from_converse(reason, finish):
    completion = from_converse({"output": {"message": {"role": "assistant", "content": [
        {"text": "a"}, {"reasoningContent": {"reasoningText": {"text": "hidden"}}}, {"text": "b"},
        {"toolUse": {"toolUseId": "t1", "name": "f", "input": {"x": [1]}}}]}},
        "stopReason": reason, "usage": {"inputTokens": 5, "outputTokens": 2, "cacheReadInputTokens": 3}},
        "m", "req-1")
    choice = completion["choices"][0]
    assert choice["finish_reason"] == finish and choice["message"]["content"] == "ab"
    assert choice["message"]["tool_calls"] == [{"id": "t1", "type": "function",
                                                "function": {"name": "f", "arguments": '{"x": [1]}'}}]
    assert completion["usage"] == {"prompt_tokens": 8, "completion_tokens": 2, "total_tokens": 10,
                                   "prompt_tokens_details": {"cached_tokens": 3}}
    assert completion["id"] == "chatcmpl-req-1" and completion["model"] == "m"


def _stream() -> bytes:
    return b"".join([
        event("messageStart", {"role": "assistant"}),
        event("contentBlockDelta", {"delta": {"text": "hi"}, "contentBlockIndex": 0}),
        event("contentBlockStart", {"start": {"toolUse": {"toolUseId": "t", "name": "f"}}, "contentBlockIndex": 1}),
        event("contentBlockDelta", {"delta": {"toolUse": {"input": '{"a"'}}, "contentBlockIndex": 1}),
        event("contentBlockDelta", {"delta": {"toolUse": {"input": ": 1}"}}, "contentBlockIndex": 1}),
        event("contentBlockStop", {"contentBlockIndex": 1}),
        event("messageStop", {"stopReason": "tool_use"}),
        event("metadata", {"usage": {"inputTokens": 3, "outputTokens": 4}})])


def test_frames_decode_byte_by_byte_and_translate():
    decoder, translator = EventDecoder(), StreamTranslator("m", include_usage=True)
    data, chunks = _stream(), []
    for i in range(len(data)):  # a frame split across any number of reads is kept until whole
        for kind, payload in decoder.feed(data[i:i + 1]):
            chunks += translator.feed(kind, payload)
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""} and deltas[1] == {"content": "hi"}
    assert deltas[2]["tool_calls"][0] == {"index": 0, "id": "t", "type": "function",
                                          "function": {"name": "f", "arguments": ""}}
    assert json.loads("".join(d["tool_calls"][0]["function"]["arguments"] for d in deltas[2:5])) == {"a": 1}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 7
    assert translator.finished and translator.stopped
    assert all(c["usage"] is None for c in chunks[:-1])


def test_no_usage_chunk_unless_asked():
    decoder, translator = EventDecoder(), StreamTranslator("m", include_usage=False)
    chunks = [c for kind, p in decoder.feed(_stream()) for c in translator.feed(kind, p)]
    assert all(c["choices"] for c in chunks) and "usage" not in chunks[0]


def test_a_corrupted_frame_is_a_fault():
    data = bytearray(event("messageStart", {"role": "assistant"}))
    data[-6] ^= 0xFF  # a payload byte: the message CRC no longer matches
    with pytest.raises(StreamFault):
        list(EventDecoder().feed(bytes(data)))
    with pytest.raises(StreamFault):  # a frame whose payload is not JSON
        list(EventDecoder().feed(frame({":message-type": "event", ":event-type": "messageStart"}, b"<html>")))


def test_a_frame_over_the_limit_is_a_fault_before_it_is_read():
    big = event("contentBlockDelta", {"delta": {"text": "x" * 5000}, "contentBlockIndex": 0})
    decoder = EventDecoder(limit=4096)
    with pytest.raises(StreamFault, match=f"a frame of {len(big)} bytes"):  # its prelude says its length: the rest is never waited for
        list(decoder.feed(big[:8]))
    with pytest.raises(StreamFault):  # a length no frame can have
        list(EventDecoder().feed(b"\x00\x00\x00\x03" + b"\x00" * 12))


def test_a_large_frame_in_small_reads_decodes_whole():
    big = event("contentBlockDelta", {"delta": {"text": "y" * 300_000}, "contentBlockIndex": 0})
    decoder = EventDecoder()
    out = [item for i in range(0, len(big), 1000) for item in decoder.feed(big[i:i + 1000])]
    assert len(out) == 1 and out[0][1]["delta"]["text"] == "y" * 300_000


def test_exception_and_error_frames():
    seen = []
    with pytest.raises(StreamException) as info:  # the events before it come out first: they may be relayed
        for item in EventDecoder().feed(event("messageStart", {"role": "assistant"})
                                        + exception("throttlingException", "slow down")):
            seen.append(item)  # noqa: PERF402 - what came before the exception is the point
    assert (info.value.kind, info.value.message) == ("throttlingException", "slow down")
    assert seen == [("messageStart", {"role": "assistant", "p": "abcdefghij"[:len("messageStart") % 10]})]
    with pytest.raises(StreamException) as info:
        list(EventDecoder().feed(frame({":message-type": "error", ":error-code": "InternalFailure",
                                        ":error-message": "boom"}, b"")))
    assert (info.value.kind, info.value.message) == ("InternalFailure", "boom")


# --- region and credentials -------------------------------------------------------------------------------

@pytest.fixture
def no_aws(monkeypatch, tmp_path: Path) -> Path:
    """No AWS settings from this machine: an empty environment and shared files that do not exist yet."""
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CREDENTIAL_EXPIRATION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    return tmp_path


def _build(**options):
    return build_backend("b", ModelConfig(provider="bedrock", model="m", options=options))


def _issues(**options) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        _build(**options)
    return [(i.path, i.message) for i in info.value.issues]


def test_options_credentials_and_secrets(no_aws):
    backend = _build(region="us-east-1", access_key_id="AKIAEXAMPLEKEY00001", secret_access_key="s3cr3t-value",
                     session_token="tok-en-value")
    assert set(backend.secrets()) >= {"s3cr3t-value", "tok-en-value"}
    assert backend.endpoint == "https://bedrock-runtime.us-east-1.amazonaws.com"
    assert backend.url("converse") == "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse"
    headers = backend.signed(backend.url("converse"), b"{}", {"x-plugin": "1", "Authorization": "forged",
                                                                "Content-Type": "text/plain"})
    assert "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-plugin," in headers["Authorization"]
    assert headers["content-type"] == "application/json" and "Content-Type" not in headers
    assert "s3cr3t-value" not in json.dumps(headers)


def test_region_from_environment_else_a_config_error(no_aws, monkeypatch):
    creds = {"access_key_id": "AKIAEXAMPLEKEY00001", "secret_access_key": "s"}
    assert _issues(**creds) == [("models.b.options.region", "required: set it here, or AWS_REGION in the environment")]
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    assert _build(**creds).region == "ap-south-1"
    monkeypatch.setenv("AWS_REGION", "eu-north-1")
    assert _build(**creds).region == "eu-north-1"


def test_missing_credentials_name_the_field(no_aws):
    paths = [p for p, _ in _issues(region="us-east-1")]
    assert paths == ["models.b.options.access_key_id"]
    assert [p for p, _ in _issues(region="us-east-1", access_key_id="AKIAEXAMPLEKEY00001")] == [
        "models.b.options.secret_access_key"]
    assert [p for p, _ in _issues(region="us-east-1", secret_access_key="s")] == ["models.b.options.access_key_id"]
    assert _issues(region="us-east-1", acces_key_id="x")[0][1].startswith("unknown key 'acces_key_id'")


def test_credentials_from_environment(no_aws, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMENVIRONMENT1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "env-token")
    backend = _build(region="us-east-1")
    assert (backend.credentials.access_key, backend.credentials.secret_key, backend.credentials.token) == (
        "AKIAFROMENVIRONMENT1", "env-secret", "env-token")
    assert "env-secret" in backend.secrets() and "env-token" in backend.secrets()
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")  # a key id without its secret
    assert _issues(region="us-east-1")[0][0] == "models.b.options.access_key_id"


def test_credentials_from_shared_files_and_profiles(no_aws, monkeypatch):
    (no_aws / "credentials").write_text("[default]\naws_access_key_id = AKIASHAREDDEFAULT01\n"
                                        "aws_secret_access_key = shared-secret\n")
    (no_aws / "config").write_text("[profile work]\naws_access_key_id = AKIACONFIGWORK00001\n"
                                   "aws_secret_access_key = config-secret\naws_session_token = config-token\n")
    assert _build(region="us-east-1").credentials.secret_key == "shared-secret"
    work = _build(region="us-east-1", profile="work").credentials
    assert (work.access_key, work.token) == ("AKIACONFIGWORK00001", "config-token")
    monkeypatch.setenv("AWS_PROFILE", "work")
    assert _build(region="us-east-1").credentials.secret_key == "config-secret"


def test_api_key_is_refused(no_aws):
    with pytest.raises(ConfigError) as info:
        build_backend("b", ModelConfig(provider="bedrock", api_key="k", options={"region": "us-east-1"}))
    assert info.value.issues[0].path == "models.b.api_key"


def test_without_botocore_a_bedrock_model_is_a_config_error(no_aws, monkeypatch):
    monkeypatch.setitem(sys.modules, "botocore.auth", None)  # as if botocore were not installed
    assert _issues(region="us-east-1", access_key_id="AKIAEXAMPLEKEY00001", secret_access_key="s") == [
        ("models.b.provider", "provider 'bedrock' needs botocore: pip install 'turnout[bedrock]'")]
