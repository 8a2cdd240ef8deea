"""Prometheus metrics and structured JSON logs with the request id."""

from __future__ import annotations

import json
import logging

import httpx
import openai

from tests.conftest import base_config
from turnout.server.logs import JsonFormatter


def test_metrics_count_requests_tokens_cost_and_errors(serve, upstream):
    config = base_config(upstream.url)
    config["decisions"] = [{"name": "metered", "models": ["small"]}]
    server = serve(config)
    c = openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0)
    c.chat.completions.create(model="auto", messages=[{"role": "user", "content": "count me"}])
    list(c.chat.completions.create(model="auto", stream=True, messages=[{"role": "user", "content": "stream me"}]))
    try:
        c.chat.completions.create(model="auto", messages=[{"role": "user", "content": "x #error:503"}])
    except openai.APIStatusError:
        pass
    text = httpx.get(server.url + "/metrics").text
    assert 'turnout_requests_total{decision="metered",model="small",status="200"} 2.0' in text
    assert 'turnout_requests_total{decision="metered",model="small",status="502"} 1.0' in text
    assert 'turnout_upstream_errors_total{code="upstream_error",model="small"}' in text
    assert 'turnout_tokens_total{kind="prompt",model="small"}' in text
    assert 'turnout_cost_usd_total{decision="metered",model="small"}' in text
    assert 'turnout_time_to_first_token_seconds_count{model="small"}' in text
    assert "turnout_request_duration_seconds_bucket" in text and 'turnout_breaker_open{model="small"} 0.0' in text


def test_json_logs_carry_the_request_id(serve, upstream, caplog):
    caplog.set_level(logging.INFO, logger="turnout.request")
    server = serve(base_config(upstream.url))
    raw = openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0).chat.completions \
        .with_raw_response.create(model="auto", messages=[{"role": "user", "content": "log me"}])
    request_id = raw.headers["x-turnout-request-id"]
    records = [r for r in caplog.records if r.name == "turnout.request" and getattr(r, "request_id", "") == request_id]
    assert records, "no request log line"
    line = json.loads(JsonFormatter().format(records[0]))
    assert line["request_id"] == request_id and line["status"] == 200 and line["model"] == "small"
    assert line["decision"] == "default" and line["level"] == "info" and "ms" in line
