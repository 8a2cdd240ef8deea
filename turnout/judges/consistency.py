"""The `consistency` judge: further samples from the same model agree with the answer.

For a closed answer (a number, a choice letter, yes/no: `closed_answer` below) the score is the share of the
`samples` further answers whose closed answer is the same (exact). For free text it is the mean cosine
similarity between the answer and each sample, with the packaged static encoder (`minilm-static`, about a
millisecond a text, off the event loop); `similarity` is the pass mark there, `threshold` for closed answers.
The samples come from the plan (`JudgeEnv.samples`): further calls to the model that wrote the answer, each
counted as an attempt (role `sample`)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from turnout.judges.base import (
    Judge,
    JudgeEnv,
    JudgeParams,
    Verdict,
    answer_text,
    register,
)
from turnout.signals.base import off_loop

# `\s*+(?:\$\s*+)?`, not `\s*\$?\s*`: two adjacent `\s*` split a run of spaces every way when the number is
# missing, which made an "=" and 16,000 spaces cost 6.5 s. Possessive: what follows the spaces ($, -, a digit) is
# never a space, so giving one back cannot help a match; the same texts match, and a run is read once
_FINAL = re.compile(r"(?:####|answer is|answer:|=)\s*+(?:\$\s*+)?(-?[\d,]*\.?\d+)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*\.?\d*|-?\.\d+")
_CHOICE = re.compile(r"^\s*(?:answer\s*[:\-]?\s*|the answer is\s*)?\(?([A-Ha-h])\)?(?:[.):]|\s|$)")


def _number(raw: str) -> str:
    value = raw.replace(",", "").rstrip(".")
    try:
        number = float(value)
    except ValueError:
        return value
    return str(int(number)) if number.is_integer() else repr(number)


def closed_answer(text: str) -> str | None:
    """The answer's closed part, normalised ("number:42", "choice:B", "yesno:yes"), or None for free text.
    A stated final answer ("#### 42", "the answer is 42") wins; else a short answer's last number."""
    text = text.strip()
    if not text:
        return None
    if (final := _FINAL.findall(text)):
        return "number:" + _number(final[-1])
    if len(text) <= 12 and (choice := _CHOICE.match(text)):
        return "choice:" + choice.group(1).upper()
    word = re.match(r"(yes|no)\b", text.lower()) if len(text) <= 40 else None  # short texts only: a long answer
    if word:                                                                      # is not read three more times
        return "yesno:" + word.group(1)
    numbers = _NUMBER.findall(text) if len(text) <= 300 else []
    if numbers:
        return "number:" + _number(numbers[-1])
    return None


class ConsistencyParams(JudgeParams):
    samples: int = Field(2, ge=1, le=10, description="further answers asked for (each a call to the model)")
    similarity: float = Field(0.85, ge=0, le=1, description="free text: the mean cosine that passes")


@register("consistency")
class ConsistencyJudge(Judge):
    Params = ConsistencyParams
    default_threshold = 0.66

    async def judge(self, request: dict[str, Any], answer: dict[str, Any], env: JudgeEnv) -> Verdict:
        p: ConsistencyParams = self.params  # type: ignore[assignment]
        text = answer_text(answer)
        others = [answer_text(s) for s in await env.samples(p.samples)]
        if not others:
            return Verdict(0.0, False, {"reason": "no samples could be had"})
        closed = closed_answer(text)
        if closed is not None:
            agree = sum(1 for o in others if closed_answer(o) == closed) / len(others)
            return self.verdict(agree, closed=closed, samples=len(others))
        similarity = await off_loop(_mean_similarity, text, others)
        return Verdict(similarity, similarity >= p.similarity,
                       {"similarity": round(similarity, 4), "samples": len(others)})


def _mean_similarity(text: str, others: list[str]) -> float:
    from turnout.models.encoders import get_encoder

    vectors = get_encoder("minilm-static").encode([text, *others])
    return float(max(0.0, (vectors[1:] @ vectors[0]).mean()))
