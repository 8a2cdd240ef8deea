"""Outcome records through a real turnout: one per request on every door (streams when they end), found by
request id and by the response id the client saw, listed (admin only, filtered, paged), exported as a
RoutingTable that `turnout train` reads, kept in Redis shared by two servers, with the prompt only when opted in
and PII-redacted."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import anthropic
import httpx
import openai
import pytest
from typer.testing import CliRunner

from tests.conftest import TEST_KEY, base_config
from tests.plugins.conftest import redis_server  # noqa: F401 - the fixture

ALICE, BOB, ADMIN = "sk-alice-outcomes-0123456789", "sk-bob-outcomes-0123456789", "sk-admin-outcomes-0123456789"


def config(upstream_url: str, *, auth: bool = False, **outcomes: Any) -> dict[str, Any]:
    cfg = base_config(upstream_url)
    cfg["models"]["embed"] = {"provider": "openai", "base_url": f"{upstream_url}/v1", "api_key": TEST_KEY,
                              "model": "mock-embed-small", "embeddings": True, "cost": {"input": 0.02}}
    ns = f"o{time.monotonic_ns()}"  # each test its own records (memory stores are per namespace and process)
    cfg["state"] = {"namespace": ns}
    if outcomes:
        cfg["outcomes"] = outcomes
    if auth:
        cfg["auth"] = {"admin_key_sha256": hashlib.sha256(ADMIN.encode()).hexdigest(), "keys": [
            {"name": f"alice-{ns}", "key": ALICE}, {"name": f"bob-{ns}", "key": BOB}]}
    return cfg


def oai(server, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)


def admin_get(server, path: str = "", key: str | None = ADMIN, **params: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.get(f"{server.url}/v1/router/outcomes{path}", params=params, headers=headers, timeout=10)


def record(server, record_id: str, key: str | None = ADMIN) -> dict[str, Any]:
    """A record, waited for: a stream's is written when the stream has ended, which the client may see first."""
    deadline = time.monotonic() + 15  # returns as soon as it is there; CI's 2 cores can be slow
    while True:
        r = admin_get(server, f"/{record_id}", key)
        if r.status_code == 200 or time.monotonic() > deadline:
            assert r.status_code == 200, r.text
            return r.json()
        time.sleep(0.02)


def ask(server, text: str = "hello", key: str = "unused", **kwargs: Any) -> tuple[str, Any]:
    raw = oai(server, key).chat.completions.with_raw_response.create(
        model=kwargs.pop("model", "auto"), messages=[{"role": "user", "content": text}], **kwargs)
    return raw.headers["x-turnout-request-id"], raw.parse()


def test_every_door_writes_one_record_with_the_id_its_client_saw(serve, upstream):
    server = serve(config(upstream.url))
    client = oai(server)
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": "hi"}])
    completion = raw.parse()
    rec = record(server, raw.headers["x-turnout-request-id"])
    assert rec["door"] == "chat" and rec["response_id"] == completion.id and rec["stream"] is False
    assert (rec["decision"], rec["model"], rec["mode"], rec["status"], rec["error"]) == ("default", "small", "routed",
                                                                                        200, None)
    assert set(rec["candidates"]) == {"small", "strong"} and "code" in rec["signals"]  # the decision's signal
    assert rec["cost_usd"] == pytest.approx(float(raw.headers["x-turnout-cost-usd"]))
    assert rec["prompt_tokens"] == completion.usage.prompt_tokens and rec["completion_tokens"] > 0
    assert 0 < rec["latency_s"] < 5 and rec["ttft_s"] is None and rec["prompt"] is None
    assert rec["tenant"] == "anonymous" and rec["feedback"] is None

    raw = client.chat.completions.with_raw_response.create(model="auto", stream=True,
                                                           messages=[{"role": "user", "content": "stream it"}])
    chunks = list(raw.parse())
    rec = record(server, raw.headers["x-turnout-request-id"])
    assert rec["stream"] is True and rec["response_id"] == chunks[0].id and rec["status"] == 200
    assert 0 < rec["ttft_s"] <= rec["latency_s"]

    response = client.responses.create(model="auto", input="responses door")
    rec = record(server, response.id)  # found by the response id alone
    assert rec["door"] == "responses" and rec["response_id"] == response.id.strip()
    events = list(client.responses.create(model="auto", input="streamed responses", stream=True))
    streamed_id = events[0].response.id
    assert record(server, streamed_id)["stream"] is True

    claude = anthropic.Anthropic(base_url=server.url, api_key="unused", max_retries=0)
    message = claude.messages.create(model="auto", max_tokens=32, messages=[{"role": "user", "content": "hi"}])
    rec = record(server, message.id)
    assert rec["door"] == "messages" and message.id.startswith("msg_")
    with claude.messages.stream(model="auto", max_tokens=32, messages=[{"role": "user", "content": "go"}]) as s:
        final = s.get_final_message()
    assert record(server, final.id)["stream"] is True

    legacy = client.completions.with_raw_response.create(model="auto", prompt="complete me")
    rec = record(server, legacy.headers["x-turnout-request-id"])
    assert rec["door"] == "completions" and rec["response_id"] == legacy.parse().id
    embedded = client.embeddings.with_raw_response.create(model="embed", input="vectors please")
    rec = record(server, embedded.headers["x-turnout-request-id"])
    assert (rec["door"], rec["model"], rec["mode"]) == ("embeddings", "embed", "direct")

    with pytest.raises(openai.RateLimitError) as info:  # a failed request has its record too
        ask(server, "#error:429 slow down")
    rec = record(server, info.value.response.headers["x-turnout-request-id"])
    assert rec["status"] == 429 and rec["error"] and rec["cost_usd"] == 0
    raw = client.chat.completions.with_raw_response.create(model="auto", stream=True,
                                                           messages=[{"role": "user", "content": "#midstream-fail"}])
    with pytest.raises(openai.APIError):
        list(raw.parse())
    rec = record(server, raw.headers["x-turnout-request-id"])  # a stream that broke: recorded when it ended
    assert rec["stream"] is True and rec["status"] == 599 and rec["error"]


def test_the_endpoints_need_the_admin_key(serve, upstream):
    server = serve(config(upstream.url, auth=True))
    request_id, _ = ask(server, key=ALICE)
    for path in ("", f"/{request_id}", "/export"):
        assert admin_get(server, path, None).status_code == 401
        r = admin_get(server, path, ALICE)  # a tenant's key is not the admin key
        assert r.status_code == 401 and r.json()["error"]["code"] == "admin_key_required"
        assert admin_get(server, path).status_code == 200
    assert admin_get(server, "/no-such-id").json()["error"]["code"] == "outcome_not_found"


def test_listing_filters_and_pages_newest_first(serve, upstream):
    server = serve(config(upstream.url, auth=True))
    sent = [ask(server, "plain question", key=ALICE)[0], ask(server, "def f(): compile", key=ALICE)[0]]
    middle = time.time()
    sent += [ask(server, "another one", key=BOB)[0], ask(server, "def g(): compile", key=BOB)[0],
             ask(server, "last plain", key=ALICE)[0]]
    listed = admin_get(server, limit=100).json()
    assert [o["request_id"] for o in listed["data"]] == sent[::-1] and listed["has_more"] is False
    assert "features" not in listed["data"][0]
    alice = next(o["tenant"] for o in listed["data"] if o["request_id"] == sent[0])

    def ids(**params: Any) -> list[str]:
        r = admin_get(server, **params)
        assert r.status_code == 200, r.text
        return [o["request_id"] for o in r.json()["data"]]

    assert ids(tenant=alice) == [sent[4], sent[1], sent[0]]
    assert ids(decision="code") == [sent[3], sent[1]] and ids(model="strong") == [sent[3], sent[1]]
    assert ids(since=middle) == sent[:1:-1]
    assert ids(tenant=alice, decision="code") == [sent[1]]
    pages, after = [], None
    while True:
        page = admin_get(server, limit=2, **({"after": after} if after else {})).json()
        pages.append([o["request_id"] for o in page["data"]])
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert pages == [sent[:2:-1], sent[2:0:-1], sent[:1]]
    for params, field in (({"limit": 0}, "limit"), ({"limit": "x"}, "limit"), ({"since": "yesterday"}, "since"),
                          ({"after": "unknown"}, "after")):
        r = admin_get(server, **params)
        assert r.status_code == 400 and r.json()["error"]["param"] == field


def test_the_memory_store_keeps_the_newest_max_records(serve, upstream):
    server = serve(config(upstream.url, max_records=3))
    sent = [ask(server, f"question {i}")[0] for i in range(5)]
    assert [o["request_id"] for o in admin_get(server).json()["data"]] == sent[:1:-1]
    assert admin_get(server, f"/{sent[0]}").status_code == 404


def test_prompts_are_stored_only_when_opted_in_and_then_redacted(serve, upstream):
    secret = "mail bob.smith@example.com or call +1 415 555 0100 about card 4111 1111 1111 1111"
    off = serve(config(upstream.url))
    assert record(off, ask(off, secret)[0])["prompt"] is None
    on = serve(config(upstream.url, store_prompt=True))
    request_id, _ = ask(on, secret)
    stored = record(on, request_id)["prompt"]
    assert stored.startswith("mail [email] or call [phone] about card [credit_card]")
    listing = admin_get(on).text
    assert "bob.smith" not in listing and "4111" not in listing and "555 0100" not in listing


def feedback(server, key: str = "unused", **body: Any) -> httpx.Response:
    return httpx.post(server.url + "/v1/feedback", json=body, headers={"authorization": f"Bearer {key}"}, timeout=10)


def test_the_export_is_a_routing_table_that_turnout_train_reads(serve, upstream, tmp_path):
    from turnout.cli import app
    from turnout.eval.table import load_table

    server = serve(config(upstream.url, store_prompt=True))
    prompts = [f"question number {i} about {topic}" for i, topic in enumerate(["maths", "poems", "code", "history",
                                                                              "physics", "cooking", "travel", "law"])]
    expected = {}
    for i, prompt in enumerate(prompts):
        for model, rating in (("small", (i % 4) / 4), ("strong", 1.0)):
            request_id, _ = ask(server, prompt, model=model)
            assert feedback(server, request_id=request_id, rating=rating).status_code == 200
            expected[(prompt, model)] = rating
    ask(server, "asked of one model only", model="small")  # unrated: not exported
    rated_once, _ = ask(server, "rated, but on one model only", model="small")
    feedback(server, request_id=rated_once, thumbs="up")

    r = admin_get(server, "/export")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    assert r.headers["x-turnout-export-rows"] == "16" and r.headers["x-turnout-export-prompts-dropped"] == "1"
    path = tmp_path / "export.jsonl"
    path.write_text(r.text)
    table = load_table(path)
    assert sorted(table.prompts) == sorted(prompts) and sorted(table.models) == ["small", "strong"]
    for p, prompt in enumerate(table.prompts):
        for m, model in enumerate(table.models):
            assert table.scores[p, m] == pytest.approx(expected[(prompt, model)])
    assert (table.costs[:, table.models.index("strong")] > table.costs[:, table.models.index("small")]).all()
    sparse = admin_get(server, "/export", sparse="true")
    assert sparse.headers["x-turnout-export-rows"] == "17"

    result = CliRunner().invoke(app, ["train", "--data", str(path), "--router", "knn", "--out", str(tmp_path / "knn"),
                                      "--split", ""])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "knn" / "router.json").read_text())


def test_records_in_redis_are_shared_expire_and_never_fail_a_request(serve, upstream, redis_server,  # noqa: F811
                                                                     monkeypatch):
    import redis

    from turnout.state import outcomes

    monkeypatch.setattr(outcomes, "LINGER_S", 0.3)  # records wait in their server's queue long enough to be seen there

    cfg = config(upstream.url, ttl_s=120)
    cfg["state"].update(store="redis", redis_url=redis_server.url)
    first, second = serve(cfg), serve(cfg)
    response = oai(first).responses.create(model="auto", input="kept in redis")
    rec = record(second, response.id)  # written by one server, read by the other
    assert rec["door"] == "responses"
    r = feedback(second, response_id=response.id, thumbs="down")
    assert r.status_code == 200 and r.json()["outcome"]["feedback"]["thumbs"] == "down"
    assert record(first, rec["request_id"])["feedback"]["quality"] == 0.0
    at_once, _ = ask(first, "rated through the other server the moment it is answered")
    assert feedback(second, request_id=at_once, rating=0.5).status_code == 200  # still in first's write queue
    client = redis.Redis.from_url(redis_server.url)
    key = f"{cfg['state']['namespace']}:out:rec:{rec['request_id']}"
    assert 100_000 < client.pttl(key) <= 120_000  # the TTL is kept when feedback rewrites the record
    listed = admin_get(second).json()
    assert [o["request_id"] for o in listed["data"]] == [at_once, rec["request_id"]] and listed["dropped"] == 0
    client.close()

    redis_server.stop()  # the store is gone: requests are answered all the same; the endpoints say so
    request_id, completion = ask(first, "while redis is down")
    assert completion.choices[0].message.content
    assert admin_get(first).status_code == 503
    assert feedback(first, request_id=request_id, rating=1).status_code == 503


def test_no_records_when_disabled(serve, upstream):
    server = serve(config(upstream.url, enabled=False))
    request_id, _ = ask(server, "not recorded")
    assert admin_get(server).json()["data"] == [] and admin_get(server, f"/{request_id}").status_code == 404
    assert feedback(server, request_id=request_id, rating=1).status_code == 404
