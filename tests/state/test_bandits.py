"""Bandit state shared through a real redis-server: two Routers updating one posterior lose no update, Redis down
keeps routing on the local view and says so, and a restarted Router keeps what was learned."""

from __future__ import annotations

import asyncio

import pytest

from tests.plugins.conftest import redis_server  # noqa: F401 - the fixture
from turnout.config import Config
from turnout.context import RoutingContext
from turnout.outcomes import Outcome
from turnout.pipeline import Router

ARMS = ["a", "b", "c"]


def config(url: str, algorithm: str = "thompson", namespace: str = "t-bandit") -> Config:
    return Config.model_validate({
        "models": {m: {"provider": "openai", "base_url": "http://127.0.0.1:9/v1"} for m in ARMS},
        "decisions": [{"name": "learn", "models": ARMS, "algorithm": {"name": algorithm, "params": {"seed": 1}}}],
        "state": {"store": "redis", "redis_url": url, "namespace": namespace},
    })


async def feed(router: Router, model: str, quality: float, times: int) -> None:
    for _ in range(times):
        ctx = RoutingContext({"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
        route = await router.route(ctx)
        await router.learn(Outcome(ctx.request_id, decision="learn", model=model, features=route.choice.features),
                           quality)


def counts(router: Router, model: str) -> tuple[float, float]:
    view = router.decisions["learn"].selector.state.view(model)
    return float(view[0]), float(view[1])


@pytest.mark.parametrize("algorithm", ["thompson", "linucb"])
def test_two_routers_on_one_redis_share_one_posterior_and_lose_no_update(redis_server, algorithm):  # noqa: F811
    async def go():
        one, two = Router.build(config(redis_server.url, algorithm)), Router.build(config(redis_server.url, algorithm))
        try:
            # interleaved, concurrent updates of the same arm from both replicas
            await asyncio.gather(feed(one, "b", 1.0, 60), feed(two, "b", 1.0, 60), feed(one, "a", 0.0, 20))
            await one.decisions["learn"].selector.state.refresh()
            await two.decisions["learn"].selector.state.refresh()
            assert counts(one, "b")[0] == counts(two, "b")[0] == 120
            assert counts(two, "a")[0] == 20
            if algorithm == "thompson":
                assert counts(two, "b")[1] == 120.0
            route = await two.route(RoutingContext({"model": "auto", "messages": [{"role": "user", "content": "x"}]}))
            assert "b" in route.choice.reason
        finally:
            await one.aclose()
            await two.aclose()
    asyncio.run(go())


def test_a_restarted_router_keeps_what_was_learned(redis_server):  # noqa: F811
    async def learn():
        first = Router.build(config(redis_server.url))
        await feed(first, "c", 1.0, 30)
        await first.aclose()

    asyncio.run(learn())
    again = Router.build(config(redis_server.url))  # as `turnout serve` does: before its event loop runs
    assert counts(again, "c") == (30.0, 30.0)  # read as the router is built: before the first request

    async def go():
        try:
            state = again.decisions["learn"].selector.state
            route = await again.route(RoutingContext({"model": "auto", "messages": [{"role": "user", "content": "x"}]}))
            assert route.model == "c" and "Beta(31.0, 1.0)" in route.choice.reason
            assert state.unavailable is None
        finally:
            await again.aclose()
    asyncio.run(go())


def test_redis_down_keeps_routing_on_the_local_view_and_says_so(redis_server, caplog):  # noqa: F811
    async def go():
        router = Router.build(config(redis_server.url, namespace="t-down"))
        try:
            await feed(router, "a", 1.0, 10)
            redis_server.stop()
            await feed(router, "a", 1.0, 5)  # learned locally, kept for later
            route = await router.route(RoutingContext({"model": "auto", "messages": [{"role": "user", "content": "x"}]}))
            assert route.model in ARMS
            assert "unreachable" in route.choice.reason and "local view" in route.choice.reason
            assert counts(router, "a") == (15.0, 15.0)
            warnings = [r for r in caplog.records if "shared bandit state" in r.getMessage()]
            assert len(warnings) == 1  # throttled: once, not once per update
            redis_server.start()  # back (empty: it kept nothing): the pending updates are sent
            await router.decisions["learn"].selector.state.refresh()
            assert router.decisions["learn"].selector.state.unavailable is None
            assert counts(router, "a")[0] >= 5.0
        finally:
            await router.aclose()
    asyncio.run(go())


def test_statistics_are_stored_packed_and_an_earlier_text_value_is_read_and_rewritten(redis_server):  # noqa: F811
    """Values go to Redis as packed float64s, exact; one written as comma-separated text (an earlier version) is
    read as it was and added to, and an own update leaves the view's version alone when nobody else wrote."""
    import numpy as np
    import redis

    from turnout.state.bandits import PACKED, RedisBanditState

    direct = redis.Redis.from_url(redis_server.url)
    direct.set("t-packed:old", "1,0.5,0.25")

    async def go():
        state = RedisBanditState(redis_server.url, "t-packed", 3)
        try:
            await state.refresh()  # nothing tracked yet: reads nothing
            state.track(["old", "new"])
            await state.refresh()
            assert state.view("old").tolist() == [1.0, 0.5, 0.25]
            await state.add("old", np.array([1.0, 0.1, 0.01]))
            version = state.version("new")
            await state.add("new", np.array([1.0, 1 / 3, 1 / 9]))
            assert state.version("new") == version + 1  # the add, not the reply that confirmed it too
            return state.view("old").copy()
        finally:
            await state.aclose()
    seen = asyncio.run(go())
    np.testing.assert_array_equal(seen, np.array([1.0, 0.5, 0.25]) + np.array([1.0, 0.1, 0.01]))
    for key, expected in (("t-packed:old", [2.0, 0.6, 0.26]), ("t-packed:new", [1.0, 1 / 3, 1 / 9])):
        raw = direct.get(key)
        assert raw.startswith(PACKED)
        np.testing.assert_allclose(np.frombuffer(raw[len(PACKED):], dtype="<f8"), expected, rtol=0, atol=1e-15)
    direct.close()


def test_closing_the_redis_state_is_bounded_when_a_redis_call_never_returns(redis_server, monkeypatch):  # noqa: F811
    """A refresher cancelled inside a redis-py pipeline could leave closing the state waiting for good (one run in
    four of test_online_revise's two-replica test hung CI): every step of aclose is bounded."""
    import numpy as np

    from turnout.state import bandits

    monkeypatch.setattr(bandits, "CLOSE_S", 0.2)

    async def go() -> float:
        state = bandits.RedisBanditState(redis_server.url, "bounded-close", 3)
        state.track(["a"])
        await state.add("a", np.ones(3))

        async def never(*args, **kwargs):
            await asyncio.Event().wait()

        monkeypatch.setattr(state, "refresh", never)
        state._task = asyncio.get_running_loop().create_task(never())  # a refresher stuck in a call
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(state.aclose(), 10)
        return asyncio.get_running_loop().time() - started

    assert asyncio.run(go()) < 5
