"""A changed rating corrects the learner: `revise(outcome, old, new)` leaves every learner's statistics as if only
the new reward had come (and, with new None, as if none had), in memory and through Redis; the conservative
guard's ledger follows; a rating flipped many times still counts once."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tests.plugins.conftest import redis_server  # noqa: F401 - the fixture
from tests.selection.test_online import (
    LEARNERS,
    candidates,
    context,
    prior_preferring_strong,
    selector,
)
from turnout.outcomes import Outcome

VARIANTS = [(name, {}) for name in LEARNERS] + [("thompson", {"clusters": 2, "cluster_after": 4}),
                                                 ("linucb", {"dim": 4, "signals": ["s"]})]


def contexts(n: int) -> list:
    rng = np.random.default_rng(7)
    return [context(rng.standard_normal(256)) for _ in range(n)]


async def teach(sel, rewards: list[float], revisions: dict[int, list[float | None]]) -> tuple[list, list]:
    """Pick and learn `rewards` in turn; then change the ratings of the records in `revisions`, in order (each
    entry the rewards it changes to, None: taken back). The records, and the arms' statistics at the end."""
    records = []
    for ctx, reward in zip(contexts(len(rewards)), rewards):
        choice = sel.select(ctx, candidates())
        outcome = Outcome("r", decision="d", model=choice.model, features=choice.features)
        await sel.update(outcome, reward)
        records.append(outcome)
    for i, changes in revisions.items():
        old: float | None = rewards[i]
        for new in changes:
            assert old is not None
            await sel.revise(records[i], old, new)
            old = new
    return records, [sel.state.view(a).copy() for a in ("weak", "middling", "strong")]


async def learn_only(sel, records: list, rewards: list[float | None]) -> list[np.ndarray]:
    """A fresh learner told the same records' final rewards (None: never rated)."""
    for outcome, reward in zip(records, rewards):
        if reward is not None:
            await sel.update(outcome, reward)
    return [sel.state.view(a).copy() for a in ("weak", "middling", "strong")]


@pytest.mark.parametrize(("name", "params"), VARIANTS)
def test_a_revised_reward_leaves_the_statistics_as_if_only_the_new_one_came(name, params):
    rewards = [0.1, 0.9, 0.4, 0.0, 1.0, 0.7, 0.3, 0.8]
    changed = list(rewards)
    changed[2], changed[5] = 1.0, 0.0
    records, revised = asyncio.run(teach(selector(name, seed=4, **params), rewards, {2: [0.0, 1.0, 1.0], 5: [0.0]}))
    direct = asyncio.run(learn_only(selector(name, seed=4, **params), records, changed))
    for a, b in zip(revised, direct):
        np.testing.assert_allclose(a, b, atol=1e-9)
    unrevised = asyncio.run(learn_only(selector(name, seed=4, **params), records, rewards))
    assert any(not np.allclose(a, b) for a, b in zip(revised, unrevised))  # the revision changed something


@pytest.mark.parametrize(("name", "params"), VARIANTS)
def test_a_rating_taken_back_leaves_nothing_of_it(name, params):
    rewards = [0.6, 0.2, 0.9]
    records, taken = asyncio.run(teach(selector(name, seed=2, **params), rewards, {1: [None]}))
    direct = asyncio.run(learn_only(selector(name, seed=2, **params), records, [0.6, None, 0.9]))
    for a, b in zip(taken, direct):
        np.testing.assert_allclose(a, b, atol=1e-9)
    assert sum(v[0] for v in taken) == pytest.approx(2)  # two observations left


def test_revise_moves_the_posterior_a_select_reads():
    sel = selector("thompson", explore=False)

    async def go():
        choice = sel.select(context(), candidates())
        outcome = Outcome("r", decision="d", model=choice.model, features=choice.features)
        await sel.update(outcome, 0.0)
        low = sel.select(context(), candidates()).scores[choice.model]
        await sel.revise(outcome, 0.0, 1.0)
        return low, sel.select(context(), candidates()).scores[choice.model]
    low, high = asyncio.run(go())
    assert (low, high) == (pytest.approx(1 / 3), pytest.approx(2 / 3))  # Beta(1, 2) → Beta(2, 1)


def test_the_conservative_guard_follows_a_revised_deviation(tmp_path):
    sel = selector("thompson", warm_start=prior_preferring_strong(tmp_path), conservative=0.5, prior_strength=0.0,
                   seed=1)
    extras = (1.0, 0.6, 0.1)  # a deviation: baseline estimate 0.6, reserve 0.1
    sel.guard_.settle(extras, 0.2)
    after = sel.guard_.slack_
    sel.guard_.revise(extras, 0.2, 0.9)
    assert sel.guard_.slack_ == pytest.approx(after + 0.7)
    sel.guard_.revise(extras, 0.9, None)  # taken back: as if the feedback never came (the reserve stays spent)
    assert sel.guard_.slack_ == pytest.approx(after - (0.1 + 0.2 - 0.6))


def test_a_revision_through_redis_reaches_another_replica(redis_server):  # noqa: F811
    from types import SimpleNamespace

    state = SimpleNamespace(store="redis", redis_url=redis_server.url)
    ns = f"revise:{np.random.default_rng().integers(1 << 30)}"

    async def go():
        first = selector("linucb", dim=4, seed=1)
        first.bind_state(state, ns)
        choice = first.select(context(), candidates())
        outcome = Outcome("r", decision="d", model=choice.model, features=choice.features)
        await first.update(outcome, 0.2)
        await first.revise(outcome, 0.2, 0.8)
        await first.aclose()
        second = selector("linucb", dim=4, seed=1)
        second.bind_state(state, ns)
        second.state.track(["weak", "middling", "strong"])
        await second.state.refresh()
        seen = second.state.view(choice.model).copy()
        await second.aclose()
        direct = selector("linucb", dim=4, seed=1)
        await direct.update(outcome, 0.8)
        return seen, direct.state.view(choice.model)
    seen, direct = asyncio.run(go())
    assert seen[0] == 1
    np.testing.assert_allclose(seen, direct, atol=1e-9)
