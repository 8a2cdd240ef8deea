"""The `ensemble` judge: several judges on one answer, combined by a documented rule.

```yaml
judge:
  name: ensemble
  params:
    rule: all                     # all | any | mean
    judges:
      - {name: arithmetic}        # cheap judges first: `all` stops at the first that fails
      - {name: scorer, params: {threshold: 0.6}}
```

- `all`: the answer passes when every judge passes at its own threshold. The judges run in order and stop at the
  first that fails (a verifier listed after a failing arithmetic check is not asked, nor billed).
- `any`: it passes when one judge passes; they run in order and stop at the first that passes.
- `mean`: the (`weights`-weighted) mean of every judge's score, passing at this judge's `threshold` (default
  0.5). Every judge runs.

For `all` and `any` each judge's score is first rescaled so that its own threshold sits at 0.5 (piecewise
linear: [0, t] to [0, 0.5], [t, 1] to [0.5, 1]); the ensemble's score is the lowest (`all`) or the highest
(`any`) of those, and it passes at 0.5, so score and verdict agree. `threshold` is then not allowed.

The verdict's detail lists every judge that ran, with its own verdict. A judge that needs logprobs or calls a
model makes the ensemble do so."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from turnout.config import ConfigError, ConfigIssue
from turnout.judges.base import (
    Judge,
    JudgeEnv,
    JudgeParams,
    Verdict,
    build_judge,
    register,
)
from turnout.params import Params, validate_params


class EnsembleParams(JudgeParams):
    judges: list[dict[str, Any]] = Field(..., min_length=1, description="the judges, each {name, params}")
    rule: Literal["all", "any", "mean"] = "all"
    weights: list[float] | None = Field(None, description="rule mean: one weight per judge (default equal)")

    def problems(self) -> list[tuple[str, str]]:
        """(field, message) for the params that do not fit the rule."""
        out: list[tuple[str, str]] = []
        if self.rule != "mean" and self.threshold is not None:
            out.append(("threshold", "only with rule mean (all and any use each judge's own threshold)"))
        if self.weights is not None:
            if self.rule != "mean":
                out.append(("weights", "only with rule mean"))
            elif len(self.weights) != len(self.judges):
                out.append(("weights", f"{len(self.weights)} weights for {len(self.judges)} judges"))
            elif any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
                out.append(("weights", "must be non-negative, and not all 0"))
        return out


def rescaled(score: float, threshold: float) -> float:
    """A judge's score with its own threshold moved to 0.5 (piecewise linear), so verdicts can be compared."""
    if threshold <= 0:
        return 0.5 + 0.5 * score
    if threshold >= 1:
        return 0.5 * score if score < 1 else 0.5
    return 0.5 * score / threshold if score < threshold else 0.5 + 0.5 * (score - threshold) / (1 - threshold)


@register("ensemble")
class EnsembleJudge(Judge):
    Params = EnsembleParams
    default_threshold = 0.5

    def __init__(self, params: Params, members: list[Judge]) -> None:
        super().__init__(params)
        self.members = members
        # an instance value over the class default: the plan asks for logprobs when a member needs them
        self.needs_logprobs = any(m.needs_logprobs for m in members)  # type: ignore[misc]

    @classmethod
    def from_config(cls, params: dict[str, Any], path: str) -> Judge:
        checked = validate_params(cls.Params, params, path)
        issues = [ConfigIssue(f"{path}.{name}", message) for name, message in checked.problems()]  # type: ignore[attr-defined]
        members: list[Judge] = []
        for i, spec in enumerate(checked.judges):  # type: ignore[attr-defined]
            try:
                members.append(build_judge(spec, f"{path}.judges[{i}]"))
            except ConfigError as exc:
                issues.extend(exc.issues)
        if issues:
            raise ConfigError(issues)
        return cls(checked, members)

    def request_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        for member in self.members:
            if member.needs_logprobs and hasattr(member, "request_fields"):
                fields.update(member.request_fields())
        return fields

    def referenced_models(self) -> list[str]:
        return list(dict.fromkeys(m for member in self.members for m in member.referenced_models()))

    def referenced_model_paths(self) -> list[tuple[str, str]]:
        """(path below this judge's params, model): where a model a member calls is named."""
        return [(f"judges[{i}].params.model", model) for i, member in enumerate(self.members)
                for model in member.referenced_models()]

    async def judge(self, request: dict[str, Any], answer: dict[str, Any], env: JudgeEnv) -> Verdict:
        p: EnsembleParams = self.params  # type: ignore[assignment]
        ran: list[tuple[Judge, Verdict]] = []
        for member in self.members:
            verdict = await member.judge(request, answer, env)
            ran.append((member, verdict))
            if (p.rule == "all" and not verdict.passed) or (p.rule == "any" and verdict.passed):
                break
        detail = {"rule": p.rule, "judges": [{"judge": m.name, **v.to_dict()} for m, v in ran]}
        if p.rule == "mean":
            weights = p.weights or [1.0] * len(self.members)
            score = sum(w * v.score for w, (_, v) in zip(weights, ran)) / sum(weights)
            return self.verdict(score, **detail)
        scores = [rescaled(v.score, m.threshold) for m, v in ran]
        return self.verdict(min(scores) if p.rule == "all" else max(scores), **detail)
