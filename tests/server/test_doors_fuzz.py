"""Fuzzing every door: hypothesis bodies shaped like each protocol's requests, with any JSON where a field's
value goes. The server must never answer 5xx (the mock upstream answers every well-formed request), and every
refusal is in that protocol's own error shape."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.server.test_fuzz import FUZZ, fuzz_target, json_values  # noqa: F401  (fuzz_target is a fixture)

models = st.sampled_from(["auto", "small", "claude", "nope", ""]) | st.integers() | st.none()
text = st.text(max_size=60)
part = st.fixed_dictionaries({"type": st.sampled_from(["text", "input_text", "output_text", "image", "input_image",
                                                       "tool_use", "tool_result", "function_call", "weird"])},
                             optional={"text": text | json_values, "source": json_values, "id": text,
                                       "input": json_values, "content": json_values, "image_url": json_values})
content = text | st.lists(part, max_size=3) | json_values
message = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "tool", "x"]),
                                 "content": content})
item = message | st.fixed_dictionaries(
    {"type": st.sampled_from(["message", "function_call", "function_call_output", "reasoning", "weird"])},
    optional={"role": st.sampled_from(["user", "assistant", "developer"]), "content": content, "call_id": text,
              "name": text, "arguments": text | json_values, "output": text | json_values})

BODIES = {
    "/v1/responses": st.fixed_dictionaries(
        {"model": models, "input": text | st.lists(item, max_size=3) | json_values},
        optional={"instructions": text | json_values, "tools": json_values, "tool_choice": json_values,
                  "text": json_values, "reasoning": json_values, "max_output_tokens": st.integers(-3, 10**6) | json_values,
                  "stream": st.booleans() | json_values, "store": st.booleans() | json_values,
                  "previous_response_id": text | json_values, "temperature": json_values}),
    "/v1/messages": st.fixed_dictionaries(
        {"model": models, "messages": st.lists(message, max_size=3) | json_values},
        optional={"max_tokens": st.integers(-3, 10**6) | json_values, "system": text | json_values,
                  "tools": json_values, "tool_choice": json_values, "stop_sequences": json_values,
                  "stream": st.booleans() | json_values, "thinking": json_values, "metadata": json_values,
                  "top_k": json_values}),
    "/v1/messages/count_tokens": st.fixed_dictionaries(
        {"model": models, "messages": st.lists(message, max_size=3) | json_values},
        optional={"system": text | json_values, "tools": json_values}),
    "/v1/embeddings": st.fixed_dictionaries(
        {"model": models, "input": text | st.lists(text | st.integers(), max_size=3) | json_values},
        optional={"encoding_format": st.sampled_from(["float", "base64", "x"]) | json_values,
                  "dimensions": json_values}),
    "/v1/completions": st.fixed_dictionaries(
        {"model": models, "prompt": text | st.lists(text, max_size=3) | json_values},
        optional={"max_tokens": json_values, "stream": st.booleans() | json_values, "echo": json_values,
                  "suffix": json_values, "n": json_values, "stop": json_values}),
}


def anthropic_shaped(body: dict) -> bool:
    error = body.get("error")
    return set(body) == {"type", "error"} and body["type"] == "error" and isinstance(error, dict) \
        and set(error) == {"type", "message"} and bool(error["type"]) and isinstance(error["message"], str)


def openai_shaped(body: dict) -> bool:
    error = body.get("error")
    return set(body) == {"error"} and isinstance(error, dict) and set(error) == {"message", "type", "code", "param"} \
        and bool(error["message"]) and bool(error["type"])


@pytest.mark.parametrize("path", sorted(BODIES))
def test_no_body_makes_a_5xx_and_refusals_speak_the_protocol(fuzz_target, path):  # noqa: F811
    shaped = anthropic_shaped if path.startswith("/v1/messages") else openai_shaped
    with httpx.Client(base_url=fuzz_target.url, timeout=30) as http:
        @FUZZ
        @given(payload=BODIES[path])
        def check(payload):
            response = http.post(path, json=payload)
            assert response.status_code < 500, (payload, response.text[:300])
            if response.status_code >= 400:
                assert shaped(response.json()), (payload, response.text[:300])
                assert "Traceback" not in response.text

        check()
