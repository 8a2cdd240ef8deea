"""Bodies built of many tiny items (8 MiB of them is hundreds of thousands) are refused by count before anything
validates them one by one, in each protocol's own error shape; one part beyond each limit is refused, the limit
itself is served; and a bad part among many is named exactly as before (validation stops at the first)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import base_config

LIMITS = {"max_messages": 8, "max_parts": 16, "max_tools": 4}


@pytest.fixture(scope="module")
def server(upstream):
    from turnout.config import parse_config
    from turnout.server import create_app
    from turnout.testing import ServerThread

    config = base_config(upstream.url)
    config["server"].update(LIMITS)
    started = ServerThread(create_app(config=parse_config(config), watch=False)).start()
    yield started
    started.stop()


def post(server, path, body):
    return httpx.post(server.url + path, json=body, timeout=60)


def text_parts(n):
    return [{"type": "text", "text": "hi"}] * n


TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
CLAUDE_TOOL = {"name": "f", "input_schema": {"type": "object"}}


def chat(parts=1, messages=1, tools=0):
    body = {"model": "small", "messages": [{"role": "user", "content": text_parts(parts)}] +
            [{"role": "user", "content": "x"}] * (messages - 1)}
    return {**body, "tools": [TOOL] * tools} if tools else body


def claude(parts=1, messages=1, tools=0):
    body = {"model": "small", "max_tokens": 8, "messages": [{"role": "user", "content": text_parts(parts)}] +
            [{"role": "user", "content": "x"}] * (messages - 1)}
    return {**body, "tools": [CLAUDE_TOOL] * tools} if tools else body


def responses(parts=1, messages=1, tools=0):
    body = {"model": "small", "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}] * parts}]
            + [{"role": "user", "content": "x"}] * (messages - 1)}
    return {**body, "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}] * tools} \
        if tools else body


def openai_error(response, code, param):
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["param"] == param and error["type"] == "invalid_request_error", error
    return error


@pytest.mark.parametrize("path, build, items", [
    ("/v1/chat/completions", chat, "messages"),
    ("/v1/responses", responses, "input"),
])
def test_openai_doors_refuse_by_count_and_serve_the_limit(server, path, build, items):
    assert post(server, path, build(parts=16, messages=8, tools=4)).status_code == 200
    openai_error(post(server, path, build(parts=17)), "too_many_parts", items)
    openai_error(post(server, path, build(messages=9)), "too_many_messages", items)
    openai_error(post(server, path, build(tools=5)), "too_many_tools", "tools")
    # near the 8 MiB limit: 200,000 parts, refused without validating them
    error = openai_error(post(server, path, build(parts=200_000)), "too_many_parts", items)
    assert "200000 content parts" in error["message"]


def test_messages_door_refuses_in_anthropic_shape(server):
    assert post(server, "/v1/messages", claude(parts=16, messages=8, tools=4)).status_code == 200
    for body, words in ((claude(parts=17), "content parts"), (claude(messages=9), "9 messages"),
                        (claude(tools=5), "5 tools")):
        response = post(server, "/v1/messages", body)
        assert response.status_code == 400, response.text
        error = response.json()
        assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
        assert words in error["error"]["message"]
    # a tool_result's own blocks count too
    nested = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": text_parts(16)}]}
    response = post(server, "/v1/messages", {**claude(), "messages": [nested]})
    assert response.status_code == 400 and "17 content parts" in response.json()["error"]["message"]


def test_a_bad_part_is_named_as_before():
    """The chat door validates parts itself (pydantic spent ~10 µs a part, and one error per union branch per item:
    8 MiB of `1`s took 35 s); the error it gives is the one the whole-body validation gave."""
    from turnout.doors.chat_schema import check_chat_request
    from turnout.errors import InvalidRequestError

    def error(body):
        with pytest.raises(InvalidRequestError) as caught:
            check_chat_request(body)
        return caught.value.param, caught.value.message

    good = {"type": "text", "text": "hi"}
    assert error({"model": "m", "messages": [{"role": "user", "content": [good, 1, good]}]}) == (
        "messages[0].content[1]", "messages[0].content[1]: Input should be a valid dictionary or instance of ContentPart")
    # a bad field of a later part is more specific than an earlier part that is not an object: it is named
    body = {"model": "m", "messages": [{"role": "user", "content": [1]}, {"role": "bot", "content": [{"type": ""}]}]}
    assert error(body) == ("messages[1].content[0].type",
                           "messages[1].content[0].type: String should have at least 1 character")
    assert error({"model": "m", "messages": [{"role": "user", "content": [{"type": "text"}]}]})[0] == \
        "messages[0].content[0].text"
    assert error({"model": "m", "messages": [{"role": "bot", "content": [good]}]})[0] == "messages[0].role"
    assert error({"model": "m", "messages": [{"role": "user", "content": 5}]}) == (
        "messages[0].content", "messages[0].content: Input should be a valid string")
    assert error({"model": "m", "messages": [{"role": "user", "content": [1] * 4_000_000}]})[0] == \
        "messages[0].content[0]"
    check_chat_request({"model": "m", "messages": [{"role": "user", "content": [good, {"type": "image_url"}]}]})


def test_token_id_inputs_are_counted_before_they_are_checked(server):
    from turnout.doors.openai_inputs import MAX_TOKEN_IDS
    response = post(server, "/v1/completions", {"model": "small", "prompt": [[1] * 1000] * 301})
    assert response.status_code == 400 and response.json()["error"]["param"] == "prompt"
    assert f"more than {MAX_TOKEN_IDS}" in response.json()["error"]["message"]
    response = post(server, "/v1/completions", {"model": "small", "prompt": [[1, 2], [3, -1]]})
    assert response.status_code == 400 and response.json()["error"]["param"] == "prompt[1][1]"
    response = post(server, "/v1/completions", {"model": "small", "prompt": [[1, 2], [3, True]]})
    assert response.status_code == 400 and response.json()["error"]["param"] == "prompt[1][1]"


def test_fields_nobody_declared_are_passed_not_validated():
    """Fields the models do not declare go upstream untouched and never fail; pydantic copied each one (700,000 in
    a message: 0.3 s). They are left out of the validation, and a real error beside them is still named."""
    from turnout.doors.chat_schema import check_chat_request
    from turnout.errors import InvalidRequestError
    extra = {f"k{i}": i for i in range(700_000)}
    check_chat_request({"model": "m", "messages": [{"role": "user", "content": "x", **extra}], **extra})
    with pytest.raises(InvalidRequestError) as caught:
        check_chat_request({"model": "m", "messages": [{"role": "bot", "content": "x", **extra}], "n": 0})
    assert caught.value.param == "messages[0].role"
