"""check_chat_request's fast path (_plainly_valid) against the request model it stands in for: over a grid of
bodies, valid and not, the fast path accepts only bodies the request model (ChatCompletionRequest, parts and all)
accepts, and check_chat_request's verdict is the model's."""

from __future__ import annotations

import itertools

import pytest
from pydantic import ValidationError

from turnout.doors.chat_schema import ChatCompletionRequest, _plainly_valid, check_chat_request
from turnout.errors import InvalidRequestError

MISSING = object()
MODELS = ["auto", "", 1, None, ["auto"], MISSING]
MESSAGES = [
    [{"role": "user", "content": "hi"}],
    [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi", "name": "ann"}],
    [{"role": "assistant", "content": None}, {"role": "tool", "content": "42", "tool_call_id": "c1"}],
    [{"role": "user", "content": "hi", "extra": {"kept": True}}],
    [], "hi", [1], [{"content": "hi"}], [{"role": "robot", "content": "hi"}], [{"role": ["user"], "content": "x"}],
    [{"role": "user", "content": 1}], [{"role": "user", "content": [{"type": "text", "text": "a"}]}],
    [{"role": "user", "content": [{"type": "text"}]}], [{"role": "user", "content": "x", "name": 1}],
    [{"role": "tool", "content": "x", "tool_call_id": 2}], [{"role": "assistant", "tool_calls": []}],
    [{"role": "assistant", "tool_calls": "x"}], [{"role": "assistant", "content": "x", "tool_calls": None}],
    MISSING,
]
STREAMS = [True, False, None, 1, "true", MISSING]
EXTRAS = [{}, {"temperature": 0.5}, {"temperature": 5}, {"n": 0}, {"cache": True}, {"cache": "yes"},
          {"stream_options": {"include_usage": True}}, {"unknown": [1, 2]}, {"max_tokens": None}]


def bodies():
    for model, messages, stream, extra in itertools.product(MODELS, MESSAGES, STREAMS, EXTRAS):
        body = {k: v for k, v in (("model", model), ("messages", messages), ("stream", stream)) if v is not MISSING}
        yield body | extra


def model_accepts(body: dict) -> bool:
    try:
        ChatCompletionRequest.model_validate(body)
    except ValidationError:
        return False
    return True


def test_the_fast_path_accepts_only_what_the_model_accepts() -> None:
    fast = accepted = 0
    for body in bodies():
        accepts = model_accepts(body)
        if _plainly_valid(body):
            fast += 1
            assert accepts, body
        accepted += accepts
    assert fast > 20 and accepted > fast  # it takes the plain bodies, and leaves others to the model


def test_check_chat_request_gives_the_models_verdict() -> None:
    for body in bodies():
        if model_accepts(body):
            check_chat_request(body)
        else:
            with pytest.raises(InvalidRequestError):
                check_chat_request(body)
