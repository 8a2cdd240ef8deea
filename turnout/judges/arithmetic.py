"""The `arithmetic` judge: re-evaluate every computation a worked answer states, and fail an answer with a wrong
step.

The checker is turnout.models.arithmetic: `a op b = c` (with money, percent signs, thousands commas and unit
words between the numbers), GSM8K's `<<a*b=c>>` annotations, "P% of N is V" and "a/b of N is V". Each left
side is parsed into numbers and `+ - * /` and evaluated over a restricted `ast` tree (never eval()). The score:
- 0 when any step is wrong (to `rel_tol`, default 0.1 %, or `abs_tol`, default a cent; a result written with
  decimals or marked approximate may be rounded to what it shows);
- with `require_final`, 0.25 when the stated final answer (`#### N`, "the answer is N", else the last number)
  is not the last computed result;
- with `no_steps: fail`, 0 when the answer states no computation at all (default `pass`: 1);
- else 1.

It finds mistakes in what was computed, never whether the right thing was computed: a wrong method with
correct sums passes. Measured on RouteLLM's recorded GSM8K answers (training prompts, docs/judges.md): it fails
24 % of Mixtral's wrong answers and 1.3 % of its right ones. About a millisecond an answer; off the event loop
for long answers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from turnout.judges.base import (
    Judge,
    JudgeEnv,
    JudgeParams,
    Verdict,
    answer_text,
    register,
)
from turnout.models.arithmetic import check
from turnout.signals.base import off_loop

OFF_LOOP_CHARS = 1000  # a longer answer is checked off the event loop (a claim costs up to ~0.1 ms)


class ArithmeticParams(JudgeParams):
    require_final: bool = Field(False, description="the stated final answer must be the last computed result")
    no_steps: Literal["pass", "fail"] = Field("pass", description="an answer that states no computation")
    rel_tol: float = Field(1e-3, ge=0, le=0.5, description="relative tolerance of a step's result")
    abs_tol: float = Field(0.011, ge=0, description="absolute tolerance of a step's result (a cent)")
    max_chars: int = Field(8000, ge=100, le=100_000, description="the answer's first characters checked")


@register("arithmetic")
class ArithmeticJudge(Judge):
    Params = ArithmeticParams
    default_threshold = 0.5

    async def judge(self, request: dict[str, Any], answer: dict[str, Any], env: JudgeEnv) -> Verdict:
        text = answer_text(answer)
        if not text.strip():
            return self.verdict(0.0, reason="empty answer")
        return await off_loop(self.score_text, text) if len(text) > OFF_LOOP_CHARS else self.score_text(text)

    def score_text(self, text: str) -> Verdict:
        p: ArithmeticParams = self.params  # type: ignore[assignment]
        result = check(text, p.max_chars, p.rel_tol, p.abs_tol)
        detail: dict[str, Any] = {"steps": len(result.claims), "final": result.final,
                                  "last_result": result.last_result}
        wrong = result.wrong
        if wrong:
            detail["wrong"] = [{"step": c.text, "is": round(c.value, 6)} for c in wrong[:5]]
            return self.verdict(0.0, reason="wrong step", **detail)
        if not result.claims:
            return self.verdict(1.0 if p.no_steps == "pass" else 0.0, reason="no steps", **detail)
        if p.require_final and not result.final_is_last_result:
            return self.verdict(0.25, reason="final answer is not the last result", **detail)
        return self.verdict(1.0, reason="ok", **detail)
