"""The `fanout` plan: k models answer in parallel, then one answer is chosen or written from them.

Modes (`mode`):
- `vote`: the majority closed answer (a number, a choice letter, yes/no: judges.consistency.closed_answer); free
  text votes by exact normalised text. Ties go to the earlier model of `models`. The answer returned is the
  first candidate with the winning answer.
- `judge_pick`: `judge_model` reads the question and the numbered candidates (PICK_PROMPT) and names the best;
  an unclear reply picks the first candidate.
- `fuse`: `fuse_model` writes one answer from the candidates (FUSE_PROMPT; Mixture-of-Agents' aggregate step);
  the answer is the fuse model's.
- `first_valid`: a race: the first answer that passes `judge` is returned and the other calls are cancelled
  (their prompts are billed, estimated: an upstream may charge for a prompt it began on). None passes: the best.
Partial failure: a model that errors or runs past `attempt_timeout_s` is left out and the others answer; only when
none answers is the request an error. Every call, the cancelled ones included, is an attempt (and billed)."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from typing import Any, Literal

from pydantic import Field

from turnout.config import ConfigError, ConfigIssue
from turnout.judges.base import answer_text, question_text
from turnout.judges.consistency import closed_answer
from turnout.plans.base import Plan, PlanParams, PlanRun, no_answer, register

PICK_PROMPT = (
    "Several assistants answered the question below. Pick the best answer: the one that is correct, complete and "
    "clear.\nReply with the number of the best answer only.\n\nQuestion:\n{question}\n\n{candidates}")
FUSE_PROMPT = (
    "Several assistants answered the question below. Write one answer that is better than each of them: keep "
    "what is correct and what they agree on, fix or drop what is wrong, and do not mention the assistants.\n"
    "Reply with the answer only.\n\nQuestion:\n{question}\n\n{candidates}")
MAX_CANDIDATE_CHARS = 8000


class FanoutParams(PlanParams):
    mode: Literal["vote", "judge_pick", "fuse", "first_valid"] = "vote"
    k: int | None = Field(None, ge=1, description="how many of `models` answer (default: all)")
    judge_model: str | None = Field(None, description="judge_pick: the model that picks")
    fuse_model: str | None = Field(None, description="fuse: the model that writes the answer")
    judge: dict[str, Any] | None = Field(None, description="first_valid: the judge an answer must pass "
                                                           "(default: format)")


@register("fanout")
class FanoutPlan(Plan):
    Params = FanoutParams

    @classmethod
    def judge_fields(cls) -> tuple[str, ...]:
        return ("judge",)

    @classmethod
    def model_fields_of(cls, params: Any) -> list[tuple[str, str]]:
        return [(f, getattr(params, f)) for f in ("judge_model", "fuse_model") if getattr(params, f)]

    @classmethod
    def from_config(cls, params: dict[str, Any], path: str, config: Any, decision: Any) -> Plan:
        if (params or {}).get("mode") == "first_valid" and not (params or {}).get("judge"):
            params = {**params, "judge": {"name": "format"}}
        return super().from_config(params, path, config, decision)

    def check(self, path: str) -> None:
        p: FanoutParams = self.params  # type: ignore[assignment]
        needed = {"judge_pick": "judge_model", "fuse": "fuse_model"}.get(p.mode)
        if needed and getattr(p, needed) is None:
            raise ConfigError([ConfigIssue(f"{path}.params.{needed}", f"required by mode '{p.mode}'")])
        if p.k is not None and p.k > len(self.models):
            raise ConfigError([ConfigIssue(f"{path}.params.k", f"{p.k} is more than the plan's "
                                                               f"{len(self.models)} models")])

    def referenced_models(self) -> list[str]:
        p: FanoutParams = self.params  # type: ignore[assignment]
        return list(dict.fromkeys([*super().referenced_models(), *(m for m in (p.judge_model, p.fuse_model) if m)]))

    async def run(self, run: PlanRun) -> dict[str, Any]:
        p: FanoutParams = self.params  # type: ignore[assignment]
        models = run.answerers(self.models)[:p.k]
        if p.mode == "first_valid":
            return await self._race(run, models)
        results = await asyncio.gather(*(run.call(m, timeout=p.attempt_timeout_s) for m in models),
                                       return_exceptions=True)
        got = [(m, r[0], r[1]) for m, r in zip(models, results) if isinstance(r, tuple)]
        if not got:
            raise no_answer([r for r in results if isinstance(r, BaseException)], "fan-out")
        if p.mode == "vote":
            index, detail = _vote([answer_text(a) for _, a, _ in got])
        elif p.mode == "judge_pick":
            index, detail = await self._pick(run, got)
        else:
            return await self._fuse(run, got)
        model, answer, attempt = got[index]
        attempt["outcome"] = "picked"
        attempt["verdict"] = detail
        return run.finish(model, answer)

    async def _pick(self, run: PlanRun, got: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> tuple[int, dict]:
        p: FanoutParams = self.params  # type: ignore[assignment]
        if len(got) == 1:
            return 0, {"picked_by": "only answer"}
        prompt = PICK_PROMPT.format(question=question_text(run.body), candidates=_numbered(got))
        try:
            reply, _ = await run.call(p.judge_model or "", {"messages": [{"role": "user", "content": prompt}],
                                                            "max_tokens": 5, "temperature": 0}, role="judge")
        except Exception as exc:  # noqa: BLE001 - the picker failing still leaves answers to give
            return 0, {"picked_by": p.judge_model, "error": type(exc).__name__}
        number = re.search(r"\d+", answer_text(reply))
        index = int(number.group(0)) - 1 if number else -1
        if not 0 <= index < len(got):
            return 0, {"picked_by": p.judge_model, "said": "unclear"}
        return index, {"picked_by": p.judge_model, "said": index + 1}

    async def _fuse(self, run: PlanRun, got: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
        p: FanoutParams = self.params  # type: ignore[assignment]
        run.answerers([p.fuse_model or ""])  # the fuse model writes the answer: the key must be allowed it
        prompt = FUSE_PROMPT.format(question=question_text(run.body), candidates=_numbered(got))
        body = {k: v for k, v in run.body.items() if k not in ("messages", "n", "tools", "tool_choice")}
        body["messages"] = [*[m for m in run.body.get("messages") or [] if m.get("role") in ("system", "developer")],
                            {"role": "user", "content": prompt}]
        fused, attempt = await run.call(p.fuse_model or "", body, role="judge")
        attempt["outcome"] = "accepted"
        return run.finish(p.fuse_model or "", fused)

    async def _race(self, run: PlanRun, models: list[str]) -> dict[str, Any]:
        p: FanoutParams = self.params  # type: ignore[assignment]
        tasks = {asyncio.ensure_future(run.call(m, timeout=p.attempt_timeout_s)): m for m in models}
        judged: list[tuple[float, str, dict[str, Any], dict[str, Any]]] = []
        errors: list[BaseException] = []
        winner = None
        try:
            for next_done in asyncio.as_completed(list(tasks)):
                try:
                    answer, attempt = await next_done
                except Exception as exc:  # noqa: BLE001 - one racer failing leaves the others
                    errors.append(exc)
                    continue
                verdict = await run.judge("judge", attempt["model"], answer, attempt)
                attempt["outcome"] = "accepted" if verdict.passed else "rejected"
                judged.append((verdict.score, attempt["model"], answer, attempt))
                if verdict.passed:
                    winner = judged[-1]
                    break
        finally:  # the losers are cancelled before the answer lists the attempts (they show as cancelled)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if winner is None:
            if not judged:
                raise no_answer(errors, "fan-out")
            winner = max(judged, key=lambda t: t[0])
            winner[3]["outcome"] = "picked"
        return run.finish(winner[1], winner[2])


def _numbered(got: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> str:
    return "\n\n".join(f"Answer {i + 1}:\n{answer_text(a)[:MAX_CANDIDATE_CHARS]}" for i, (_, a, _) in enumerate(got))


def _vote(texts: list[str]) -> tuple[int, dict[str, Any]]:
    """The index of the first answer with the most votes, and the tally."""
    keys = [closed_answer(t) or " ".join(t.lower().split()) for t in texts]
    counts = Counter(keys)
    best = max(counts.values())
    index = next(i for i, k in enumerate(keys) if counts[k] == best)
    return index, {"votes": best, "of": len(keys), "answer": keys[index][:80]}
