"""A thompson decision with `near_ties` through a real turnout on Redis: traffic from the openai client, feedback
with httpx, /v1/route explaining the near tie, a changed rating revising what was learned, and a restarted server
on the same Redis starting from what the first one learned."""

from __future__ import annotations

import time

import httpx
import numpy as np
import pytest

from tests.conftest import base_config
from tests.plugins.conftest import redis_server  # noqa: F401 - the fixture
from tests.server.test_feedback import ADMIN, ALICE, ask, feedback
from tests.server.test_feedback import config as feedback_config


def warm_start(tmp_path) -> str:
    """A best_single router predicting 0.6 for small and 0.605 for strong: a near tie on every request."""
    from turnout.eval.table import RoutingTable
    from turnout.models.encoders import get_encoder
    from turnout.selection.base import selectors

    prompts = [f"question {i}" for i in range(20)]
    table = RoutingTable(prompts, ["small", "strong"], np.tile([0.6, 0.605], (20, 1)), np.full((20, 2), 1e-4))
    selectors.get("best_single")().fit(table, get_encoder("minilm-static").encode(prompts)).save(tmp_path / "warm")
    return str(tmp_path / "warm")


def route(server) -> dict:
    r = httpx.post(server.url + "/v1/route", headers={"authorization": f"Bearer {ADMIN}"}, timeout=10,
                   json={"model": "auto", "messages": [{"role": "user", "content": "which model?"}]})
    assert r.status_code == 200, r.text
    return r.json()


def test_near_ties_learn_from_feedback_through_the_server_and_keep_it_in_redis(serve, upstream, tmp_path,
                                                                              redis_server):  # noqa: F811
    cfg = feedback_config(upstream.url)
    cfg["state"] = {"store": "redis", "redis_url": redis_server.url, "namespace": f"nt{time.monotonic_ns()}"}
    cfg["decisions"][1]["algorithm"] = {"name": "thompson", "params": {
        "explore": False, "seed": 1, "warm_start": warm_start(tmp_path), "near_ties": 0.01, "conservative": 0.01,
        "prior_strength": 0.0}}
    assert base_config(upstream.url)["decisions"][1]["models"] == ["small", "strong"]
    server = serve(cfg)
    reason = route(server)["reason"]
    assert "near tie (gap 0.0050 < 0.01)" in reason and "held to the baseline" not in reason
    request_id, completion = ask(server, ALICE)
    assert completion.model == "mock-strong"  # the router's pick: no slack yet to try its runner-up
    assert feedback(server, request_id=request_id, rating=1).json()["learned"] is True
    scores = {c["model"]: c["score"] for c in route(server)["candidates"]}
    assert scores["strong"] == pytest.approx(0.605 + 0.395 / 2)  # the residual 0.395 over 1 + 1 pseudo-observation
    assert scores["small"] == pytest.approx(0.6)
    assert feedback(server, request_id=request_id, rating=0).json()["status"] == "replaced"
    assert {c["model"]: c["score"] for c in route(server)["candidates"]}["strong"] == pytest.approx(0.605 - 0.605 / 2)
    server.stop()  # a restart: what the first server learned is in Redis, and the next one starts from it
    again = serve(cfg)
    assert {c["model"]: c["score"] for c in route(again)["candidates"]}["strong"] == pytest.approx(0.605 - 0.605 / 2)
