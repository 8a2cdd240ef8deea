"""PII hardening against a real `turnout serve` process: a prompt built to make the PII patterns backtrack does
not stall the server, every field that can carry personal data is redacted before the upstream sees it, and a
streamed cache hit gives the caller its own values back."""

from __future__ import annotations

import json
import threading

import httpx
import openai

from tests.conftest import base_config
from tests.process import turnout_process

# 62 KB that the old e-mail pattern took 6.6 s of CPU over (an "@" then a long run of "a." with no TLD)
ADVERSARIAL = "a@" + "a." * 32000


def pii_config(upstream_url: str, plugins: list) -> dict:
    config = base_config(upstream_url)
    config["signals"]["pii"] = {"kind": "pii"}
    config["decisions"] = [{"name": "private", "priority": 10, "when": {"signal": "pii"}, "models": ["small"],
                            "plugins": plugins},
                           {"name": "default", "models": ["small"], "plugins": plugins}]
    return config


def test_healthz_answers_while_adversarial_prompts_are_scanned(upstream, tmp_path):
    with turnout_process(pii_config(upstream.url, [{"pii": {"action": "redact"}}]), tmp_path) as server:
        statuses: list[int] = []

        def attack() -> None:
            response = httpx.post(f"{server.url}/v1/chat/completions", timeout=120,
                                  json={"model": "auto", "messages": [{"role": "user", "content": ADVERSARIAL}]})
            statuses.append(response.status_code)

        attackers = [threading.Thread(target=attack) for _ in range(4)]
        for thread in attackers:
            thread.start()
        # a liveness bound, not a benchmark: the old code held the event loop for 6.6 s per request
        for _ in range(5):
            assert httpx.get(f"{server.url}/healthz", timeout=2.0).status_code == 200
        for thread in attackers:
            thread.join(120)
        assert statuses == [200] * 4


EMAILS = {"name": "alice.name@example.com", "arguments": "bob.args@example.com", "image": "carol.img@example.com",
          "user": "dave.user@example.com", "metadata": "erin.meta@example.com", "tool": "tool.result@example.com"}
FULL_WIDTH = "ｆｒａｎｋ＠ｅｘａｍｐｌｅ．ｃｏｍ"
ZERO_WIDTH = "gr\u200bace@example.com"
PHONE_00 = "0044 20 7946 0958"


def test_every_field_that_carries_personal_data_is_redacted(upstream, upstream_requests, tmp_path):
    body = {
        "model": "auto",
        "user": EMAILS["user"],
        "metadata": {"contact": EMAILS["metadata"], "tier": "gold"},
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "name": EMAILS["name"], "content": "find my account"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "lookup", "arguments": json.dumps({"email": EMAILS["arguments"]})}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": f"found {EMAILS['tool']}"},
            {"role": "user", "content": [
                {"type": "text", "text": f"write to {FULL_WIDTH} or {ZERO_WIDTH}, or call {PHONE_00}"},
                {"type": "image_url", "image_url": {"url": f"https://img.example.com/{EMAILS['image']}/a.png"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
        ],
    }
    with turnout_process(pii_config(upstream.url, [{"pii": {"action": "redact", "restore": True}}]),
                         tmp_path) as server:
        response = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=30)
        assert response.status_code == 200, response.text
        sent = upstream_requests()[-1]["body"]
        seen = json.dumps(sent, ensure_ascii=False)
        for value in [*EMAILS.values(), FULL_WIDTH, ZERO_WIDTH, PHONE_00, "grace@example.com"]:
            assert value not in seen, value
        assert sent["user"].startswith("[EMAIL_") and sent["metadata"] == {"contact": sent["metadata"]["contact"],
                                                                           "tier": "gold"}
        assert json.loads(sent["messages"][2]["tool_calls"][0]["function"]["arguments"])["email"].startswith("[EMAIL_")
        assert sent["messages"][4]["content"][2] == body["messages"][4]["content"][2]  # inline image bytes: whole
        assert "[PHONE_1]" in sent["messages"][4]["content"][0]["text"]
        # restored for the caller: its own values, as it wrote them (full-width, zero-width space and all)
        answer = response.json()["choices"][0]["message"]["content"]
        assert answer == f"echo: write to {FULL_WIDTH} or {ZERO_WIDTH}, or call {PHONE_00}"


def test_a_streamed_cache_hit_is_restored(upstream, upstream_requests, tmp_path):
    plugins = [{"pii": {"action": "redact", "restore": True}},
               {"semantic_cache": {"encoder": "minilm-static"}}]
    with turnout_process(pii_config(upstream.url, plugins), tmp_path) as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0)
        first = client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "Say hello to jane.doe@example.com"}])
        assert first.choices[0].message.content == "echo: Say hello to jane.doe@example.com"
        calls = len(upstream_requests())
        # another caller's address redacts to the same placeholder: the same cached (redacted) answer, restored
        # with this caller's own value, plain and streamed
        for stream in (False, True):
            raw = client.chat.completions.with_raw_response.create(
                model="auto", stream=stream, messages=[{"role": "user", "content": "Say hello to max@example.org"}])
            assert raw.headers["x-turnout-cache"] == "hit"
            parsed = raw.parse()
            text = "".join(c.choices[0].delta.content or "" for c in parsed if c.choices) if stream else \
                parsed.choices[0].message.content
            assert text == "echo: Say hello to max@example.org", (stream, text)
        assert len(upstream_requests()) == calls  # both answered from the cache


def test_tool_call_arguments_are_restored_in_answers_plain_and_streamed():
    """The model calls a tool with the placeholder: the caller's tool gets the real value (the mock upstream has
    no echoing tool call, so the restorer is driven directly)."""
    import asyncio

    from turnout.context import RoutingContext
    from turnout.plugins.pii import ORIGINALS, _restoring, restore_response

    originals = {"[EMAIL_1]": "a@b.io", "[PHONE_1]": "+44 20 7946 0958"}
    ctx = RoutingContext({"messages": []}, cache={ORIGINALS: originals})
    call = {"id": "c", "type": "function", "function": {"name": "send", "arguments": '{"to": "[EMAIL_1]"}'}}
    plain = restore_response(ctx, {"choices": [{"index": 0, "message": {"role": "assistant", "content": None,
                                                                        "tool_calls": [call]}}]})
    assert plain["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == '{"to": "a@b.io"}'

    pieces = ['{"to": "[EMA', 'IL_1]", "tel": "[PHO', 'NE_1]", "cc": "[PHO']  # the last one never closes
    chunks = [{"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": p}}]}}]}
              for p in pieces] + [{"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}]

    async def relay() -> str:
        async def batches():
            for chunk in chunks:
                yield [json.dumps(chunk)]
        out = [json.loads(c) async for batch in _restoring(batches(), originals) for c in batch]
        return "".join(call["function"]["arguments"] for chunk in out for choice in chunk["choices"]
                       for call in choice["delta"].get("tool_calls") or ())
    assert asyncio.run(relay()) == '{"to": "a@b.io", "tel": "+44 20 7946 0958", "cc": "[PHO'
