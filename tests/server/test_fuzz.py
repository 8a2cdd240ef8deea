"""Fuzzing: schemathesis against turnout's own OpenAPI schema, and hypothesis on chat request bodies — the
server must never answer 5xx to anything a client sends (the mock upstream answers every well-formed request)."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import base_config

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)


@pytest.fixture
def fuzz_target(serve, upstream):
    config = base_config(upstream.url)
    config["plugins"] = [{"pii": {}}, {"request_params": {"max_tokens": 64}}]
    config["decisions"][1]["plugins"] = [{"semantic_cache": {"semantic": False}}]
    return serve(config)


def test_schemathesis_finds_no_server_error(fuzz_target):
    schema = schemathesis.openapi.from_url(fuzz_target.url + "/openapi.json")
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @FUZZ
        @given(case=operation.as_strategy())
        def check(case):
            response = case.call(base_url=fuzz_target.url, timeout=30)
            if response.status_code >= 500:
                failures.append((case.method, case.path, case.body, response.status_code, response.text[:300]))

        check()
    assert not failures, failures[:3]


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=12)
content = st.one_of(st.text(max_size=200), st.lists(st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "image_url", "input_audio", "weird"]), "text": st.text(max_size=50)}), max_size=3),
    json_values)
message = st.fixed_dictionaries({"role": st.sampled_from(["system", "user", "assistant", "tool", "developer", "x"]),
                                 "content": content}, optional={"name": st.text(max_size=10), "tool_call_id": st.text()})
body = st.fixed_dictionaries(
    {"model": st.sampled_from(["auto", "small", "claude", "nope", ""]) | st.integers(),
     "messages": st.lists(message, max_size=4) | json_values},
    optional={"stream": st.booleans() | st.integers(), "temperature": st.floats(allow_nan=False, allow_infinity=False) | st.text(),
              "max_tokens": st.integers(-5, 10**7) | st.none(), "n": st.integers(-1, 3), "tools": json_values,
              "stream_options": json_values, "response_format": json_values, "stop": json_values,
              "metadata": json_values})


def test_hypothesis_request_bodies_never_make_a_5xx(fuzz_target):
    with httpx.Client(base_url=fuzz_target.url, timeout=30) as http:
        @FUZZ
        @given(payload=body)
        def check(payload):
            response = http.post("/v1/chat/completions", json=payload)
            assert response.status_code < 500, (payload, response.text[:300])
            if response.status_code >= 400:
                error = response.json()["error"]
                assert error["message"] and error["type"] and "Traceback" not in response.text

        check()
