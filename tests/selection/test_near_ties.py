"""thompson with `near_ties`: where the warm-start router's top two are within the margin it tests its runner-up
(and finds it when it is the better one), behind the conservative guard; a clear lead is never left and teaches
nothing; config errors name the field; two Routers on one Redis share what it learns. Also thompson's `early_noise`."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tests.plugins.conftest import redis_server  # noqa: F401 - the fixture
from tests.selection.test_online import ARMS, DIM, candidates, context, selector
from turnout.config import Config, ConfigError
from turnout.context import RoutingContext
from turnout.outcomes import Outcome
from turnout.pipeline import Router

NEAR = {"near_ties": 0.01, "conservative": 0.01, "noise": 0.2, "prior_strength": 0.0}


def prior(tmp_path, scores: tuple[float, float, float], name: str = "prior") -> str:
    """A best_single router that predicts `scores` for weak, middling, strong on every request."""
    from turnout.eval.table import RoutingTable
    from turnout.selection.base import selectors

    prompts = [f"question {i}" for i in range(40)]
    table = RoutingTable(prompts, ARMS, np.tile(scores, (40, 1)), np.full((40, 3), 0.001))
    x = np.tile(np.ones(DIM) / np.sqrt(DIM), (40, 1))
    selectors.get("best_single")().fit(table, x).save(tmp_path / name)
    return str(tmp_path / name)


def play(sel, means: dict[str, float], n: int, seed: int = 1) -> list:
    async def go():
        rng, choices = np.random.default_rng(seed), []
        for _ in range(n):
            choice = sel.select(context(), candidates())
            outcome = Outcome("r", decision="d", model=choice.model, features=choice.features)
            await sel.update(outcome, float(rng.random() < means[choice.model]))
            choices.append(choice)
        return choices
    return asyncio.run(go())


def test_a_near_tie_is_tested_and_the_better_runner_up_found(tmp_path):
    """The router ranks strong (0.605) just above middling (0.6), but middling is the better arm (0.75 to 0.5):
    the learner tries the runner-up as far as the guard allows and ends on it."""
    sel = selector("thompson", warm_start=prior(tmp_path, (0.2, 0.6, 0.605)), conservative_z=1.0, seed=2, **NEAR)
    choices = play(sel, {"weak": 0.3, "middling": 0.75, "strong": 0.5}, 2000)
    late = [c.model for c in choices[-300:]]
    assert late.count("middling") / len(late) > 0.8, {a: late.count(a) for a in ARMS}
    assert "weak" not in [c.model for c in choices]  # only the top two are ever tested
    assert choices[0].model == "strong" and "near tie (gap 0.0050 < 0.01)" in choices[0].reason
    early = choices[:20]  # no slack yet: wherever the runner-up's sample wins, the guard holds the router's pick
    assert {c.model for c in early} == {"strong"}
    assert any("conservative: held to the baseline" in c.reason for c in early)


def test_a_clear_lead_is_never_left_and_teaches_nothing(tmp_path):
    sel = selector("thompson", warm_start=prior(tmp_path, (0.2, 0.4, 0.9)), seed=1, **NEAR)
    choices = play(sel, {"weak": 0.3, "middling": 0.95, "strong": 0.5}, 400)
    assert {c.model for c in choices} == {"strong"} and not any(c.explored for c in choices)
    assert "router's pick (gap 0.5000 to middling ≥ 0.01)" in choices[-1].reason
    assert all(c.features[1] == 0.0 for c in choices)
    assert all(float(sel.state.view(a)[0]) == 0.0 for a in ARMS)  # nothing learned off the near ties


def test_the_guard_bounds_what_testing_a_worse_runner_up_costs(tmp_path):
    """The runner-up is much worse (0.2 against 0.75): the expected reward of the picks stays within ~1 % of
    the router's at every point from request 50 on, yet the runner-up is tried (the test can fail both ways)."""
    means = {"weak": 0.3, "middling": 0.2, "strong": 0.75}
    sel = selector("thompson", warm_start=prior(tmp_path, (0.2, 0.6, 0.605)), conservative_z=1.0, seed=3, **NEAR)
    picks = [c.model for c in play(sel, means, 1500)]
    earned = np.cumsum([means[p] for p in picks]) / (means["strong"] * np.arange(1, len(picks) + 1))
    assert float(np.min(earned[50:] - 1)) > -0.015
    assert 0 < picks.count("middling") < 150


@pytest.mark.parametrize("params, words", [
    ({"near_ties": 0.01}, "warm_start"),
    ({"near_ties": 0.01, "warm_start": "WARM"}, "conservative"),
    ({"near_ties": 0.0, "warm_start": "WARM", "conservative": 0.01}, "greater than 0"),
    ({"near_ties": 1.5, "warm_start": "WARM", "conservative": 0.01}, "less than or equal to 1"),
])
def test_near_ties_without_a_warm_start_and_a_guard_or_out_of_range_is_a_config_error_naming_it(tmp_path, params,
                                                                                                 words):
    params = {k: prior(tmp_path, (0.2, 0.6, 0.605)) if v == "WARM" else v for k, v in params.items()}
    with pytest.raises(ConfigError) as err:
        selector("thompson", **params)
    assert "decisions[0].algorithm.params.near_ties" in str(err.value) and words in str(err.value)


def router_config(url: str, warm: str) -> Config:
    return Config.model_validate({
        "models": {m: {"provider": "openai", "base_url": "http://127.0.0.1:9/v1"} for m in ARMS},
        "decisions": [{"name": "learn", "models": ARMS, "algorithm": {"name": "thompson", "params": {
            "seed": 1, "warm_start": warm, **NEAR}}}],
        "state": {"store": "redis", "redis_url": url, "namespace": "t-near-ties"},
    })


def test_two_routers_on_one_redis_share_what_the_near_ties_taught(tmp_path, redis_server):  # noqa: F811
    warm = prior(tmp_path, (0.2, 0.6, 0.605))

    async def feed(router: Router, times: int) -> None:
        for _ in range(times):
            ctx = RoutingContext({"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
            route = await router.route(ctx)
            await router.learn(Outcome(ctx.request_id, decision="learn", model=route.model,
                                       features=route.choice.features), 1.0)

    async def go():
        one, two = Router.build(router_config(redis_server.url, warm)), Router.build(router_config(redis_server.url, warm))
        try:
            await asyncio.gather(feed(one, 40), feed(two, 40))  # concurrent updates from both replicas
            views = []
            for router in (one, two):
                state = router.decisions["learn"].selector.state
                await state.refresh()
                views.append({a: state.view(a)[:2].tolist() for a in ARMS})
            assert views[0] == views[1]
            assert views[0]["middling"][0] + views[0]["strong"][0] == 80.0 and views[0]["weak"][0] == 0.0
            for arm, predicted in (("middling", 0.6), ("strong", 0.605)):  # each record's residual: 1 − prediction
                assert views[0][arm][1] == pytest.approx(views[0][arm][0] * (1.0 - predicted))
            route = await two.route(RoutingContext({"model": "auto", "messages": [{"role": "user", "content": "x"}]}))
            n = int(views[0]["strong"][0])
            assert f"strong N({0.605 + n * 0.395 / (n + 1):.3f}," in route.choice.reason
        finally:
            await one.aclose()
            await two.aclose()
    asyncio.run(go())


def test_early_noise_widens_the_posterior_until_early_until_outcomes_then_noise():
    sel = selector("thompson", cost_weight=0.1, noise=0.15, early_noise=0.45, early_until=30, seed=1)
    noises, choices = [], []
    for _ in range(60):
        noises.append(sel.current_noise(ARMS))
        choices += play(sel, {"weak": 0.3, "middling": 0.5, "strong": 0.75}, 1)
    assert noises == [0.45] * 30 + [0.15] * 30  # the 31st pick is the first after 30 rated outcomes
    assert "0.450²" in choices[0].reason  # N(price prior, 0.45² / 1): nothing seen yet
    with pytest.raises(ConfigError) as err:
        selector("thompson", early_noise=0.45, early_until=0)
    assert "decisions[0].algorithm.params.early_until" in str(err.value)
    with pytest.raises(ConfigError) as err:
        selector("thompson", early_noise=-1)
    assert "decisions[0].algorithm.params.early_noise" in str(err.value)
