"""The error table: every failure is an OpenAI-shaped error with the right status, no trace, no key."""

from __future__ import annotations

import json
import logging

import httpx
import openai
import pytest

from tests.conftest import TEST_KEY, base_config
from turnout.testing import free_port
from turnout.testing.mock_upstream import FAKE_KEY_IN_ERRORS

CHAT = "/v1/chat/completions"


def post(server, body=None, content=None, headers=None):
    return httpx.post(server.url + CHAT, json=body, content=content, headers=headers, timeout=30)


def assert_openai_error(response, status, code=None, param=None):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    if code is not None:
        assert error["code"] == code
    if param is not None:
        assert error["param"] == param
    text = response.text
    assert "Traceback" not in text and TEST_KEY not in text and FAKE_KEY_IN_ERRORS not in text
    return error


def user(text, model="small", **extra):
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


@pytest.mark.parametrize("content, code", [
    (b"{not json", "invalid_json"),
    (b'{"model": "small", "messages": [{"role": "user", "content": "\xff\xfe"}]}', "invalid_json"),
    (b"[1, 2]", "invalid_request"),
])
def test_malformed_bodies_are_400(turnout, content, code):
    assert_openai_error(post(turnout, content=content, headers={"content-type": "application/json"}), 400, code)


@pytest.mark.parametrize("body, param", [
    ({"messages": [{"role": "user", "content": "x"}]}, "model"),
    ({"model": "small"}, "messages"),
    ({"model": "small", "messages": []}, "messages"),
    ({"model": "small", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
    ({"model": "small", "messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages[0].content[0].text"),
    (user("x", temperature=9), "temperature"),
    (user("x", n=0), "n"),
    (user("x", stream="yes"), "stream"),
])
def test_schema_violations_name_the_field(turnout, body, param):
    error = assert_openai_error(post(turnout, body), 400, "invalid_request", param)
    assert error["message"].startswith(param)


def test_unknown_model_is_404(turnout):
    error = assert_openai_error(post(turnout, user("x", model="gpt-5")), 404, "model_not_found", "model")
    assert "auto" in error["message"] and "small" in error["message"]


def test_direct_model_refused_when_config_forbids(serve, upstream):
    config = base_config(upstream.url)
    config["routing"] = {"allow_direct": False}
    server = serve(config)
    assert_openai_error(post(server, user("x", model="small")), 404, "model_not_found")
    assert post(server, user("x", model="auto")).status_code == 200


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 429])
def test_upstream_4xx_pass_through(turnout, status):
    error = assert_openai_error(post(turnout, user(f"#error:{status}")), status, f"mock_{status}")
    assert "[redacted]" in error["message"]


@pytest.mark.parametrize("status", [500, 502, 503])
def test_upstream_5xx_become_502(turnout, status):
    error = assert_openai_error(post(turnout, user(f"#error:{status}")), 502)
    assert f"status {status}" in error["message"]


def test_upstream_5xx_before_stream_is_502_not_a_broken_stream(turnout):
    assert_openai_error(post(turnout, user("#error:503", stream=True)), 502)


def test_upstream_malformed_json_is_502(turnout):
    assert_openai_error(post(turnout, user("#malformed")), 502, "upstream_error")


def test_upstream_timeout_is_504(serve, upstream):
    config = base_config(upstream.url)
    config["models"]["small"]["timeout"] = {"read": 0.3}
    error = assert_openai_error(post(serve(config), user("#sleep:2")), 504, "upstream_timeout")
    assert "timed out" in error["message"]


def test_upstream_unreachable_is_502(serve, upstream):
    config = base_config(upstream.url)
    config["models"]["small"]["base_url"] = f"http://127.0.0.1:{free_port()}/v1"
    assert_openai_error(post(serve(config), user("hi")), 502, "upstream_unreachable")


def test_mid_stream_failure_ends_with_error_event(turnout):
    client = openai.OpenAI(base_url=f"{turnout.url}/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(stream=True, **user("one two three four #midstream-fail"))
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 2  # the two chunks sent before the break arrive; then a clean error
    assert "mid-stream" in str(info.value)


def test_mid_stream_failure_raw_sse_has_error_event_and_no_done(turnout):
    with httpx.stream("POST", turnout.url + CHAT, json=user("a b c #midstream-fail", stream=True)) as response:
        assert response.status_code == 200
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert "[DONE]" not in events
    assert json.loads(events[-1])["error"]["code"] == "stream_interrupted"


def test_body_too_large_is_413(serve, upstream):
    config = base_config(upstream.url)
    config["server"] = {"max_body_bytes": 2048}
    assert_openai_error(post(serve(config), user("x" * 5000)), 413, "request_too_large")


def test_unknown_endpoint_and_method(turnout):
    assert_openai_error(httpx.get(turnout.url + "/v1/nothing"), 404, "not_found")
    assert_openai_error(httpx.get(turnout.url + CHAT), 405, "method_not_allowed")


def test_no_secret_or_trace_in_logs(turnout, caplog):
    with caplog.at_level(logging.DEBUG):
        for text in ("#error:401", "#error:500", "#malformed", "hello"):
            post(turnout, user(text))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert TEST_KEY not in logged and FAKE_KEY_IN_ERRORS not in logged and "Traceback" not in logged
    assert all(r.exc_info is None for r in caplog.records)
