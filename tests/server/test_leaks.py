"""A hostile upstream quotes our credentials back in every field of its errors (message, type, code, param,
Retry-After, an error event inside a 200 stream): none of it reaches the client, the log or /metrics, and no
upstream-chosen string becomes a metric label or a response header. Against a real `turnout serve` process."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import httpx
import openai
import pytest
import yaml

from tests.process import turnout_process
from turnout.backends.dispatch import OUTCOMES
from turnout.testing import ServerThread, create_mock_upstream

# neither looks like a credential to the pattern scrubber: only the configured secrets can catch them
OPENAI_KEY = "PLAINKEY0123456789abcdef"
HEADER_SECRET = "SECRETVALUE42"
ANTHROPIC_KEY = "ANTHROPICPLAIN98765"
SECRETS = (OPENAI_KEY, HEADER_SECRET, ANTHROPIC_KEY)
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def hostile() -> Iterator[ServerThread]:
    """A mock upstream of our own: the tests set its fault schedule."""
    with ServerThread(create_mock_upstream()) as server:
        yield server


def leaky_config(upstream_url: str) -> dict:
    return {
        "server": {"retry": {"attempts": 0}},
        "models": {
            "small": {"provider": "openai", "base_url": f"{upstream_url}/v1", "model": "mock-small",
                      "api_key": OPENAI_KEY, "headers": {"x-api-key": HEADER_SECRET}, "fallbacks": ["backup"]},
            "backup": {"provider": "openai", "base_url": f"{upstream_url}/v1", "model": "mock-backup",
                       "api_key": OPENAI_KEY},
            "claude": {"provider": "anthropic", "base_url": upstream_url, "model": "claude-mock",
                       "api_key": ANTHROPIC_KEY},
        },
        "decisions": [{"name": "default", "models": ["small"]}],
    }


def assert_clean(*texts: object) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in str(text), f"{secret} leaked in: {str(text)[:300]}"


def user(text: str, model: str = "small", **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def raw(server, body: dict) -> tuple[int, dict, str]:
    with httpx.stream("POST", server.url + CHAT, json=body, timeout=30) as response:
        text = "".join(response.iter_text())
        return response.status_code, dict(response.headers), text


def test_a_hostile_upstream_leaks_no_key_anywhere(hostile, tmp_path):
    with turnout_process(leaky_config(hostile.url), tmp_path, log_level="info") as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0)
        for model in ("small", "claude"):
            # an error status: every field of the body and the Retry-After quote the key
            with pytest.raises(openai.AuthenticationError) as info:
                client.chat.completions.create(**user("who am I #leakerror:401", model))
            assert_clean(info.value, info.value.body, info.value.response.text, info.value.response.headers)
            status, headers, text = raw(server, user("again #leakerror:401", model))
            assert status == 401
            assert_clean(text, headers)
            error = json.loads(text)["error"]
            assert set(error) == {"message", "type", "code", "param"} and "[redacted]" in error["message"]
            assert "retry-after" not in headers  # it was no number of seconds

            # an error event inside a 200 stream, after two chunks: the client gets a clean error event
            status, headers, text = raw(server, user("stream me #leakstream", model, stream=True))
            assert status == 200
            assert_clean(text, headers)
            events = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
            assert "[DONE]" not in events and "[redacted]" in json.loads(events[-1])["error"]["message"]
            with pytest.raises(openai.APIError) as info:
                list(client.chat.completions.create(**user("stream me #leakstream", model, stream=True)))
            assert_clean(info.value, info.value.body)
            # the error event as the first event: nothing was sent yet, so an error status
            status, headers, text = raw(server, user("stream me #leakstream:first", model, stream=True))
            assert status == 502
            assert_clean(text, headers)

        # a leaky 401 falls back to `backup`, which answers: the attempts header names outcomes, not codes
        httpx.put(hostile.url + "/_faults", json={"schedule": ["leak", "ok"]})
        try:
            response = httpx.post(server.url + CHAT, json=user("fall back"), timeout=30)
        finally:
            httpx.put(hostile.url + "/_faults", json={"schedule": []})
        assert response.status_code == 200
        assert response.headers["x-turnout-attempts"] == "small:http_401,backup:ok"
        assert_clean(response.text, response.headers)

        metrics = httpx.get(server.url + "/metrics").text
        assert_clean(metrics)
        codes = re.findall(r'turnout_upstream_errors_total\{code="([^"]*)"', metrics)
        assert codes and set(codes) <= OUTCOMES
        assert {"http_401", "stream_interrupted"} <= set(codes)

        time.sleep(0.2)  # the last request's log line is written after its response
        log = server.log()
        assert "request_id=" in log and "Traceback" not in log  # info level: every request has its line
        assert_clean(log)


def test_breaker_open_half_open_and_close_are_logged(hostile, tmp_path):
    config = leaky_config(hostile.url)
    config["models"]["small"].update(breaker={"failures": 1, "window_s": 30, "cooldown_s": 0.3}, fallbacks=[])
    text = f"breaker {uuid.uuid4().hex} #flaky:1"  # fails once (500), then answers
    with turnout_process(config, tmp_path, log_level="info") as server:
        first = httpx.post(server.url + CHAT, json=user(text), timeout=30)
        assert first.status_code == 502
        time.sleep(0.4)  # the cooldown passes: the next request is the probe
        assert httpx.post(server.url + CHAT, json=user(text), timeout=30).status_code == 200
        time.sleep(0.2)
        log = server.log()
    lines = log.splitlines()
    opened = [line for line in lines if "circuit breaker for model 'small' opened" in line]
    assert len(opened) == 1 and " WARNING " in opened[0]
    assert any("circuit breaker for model 'small' half-open" in line and " INFO " in line for line in lines)
    assert any("circuit breaker for model 'small' closed" in line and " INFO " in line for line in lines)
    assert_clean(log)


def validate(tmp_path, config: dict) -> subprocess.CompletedProcess:
    path = tmp_path / f"config-{uuid.uuid4().hex}.yaml"
    path.write_text(yaml.safe_dump(config))
    return subprocess.run([sys.executable, "-m", "turnout.cli", "validate", str(path)], capture_output=True,
                          text=True, timeout=120, check=False)


def test_validate_rejects_header_injection(tmp_path):
    config = leaky_config("http://127.0.0.1:9")
    config["decisions"][0]["plugins"] = [{"header_mutation": {
        "upstream": {"x-foo": "a\r\nx-evil: 1", "x ok": "fine"},
        "response": {"x-bar": "b\nc"},
        "forward": ["trace(id)"],
        "remove_response": ["x-turnout-cost-usd"],
    }}]
    config["models"]["backup"]["headers"] = {"x-tenant": "t\r\nx-evil: 1"}
    result = validate(tmp_path, config)
    out = " ".join((result.stdout + result.stderr).split())  # rich may wrap long lines
    assert result.returncode == 1, out
    path = "decisions[0].plugins[0].header_mutation"
    assert f"{path}.upstream.x-foo: the value contains a line break (CR/LF)" in out
    assert f"{path}.response.x-bar: the value contains a line break (CR/LF)" in out
    assert f"{path}.upstream.x ok: 'x ok' is not a valid header name" in out
    assert f"{path}.forward[0]: 'trace(id)' is not a valid header name" in out
    assert "remove_response" not in out
    assert "models.backup.headers.x-tenant: the value contains a line break" in out
    assert "Traceback" not in out
    del config["decisions"][0]["plugins"], config["models"]["backup"]["headers"]
    assert validate(tmp_path, config).returncode == 0


def test_an_upstreams_negative_usage_fails_no_request_and_no_counter(hostile, tmp_path):
    with turnout_process(leaky_config(hostile.url), tmp_path) as server:
        plain = httpx.post(server.url + CHAT, json=user("count #negativeusage"), timeout=30)
        assert plain.status_code == 200, plain.text
        assert float(plain.headers["x-turnout-cost-usd"]) >= 0  # a negative count is no count: estimated instead
        status, _, text = raw(server, user("count #negativeusage", stream=True,
                                           stream_options={"include_usage": True}))
        assert status == 200 and text.rstrip().endswith("data: [DONE]")
        metrics = httpx.get(server.url + "/metrics").text
        assert not re.search(r"^turnout_(tokens|cost_usd)_total\{[^}]*\} -", metrics, re.MULTILINE)
        assert "Traceback" not in server.log()


def test_a_malformed_anthropic_event_is_a_clean_502(hostile, tmp_path):
    with turnout_process(leaky_config(hostile.url), tmp_path) as server:
        status, _, text = raw(server, user("hi #badevent", "claude", stream=True))
        assert status == 502, text
        assert json.loads(text)["error"]["code"] == "stream_interrupted"
        assert "Traceback" not in server.log()
