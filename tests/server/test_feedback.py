"""POST /v1/feedback through a real turnout: traffic from the openai client, feedback with httpx, by request id and
by response id, each kind of rating, errors naming the field, other tenants' ids as unknown as made-up ones,
idempotence, the rate limit, and a thompson decision whose choices move with the ratings."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import base_config, fresh_minute

ALICE, BOB, ADMIN = "sk-alice-feedback-0123456789", "sk-bob-feedback-0123456789", "sk-admin-feedback-0123456789"


def config(upstream_url: str, **alice: Any) -> dict[str, Any]:
    cfg = base_config(upstream_url)
    ns = f"f{time.monotonic_ns()}"
    cfg["state"] = {"namespace": ns}
    # explore: false — the pick is the arm with the best posterior mean, so a test can predict it
    cfg["decisions"][1]["algorithm"] = {"name": "thompson", "params": {"explore": False, "seed": 1}}
    cfg["auth"] = {"admin_key_sha256": hashlib.sha256(ADMIN.encode()).hexdigest(), "keys": [
        {"name": f"alice-{ns}", "key": ALICE, **alice}, {"name": f"bob-{ns}", "key": BOB}]}
    return cfg


def ask(server, key: str = ALICE, text: str = "hello there", **kwargs: Any) -> tuple[str, Any]:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model=kwargs.pop("model", "auto"),
                                                           messages=[{"role": "user", "content": text}], **kwargs)
    return raw.headers["x-turnout-request-id"], raw.parse()


def feedback(server, key: str | None = ALICE, **body: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(server.url + "/v1/feedback", json=body, headers=headers, timeout=10)


def posterior(server) -> dict[str, float]:
    """The default decision's candidates as /v1/route explains them (posterior means: nothing is sampled)."""
    r = httpx.post(server.url + "/v1/route", headers={"authorization": f"Bearer {ADMIN}"}, timeout=10,
                   json={"model": "auto", "messages": [{"role": "user", "content": "which model?"}]})
    assert r.status_code == 200, r.text
    return {c["model"]: c["score"] for c in r.json()["candidates"]}


@pytest.fixture
def server(serve, upstream):
    return serve(config(upstream.url))


def test_each_kind_of_feedback_by_request_id_and_by_response_id(server):
    request_id, _ = ask(server)
    r = feedback(server, request_id=request_id, rating=0.75, comment="good, but slow")
    assert r.status_code == 200
    body = r.json()
    assert (body["object"], body["status"], body["learned"]) == ("feedback", "recorded", True)
    fb = body["outcome"]["feedback"]
    assert (fb["quality"], fb["rating"], fb["comment"], fb["source"]) == (0.75, 0.75, "good, but slow", "explicit")
    assert body["outcome"]["request_id"] == request_id and "prompt" not in body["outcome"]

    client = openai.OpenAI(base_url=server.url + "/v1", api_key=ALICE, max_retries=0)
    response = client.responses.create(model="auto", input="rate me by my response id")
    r = feedback(server, response_id=response.id, thumbs="down")
    assert r.status_code == 200 and r.json()["outcome"]["response_id"] == response.id
    assert r.json()["outcome"]["feedback"]["quality"] == 0.0
    for kind, expected in (({"thumbs": "up"}, 1.0), ({"success": False}, 0.0), ({"success": True}, 1.0)):
        r = feedback(server, request_id=ask(server)[0], **kind)
        assert r.status_code == 200 and r.json()["outcome"]["feedback"]["quality"] == expected
    r = feedback(server, request_id=ask(server)[0], label="wrong-language")  # a label alone: kept, not learned
    assert r.json()["outcome"]["feedback"]["label"] == "wrong-language" and r.json()["learned"] is False
    direct_id, _ = ask(server, model="strong")  # a direct request: no selector to teach
    assert feedback(server, request_id=direct_id, rating=1).json()["learned"] is False


def test_unknown_ids_and_other_tenants_ids_are_404(server):
    alices, _ = ask(server)
    for body in ({"request_id": "0" * 32, "rating": 1}, {"response_id": "resp_nothing", "rating": 1}):
        r = feedback(server, **body)
        param = next(iter(body))
        assert r.status_code == 404 and r.json()["error"]["code"] == "outcome_not_found"
        assert r.json()["error"]["param"] == param
    stolen = feedback(server, BOB, request_id=alices, rating=0)
    assert stolen.status_code == 404 and stolen.json()["error"]["message"] == \
        f"No outcome with id '{alices}' found."  # the same words as for an id never made
    assert feedback(server, None, request_id=alices, rating=0).status_code == 401
    assert feedback(server, "sk-wrong", request_id=alices, rating=0).status_code == 401


@pytest.mark.parametrize(("body", "field"), [
    ({"rating": 1.5}, "rating"), ({"rating": -0.1}, "rating"), ({"rating": "good"}, "rating"),
    ({"rating": True}, "rating"), ({"thumbs": "sideways"}, "thumbs"), ({"success": "yes"}, "success"),
    ({"rating": 1, "thumbs": "up"}, "thumbs"), ({}, "rating"), ({"label": 7}, "label"),
    ({"label": "x" * 201}, "label"), ({"rating": 1, "comment": ["no"]}, "comment"),
    ({"rating": 1, "stars": 5}, "stars"),
])
def test_bad_values_are_400_naming_the_field(server, body, field):
    request_id, _ = ask(server)
    r = feedback(server, request_id=request_id, **body)
    assert r.status_code == 400 and r.json()["error"]["param"] == field, r.text
    assert field in r.json()["error"]["message"]


def test_exactly_one_id_and_a_json_object(server):
    request_id, _ = ask(server)
    for body in ({"rating": 1}, {"request_id": request_id, "response_id": "resp_x", "rating": 1},
                 {"request_id": 5, "rating": 1}):
        r = feedback(server, **body)
        assert r.status_code == 400 and r.json()["error"]["param"] in ("request_id", "response_id")
    r = httpx.post(server.url + "/v1/feedback", content=b"[1, 2]", headers={"authorization": f"Bearer {ALICE}"})
    assert r.status_code == 400


def test_feedback_moves_the_online_selector_once_per_record_with_its_latest_rating(server):
    assert posterior(server) == {"small": 0.5, "strong": 0.5}  # Beta(1, 1) each: ties go to the first
    first, _ = ask(server)
    assert feedback(server, request_id=first, thumbs="down").json()["learned"] is True
    assert posterior(server) == {"small": pytest.approx(1 / 3, abs=1e-6), "strong": 0.5}
    again = feedback(server, request_id=first, thumbs="down")  # the same feedback twice counts once
    assert again.json()["status"] == "unchanged" and again.json()["learned"] is False
    changed = feedback(server, request_id=first, thumbs="up")  # replaces the rating, on the record and the posterior
    assert changed.json()["status"] == "replaced" and changed.json()["learned"] is True
    assert changed.json()["outcome"]["feedback"]["thumbs"] == "up"
    assert posterior(server)["small"] == pytest.approx(2 / 3, abs=1e-6)  # Beta(2, 1): one success, not two ratings
    back = feedback(server, request_id=first, thumbs="down")  # flipping it back: still one observation, a failure
    assert back.json()["learned"] is True and posterior(server)["small"] == pytest.approx(1 / 3, abs=1e-6)
    # the choices move: small was rated down, so the next request goes to strong; rated up, strong stays
    bobs, completion = ask(server, BOB)
    assert completion.model == "mock-strong"
    assert feedback(server, BOB, request_id=bobs, rating=1).json()["learned"] is True
    assert posterior(server)["strong"] == pytest.approx(2 / 3, abs=1e-6)
    label = feedback(server, BOB, request_id=bobs, label="off-topic")  # a label alone takes the rating back
    assert label.json()["status"] == "replaced" and label.json()["outcome"]["feedback"]["learned"] is False
    assert posterior(server)["strong"] == pytest.approx(0.5, abs=1e-6)


def test_feedback_is_rate_limited_like_any_request(serve, upstream):
    server = serve(config(upstream.url, rpm=3))
    fresh_minute()
    request_id, _ = ask(server)
    assert feedback(server, request_id=request_id, rating=1).status_code == 200
    assert feedback(server, request_id=request_id, rating=1).status_code == 200
    limited = feedback(server, request_id=request_id, rating=1)
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert feedback(server, BOB, request_id=request_id, rating=1).status_code == 404  # bob has no limit
