"""The dashboard: its JSON and SSE endpoints against /metrics and the outcome records after real traffic (the
openai client through a real turnout to the mock upstream), and the page itself in headless Chromium."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import time
import uuid

import httpx
import openai
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests import browser
from tests.conftest import base_config
from tests.plugins.conftest import redis_server  # noqa: F401 - a fixture (pytest finds it by this name)
from tests.process import turnout_process
from turnout.server.dashboard import routes as dashboard_routes
from turnout.server.dashboard.config_view import masked, rule_text
from turnout.server.dashboard.metrics_view import quantile

ADMIN = "dash-admin-key-0123456789"
TENANT = "sk-dash-tenant-0123456789"
ADMIN_HEADERS = {"authorization": f"Bearer {ADMIN}"}


def dashboard_config(upstream_url: str) -> dict:
    config = base_config(upstream_url)
    config["state"] = {"namespace": f"dash-{uuid.uuid4().hex[:8]}"}  # its own records and counters
    config["auth"] = {"admin_key": ADMIN, "keys": [{"name": "team-a", "key": TENANT, "rpm": 1000,
                                                    "budget_usd_day": 5.0}]}
    config["decisions"] = [
        {"name": "code", "priority": 50, "when": {"signal": "code"}, "models": ["strong"]},
        # shadowed by "code" (same condition, lower priority): `turnout validate` warns about it
        {"name": "shadowed", "priority": 10, "when": {"signal": "code"}, "models": ["claude"]},
        {"name": "default", "priority": 0, "models": ["small", "strong"],
         "plugins": [{"semantic_cache": {"semantic": False, "namespace": config["state"]["namespace"]}}]},
    ]
    return config


def traffic(url: str) -> None:
    client = openai.OpenAI(base_url=url + "/v1", api_key=TENANT, max_retries=0)
    for i in range(4):
        client.chat.completions.create(model="auto", messages=[{"role": "user", "content": f"hello number {i}"}])
    client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hello number 0"}])  # a hit
    client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "def f(): why a stack trace"}])
    list(client.chat.completions.create(model="auto", stream=True,
                                        messages=[{"role": "user", "content": "a stream, please"}]))
    with pytest.raises(openai.APIStatusError):
        client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "fail #error:503"}])


def same_minute(since: float) -> bool:
    """rpm counts per UTC minute: a slow run may have started a new one since the traffic was sent."""
    return int(time.time() // 60) == int(since // 60)


def scrape(url: str) -> dict[str, list]:
    text = httpx.get(url + "/metrics").text
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def summary(url: str) -> dict:
    r = httpx.get(url + "/v1/dashboard/summary", headers=ADMIN_HEADERS)
    assert r.status_code == 200, r.text
    return r.json()


def wait_for(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return found


@pytest.fixture
def dashboard(serve, upstream):
    server = serve(dashboard_config(upstream.url))
    server.traffic_since = time.time()
    traffic(server.url)
    return server


def test_summary_matches_metrics_and_records(dashboard):
    # a stream's record and a key's settled cost are written just after the client has its answer
    def settled() -> dict | None:
        x = summary(dashboard.url)
        day = x["budgets"]["keys"][0]["budget_usd_day"]["used"]
        return x if x["cost"]["baseline"]["records"] == 8 and abs(day - x["cost"]["baseline"]["cost_usd"]) < 1e-9 else None

    s = wait_for(settled)
    metrics = scrape(dashboard.url)
    requests = metrics["turnout_requests"]
    assert s["requests"]["total"] == sum(x.value for x in requests if x.name == "turnout_requests_total")
    for model, row in s["models"].items():
        assert row["requests"] == sum(x.value for x in requests if x.labels["model"] == model
                                      and x.name == "turnout_requests_total")
        tokens = {x.labels["kind"]: x.value for x in metrics["turnout_tokens"]
                  if x.labels["model"] == model and x.name == "turnout_tokens_total"}
        assert row["tokens"] == {"prompt": tokens.get("prompt", 0), "completion": tokens.get("completion", 0)}
    cost = sum(x.value for x in metrics["turnout_cost_usd"] if x.name == "turnout_cost_usd_total")
    assert s["cost"]["total_usd"] == pytest.approx(cost, abs=1e-9)
    hits = sum(x.value for x in metrics["turnout_cache"] if x.labels["result"] == "hit" and x.name.endswith("_total"))
    assert s["cache"]["hit"] == hits >= 1 and 0 < s["cache"]["hit_rate"] < 1
    assert s["errors"]["by_status"].get("502", 0) >= 1 and s["models"]["small"]["breaker"] == "closed"
    assert s["models"]["small"]["latency_s"]["p50"] > 0 and s["models"]["small"]["ttft_s"]["count"] >= 1
    assert s["config"] == {"generation": 1, "rejected": None, "path": None}

    # the baseline prices each recorded request's tokens at its decision's dearest model
    records = httpx.get(dashboard.url + "/v1/router/outcomes?limit=100", headers=ADMIN_HEADERS).json()["data"]
    price = {"small": (0.1, 0.2), "strong": (2.5, 10), "claude": (3, 15)}
    models = {"code": ["strong"], "shadowed": ["claude"], "default": ["small", "strong"]}
    expected = sum(max(max((price[m][0] * r["prompt_tokens"] + price[m][1] * r["completion_tokens"]) / 1e6
                           for m in models[r["decision"]]), r["cost_usd"]) for r in records)
    baseline = s["cost"]["baseline"]
    assert baseline["records"] == len(records) == 8
    assert baseline["baseline_usd"] == pytest.approx(expected, rel=1e-6)
    assert baseline["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in records), rel=1e-6)
    assert baseline["saved_usd"] > 0 and baseline["by_decision"]["default"]["baseline_model"] == "strong"
    # the model mix over time: one point a second, from the records (the minutes before anyone looked too)
    mix: dict[str, int] = {}
    for point in s["series"]:
        for model, n in point["models"].items():
            mix[model] = mix.get(model, 0) + n
    assert s["series_source"] == "records" and mix == {m: sum(1 for r in records if r["model"] == m)
                                                       for m in {r["model"] for r in records}}

    # budget use per key: the day's USD counter holds what the key's requests cost
    (row,) = s["budgets"]["keys"]
    assert row["name"] == "team-a" and row["rpm"]["limit"] == 1000
    assert row["rpm"]["used"] == 8 or not same_minute(dashboard.traffic_since), row
    assert row["budget_usd_day"]["used"] == pytest.approx(sum(r["cost_usd"] for r in records), rel=1e-6)

    # an update folds in only what is new: the next summary counts the next request once
    openai.OpenAI(base_url=dashboard.url + "/v1", api_key=TENANT, max_retries=0).chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "one more"}])
    time.sleep(1.0)
    later = summary(dashboard.url)
    assert later["cost"]["baseline"]["records"] == 9 and later["requests"]["total"] == s["requests"]["total"] + 1
    assert later["requests"]["per_second"] > 0 and later["series"]


def test_the_admin_key_is_required_and_the_page_holds_no_data(dashboard):
    for path in ("/v1/dashboard/summary", "/v1/dashboard/events", "/v1/dashboard/config"):
        for headers in ({}, {"authorization": f"Bearer {TENANT}"}, {"authorization": "Bearer wrong"}):
            r = httpx.get(dashboard.url + path, headers=headers)
            assert r.status_code == 401, (path, headers)
            assert r.json()["error"]["code"] in ("admin_key_required", "invalid_api_key", None)
            assert TENANT not in r.text and ADMIN not in r.text
    page = httpx.get(dashboard.url + "/dashboard")
    assert page.status_code == 200 and "default-src 'none'" in page.headers["content-security-policy"]
    assert "strong" not in page.text and "team-a" not in page.text  # no model or key name in the page
    assert "http://" not in page.text and "https://" not in page.text  # nothing from elsewhere
    assert httpx.get(dashboard.url + "/dashboard/static/../routes.py").status_code == 404
    assert httpx.get(dashboard.url + "/dashboard/static/vendor/uPlot.LICENSE").text.startswith("The MIT License")


def test_events_stream_one_summary_a_second_and_end(dashboard, monkeypatch):
    monkeypatch.setattr(dashboard_routes, "STREAM_S", 2.5)  # then the client is told to come back
    seen, start, lines = [], time.monotonic(), []
    with httpx.stream("GET", dashboard.url + "/v1/dashboard/events", headers=ADMIN_HEADERS, timeout=10) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in r.iter_lines():
            lines.append(line)
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                assert event == "summary"
                seen.append((time.monotonic(), json.loads(line[6:])))
    assert lines[0] == "retry: 1000" and 2 <= len(seen) <= 3  # at 0, 1 (and 2) s; then the stream ended
    assert all(s["object"] == "dashboard.summary" for _, s in seen)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(seen)]
    assert all(0.7 < g < 2.0 for g in gaps), gaps
    assert seen[-1][1]["time"] > seen[0][1]["time"] and 2.4 < time.monotonic() - start < 6


def test_config_view_lists_decisions_in_order_with_warnings(dashboard):
    body = httpx.get(dashboard.url + "/v1/dashboard/config", headers=ADMIN_HEADERS).json()
    assert [d["name"] for d in body["decisions"]] == ["code", "shadowed", "default"]
    assert body["decisions"][0]["rule"] == "code" and body["decisions"][2]["rule"] == "(always)"
    assert body["decisions"][2]["plugins"][0]["name"] == "semantic_cache"
    assert any(w["path"] == "decisions[1]" and "shadowed" in w["message"] for w in body["warnings"])
    assert "api_key" not in json.dumps(body["models"])


def test_rules_read_as_text_and_secrets_are_masked():
    from turnout.config import DecisionConfig

    decision = DecisionConfig.model_validate({"name": "d", "models": ["m"], "when": {
        "all": [{"signal": "a", "min_score": 0.5}, {"not": {"any": [{"signal": "b"}]}}]}})
    assert rule_text(decision.when) == "all(a ≥ 0.5, not any(b))"
    assert masked({"api_key": "plain", "url": "https://x/?k=s3cret-value", "n": [1, "s3cret-value"]},
                  ("s3cret-value",)) == {"api_key": "***", "url": "https://x/?k=***", "n": [1, "***"]}


def test_quantiles_follow_prometheus_histogram_quantile():
    buckets = {0.1: 2.0, 0.5: 6.0, 1.0: 10.0, float("inf"): 10.0}
    assert quantile(0.5, buckets) == pytest.approx(0.1 + 0.4 * (5 - 2) / 4)
    assert quantile(0.99, buckets) == pytest.approx(0.5 + 0.5 * (9.9 - 6) / 4)
    assert quantile(0.5, {0.1: 0.0, float("inf"): 0.0}) is None
    assert quantile(0.99, {0.1: 1.0, float("inf"): 4.0}) == 0.1  # in +Inf: the highest finite bound


def test_a_rejected_reload_and_the_next_generation_show(upstream, tmp_path):
    config = dashboard_config(upstream.url)
    with turnout_process(config, tmp_path) as server:
        traffic(server.url)
        path = server.config_path
        path.write_text("models: {broken: [\n")  # not YAML
        server.proc.send_signal(signal.SIGHUP)
        s = wait_for(lambda: (x := summary(server.url))["config"]["rejected"] and x)
        assert s["config"]["generation"] == 1 and s["config"]["rejected"]["errors"] >= 1
        assert s["config"]["path"] == path.name and s["requests"]["total"] == 8  # its own process: 8 requests
        config["decisions"] = [d for d in config["decisions"] if d["name"] != "shadowed"]
        path.write_text(yaml.safe_dump(config))
        server.proc.send_signal(signal.SIGHUP)
        s = wait_for(lambda: (x := summary(server.url))["config"]["generation"] == 2 and x)
        assert s["config"]["rejected"] is None
        view = httpx.get(server.url + "/v1/dashboard/config", headers=ADMIN_HEADERS).json()
        assert [d["name"] for d in view["decisions"]] == ["code", "default"] and view["warnings"] == []


def test_workers_and_redis_count_as_one(upstream, tmp_path, redis_server):  # noqa: F811 - the fixture
    """Two workers sharing Redis: records, budgets and the metric files are every worker's."""
    config = dashboard_config(upstream.url)
    config["state"] = {"store": "redis", "redis_url": redis_server.url, "namespace": "dash"}
    config["decisions"][2]["plugins"] = []
    with turnout_process(config, tmp_path, "--workers", "2") as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key=TENANT, max_retries=0)
        since = time.time()
        for i in range(6):
            client.chat.completions.create(model="auto", messages=[{"role": "user", "content": f"shared {i}"}])
        def settled() -> dict | None:  # records reach Redis, and costs settle, just after each answer
            x = summary(server.url)
            used = x["budgets"]["keys"][0]["budget_usd_day"]["used"]
            return x if x["cost"]["baseline"]["records"] == 6 and abs(used - x["cost"]["total_usd"]) < 1e-9 else None

        s = wait_for(settled)
        metrics = scrape(server.url)
        assert s["requests"]["total"] == 6 == sum(x.value for x in metrics["turnout_requests"]
                                                  if x.name == "turnout_requests_total")
        (row,) = s["budgets"]["keys"]
        assert s["budgets"]["available"] and (row["rpm"]["used"] == 6 or not same_minute(since)), row
        assert row["budget_usd_day"]["used"] == pytest.approx(s["cost"]["baseline"]["cost_usd"], rel=1e-6)
        assert row["budget_usd_day"]["used"] == pytest.approx(s["cost"]["total_usd"], rel=1e-6)


needs_chromium = pytest.mark.skipif(browser.executable() is None and not os.environ.get("TURNOUT_REQUIRE_CHROMIUM"),
                                    reason="chromium is not installed (apt-get install chromium)")


@needs_chromium
async def test_dashboard_in_chromium(dashboard, tmp_path):
    url = dashboard.url
    async with httpx.AsyncClient() as client:  # the code request gets a thumbs-up, which its record shows
        listed = (await client.get(url + "/v1/router/outcomes?decision=code", headers=ADMIN_HEADERS)).json()
        rated = await client.post(url + "/v1/feedback", headers={"authorization": f"Bearer {TENANT}"},
                                  json={"request_id": listed["data"][0]["request_id"], "thumbs": "up"})
        assert rated.status_code == 200, rated.text
    async with browser.chromium() as chrome:
        # without the key: the login form, and no data on the page
        anonymous = await chrome.new_page()
        await anonymous.goto(url + "/dashboard")
        await anonymous.wait_for("!document.getElementById('login').hidden")
        assert await anonymous.eval("document.getElementById('board').hidden") is True
        assert await anonymous.eval("document.getElementById('requests-total').textContent") == "–"
        assert await anonymous.eval("document.querySelectorAll('#models tbody tr').length") == 0
        # the refused summary is the one error such a page logs (Chromium reports every 401 it was sent)
        assert all("401" in e for e in anonymous.errors), anonymous.errors

        page = await chrome.new_page()
        await page.goto(url + "/dashboard")
        await page.wait_for("!document.getElementById('login').hidden")
        page.errors.clear()  # the 401 before the key was given
        await page.eval(f"document.getElementById('admin-key').value = {json.dumps(ADMIN)}; "
                        "document.getElementById('login-form').requestSubmit(); true")
        await page.wait_for("document.getElementById('conn').textContent === 'live'")
        await _check_numbers(page, url, dashboard.traffic_since)
        await _check_records_and_filters(page)
        await _check_try_a_prompt(page, url)
        assert await page.eval("document.querySelectorAll('#mix-chart .uplot canvas').length") >= 1
        shot = await page.screenshot(tmp_path / "dashboard.png")
        assert shot.stat().st_size > 10_000
        assert page.errors == [], page.errors


async def _check_numbers(page: browser.Page, url: str, since: float) -> None:
    metrics = await asyncio.to_thread(scrape, url)
    total = int(sum(x.value for x in metrics["turnout_requests"] if x.name == "turnout_requests_total"))
    await page.wait_for(f"document.getElementById('requests-total').textContent === '{total}'")
    cost = sum(x.value for x in metrics["turnout_cost_usd"] if x.name == "turnout_cost_usd_total")
    shown = await page.eval("document.getElementById('cost-total').textContent")
    # JavaScript's toFixed and Python's format may round the sixth decimal apart: equal to a millionth
    assert shown.startswith("$") and abs(float(shown[1:]) - cost) <= 1.01e-6, (shown, cost)
    for model in ("small", "strong"):
        served = int(sum(x.value for x in metrics["turnout_requests"] if x.name == "turnout_requests_total"
                         and x.labels["model"] == model))
        cell = f"document.querySelector('#models tr[data-model=\"{model}\"] [data-field=\"requests\"]').textContent"
        assert await page.eval(cell) == str(served)
    s = await asyncio.to_thread(summary, url)
    assert await page.eval("document.getElementById('cost-baseline').textContent") == \
        f"${s['cost']['baseline']['baseline_usd']:.6f}"
    assert await page.eval("document.getElementById('cache-hit-rate').textContent") == \
        f"{s['cache']['hit_rate'] * 100:.1f} %"
    assert await page.eval("document.getElementById('generation').dataset.value") == "1"
    budget = "document.querySelector('#budgets tr[data-key=\"team-a\"] [data-field=\"rpm\"]').textContent"
    shown = await page.eval(budget)
    if same_minute(since):
        assert shown == "9 / 1000", shown  # eight requests and the feedback (it counts against rpm)
    else:
        assert shown.endswith(" / 1000"), shown
    rows = await page.eval("[...document.querySelectorAll('#decisions tbody tr')].map(r => r.dataset.decision)")
    assert rows == ["code", "shadowed", "default"]
    assert "shadowed" in await page.eval("document.getElementById('warnings').textContent")


async def _check_records_and_filters(page: browser.Page) -> None:
    assert await page.wait_for("document.querySelectorAll('#recent tbody tr').length") == 8
    await page.eval("document.getElementById('f-decision').value = 'code'; "
                    "document.getElementById('filters').requestSubmit(); true")
    await page.wait_for("document.querySelectorAll('#recent tbody tr').length === 1")
    assert await page.eval("document.querySelector('#recent tbody tr td:nth-child(4)').textContent") == "code"
    request_id = await page.eval("document.querySelector('#recent tbody tr').dataset.request")
    await page.eval("document.querySelector('#recent tbody tr').click(); true")
    await page.wait_for("!document.getElementById('record').hidden")
    assert await page.eval("document.querySelector('#record-fields [data-field=\"request_id\"]').textContent") \
        == request_id
    assert await page.eval("document.querySelector('#record-fields [data-field=\"model\"]').textContent") == "strong"
    feedback = json.loads(await page.eval("document.querySelector('#record-fields [data-field=\"feedback\"]')"
                                          ".textContent"))
    assert feedback["thumbs"] == "up" and feedback["quality"] == 1.0
    assert await page.eval("document.querySelector('#recent tbody tr td:last-child').textContent") == "up"


async def _check_try_a_prompt(page: browser.Page, url: str) -> None:
    prompt = "def main(): explain this stack trace"
    async with httpx.AsyncClient() as client:
        expected = (await client.post(url + "/v1/route", headers=ADMIN_HEADERS, json={
            "model": "auto", "messages": [{"role": "user", "content": prompt}]})).json()
    await page.eval(f"document.getElementById('try-prompt').value = {json.dumps(prompt)}; "
                    "document.getElementById('try-form').requestSubmit(); true")
    await page.wait_for("!document.getElementById('try-result').hidden")
    assert await page.eval("document.getElementById('try-decision').textContent") == expected["decision"] == "code"
    assert await page.eval("document.getElementById('try-model').textContent") == expected["model"]
    signals = await page.eval("[...document.querySelectorAll('#try-signals tbody tr td:first-child')]"
                              ".map(td => td.textContent)")
    assert signals == [s["name"] for s in expected["signals"]]
    assert "code (50) matched" in await page.eval("document.getElementById('try-extra').textContent")
