"""One contract suite for every learned selector: fit, select, save/load, determinism, config checks."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from turnout.config import ConfigError, parse_config
from turnout.context import RoutingContext
from turnout.eval.table import RoutingTable
from turnout.pipeline import Router
from turnout.selection import selectors
from turnout.selection.base import build_selector

LEARNED = [n for n in selectors.names() if getattr(selectors.get(n), "needs_fit", False)]
MATH = ["Solve for x: 3x + 5 = 20.", "What is the integral of x squared?", "Compute 17 times 23.",
        "Find the derivative of sin(x) cos(x).", "What is the probability of two heads in three tosses?",
        "Simplify (x^2 - 1)/(x - 1).", "Solve the system x + y = 10, x - y = 2.", "What is 15% of 240?"]
CHAT = ["Write a haiku about the sea.", "Suggest a name for a coffee shop.", "Tell me a joke about cats.",
        "Write a birthday message for my aunt.", "Describe a sunset in two sentences.",
        "Give me a slogan for a bakery.", "Write a limerick about a frog.", "Compose a short poem about rain."]


@pytest.fixture(scope="module")
def table():
    # the math model solves math and fails chat; the chat model the opposite; costs equal
    prompts = MATH + CHAT
    scores = np.array([[1.0, 0.0]] * len(MATH) + [[0.0, 1.0]] * len(CHAT))
    return RoutingTable(prompts, ["math-model", "chat-model"], scores, np.full(scores.shape, 0.001),
                        splits=["train"] * len(prompts), name="toy")


def small_params(name):
    return {"knn": {"k": 3}, "cluster": {"n_clusters": 2}, "mlp": {"max_iter": 800, "hidden": 32},
            "mf": {"epochs": 400, "dim": 16}, "classifier": {"C": 10.0}, "svm": {"C": 1.0},
            "graph": {"n_tasks": 2}, "routerdc": {"dim": 16, "steps": 300},
            "ensemble": {"members": 2, "hidden": 32, "max_iter": 800}}.get(name, {})


async def choose(selector, text, candidates):
    from turnout.models.request import request_embedding
    from turnout.selection import Candidate
    from turnout.config import Cost

    ctx = RoutingContext({"messages": [{"role": "user", "content": text}]})
    await request_embedding(ctx, selector.encoder)
    return selector.select(ctx, [Candidate(c, Cost(input=1, output=1)) for c in candidates])


@pytest.mark.parametrize("name", LEARNED)
def test_fit_select_save_load(name, table, tmp_path):
    selector = selectors.get(name)(**small_params(name)).fit(table)
    predicted = selector.predict_quality(np.zeros((1, 256), dtype=np.float32) + 0.01)
    assert predicted.shape == (1, 2)
    if name not in ("best_single", "elo"):  # these two do not look at the prompt
        assert asyncio.run(choose(selector, "Solve 2x - 4 = 10 for x.", ["chat-model", "math-model"])).model == "math-model"
        assert asyncio.run(choose(selector, "Write a short poem about autumn.", ["math-model", "chat-model"])).model \
            == "chat-model"
    selector.save(tmp_path / name)
    loaded = selectors.get(name).load(tmp_path / name)
    from turnout.models.encoders import get_encoder

    x = get_encoder().encode(MATH[:3] + CHAT[:3])
    assert np.allclose(loaded.predict_quality(x), selector.predict_quality(x), atol=1e-6)
    assert loaded.models_ == ["math-model", "chat-model"] and loaded.fingerprint_ == table.fingerprint()
    again = selectors.get(name)(**small_params(name)).fit(table)
    assert np.allclose(again.predict_quality(x), selector.predict_quality(x), atol=1e-6)  # deterministic


@pytest.mark.parametrize("name", LEARNED)
def test_choice_lists_every_candidate(name, table):
    selector = selectors.get(name)(**small_params(name)).fit(table)
    choice = asyncio.run(choose(selector, "hello", ["math-model", "chat-model"]))
    assert set(choice.scores) == {"math-model", "chat-model"} and choice.model in choice.scores and choice.reason


def test_config_errors_for_artifacts(table, tmp_path):
    selectors.get("knn")(k=3).fit(table).save(tmp_path / "knn")
    with pytest.raises(ConfigError, match="is a learned router"):
        build_selector("knn", {}, "decisions[0].algorithm")
    with pytest.raises(ConfigError, match="cannot load"):
        build_selector("knn", {}, "decisions[0].algorithm", str(tmp_path / "nope"))
    with pytest.raises(ConfigError) as info:
        build_selector("knn", {}, "decisions[0].algorithm", str(tmp_path / "knn"), ["math-model", "gpt-9"])
    assert "decisions[0].algorithm.artifact" in str(info.value) and "gpt-9" in str(info.value)
    assert build_selector("knn", {"k": 2}, "d", str(tmp_path / "knn"), ["math-model"]).k == 2  # params override


def test_learned_selector_routes_in_a_decision(table, tmp_path):
    selectors.get("knn")(k=3).fit(table).save(tmp_path / "knn")
    config = parse_config({"models": {m: {"provider": "openai", "base_url": "http://127.0.0.1:9/v1"}
                                      for m in ("math-model", "chat-model")},
                           "decisions": [{"name": "default", "models": ["chat-model", "math-model"],
                                          "algorithm": {"name": "knn", "artifact": str(tmp_path / "knn")}}]})
    router = Router.build(config)
    ctx = RoutingContext({"model": "auto", "messages": [{"role": "user", "content": "Solve 4x = 12 for x."}]})
    route = asyncio.run(router.route(ctx))
    assert route.model == "math-model" and route.algorithm == "knn"
    asyncio.run(router.aclose())


def test_random_selector_is_seeded_by_request():
    from turnout.config import Cost
    from turnout.selection import Candidate

    selector = selectors.get("random")(seed=1)
    candidates = [Candidate(n, Cost()) for n in "abcd"]
    picks = [selector.select(RoutingContext({}, request_id=str(i)), candidates).model for i in range(200)]
    assert set(picks) == set("abcd")
    assert picks == [selector.select(RoutingContext({}, request_id=str(i)), candidates).model for i in range(200)]


def test_elo_orders_models_by_pairwise_wins():
    scores = np.array([[1, 0, 0], [1, 1, 0], [1, 0, 0], [0, 1, 1]], dtype=float)
    table = RoutingTable([f"p{i}" for i in range(4)], ["a", "b", "c"], scores, np.ones_like(scores),
                         splits=["train"] * 4)
    rating = selectors.get("elo")().fit(table, np.ones((4, 8), dtype=np.float32)).rating_
    assert rating[0] > rating[1] > rating[2] and rating.max() == 1.0


def test_multi_objective_follows_the_requested_objective(table):
    from turnout.config import Cost
    from turnout.models.request import request_embedding
    from turnout.selection import Candidate

    selector = selectors.get("multi_objective")(cost_weight=0.0).fit(table)
    # the chat model is the right one for a poem, but it is 100x dearer here
    candidates = [Candidate("math-model", Cost(input=0.1, output=0.1)), Candidate("chat-model", Cost(input=10, output=10))]

    def pick(objective):
        headers = {"x-turnout-objective": objective} if objective else {}
        ctx = RoutingContext({"messages": [{"role": "user", "content": "Write a short poem about autumn."}]},
                             headers=headers)
        asyncio.run(request_embedding(ctx))
        return selector.select(ctx, candidates)

    assert pick(None).model == "chat-model" and pick("quality").model == "chat-model"
    choice = pick("cost")
    assert choice.model == "math-model" and "objective cost" in choice.reason


def test_artifact_paths_are_relative_to_the_config_file(table, tmp_path):
    import yaml

    from turnout.config import load_config

    selectors.get("knn")(k=3).fit(table).save(tmp_path / "routers" / "knn")
    (tmp_path / "turnout.yaml").write_text(yaml.safe_dump({
        "models": {m: {"provider": "openai", "base_url": "http://127.0.0.1:9/v1"} for m in ("math-model", "chat-model")},
        "decisions": [{"name": "default", "models": ["chat-model", "math-model"],
                       "algorithm": {"name": "knn", "artifact": "routers/knn"}}]}))
    router = Router.build(load_config(tmp_path / "turnout.yaml"))  # from any working directory
    assert router.decisions["default"].selector.models_ == ["math-model", "chat-model"]
    asyncio.run(router.aclose())


def test_builtin_routers_load_and_know_their_models():
    demo = build_selector("svm", {}, "d", "builtin:gsm8k-svm", ["gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1"])
    assert demo.cost_weight > 0  # calibrated when built, within range (a negative weight is refused)
    with pytest.raises(ConfigError, match="knows nothing of gpt-4o"):
        build_selector("hybrid", {}, "d", "builtin:llmrouter-hybrid", ["gpt-4o"])


def test_every_learned_router_serves_through_the_real_server(table, tmp_path, serve, upstream):
    """Each learned algorithm: trained, saved, loaded from its artifact by the server, selecting in a decision."""
    import openai

    from tests.conftest import TEST_KEY

    models = {m: {"provider": "openai", "base_url": f"{upstream.url}/v1", "api_key": TEST_KEY, "model": m}
              for m in ("math-model", "chat-model")}
    signals, decisions = {}, []
    for name in LEARNED:
        selectors.get(name)(**small_params(name)).fit(table).save(tmp_path / name)
        signals[f"use_{name}"] = {"kind": "header", "name": "x-router", "values": [name]}
        decisions.append({"name": name, "when": {"signal": f"use_{name}"}, "models": ["chat-model", "math-model"],
                          "algorithm": {"name": name, "artifact": str(tmp_path / name)}})
    decisions.append({"name": "default", "models": ["chat-model"]})
    server = serve({"models": models, "signals": signals, "decisions": decisions})
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0)
    for name in LEARNED:
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": "Solve 2x - 4 = 10 for x."}],
            extra_headers={"x-router": name})
        assert raw.headers["x-turnout-decision"] == name
        expected = {"math-model"} if name not in ("best_single", "elo") else {"math-model", "chat-model"}
        assert raw.headers["x-turnout-model"] in expected, name
        assert raw.parse().choices[0].message.content == "echo: Solve 2x - 4 = 10 for x."
