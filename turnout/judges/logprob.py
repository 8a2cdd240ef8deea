"""The `logprob` judge: how sure the model was of its own tokens, from the logprobs the upstream returned.

`metric: mean_logprob` (default) scores exp(mean token logprob), the geometric mean of the chosen tokens'
probabilities; `metric: entropy` scores 1 - mean(H)/ln(k) over each token's top-k alternatives (k =
`top_logprobs`), so a flat distribution scores 0 and a peaked one 1. A plan that uses this judge asks the
upstream for logprobs (`logprobs: true`, and `top_logprobs` for entropy). When the answer carries none (the
provider does not return them), `missing` decides: `fail` (default: unknown confidence escalates) or `pass`."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field

from turnout.judges.base import Judge, JudgeEnv, JudgeParams, Verdict, register


class LogprobParams(JudgeParams):
    metric: Literal["mean_logprob", "entropy"] = "mean_logprob"
    top_logprobs: int = Field(5, ge=2, le=20)
    missing: Literal["fail", "pass"] = "fail"


@register("logprob")
class LogprobJudge(Judge):
    Params = LogprobParams
    default_threshold = 0.6
    needs_logprobs = True

    async def judge(self, request: dict[str, Any], answer: dict[str, Any], env: JudgeEnv) -> Verdict:
        p: LogprobParams = self.params  # type: ignore[assignment]
        tokens = _token_logprobs(answer)
        if not tokens:
            return Verdict(1.0 if p.missing == "pass" else 0.0, p.missing == "pass",
                           {"reason": "the upstream returned no logprobs"})
        if p.metric == "mean_logprob":
            mean = sum(t["logprob"] for t in tokens) / len(tokens)
            return self.verdict(math.exp(mean), mean_logprob=round(mean, 4), tokens=len(tokens))
        entropies = [_entropy(t.get("top_logprobs") or []) for t in tokens]
        mean_h = sum(entropies) / len(entropies)
        return self.verdict(1.0 - mean_h / math.log(p.top_logprobs), mean_entropy=round(mean_h, 4),
                            tokens=len(tokens))

    def request_fields(self) -> dict[str, Any]:
        """What the plan adds to each attempt's body so that the upstream returns logprobs."""
        p: LogprobParams = self.params  # type: ignore[assignment]
        return {"logprobs": True} | ({"top_logprobs": p.top_logprobs} if p.metric == "entropy" else {})


def _token_logprobs(answer: dict[str, Any]) -> list[dict[str, Any]]:
    choice = (answer.get("choices") or [{}])[0] or {}
    content = (choice.get("logprobs") or {}).get("content") or []
    return [t for t in content if isinstance(t, dict) and isinstance(t.get("logprob"), int | float)
            and math.isfinite(t["logprob"])]


def _entropy(top: list[dict[str, Any]]) -> float:
    """Entropy (nats) of the top-k alternatives, renormalised (the tail beyond k is not known)."""
    probs = [math.exp(t["logprob"]) for t in top if isinstance(t, dict) and isinstance(t.get("logprob"), int | float)]
    total = sum(probs)
    if total <= 0:
        return 0.0
    return -sum(p / total * math.log(p / total) for p in probs if p > 0)
