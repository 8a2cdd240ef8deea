"""Unit level: what a backend makes of an upstream's error body, and the closed set of attempt outcomes. The same
attack end to end, through a real server, is tests/server/test_leaks.py."""

from __future__ import annotations

import json

import httpx
import pytest

from turnout.backends import build_backend
from turnout.backends.dispatch import OUTCOMES, outcome_of
from turnout.config import ConfigError, ModelConfig
from turnout.errors import (
    StreamInterruptedError,
    UpstreamConnectionError,
    UpstreamError,
    UpstreamTimeoutError,
    scrub_field,
)

KEY = "PLAINKEY0123456789abcdef"
HEADER = "GATEWAYTOKEN-42"


def backend(**extra):
    config = ModelConfig(provider="openai", base_url="http://127.0.0.1:9/v1", api_key=KEY, transport="httpx",
                         headers={"x-gateway-token": HEADER}, **extra)
    return build_backend("small", config)


def error_of(content: bytes, status: int = 401, headers: dict | None = None) -> UpstreamError:
    response = httpx.Response(status, content=content, headers=headers)
    return backend().error_from(response, content)


def visible(exc: UpstreamError) -> str:
    return json.dumps(exc.to_dict()) + json.dumps(exc.headers)


@pytest.mark.parametrize("content", [
    json.dumps({"error": {"message": f"bad {KEY}", "type": f"auth:{KEY}", "code": f"key={HEADER}",
                          "param": f"Bearer {KEY}"}}).encode(),
    json.dumps({"error": {"message": "x", "param": {"nested": [KEY, HEADER]}, "code": 401}}).encode(),
    json.dumps({"error": f"plain string {KEY}"}).encode(),
    f"<html>{'x' * 190}{KEY}{HEADER}</html>".encode(),  # the key straddles the old 200-character cut
    f"{'y' * 495}{KEY}".encode(),  # and the message's 500-character cut
])
def test_no_field_of_an_upstream_error_keeps_a_secret(content):
    exc = error_of(content, headers={"retry-after": f"Bearer {KEY}"})
    text = visible(exc)
    assert KEY not in text and HEADER not in text and KEY[:12] not in text
    assert "retry-after" not in exc.headers
    assert all(v is None or isinstance(v, str) for v in exc.to_dict()["error"].values())


def test_fields_are_one_line_and_bounded():
    content = json.dumps({"error": {"message": "a\nb", "type": "t\r\nx-evil: 1", "code": "c" * 5000}}).encode()
    error = error_of(content, 400).to_dict()["error"]
    assert "\n" not in json.dumps(error).replace("\\n", "\n") and "\r" not in error["type"]
    assert len(error["code"]) <= 100
    assert scrub_field(None) is None and scrub_field(42) == "42"


def test_a_retry_after_in_seconds_is_kept():
    assert error_of(b"{}", 429, {"retry-after": "3"}).headers == {"retry-after": "3"}


@pytest.mark.parametrize("exc, outcome", [
    (UpstreamTimeoutError("t"), "upstream_timeout"),
    (UpstreamConnectionError("c"), "upstream_unreachable"),
    (StreamInterruptedError("s", code=f"key={KEY}"), "stream_interrupted"),
    (UpstreamError("x", upstream_status=401, code=f"key={KEY}"), "http_401"),
    (UpstreamError("x", upstream_status=418, code="teapot"), "http_4xx"),
    (UpstreamError("x", upstream_status=503), "upstream_error"),
    (UpstreamError("x", upstream_status=200, status=502), "upstream_error"),
])
def test_outcomes_come_from_a_closed_set(exc, outcome):
    assert outcome_of(exc) == outcome
    assert all(outcome_of(UpstreamError("x", upstream_status=s)) in OUTCOMES for s in range(100, 600))


@pytest.mark.parametrize("headers, where", [
    ({"x-tenant": "a\r\nx-evil: 1"}, "models.small.headers.x-tenant"),
    ({"x tenant": "a"}, "models.small.headers.x tenant"),
    ({"x-tenant": "caf\u00e9"}, "models.small.headers.x-tenant"),
])
def test_bad_configured_headers_are_config_errors(headers, where):
    with pytest.raises(ConfigError) as info:
        build_backend("small", ModelConfig(provider="openai", base_url="http://127.0.0.1:9/v1", headers=headers))
    assert [issue.path for issue in info.value.issues] == [where]


def test_configured_header_values_are_secrets():
    assert set(backend().secrets()) == {KEY, HEADER}


def test_a_failing_plugins_log_line_keeps_no_secret(caplog):
    from types import SimpleNamespace

    from turnout.context import RoutingContext
    from turnout.pipeline import _plugin_failed

    ctx = RoutingContext({"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
    plugin = SimpleNamespace(name="system_prompt", fail_closed=False)
    with caplog.at_level("WARNING", logger="turnout"):
        _plugin_failed(plugin, "before", RuntimeError("upstream said: key sk-plain-secret-value-1234"), ctx,
                       ("sk-plain-secret-value-1234",))
    assert caplog.records and "sk-plain-secret-value-1234" not in caplog.text and "[redacted]" in caplog.text
