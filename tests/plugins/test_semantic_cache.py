"""The semantic cache end to end: a real server, the official openai client, the mock upstream counting calls."""

from __future__ import annotations

import hashlib
import time

import httpx
import openai
import pytest
import yaml

from tests.conftest import base_config
from tests.process import start_turnout
from turnout.plugins.semantic_cache import SemanticCacheParams, normalise
from turnout.testing import free_port


def cache_config(upstream_url: str, **params) -> dict:
    config = base_config(upstream_url)
    config["decisions"] = [{"name": "default", "models": ["small"],
                            "plugins": [{"semantic_cache": {"namespace": f"test-{time.monotonic_ns()}", **params}}]}]
    return config


def client(server, **headers) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0, default_headers=headers)


def ask(c: openai.OpenAI, text: str, **kwargs):
    raw = c.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": text}],
                                                      **kwargs)
    return raw.headers.get("x-turnout-cache"), raw.parse(), raw.headers


def test_paraphrase_hits_and_a_different_question_misses(serve, upstream, upstream_requests):
    c = client(serve(cache_config(upstream.url)))
    state, first, headers = ask(c, "What is the capital of France?")
    assert state == "miss" and float(headers["x-turnout-cost-usd"]) > 0
    state, again, headers = ask(c, "what is the capital of france")  # exact after normalisation
    assert state == "hit" and again.choices[0].message.content == first.choices[0].message.content
    assert again.model_extra["turnout_cache"]["hit"] == "exact" and float(headers["x-turnout-cost-usd"]) == 0
    state, para, headers = ask(c, "Which city is the capital of France?")
    assert state == "hit" and para.model_extra["turnout_cache"]["hit"] == "semantic"
    assert para.choices[0].message.content == "echo: What is the capital of France?"
    assert float(headers["x-turnout-cache-similarity"]) >= SemanticCacheParams().threshold
    assert ask(c, "What is the capital of Spain?")[0] == "miss"
    assert ask(c, "How do I convert a string to an integer in JavaScript?")[0] == "miss"
    assert ask(c, "How do I convert an integer to a string in JavaScript?")[0] == "miss"  # same words, swapped
    assert ask(c, "What year did World War II end?")[0] == "miss"
    assert ask(c, "What year did World War I end?")[0] == "miss"  # another number, though case-folded alike
    assert ask(c, "When did the Second World War end?")[0] == "hit"
    assert len(upstream_requests()) == 6


def test_near_misses_worded_in_their_own_frame_miss(serve, upstream, upstream_requests):
    """Issue 12: a near miss asked another way (key / value, enable / disable, C→F / F→C, roles swapped) was
    served the other question's answer; each now goes upstream, while a rephrasing that swaps no word hits."""
    c = client(serve(cache_config(upstream.url)))
    pairs = [("How can I sort a Python dict by its keys?", "What's the way to order a dictionary in Python by value?"),
             ("How do I enable dark mode in VS Code?", "Is there a way to disable dark mode in VS Code?"),
             ("How do you convert Celsius to Fahrenheit?", "What's the formula for turning Fahrenheit into Celsius?"),
             ("Convert a string to an integer in Java", "How would I turn an integer into a string with Java?")]
    for cached, other in pairs:
        assert ask(c, cached)[0] == "miss"
        state, answer, _ = ask(c, other)
        assert state == "miss" and answer.choices[0].message.content == f"echo: {other}"
    state, answer, _ = ask(c, "Can you tell me how to sort a Python dict by its keys?")
    assert state == "hit" and answer.choices[0].message.content == "echo: How can I sort a Python dict by its keys?"
    assert len(upstream_requests()) == 2 * len(pairs)


def test_no_hit_across_tenants_or_models(serve, upstream, upstream_requests):
    server = serve(cache_config(upstream.url, tenant_header="x-tenant-id"))
    a, b = client(server, **{"x-tenant-id": "acme"}), client(server, **{"x-tenant-id": "globex"})
    assert ask(a, "Summarise the plot of Hamlet.")[0] == "miss"
    assert ask(b, "Summarise the plot of Hamlet.")[0] == "miss"  # another tenant: its own entry
    assert ask(a, "Summarise the plot of Hamlet.")[0] == "hit"
    # a different system prompt is a different conversation
    raw = a.chat.completions.with_raw_response.create(model="auto", messages=[
        {"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Summarise the plot of Hamlet."}])
    assert raw.headers["x-turnout-cache"] == "miss"
    assert len(upstream_requests()) == 3


def test_skips_what_must_not_be_cached(serve, upstream, upstream_requests):
    c = client(serve(cache_config(upstream.url)))
    ask(c, "Name three primary colours.")
    assert ask(c, "Name three primary colours.", temperature=0.9)[0] == "skip"
    assert ask(c, "Name three primary colours.", extra_headers={"x-turnout-cache": "off"})[0] == "skip"
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}]
    assert ask(c, "Name three primary colours.", tools=tools)[0] == "skip"
    assert ask(c, "Name three primary colours.", temperature=0)[0] == "miss"  # sampling params are part of the key
    assert ask(c, "Name three primary colours.")[0] == "hit"
    assert len(upstream_requests()) == 5


def test_ttl_expiry(serve, upstream):
    c = client(serve(cache_config(upstream.url, ttl_s=0.3)))
    ask(c, "What is the boiling point of water?")
    assert ask(c, "What is the boiling point of water?")[0] == "hit"
    time.sleep(0.4)
    assert ask(c, "What is the boiling point of water?")[0] == "miss"


def test_per_request_controls_litellm_style(serve, upstream, upstream_requests):
    """`cache` in the body (LiteLLM's shape) or `cache-control`: what one request asks of the cache. The field is
    turnout's: the upstream never sees it."""
    c = client(serve(cache_config(upstream.url)))
    q = "Name the largest moon of Saturn."
    assert ask(c, q, extra_body={"cache": {"no-store": True}})[0] == "miss"
    assert ask(c, q)[0] == "miss"  # the first answer was not stored; this one is
    assert ask(c, q, extra_body={"cache": {"no-cache": True}})[0] == "skip"  # fresh from upstream, stored again
    assert ask(c, q)[0] == "hit"
    assert ask(c, q, extra_body={"cache": False})[0] == "skip"
    assert ask(c, q, extra_headers={"cache-control": "no-cache"})[0] == "skip"
    time.sleep(0.3)
    assert ask(c, q, extra_body={"cache": {"s-maxage": 0.1}})[0] == "miss"  # stored 0.3 s ago: too old
    assert ask(c, q, extra_headers={"cache-control": "max-age=60"})[0] == "hit"
    sent = upstream_requests()
    assert len(sent) == 6 and not any("cache" in r["body"] for r in sent)
    assert ask(c, "Name the largest moon of Jupiter.", extra_body={"cache": {"ttl": 0.2}})[0] == "miss"
    assert ask(c, "Name the largest moon of Jupiter.")[0] == "hit"
    time.sleep(0.3)
    assert ask(c, "Name the largest moon of Jupiter.")[0] == "miss"  # its own, shorter lifetime


@pytest.mark.parametrize("cache, where", [({"no-cache": "yes"}, "cache.no-cache"), ({"ttl": -1}, "cache.ttl"),
                                          ({"bogus": 1}, "cache.bogus"), ("always", "cache")])
def test_a_malformed_cache_field_is_a_400_naming_it(serve, upstream, cache, where):
    c = client(serve(cache_config(upstream.url)))
    with pytest.raises(openai.BadRequestError) as err:
        ask(c, "Name a moon.", extra_body={"cache": cache})
    assert err.value.body["param"] == where or err.value.body["message"].startswith(where)


def test_the_cache_field_is_never_forwarded_even_without_a_cache(serve, upstream, upstream_requests):
    c = client(serve(base_config(upstream.url)))
    ask(c, "Name a moon.", extra_body={"cache": {"no-cache": True}})
    assert "cache" not in upstream_requests()[0]["body"]


def test_forget_one_cached_answer_or_all_of_them(serve, upstream):
    server = serve(cache_config(upstream.url))
    c = client(server)
    state, _, headers = ask(c, "What is the speed of light?")
    key = headers["x-turnout-cache-key"]
    state, _, headers = ask(c, "What's the speed of light?")
    assert state == "hit" and headers["x-turnout-cache-key"] == key  # the entry that answered
    assert httpx.delete(f"{server.url}/v1/cache/{key}").json() == {"deleted": 1, "stores": 1}
    assert ask(c, "What is the speed of light?")[0] == "miss"
    ask(c, "What is the speed of sound?")
    refused = httpx.delete(f"{server.url}/v1/cache")
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "all"
    assert httpx.delete(f"{server.url}/v1/cache?all=true").json() == {"deleted": 2, "stores": 1}
    assert ask(c, "What is the speed of light?")[0] == "miss"
    assert ask(c, "What is the speed of sound?")[0] == "miss"


def test_forgetting_needs_the_admin_key_and_a_cache(serve, upstream):
    config = cache_config(upstream.url)
    config["auth"] = {"admin_key_sha256": hashlib.sha256(b"sk-admin-0123456789").hexdigest(),
                      "keys": [{"name": f"user-{time.monotonic_ns()}", "key": "sk-user-0123456789"}]}
    server = serve(config)
    user = httpx.delete(f"{server.url}/v1/cache?all=true", headers={"authorization": "Bearer sk-user-0123456789"})
    assert user.status_code == 401 and user.json()["error"]["code"] == "admin_key_required"
    admin = httpx.delete(f"{server.url}/v1/cache?all=true", headers={"authorization": "Bearer sk-admin-0123456789"})
    assert admin.status_code == 200
    plain = serve(base_config(upstream.url))
    assert httpx.delete(f"{plain.url}/v1/cache?all=true").json()["error"]["code"] == "no_cache"


def test_streams_are_cached_and_replayed_as_streams(serve, upstream, upstream_requests):
    c = client(serve(cache_config(upstream.url)))
    messages = [{"role": "user", "content": "Write one sentence about the sea."}]
    first = list(c.chat.completions.create(model="auto", messages=messages, stream=True,
                                           stream_options={"include_usage": True}))
    text = "".join(ch.choices[0].delta.content or "" for ch in first if ch.choices)
    raw = c.chat.completions.with_raw_response.create(model="auto", messages=messages, stream=True,
                                                      stream_options={"include_usage": True})
    assert raw.headers["x-turnout-cache"] == "hit"
    replay = list(raw.parse())
    assert "".join(ch.choices[0].delta.content or "" for ch in replay if ch.choices) == text
    assert replay[-1].usage.completion_tokens == first[-1].usage.completion_tokens
    hit = c.chat.completions.create(model="auto", messages=messages)  # and a plain request gets it too
    assert hit.choices[0].message.content == text
    assert len(upstream_requests()) == 1


def test_an_upstream_failure_is_not_cached(serve, upstream, upstream_requests):
    c = client(serve(cache_config(upstream.url)))
    for _ in range(2):  # the second is not answered from the cache: it reaches the upstream and fails again
        with pytest.raises(openai.APIStatusError):
            ask(c, "Please fail now #error:500")
    assert len(upstream_requests()) == 2


def test_normalise():
    assert normalise("  What is  the Capital of FRANCE?? ") == "what is the capital of france"


def test_a_swapped_word_misses_unless_declared_a_synonym(serve, upstream, upstream_requests):
    c = client(serve(cache_config(upstream.url, synonyms=[["cancel", "stop", "end"]])))
    assert ask(c, "How do I sort a dictionary by value in Python?")[0] == "miss"
    assert ask(c, "How do I sort a dictionary by key in Python?")[0] == "miss"  # similarity 0.94, another question
    assert ask(c, "How do I cancel my subscription?")[0] == "miss"
    assert ask(c, "How do I stop my subscription?")[0] == "hit"  # declared synonyms
    assert ask(c, "How do I pause my subscription?")[0] == "miss"
    assert len(upstream_requests()) == 4


# ----- the shared store: a real redis-server -------------------------------------------------------------

def test_two_processes_share_one_redis(redis_server, upstream, upstream_requests, tmp_path):
    path = tmp_path / "turnout.yaml"
    path.write_text(yaml.safe_dump(cache_config(upstream.url, store="redis", redis_url=redis_server.url)))
    ports = [free_port(), free_port()]
    procs = [start_turnout(path, p) for p in ports]
    try:
        one, two = (openai.OpenAI(base_url=f"http://127.0.0.1:{p}/v1", api_key="none", max_retries=0) for p in ports)
        assert ask(one, "What is the tallest mountain in the world?")[0] == "miss"
        assert ask(two, "What is the tallest mountain in the world?")[0] == "hit"  # exact, through Redis
        state, answer, _ = ask(two, "Which mountain is the tallest in the world?")
        assert state == "hit" and answer.model_extra["turnout_cache"]["hit"] == "semantic"
        assert ask(one, "Which mountain is the tallest in the world?")[0] == "hit"
        assert len(upstream_requests()) == 1
        # forgotten through one process, gone for both
        assert httpx.delete(f"http://127.0.0.1:{ports[0]}/v1/cache?all=true").json() == {"deleted": 1, "stores": 1}
        assert ask(two, "Which mountain is the tallest in the world?")[0] == "miss"
        assert len(upstream_requests()) == 2
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


def test_processes_with_another_encoder_on_one_redis_still_hit(redis_server, upstream, tmp_path):
    """A rolling upgrade (the default encoder changed) or two configs on one Redis namespace: the index mirrored
    the other encoder's vectors first, took their dimension for its own, and dropped every vector of this
    process's encoder, so it never hit again. Each bucket (one encoder's) now has its own dimension."""
    procs, clients = [], []
    try:
        for encoder in ("minilm-onnx", "minilm-static"):
            path = tmp_path / f"{encoder}.yaml"
            config = cache_config(upstream.url, store="redis", redis_url=redis_server.url, encoder=encoder,
                                  namespace="shared-by-both")
            path.write_text(yaml.safe_dump(config))
            port = free_port()
            procs.append(start_turnout(path, port))
            clients.append(openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none", max_retries=0))
        old, new = clients
        assert ask(old, "What is the tallest mountain in the world?")[0] == "miss"  # a 384-d entry in Redis
        assert ask(new, "What is the tallest mountain in the world?")[0] == "miss"  # another encoder's bucket
        time.sleep(0.2)  # the stream has been mirrored: the old encoder's vector came first
        assert ask(new, "What is the capital of France?")[0] == "miss"
        state, answer, _ = ask(new, "Which city is the capital of France?")
        assert state == "hit" and answer.model_extra["turnout_cache"]["hit"] == "semantic"
        assert ask(old, "Which mountain is the tallest in the world?")[0] == "hit"
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


def test_redis_down_is_a_miss_and_it_reconnects(redis_server, serve, upstream, caplog):
    c = client(serve(cache_config(upstream.url, store="redis", redis_url=redis_server.url)))
    ask(c, "How many bones are in the human body?")
    assert ask(c, "How many bones are in the human body?")[0] == "hit"
    redis_server.stop()
    state, answer, _ = ask(c, "How many bones are in the human body?")  # still answered, by the upstream
    assert state == "miss" and answer.choices[0].message.content.startswith("echo:")
    assert any("redis cache store unavailable" in r.getMessage() for r in caplog.records)
    redis_server.start()  # restarted empty, on the same port
    assert ask(c, "How many bones are in the human body?")[0] == "miss"
    assert ask(c, "How many bones are in the human body?")[0] == "hit"
