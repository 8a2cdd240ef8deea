"""Session-aware routing: a conversation stays on the model it was first routed to.

Keeping a conversation on one model keeps the upstream's prefix (KV) cache warm — every turn resends the whole
history, and only the model that saw it can reuse it — and keeps the answers of one conversation in one voice.
A decision opts in with `stickiness: {mode: session}`. The rules, in order, for a request of a known session:

1. Inside a tool-call loop (the last message is a tool result, or the assistant's last turn called tools) the
   session's model is kept whatever decision matched, unless that decision is one of the pinned decision's
   `breaks` or the model is unavailable (its breaker is open, or the key may no longer use it).
2. The same decision as the pin: the pinned model is kept while it is still one of its allowed candidates and
   available.
3. A higher-priority decision (a jailbreak guard, PII, a model asked for by name) forces a switch.
4. A lower-priority decision (the one that pinned no longer matches): the model is kept if that decision may
   use it too, else it routes afresh.

Whatever happens, the session is pinned again to where the request went (which renews its TTL). The selector
still runs on every request, so its scores and context features land in the outcome record and an online
selector learns from the model that actually served. A store that fails routes the request without
stickiness; it never fails it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

from turnout.access import allowed
from turnout.config import Config, ConfigIssue, StickinessConfig, unknown_ref
from turnout.context import Choice, RoutingContext
from turnout.jsonutil import dumps
from turnout.state.sessions import Pin, SessionStore, StoreUnavailable, session_store

#: the switch reasons, a closed set (they are metric labels)
SWITCH_REASONS = ("higher_priority", "decision_changed", "unavailable", "breaks", "direct")
DIRECT = "direct"  # the pseudo-decision of a model asked for by name: above every decision
DIRECT_PRIORITY = 1e300  # finite: JSON (the Redis store) has no infinity
TOOL_ROLES = ("tool", "function")


@dataclass
class Stick:
    """What stickiness found and did for one request: the explanation's `session` entry and the metrics'."""

    session: str  # the hashed id
    key: str  # which key identified it: header, user or prefix
    previous: str | None = None  # the session's model before this request (None: a new session)
    pinned: bool = False  # the model came from the session's pin, not from the selector
    switch: str | None = None  # one of SWITCH_REASONS when the session moved to another model
    reason: str = ""
    tool_loop: bool = False
    error: str | None = None  # the store could not be reached: routed without stickiness

    def explain(self) -> dict[str, Any]:
        out = {"id": self.session, "key": self.key, "previous_model": self.previous, "pinned": self.pinned,
               "switched": self.switch is not None, "switch_reason": self.switch, "tool_loop": self.tool_loop,
               "reason": self.reason}
        if self.error:
            out["error"] = self.error
        return out


# ----- what identifies a conversation ---------------------------------------------------------------------------
def _content_key(content: Any) -> str:
    return content if isinstance(content, str) else dumps(content).decode()


def prefix_text(messages: list[Any]) -> str | None:
    """The system (and developer) messages before the first user message, and that message: a conversation's
    fixed start. Every later turn resends its whole history, so this text is the same on every turn of one
    conversation, while the turns after it (which differ from turn to turn) are left out. None before any user
    message."""
    parts = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role in ("system", "developer", "user"):
            parts.append(f"{role}\0{_content_key(message.get('content'))}")
        if role == "user":
            return "\0\0".join(parts)
    return None


def session_key(ctx: RoutingContext, spec: StickinessConfig) -> tuple[str, str] | None:
    """(key kind, hashed session id) by the first of the spec's keys the request carries; None without any.
    Hashed so that no header value, user id or prompt text reaches a log, a metric, a record or the store."""
    for kind in spec.key:
        if kind == "header":
            raw = ctx.headers.get(spec.header)
        elif kind == "user":
            raw = ctx.body.get("user")
        else:
            raw = prefix_text(ctx.messages)
        if isinstance(raw, str) and raw.strip():
            return kind, "s-" + hashlib.sha256(f"{kind}\0{raw}".encode("utf-8", "replace")).hexdigest()[:24]
    return None


def in_tool_loop(messages: list[Any]) -> bool:
    """The last message answers a tool call, or the assistant's last turn called tools (their results still
    to come): switching model now would hand a half-finished plan to a model that did not make it."""
    if not messages or not isinstance(messages[-1], dict):
        return False
    if messages[-1].get("role") in TOOL_ROLES:
        return True
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "assistant":
            return bool(message.get("tool_calls") or message.get("function_call"))
    return False


def check_stickiness(config: Config) -> list[ConfigIssue]:
    """`breaks` names decisions of this config."""
    names = [d.name for d in config.decisions]
    return [unknown_ref(f"decisions[{i}].stickiness.breaks[{j}]", "decision", name, names)
            for i, d in enumerate(config.decisions) if d.stickiness is not None
            for j, name in enumerate(d.stickiness.breaks) if name not in names]


# ----- the rules ------------------------------------------------------------------------------------------------
@dataclass
class Found:
    spec: StickinessConfig
    kind: str
    session: str
    pin: Pin | None


class Sessions:
    """The stickiness of one Router's decisions; the pins live in the state store (kept across reloads)."""

    def __init__(self, config: Config) -> None:
        self.state = config.state
        decisions = config.effective_decisions()
        self.priority = {d.name: float(d.priority) for d in decisions}
        self.specs = {d.name: d.stickiness for d in decisions
                      if d.stickiness is not None and d.stickiness.mode == "session"}
        # the distinct ways of keying a session, in decision priority order: a request routed by a decision
        # that is not sticky still finds the session its conversation is in (a tool loop, a forced switch)
        order = sorted(self.specs, key=lambda n: -self.priority[n])
        self.recipes = list({(tuple(self.specs[n].key), self.specs[n].header): self.specs[n] for n in order}.values())

    @property
    def enabled(self) -> bool:
        return bool(self.specs)

    def store(self) -> SessionStore:
        return session_store(self.state.store, url=self.state.redis_url, namespace=self.state.namespace)

    async def find(self, ctx: RoutingContext, decision: str) -> Found | None:
        """The request's session: under the routed decision's recipe when it is sticky (a new one then if
        none is pinned), else under any other recipe that finds a pin. StoreUnavailable passes up."""
        own = self.specs.get(decision)
        for spec in ([own] if own else []) + [r for r in self.recipes if r is not own]:
            ident = session_key(ctx, spec)
            if ident is None:
                continue
            pin = await self.store().get(ctx.caller.key_id, ident[1])
            if pin is not None or spec is own:
                return Found(spec, ident[0], ident[1], pin)
        return None

    async def stick(self, router: Any, ctx: RoutingContext, route: Any, names: list[str], pin: bool = True) -> None:
        """Apply the rules to a fresh Route (routed or direct); re-target it to the session's model when they
        keep it, set route.session / route.switched / route.sticky, and pin the session where it goes."""
        try:
            found = await self.find(ctx, route.decision)
        except StoreUnavailable:
            route.sticky = Stick("", "", reason="the session store is unavailable: routed without stickiness",
                                 error="store_unavailable")
            return
        if found is None:
            return
        stick = route.sticky = Stick(found.session, found.kind, tool_loop=in_tool_loop(ctx.messages))
        route.session = found.session
        old = found.pin
        if old is None:
            stick.reason = "a new session: pinned to the selector's pick"
        else:
            stick.previous = old.model
            self._apply(router, ctx, route, names, found, stick)
        route.switched = stick.switch is not None
        if pin:
            await self._pin(ctx, route, found, old)

    def _apply(self, router: Any, ctx: RoutingContext, route: Any, names: list[str], found: Found,
               stick: Stick) -> None:
        old = found.pin
        assert old is not None
        breaks = self.specs.get(old.decision, found.spec).breaks
        up = self._available(router, ctx, old.model)
        if route.mode == DIRECT:
            keep, why, reason = False, DIRECT, f"the model '{route.model}' was asked for by name"
        elif stick.tool_loop and up and route.decision not in breaks:
            keep, why, reason = True, None, "inside a tool-call loop: the session's model is kept"
        elif route.decision == old.decision:
            keep = up and old.model in names
            why, reason = "unavailable", f"the session's model '{old.model}' is unavailable or no longer a candidate"
        elif self.priority.get(route.decision, 0.0) > old.priority:
            keep, why = False, "breaks" if stick.tool_loop else "higher_priority"
            reason = f"the decision '{route.decision}' outranks the session's '{old.decision}'"
        else:
            keep = up and old.model in names
            why, reason = "decision_changed", f"the decision '{route.decision}' cannot use the session's model"
        if stick.tool_loop and not up and not keep:
            why, reason = "unavailable", f"the session's model '{old.model}' is unavailable"
        if keep:
            stick.pinned, stick.reason = True, (reason if stick.tool_loop else "kept on the session's model")
            self._retarget(router, ctx, route, old, names)
        elif route.model != old.model:
            stick.switch, stick.reason = why, reason + f": switched to '{route.model}'"
        else:
            stick.reason = reason + ", yet the new pick is the same model"

    @staticmethod
    def _available(router: Any, ctx: RoutingContext, model: str) -> bool:
        """Still configured, still permitted to this key, and its breaker not open."""
        if model not in router.config.models or router.config.models[model].embeddings:
            return False
        if not allowed(ctx.caller, [model]):
            return False
        return router.dispatcher.health(model).breaker.state != "open"

    @staticmethod
    def _retarget(router: Any, ctx: RoutingContext, route: Any, old: Pin, names: list[str]) -> None:
        """Send the route to the session's model. Outside the decision's candidates (a tool loop that another
        decision matched) it goes under the pinned decision again: its plugins, its fallbacks, and its
        selector learning from the outcome."""
        picked = route.choice.model
        why = f"session: kept on '{old.model}' (the selector picked '{picked}')"
        if old.model in names:
            route.choice = replace(route.choice, model=old.model, explored=False, reason=why)
        else:
            route.choice = Choice(old.model, {old.model: 1.0}, why)
            compiled = router.decisions.get(old.decision)
            permitted = ctx.caller.decisions
            if compiled is not None and (permitted is None or old.decision in permitted):
                route.decision, route.algorithm = old.decision, compiled.config.algorithm.name
                route.plugins = router.global_plugins + compiled.plugins
                route.fallbacks = compiled.config.fallbacks
        route.model = old.model

    async def _pin(self, ctx: RoutingContext, route: Any, found: Found, old: Pin | None) -> None:
        priority = DIRECT_PRIORITY if route.mode == DIRECT else self.priority.get(route.decision, 0.0)
        turns, switches = (old.turns + 1, old.switches + route.switched) if old else (1, 0)
        spec = self.specs.get(route.decision, found.spec)
        try:
            await self.store().put(ctx.caller.key_id, found.session,
                                   Pin(route.model, route.decision, priority, turns, switches), spec.ttl_s)
        except StoreUnavailable:
            if route.sticky is not None:
                route.sticky.error = "store_unavailable"
