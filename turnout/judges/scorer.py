"""The `scorer` judge: a learned answer-quality model on (prompt, answer) says how likely the answer is good.

The model (turnout.models.scorer.AnswerScorer) is a logistic regression over the packaged sentence encoder's
vectors of the question and of the answer plus cheap answer features (lengths, a final number, refusal and hedge
phrases, the `arithmetic` judge's re-evaluation of the answer's own steps, whether the stated answer is what
its steps computed, ...). Train one with
`turnout train-scorer --data TABLE --out DIR` on any table with a `response` column; `builtin:gsm8k-scorer`
ships, trained on RouteLLM's recorded GSM8K answers of Mixtral (the model a Mixtral → GPT-4 cascade judges),
with GPT-4's at weight 0.1 (held-out AUC and the threshold to use in docs/judges.md; the earlier ones are
builtin:gsm8k-scorer-v3, on Mixtral's answers alone, builtin:gsm8k-scorer-v2, without the arithmetic features,
and builtin:gsm8k-scorer-v1, on both models' answers at equal weight).
The score is P(good); it passes at `threshold` (default 0.5)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from turnout.config import ConfigError, ConfigIssue
from turnout.judges.base import (
    Judge,
    JudgeEnv,
    JudgeParams,
    Verdict,
    answer_text,
    question_text,
    register,
)
from turnout.models.scorer import AnswerScorer, final_number, load_scorer
from turnout.params import Params, validate_params
from turnout.signals.base import off_loop


class ScorerParams(JudgeParams):
    artifact: str = Field("builtin:gsm8k-scorer", description="builtin:NAME, a scorer.npz or its directory")


@register("scorer")
class ScorerJudge(Judge):
    Params = ScorerParams
    default_threshold = 0.5

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        self.model: AnswerScorer = load_scorer(params.artifact)  # type: ignore[attr-defined]

    @classmethod
    def from_config(cls, params: dict[str, Any], path: str) -> Judge:
        checked = validate_params(cls.Params, params, path)
        try:
            return cls(checked)
        except (ValueError, OSError) as exc:  # the artifact is missing or not a scorer: name the field
            raise ConfigError([ConfigIssue(f"{path}.artifact", str(exc))]) from None

    async def judge(self, request: dict[str, Any], answer: dict[str, Any], env: JudgeEnv) -> Verdict:
        question, text = question_text(request), answer_text(answer)
        if not text.strip():
            return self.verdict(0.0, reason="empty answer")
        # two encodings and a regex pass over the answer: a millisecond or more for long answers
        score = await off_loop(self.score_one, question, text)
        return self.verdict(score, p_good=round(score, 4), final_number=final_number(text))

    def score_one(self, question: str, text: str) -> float:
        return float(self.model.score([question], [text])[0])
