"""The `verifier` judge: a configured model is asked whether the answer is correct and complete.

The prompt is fixed (VERIFIER_PROMPT below, the question and the answer filled in) and sent as one user message
with `max_tokens` 3 and temperature 0. A reply starting "yes" scores 1, "no" 0; anything else scores 0 and says
so in the detail (`unclear`). The verifier's call goes through the Dispatcher like any model call, and its cost
is one of the plan's attempts (role `judge`)."""

from __future__ import annotations

import re
from typing import Any

from turnout.judges.base import (
    Judge,
    JudgeEnv,
    JudgeParams,
    Verdict,
    answer_text,
    question_text,
    register,
)

VERIFIER_PROMPT = (
    "You check answers. Read the question and the answer below, then decide whether the answer is correct and "
    "complete.\nReply with one word: yes or no.\n\nQuestion:\n{question}\n\nAnswer:\n{answer}")
MAX_CHARS = 12_000  # of the question and of the answer each: a verifier's context is not the place for a book


class VerifierParams(JudgeParams):
    model: str


@register("verifier")
class VerifierJudge(Judge):
    Params = VerifierParams
    default_threshold = 0.5

    async def judge(self, request: dict[str, Any], answer: dict[str, Any], env: JudgeEnv) -> Verdict:
        p: VerifierParams = self.params  # type: ignore[assignment]
        prompt = VERIFIER_PROMPT.format(question=question_text(request)[:MAX_CHARS],
                                        answer=answer_text(answer)[:MAX_CHARS])
        reply = await env.ask(p.model, {"messages": [{"role": "user", "content": prompt}], "max_tokens": 3,
                                        "temperature": 0})
        said = answer_text(reply).strip().lower()
        word = re.match(r"[a-z]+", said)
        if word and word.group(0) == "yes":
            return self.verdict(1.0, verifier=p.model, said="yes")
        if word and word.group(0) == "no":
            return self.verdict(0.0, verifier=p.model, said="no")
        return self.verdict(0.0, verifier=p.model, said="unclear")

    def referenced_models(self) -> list[str]:
        return [self.params.model]  # type: ignore[attr-defined]
