"""The Plan interface, and PlanRun: one request's run of a plan, with one deadline and one cost account.

Every call a plan makes (an answer, a judge's call, a consistency sample, a coordinator's round) goes through
`PlanRun.call`, which sends it down the Dispatcher (retries and breakers as for any call) and records it in
`route.plan_attempts` as {model, role, outcome, usage, cost_usd, seconds, verdict}; the Exchange bills their sum
(header `x-turnout-cost-usd`, the key's budget and tpm), so an attempt that was judged and thrown away is still
paid for. Attempts are made as plain (non-stream) calls: a plan must see an answer whole before it can judge it,
and the client's stream starts only once the plan has chosen (so nothing is ever sent twice to a client)."""

from __future__ import annotations

import abc
import asyncio
import time
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from turnout.access import allowed
from turnout.backends.dispatch import OK, DispatchLog
from turnout.config import ConfigError, ConfigIssue, unknown_ref
from turnout.context import RoutingContext, usage_count
from turnout.errors import (
    PermissionDenied,
    TurnoutError,
    UpstreamError,
    UpstreamTimeoutError,
)
from turnout.judges import Judge, Verdict, build_judge
from turnout.judges.base import answer_text
from turnout.params import Params, validate_params
from turnout.registry import Registry

if TYPE_CHECKING:
    from turnout.config import Config, DecisionConfig
    from turnout.pipeline import Route, Router

# an attempt's outcome, from a closed set (a metric label): answers are accepted/rejected/candidate/picked
OUTCOMES = frozenset({"accepted", "rejected", "candidate", "picked", "failed", "timeout", "cancelled", "judge",
                      "sample", "tool"})
# fields of the client's body that describe the client's stream, not the question
_STREAM_FIELDS = ("stream", "stream_options")


class PlanParams(Params):
    models: list[str] | None = Field(None, min_length=1, description="the plan's models (default: the decision's)")
    deadline_s: float | None = Field(None, gt=0, description="the whole plan's deadline (default and cap: "
                                                             "server.request_timeout_s)")
    attempt_timeout_s: float | None = Field(None, gt=0, description="one answer's share of the deadline")


class Plan(abc.ABC):
    name: ClassVar[str]
    Params: ClassVar[type[PlanParams]] = PlanParams

    def __init__(self, params: PlanParams, models: list[str], judges: dict[str, Judge]) -> None:
        self.params = params
        self.models = models  # in the plan's order (a cascade: cheapest first unless `models` says otherwise)
        self.judges = judges  # by their param name (judge, ...)

    @classmethod
    def from_config(cls, params: dict[str, Any], path: str, config: Config, decision: DecisionConfig) -> Plan:
        checked = validate_params(cls.Params, params, f"{path}.params")
        issues: list[ConfigIssue] = []
        judges: dict[str, Judge] = {}
        for key in cls.judge_fields():
            spec = getattr(checked, key, None)
            if spec is not None:
                try:
                    judges[key] = build_judge(spec, f"{path}.params.{key}")
                except ConfigError as exc:
                    issues.extend(exc.issues)
        models = list(checked.models) if checked.models else cls.default_order(decision.models, config)
        for i, name in enumerate(checked.models or []):
            if name not in config.models:
                issues.append(unknown_ref(f"{path}.params.models[{i}]", "model", name, config.models))
        for key, judge in judges.items():
            # a judge of judges (ensemble) says where below its params each model is named
            named = (judge.referenced_model_paths() if hasattr(judge, "referenced_model_paths")
                     else [("model", name) for name in judge.referenced_models()])
            for where, name in named:
                if name not in config.models:
                    issues.append(unknown_ref(f"{path}.params.{key}.params.{where}", "model", name, config.models))
        issues += [unknown_ref(f"{path}.params.{field}", "model", name, config.models)
                   for field, name in cls.model_fields_of(checked) if name not in config.models]
        if issues:
            raise ConfigError(issues)
        plan = cls(checked, models, judges)
        plan.check(path)
        return plan

    @classmethod
    def judge_fields(cls) -> tuple[str, ...]:
        """The params that hold a judge spec {name, params}."""
        return ()

    @classmethod
    def model_fields_of(cls, params: PlanParams) -> list[tuple[str, str]]:
        """(param, model) pairs of single-model params (a judge model, a coordinator), for reference checks."""
        return []

    @staticmethod
    def default_order(models: list[str], config: Config) -> list[str]:
        return list(models)

    def check(self, path: str) -> None:
        """Cross-field checks once built; raise ConfigError naming the field."""

    def describe(self) -> dict[str, Any]:
        """The plan as /v1/route and `turnout route` show it."""
        shown = self.params.model_dump(exclude_none=True, exclude={"models"})
        return {"name": self.name, "models": self.models, **shown}

    def referenced_models(self) -> list[str]:
        return list(dict.fromkeys([*self.models, *(m for j in self.judges.values() for m in j.referenced_models())]))

    @abc.abstractmethod
    async def run(self, run: PlanRun) -> dict[str, Any]:
        """The answer (an internal chat completion); `run.answered_by(model)` names the model it is from."""


plans: Registry[Plan] = Registry("plan", attr="name")
register = plans.register


def build_plan(spec: Any, path: str, config: Config, decision: DecisionConfig) -> Plan:
    try:
        cls = plans.get(spec.name)
    except KeyError as exc:
        raise ConfigError([ConfigIssue(f"{path}.name", str(exc.args[0]))]) from None
    return cls.from_config(spec.params, path, config, decision)


class PlanRun:
    """One request's run of a plan: the calls it makes, their cost, and the deadline they share. Also the
    JudgeEnv its judges get (`ask`, `samples`) for the answer being judged."""

    def __init__(self, router: Router, ctx: RoutingContext, route: Route, plan: Plan) -> None:
        self.router, self.ctx, self.route, self.plan = router, ctx, route, plan
        server_deadline = router.config.server.request_timeout_s
        self.deadline = time.monotonic() + min(plan.params.deadline_s or server_deadline, server_deadline)
        self.body = {k: v for k, v in ctx.body.items() if k not in _STREAM_FIELDS}
        for judge in plan.judges.values():
            if judge.needs_logprobs and hasattr(judge, "request_fields"):
                self.body.update(judge.request_fields())
        self.attempts = route.plan_attempts
        self.sampled_model: str | None = None  # the model whose answer is being judged (for samples)
        self._samples: tuple[int, asyncio.Future[list[dict[str, Any]]]] | None = None

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def answerers(self, models: list[str]) -> list[str]:
        """The models that may write this caller's answer: a key limited to some models (auth.keys[].models)
        gets a plan over those alone. Judges and pickers, which write no answer, are the operator's choice."""
        usable = allowed(self.ctx.caller, models)
        if not usable:
            raise PermissionDenied(f"this key may use none of the models of the {self.plan.name} plan",
                                   code="model_not_allowed")
        return usable

    async def call(self, model: str, body: dict[str, Any] | None = None, *, role: str = "answer",
                   timeout: float | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """A completion from `model` (its own chain: no fallbacks, the plan is the fallback) and its attempt
        record. Raises what the Dispatcher raises, a timeout as UpstreamTimeoutError; the attempt is recorded
        either way."""
        body = {**(self.body if body is None else body), "model": model}
        limit = min(self.remaining(), timeout) if timeout else self.remaining()
        attempt: dict[str, Any] = {"model": model, "role": role, "outcome": "failed", "usage": None,
                                   "cost_usd": 0.0, "seconds": 0.0}
        self.attempts.append(attempt)
        start = time.monotonic()
        log = DispatchLog()
        try:
            if limit <= 0:
                raise UpstreamTimeoutError("the plan's deadline passed before this attempt")
            async with asyncio.timeout(limit):
                _, answer = await self.router.dispatcher.complete([model], body, self.ctx.upstream_headers or None,
                                                                  log)
        except (TimeoutError, asyncio.CancelledError) as exc:
            # the upstream may bill a prompt it began on: count the prompt, estimated
            attempt["outcome"] = "timeout" if isinstance(exc, TimeoutError) else "cancelled"
            attempt["cost_usd"] = self._cost(model, None, 0)
            attempt["seconds"] = round(time.monotonic() - start, 4)
            if isinstance(exc, TimeoutError):
                raise UpstreamTimeoutError(f"upstream '{model}' did not answer within the plan's deadline") from None
            raise
        except TurnoutError:
            attempt["seconds"] = round(time.monotonic() - start, 4)
            raise
        finally:
            # the route's dispatch log (upstream error, retry and fallback metrics, x-turnout-attempts) gets the
            # failures only: a plan's several answers from several models are neither retries nor fallbacks
            self.route.dispatch.attempts += [a for a in log.attempts if a.outcome != OK]
        usage = answer.get("usage") if isinstance(answer.get("usage"), dict) else None
        attempt.update(outcome="candidate" if role == "answer" else role, usage=usage,
                       cost_usd=self._cost(model, usage, len(answer_text(answer))),
                       seconds=round(time.monotonic() - start, 4))
        return answer, attempt

    def _cost(self, model: str, usage: dict[str, Any] | None, chars: int) -> float:
        return self.router.cost_usd(model, usage, self.ctx, chars)

    async def judge(self, name: str, model: str, answer: dict[str, Any], attempt: dict[str, Any]) -> Verdict:
        """Judge an answer of `model` with the plan's judge `name`; the verdict goes on the attempt. A judge
        that breaks fails the answer (a plan must not accept what it could not check).

        An answer with several choices (the request's `n` > 1) has each choice judged on its own, as an answer
        of one choice. The answer passes when one of its choices passes; its score is the best passing choice's
        (when none passes, the best choice's). The answer's choices are then put in place: the choices that
        passed first, each group in its own order, re-indexed from 0; the verdict lists every choice's verdict
        by its upstream index (`choices`) and the order returned (`order`)."""
        self.sampled_model = model
        self._samples = None  # one answer's choices share the consistency samples
        judge = self.plan.judges[name]
        choices = answer.get("choices") or []
        if len(choices) <= 1:
            verdict = await self._judge_one(judge, answer)
            attempt["verdict"] = {"judge": judge.name, **verdict.to_dict()}
            return verdict
        verdicts = await asyncio.gather(*(self._judge_one(judge, {**answer, "choices": [c]}) for c in choices))
        indices = [c.get("index", i) if isinstance(c, dict) else i for i, c in enumerate(choices)]
        order = sorted(range(len(choices)), key=lambda i: not verdicts[i].passed)  # stable: passing ones first
        passing = [v for v in verdicts if v.passed]
        best = max(passing or verdicts, key=lambda v: v.score)
        answer["choices"] = [{**choices[i], "index": j} for j, i in enumerate(order)]
        verdict = Verdict(best.score, bool(passing), {
            "choices": [{"index": indices[i], **v.to_dict()} for i, v in enumerate(verdicts)],
            "passed_choices": len(passing), "order": [indices[i] for i in order]})
        attempt["verdict"] = {"judge": judge.name, **verdict.to_dict()}
        return verdict

    async def _judge_one(self, judge: Judge, answer: dict[str, Any]) -> Verdict:
        try:
            return await judge.judge(self.body, answer, self)
        except Exception as exc:  # noqa: BLE001 - a judge's failure (its model, its encoder) fails the answer
            return Verdict(0.0, False, {"error": f"{type(exc).__name__}: {exc}"[:200]})

    # ----- JudgeEnv ---------------------------------------------------------------------------------------
    async def ask(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        answer, _ = await self.call(model, body, role="judge")
        return answer

    async def samples(self, k: int) -> list[dict[str, Any]]:
        """k further answers from the model being judged. The choices of one answer share them (asked for
        once, each sample with n = 1): a sample is evidence about the model's answer to the request, not about
        one choice."""
        if self._samples is None or self._samples[0] < k:
            self._samples = (k, asyncio.ensure_future(self._draw(k)))
        return (await self._samples[1])[:k]

    async def _draw(self, k: int) -> list[dict[str, Any]]:
        model = self.sampled_model or self.route.model
        body = {key: v for key, v in self.body.items() if key != "n"}
        results = await asyncio.gather(*(self.call(model, body, role="sample") for _ in range(k)),
                                       return_exceptions=True)
        return [r[0] for r in results if isinstance(r, tuple)]

    # ----- the answer ---------------------------------------------------------------------------------------
    def finish(self, model: str, answer: dict[str, Any], field: str = "turnout_plan") -> dict[str, Any]:
        """The chosen answer, re-targeted to `model`, with usage summed over every attempt and the attempts."""
        self.route.model = self.ctx.model = model
        totals = {"prompt_tokens": 0, "completion_tokens": 0}
        for attempt in self.attempts:
            for key in totals:
                totals[key] += usage_count(attempt["usage"], key) or 0
        out = dict(answer)
        out["usage"] = {**totals, "total_tokens": sum(totals.values())}
        shown = [{k: v for k, v in a.items() if v is not None} for a in self.attempts]
        out[field] = {"plan": self.plan.name, "attempts": shown} if field == "turnout_plan" else shown
        self.ctx.response_headers["x-turnout-plan"] = self.plan.name
        self.ctx.response_headers["x-turnout-plan-attempts"] = ",".join(
            f"{a['model']}:{a['role']}:{a['outcome']}" for a in self.attempts)[:2000]
        return out


async def run_plan(router: Router, ctx: RoutingContext, route: Route) -> dict[str, Any]:
    """The route's plan, run for this request: the answer it chose, in the internal form."""
    plan: Plan = route.plan
    return await plan.run(PlanRun(router, ctx, route, plan))


def no_answer(errors: list[BaseException], what: str) -> TurnoutError:
    """The error a plan raises when none of its models answered: the last upstream error, else a 504."""
    for exc in reversed(errors):
        if isinstance(exc, UpstreamError):
            return exc
    return UpstreamTimeoutError(f"no model of the {what} answered before the deadline")


def plan_cost(attempts: list[dict[str, Any]]) -> float:
    """What a plan's calls cost together: the Exchange bills this, not the chosen answer alone."""
    return sum(a["cost_usd"] for a in attempts)


def plan_tokens(attempts: list[dict[str, Any]], prompt_estimate: int) -> int:
    """Tokens of every call (tpm); a call cut off (timeout, cancelled) counts its prompt, estimated."""
    total = 0
    for a in attempts:
        used = a.get("usage")
        total += ((usage_count(used, "prompt_tokens") or 0) + (usage_count(used, "completion_tokens") or 0)) if used \
            else prompt_estimate if a["outcome"] in ("timeout", "cancelled") else 0
    return total
