"""The `multi_round` plan (Router-R1 style): a coordinator model answers, and may consult the decision's other
models as function tools on the way.

The coordinator gets one tool per other model, `ask_<model>` (the name made safe for tool names), taking
{"question": string} and returning that model's answer (the model gets the question alone, as one user message,
after the request's system messages). Each round the coordinator either answers (the plan's answer) or calls
tools; the calls of one round run in parallel, their answers go back as tool messages and the next round
begins. After `max_rounds` rounds, or once the plan has spent `max_cost_usd`, the coordinator is asked once more
with `tool_choice: none` and must answer. A call to one of the client's own tools ends the plan: that answer goes
back to the client as it is, for the client to run its tool."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import orjson
from pydantic import Field

from turnout.access import allowed
from turnout.judges.base import answer_message, answer_text
from turnout.plans.base import Plan, PlanParams, PlanRun, register

TOOL_DESCRIPTION = "Ask the model {model} a question and get its answer. Use it when its answer would help."


def tool_name(model: str) -> str:
    return "ask_" + re.sub(r"[^A-Za-z0-9_-]", "_", model)[:60]


class MultiRoundParams(PlanParams):
    coordinator: str | None = Field(None, description="the model that answers (default: the selected model)")
    max_rounds: int = Field(3, ge=1, le=10, description="rounds of tool calls before the coordinator must answer")
    max_cost_usd: float | None = Field(None, gt=0, description="spent: the coordinator must answer now")
    max_calls_per_round: int = Field(4, ge=1, le=16)


@register("multi_round")
class MultiRoundPlan(Plan):
    Params = MultiRoundParams

    @classmethod
    def model_fields_of(cls, params: Any) -> list[tuple[str, str]]:
        return [("coordinator", params.coordinator)] if params.coordinator else []

    def referenced_models(self) -> list[str]:
        coordinator = self.params.coordinator  # type: ignore[attr-defined]
        return list(dict.fromkeys([*([coordinator] if coordinator else []), *self.models]))

    async def run(self, run: PlanRun) -> dict[str, Any]:
        p: MultiRoundParams = self.params  # type: ignore[assignment]
        coordinator = run.answerers([p.coordinator or run.route.model])[0]
        experts = {tool_name(m): m for m in allowed(run.ctx.caller, self.models) if m != coordinator}
        body = dict(run.body)
        body["tools"] = [*(body.get("tools") or []), *(_tool(name, m) for name, m in experts.items())]
        messages = list(body.get("messages") or [])
        for round_no in range(p.max_rounds + 1):
            last = round_no == p.max_rounds or (p.max_cost_usd is not None and _spent(run) >= p.max_cost_usd)
            ask = {**body, "messages": messages}
            if last:
                ask["tool_choice"] = "none"
            answer, attempt = await run.call(coordinator, ask, role="answer",
                                             timeout=p.attempt_timeout_s)
            attempt["round"] = round_no + 1
            calls = answer_message(answer).get("tool_calls") or []
            ours = [c for c in calls if (c.get("function") or {}).get("name") in experts]
            if last or not ours or len(ours) != len(calls):  # an answer, or the client's own tool call
                attempt["outcome"] = "accepted"
                return run.finish(coordinator, answer)
            attempt["outcome"] = "tool"
            messages.append({"role": "assistant", "content": answer_message(answer).get("content"),
                             "tool_calls": ours})
            replies = await asyncio.gather(*(self._ask(run, experts[c["function"]["name"]], c, body)
                                             for c in ours[:p.max_calls_per_round]))
            replies += ["not asked: too many calls in one round"] * (len(ours) - len(replies))
            messages += [{"role": "tool", "tool_call_id": c.get("id"), "content": r} for c, r in zip(ours, replies)]
        raise AssertionError("unreachable: the last round answers")

    async def _ask(self, run: PlanRun, model: str, call: dict[str, Any], body: dict[str, Any]) -> str:
        try:
            args = orjson.loads(call["function"].get("arguments") or "{}")
            question = str(args.get("question") or "") if isinstance(args, dict) else ""
        except orjson.JSONDecodeError:
            question = ""
        if not question:
            return "error: the call had no question"
        system = [m for m in body.get("messages") or [] if m.get("role") in ("system", "developer")]
        ask = {k: v for k, v in body.items() if k not in ("tools", "tool_choice", "messages", "n", "response_format")}
        ask["messages"] = [*system, {"role": "user", "content": question}]
        try:
            answer, _ = await run.call(model, ask, role="tool", timeout=self.params.attempt_timeout_s)
        except Exception as exc:  # noqa: BLE001 - the coordinator hears that the expert failed, and goes on
            return f"error: {model} did not answer ({type(exc).__name__})"
        return answer_text(answer) or "(no answer)"


def _tool(name: str, model: str) -> dict[str, Any]:
    return {"type": "function", "function": {
        "name": name, "description": TOOL_DESCRIPTION.format(model=model),
        "parameters": {"type": "object", "properties": {"question": {"type": "string"}}, "required": ["question"]}}}


def _spent(run: PlanRun) -> float:
    return sum(a["cost_usd"] for a in run.attempts)
