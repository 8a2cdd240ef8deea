"""The Router: a config compiled into signals, decisions, selectors, plugins and backends, and the request
path through them. One Router serves until a reload replaces it; it is immutable while it serves."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from turnout import tracing
from turnout.access import AccessControl, allowed
from turnout.backends import Backend
from turnout.backends.dispatch import Dispatcher, DispatchLog
from turnout.config import Config, ConfigError, ConfigIssue, load_config
from turnout.context import Choice, RoutingContext, SignalResult, tokens_for_chars, usage_count
from turnout.decisions import DecisionEngine, DecisionTrace
from turnout.decisions.analysis import analyse
from turnout.compile import CompiledDecision, close_all, compile_config
from turnout.completions import completion_as_chunks, single_batch
from turnout.errors import ModelNotFoundError, PermissionDenied, TurnoutError, scrub_field
from turnout.models.request import request_embedding
from turnout.outcomes import Outcome
from turnout.plans import run_plan
from turnout.plugins import Plugin
from turnout.selection import Candidate
from turnout.sessions import Sessions
from turnout.signals import Signal
from turnout.state.outcomes import OutcomeStore, outcome_store

SIGNAL_TIMEOUT_S = 2.0
log = logging.getLogger("turnout.plugins")


@dataclass
class Route:
    """Where a request goes and why."""

    mode: str  # "routed" or "direct"
    decision: str
    model: str
    choice: Choice
    plugins: list[Plugin] = field(default_factory=list)
    signals: list[dict[str, Any]] = field(default_factory=list)
    decision_flags: list[bool] = field(default_factory=list)  # per decision, in priority order
    engine: DecisionEngine | None = None
    algorithm: str = ""
    elapsed_us: float = 0.0
    fallbacks: list[str] = field(default_factory=list)  # the decision's, tried after the model's own
    dispatch: DispatchLog = field(default_factory=DispatchLog)
    session: str | None = None  # the conversation's id (a hash: never the raw header or user), when one is kept
    switched: bool = False  # this request moved its session to another model
    sticky: Any = None  # turnout.sessions.Stick: what stickiness found and did (for the explanation and metrics)
    plan: Any = None  # turnout.plans.Plan: the decision's plan, which replaces the single backend call
    #: every call the plan made, {model, role, outcome, usage, cost_usd, seconds, verdict}: the Exchange bills all
    plan_attempts: list[dict[str, Any]] = field(default_factory=list)

    def plan_record(self) -> dict[str, Any] | None:
        """The plan and its calls, compact, for the outcome record (None: no plan ran)."""
        if self.plan is None:
            return None
        return {"name": self.plan.name, "attempts": [
            {k: a[k] for k in ("model", "role", "outcome", "cost_usd") if k in a} for a in self.plan_attempts]}

    def decisions(self) -> list[DecisionTrace]:
        """Every decision with whether it matched; built only when an explanation is asked for."""
        return self.engine.trace(self.decision_flags) if self.engine is not None else []

    def explanation(self, ctx: RoutingContext) -> dict[str, Any]:
        return {
            "request_id": ctx.request_id,
            "requested_model": ctx.body.get("model"),
            "mode": self.mode,
            "signals": self.signals,
            "decisions": [{"name": d.name, "priority": d.priority, "matched": d.matched} for d in self.decisions()],
            "decision": self.decision,
            "algorithm": self.algorithm,
            "candidates": [{"model": m, "score": round(s, 6)} for m, s in self.choice.scores.items()],
            "model": self.model,
            "reason": self.choice.reason,
            "plugins": [p.name for p in self.plugins],
            "elapsed_us": round(self.elapsed_us, 1),
        } | ({"session": self.sticky.explain()} if self.sticky is not None else {}) \
          | ({"plan": self.plan.describe()} if self.plan is not None else {})


class Router:
    def __init__(self, config: Config, signals_: dict[str, Signal], decisions: dict[str, CompiledDecision],
                 backends: dict[str, Backend], global_plugins: list[Plugin] | None = None,
                 access: AccessControl | None = None) -> None:
        self.config = config
        self.signals = signals_
        self.decisions = decisions
        self.backends = backends
        self.global_plugins = global_plugins or []  # run on every request, routed or direct, before a decision's
        self.dispatcher = Dispatcher(config, backends)
        self.access = access or AccessControl(config, [], None)
        self.engine = DecisionEngine([d.config for d in decisions.values()])
        self.plugins_in_use = self.global_plugins + [p for d in decisions.values() for p in d.plugins]
        self.warnings = analyse(config.decisions)
        wanted = set(self.engine.referenced_signals)  # the decisions' signals, and those plugins read
        wanted.update(n for d in decisions.values() for p in d.plugins for n in p.referenced_signals())
        wanted.update(n for p in self.global_plugins for n in p.referenced_signals())
        used = [s for n, s in self.signals.items() if n in wanted]
        for signal in used:  # signals with per-tenant state (reask, feedback) keep it where `state` says
            if hasattr(signal, "bind_state"):
                signal.bind_state(config.state, config.state.namespace)
        self._cheap = [s for s in used if s.cost == 0]
        self._costly = [s for s in used if s.cost > 0]
        self.aliases = set(config.routing.aliases)
        self.sessions = Sessions(config)
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # ----- building -------------------------------------------------------------------------------------
    @classmethod
    def build(cls, config: Config) -> "Router":
        """Compile a validated config; every unknown name or bad parameter is reported, with its path."""
        issues: list[ConfigIssue] = []
        parts = compile_config(config, issues)
        if issues:
            close_all(parts[2])
            raise ConfigError(issues)
        return cls(config, *parts)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, missing_env: str = "error", text: str | None = None) -> "Router":
        """Load and compile a config file (`text`: its content, already read). Its ConfigError lists every problem
        in one run: the schema's, the references', and those compiling the part that parsed finds (unknown
        kinds, component parameters)."""
        try:
            config = load_config(path, missing_env=missing_env, text=text)
        except ConfigError as exc:
            raise cls.with_component_issues(exc) from None
        return cls.build(config)

    @staticmethod
    def with_component_issues(exc: ConfigError) -> ConfigError:
        """A loader's error, plus the problems compiling the part of the file that parsed finds."""
        if exc.partial is None:
            return exc
        issues: list[ConfigIssue] = []
        close_all(compile_config(exc.partial.config, issues)[2])
        return ConfigError(exc.issues + exc.partial.report(issues))

    # ----- routing --------------------------------------------------------------------------------------
    async def evaluate_signals(self, ctx: RoutingContext) -> list[dict[str, Any]]:
        trace = [await self._run_signal(s, ctx) for s in self._cheap]
        if self._costly:
            if self._inline(ctx):  # nothing would suspend: tasks would only run them one by one anyway
                trace += [await self._run_signal(s, ctx, inline=True) for s in self._costly]
            else:
                trace += await asyncio.gather(*(self._run_signal(s, ctx) for s in self._costly))
        return trace

    def _inline(self, ctx: RoutingContext) -> bool:
        try:
            return all(s.runs_inline(ctx) for s in self._costly)
        except Exception:  # the signal's own evaluate() reports what is wrong with the request
            return False

    async def _run_signal(self, signal: Signal, ctx: RoutingContext, inline: bool = False) -> dict[str, Any]:
        start = time.perf_counter()
        try:
            if signal.cost and not inline:  # a timeout scope, not wait_for: no second task per signal (~50 µs a
                # request of three); an inline signal never suspends, so no timeout could fire in it
                async with asyncio.timeout(SIGNAL_TIMEOUT_S):
                    result = await signal.evaluate(ctx)
            else:
                result = await signal.evaluate(ctx)
        except asyncio.TimeoutError:
            result = SignalResult(False, error=f"timed out after {SIGNAL_TIMEOUT_S}s")
        except Exception as exc:  # a failing signal must never fail the request: it counts as not matched
            result = SignalResult(False, error=f"{type(exc).__name__}: {exc}"[:300])
        elapsed = (time.perf_counter() - start) * 1e6
        ctx.signals[signal.name] = result
        entry = {"name": signal.name, "kind": signal.kind, "matched": result.matched,
                 "score": round(result.score, 4), "elapsed_us": round(elapsed, 1)}
        if result.detail:
            entry["detail"] = result.detail
        if result.error:
            entry["error"] = result.error
        if tracing.on:
            tracing.leaf(f"signal {signal.name}", start, {"turnout.signal": signal.name, "turnout.signal.kind":
                         signal.kind, "turnout.matched": result.matched, "turnout.score": result.score})
        return entry

    def candidates(self, names: list[str]) -> list[Candidate]:
        return [Candidate(n, self.config.models[n].cost, self.dispatcher.health(n).stats) for n in names]

    async def route(self, ctx: RoutingContext, *, pin: bool = True) -> Route:
        """Everything up to (not including) the backend call; the Route is the explanation. `pin=False` (a dry
        run) leaves the session store as it was."""
        start = time.perf_counter()
        requested = ctx.body.get("model")
        if requested in self.aliases:
            trace = await self.evaluate_signals(ctx)
            mark = time.perf_counter()
            decision, flags = self.engine.decide(ctx.signals)
            if tracing.on:
                tracing.leaf("decision", mark, {"turnout.decision": decision.name,
                                                "turnout.decision.priority": decision.priority})
            compiled = self.decisions[decision.name]
            caller = ctx.caller
            if caller.decisions is not None and decision.name not in caller.decisions:
                raise PermissionDenied(f"this key may not be routed by the decision '{decision.name}'",
                                       code="decision_not_allowed")
            names = allowed(caller, decision.models)
            if not names:
                raise PermissionDenied(f"this key may use none of the models of the decision '{decision.name}'",
                                       code="model_not_allowed")
            mark = time.perf_counter()
            if compiled.selector.encoder is not None:  # learned selectors read the request embedding
                await request_embedding(ctx, compiled.selector.encoder)
            choice = compiled.selector.select(ctx, self.candidates(names))
            if tracing.on:
                tracing.leaf("selection", mark, {"turnout.algorithm": decision.algorithm.name,
                                                 "turnout.model": choice.model, "turnout.candidates": names})
            route = Route("routed", decision.name, choice.model, choice, self.global_plugins + compiled.plugins, trace,
                          flags, self.engine, decision.algorithm.name, fallbacks=decision.fallbacks,
                          plan=compiled.plan)
        elif requested in self.config.models and self.config.routing.allow_direct:
            AccessControl.check_model(ctx.caller, requested)
            route = Route("direct", "direct", requested, Choice(requested, {requested: 1.0}, "requested by name"),
                          list(self.global_plugins))
        else:
            valid = sorted(self.aliases) + (sorted(self.config.models) if self.config.routing.allow_direct else [])
            raise ModelNotFoundError(f"The model '{requested}' does not exist here; use one of: {', '.join(valid)}",
                                     param="model")
        if self.sessions.enabled:  # stickiness (turnout/sessions.py) may keep the route on its session's model
            await self.sessions.stick(self, ctx, route, names if route.mode == "routed" else [route.model], pin)
        route.elapsed_us = (time.perf_counter() - start) * 1e6
        return route

    # ----- calling --------------------------------------------------------------------------------------
    async def run_before(self, ctx: RoutingContext, route: Route) -> dict[str, Any] | None:
        """The plugins' before hooks in order; the first that answers ends the chain. A plugin may re-target
        the request (ctx.model), which the route then follows."""
        ctx.decision, ctx.model = route.decision, route.model
        answer = None
        for plugin in route.plugins:
            try:
                with tracing.hook(plugin.name, "before") if tracing.on else tracing.OFF:
                    answer = await plugin.before(ctx)
            except TurnoutError:
                raise  # a deliberate refusal (blocked PII, a jailbreak, a canned error)
            except Exception as exc:  # noqa: BLE001 - the plugin broke: policy decides
                _plugin_failed(plugin, "before", exc, ctx, self.secrets())
            if answer is not None:
                ctx.answered_by = plugin.name
                break
        if ctx.model != route.model or ctx.cache.get("plugin:pinned_model"):
            route.model = ctx.model
            route.fallbacks = []  # re-targeted by a plugin (PII → a local model): only that model's own chain
            route.plan = None  # nor a plan's other models: the plugin chose where this request may go
        return answer

    async def run_after(self, ctx: RoutingContext, route: Route, response: dict[str, Any]) -> dict[str, Any]:
        ctx.cache["plugin:router"] = (self, route)  # an after hook that calls a model (hallucination) bills it here
        for plugin in reversed(route.plugins):
            try:
                with tracing.hook(plugin.name, "after") if tracing.on else tracing.OFF:
                    response = await plugin.after(ctx, response)
            except TurnoutError:
                raise
            except Exception as exc:  # noqa: BLE001
                _plugin_failed(plugin, "after", exc, ctx, self.secrets())
        return response

    async def complete(self, ctx: RoutingContext, route: Route) -> dict[str, Any]:
        response = await self.run_before(ctx, route)
        if response is None:
            if route.plan is not None:
                return await self.run_after(ctx, route, await self._plan(ctx, route))
            chain = allowed(ctx.caller, self.dispatcher.chain(route.model, route.fallbacks))
            route.model, response = await self.dispatcher.complete(chain, ctx.body, ctx.upstream_headers or None,
                                                                   route.dispatch)
            ctx.model = route.model
        return await self.run_after(ctx, route, response)

    async def stream(self, ctx: RoutingContext, route: Route) -> AsyncIterator[list[str]]:
        answer = await self.run_before(ctx, route)
        if answer is None and route.plan is not None:  # the plan chooses first; the chosen answer is streamed
            answer = await self._plan(ctx, route)
        if answer is not None:  # a plugin's answer meets the after hooks a plain one does (pii restores it)
            answer = await self.run_after(ctx, route, answer)
            include_usage = bool((ctx.body.get("stream_options") or {}).get("include_usage"))
            return single_batch(completion_as_chunks(answer, include_usage))
        chain = allowed(ctx.caller, self.dispatcher.chain(route.model, route.fallbacks))
        route.model, batches = await self.dispatcher.stream(chain, ctx.body, ctx.upstream_headers or None,
                                                            route.dispatch)
        ctx.model = route.model
        for plugin in reversed(route.plugins):
            batches = plugin.wrap_stream(ctx, batches)
        return batches

    async def _plan(self, ctx: RoutingContext, route: Route) -> dict[str, Any]:
        if not tracing.on:
            return await run_plan(self, ctx, route)
        with tracing.span(f"plan {route.plan.name}", {"turnout.plan": route.plan.name}) as current:
            answer = await run_plan(self, ctx, route)  # each of its calls is an upstream attempt span below this
            current.set_attribute("turnout.plan.calls", len(route.plan_attempts))
            current.set_attribute("turnout.cost_usd", sum(a.get("cost_usd") or 0.0 for a in route.plan_attempts))
            return answer

    def cost_usd(self, model: str, usage: dict[str, Any] | None, ctx: RoutingContext, completion_chars: int = 0) -> float:
        """USD for a response: from its usage when the upstream reported it, else estimated."""
        prompt = usage_count(usage, "prompt_tokens")
        completion = usage_count(usage, "completion_tokens")
        if prompt is None:
            prompt = ctx.token_estimate
        if completion is None:
            completion = tokens_for_chars(completion_chars)
        return self.config.models[model].cost.usd(prompt, completion)

    def secrets(self) -> tuple[str, ...]:
        """Every backend's key and header values, longest first (so that a secret inside another goes with it)."""
        found = {s for b in self.backends.values() for s in b.secrets()}
        return tuple(sorted(found, key=len, reverse=True))

    # ----- the loop: records and what is learned from them --------------------------------------------
    @property
    def outcomes(self) -> OutcomeStore:
        """The outcome records (turnout/state/outcomes.py); the store outlives a reload of the config."""
        return outcome_store(self.config)

    async def learn(self, outcome: Outcome, quality: float | None, replaces: float | None = None) -> bool:
        """Tell the selector of the outcome's decision how its pick did (quality in [0, 1]); `replaces`: the
        quality it was told before, now corrected (quality None: only taken back). Whether an online selector
        learned from it (offline ones ignore it; a decision gone in a reload learns nothing)."""
        compiled = self.decisions.get(outcome.decision or "")
        if compiled is None or outcome.model is None or (quality is None and replaces is None):
            return False
        selector = compiled.selector
        reward = None if quality is None else selector.reward(outcome, quality, outcome.objective)
        if replaces is None:
            assert reward is not None
            await selector.update(outcome, reward)
        else:
            await selector.revise(outcome, selector.reward(outcome, replaces, outcome.objective), reward)
        return selector.online

    # ----- lifetime -------------------------------------------------------------------------------------
    def acquire(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def release(self) -> None:
        self.in_flight -= 1
        if self.in_flight <= 0:
            self._idle.set()

    async def drain_and_close(self, timeout: float = 600.0) -> None:
        """Wait for in-flight requests (streams included) to finish, then close every backend."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        await self.aclose()

    async def aclose(self) -> None:
        await self.outcomes.flush()  # the records still queued (the store itself outlives this Router)
        await asyncio.gather(*(b.aclose() for b in self.backends.values()),
                             *(d.selector.aclose() for d in self.decisions.values()), return_exceptions=True)


def _plugin_failed(plugin: Plugin, hook: str, exc: Exception, ctx: RoutingContext, secrets: tuple[str, ...]) -> None:
    """A broken plugin: refuse the request if it guards safety (fail closed), else log and go on (fail open)."""
    what = scrub_field(f"{type(exc).__name__}: {exc}", secrets, 300)  # an exception may quote a key
    if plugin.fail_closed:
        log.error("request_id=%s plugin %s failed in %s (%s); the request is refused (fails closed)",
                  ctx.request_id, plugin.name, hook, what)
        raise TurnoutError(f"the {plugin.name} plugin failed, so the request was refused", status=500,
                           type="server_error", code="plugin_failed") from None
    log.warning("request_id=%s plugin %s failed in %s (%s); skipped (fails open)", ctx.request_id, plugin.name,
                hook, what)
