"""A learned answer-quality model on (prompt, answer): trained with scikit-learn, served with numpy.

Features: the packaged sentence encoder's vectors of the prompt and of the answer, their cosine, and cheap
answer features that need no model: `answer_features` (lengths, whether there is a final number and whether it
is a whole number, refusal and hedge phrases, how many of the answer's own `a op b = c` steps are arithmetic
mistakes, how many of the prompt's numbers the answer uses, repeated lines) and `reasoning_features` (signs of a
wrong worked maths answer: the final number against the last step's result and the question's numbers, steps
that chain, operands the question never gave) and `arithmetic_features` (the `arithmetic` judge's re-evaluation
of every computation the answer states: wrong steps, whether the final answer is a computed result). A
standardised logistic regression over them gives P(answer is good). Serving is one dot product (~20 µs) after the two encodings.

An artifact is one .npz file (`scorer.npz`): weights, the feature standardisation, the encoder name and a JSON
`meta` (what it was trained on, its held-out AUC with a bootstrap interval, the names of its cheap features:
an artifact without them is a first-version one, FEATURES_V1; the second one's are FEATURES_SECOND)."""

from __future__ import annotations

import ast
import json
import math
import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from turnout.models import arithmetic
from turnout.models.encoders import get_encoder

NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")
# an arithmetic step "16 - 3 = 13", "9 * $2 = $18", "<<9*2=18>>": the left side is a run of numbers and operators
STEP = re.compile(r"((?:[\d.,$%()\s]|[-+*/x×÷])+)=\s*\$?(-?\d[\d,]*(?:\.\d+)?)")
FINAL = re.compile(r"(?:####|answer is|answer:|total of|=)\s*+(?:\$\s*+)?(-?\d[\d,]*(?:\.\d+)?)", re.IGNORECASE)
REFUSAL = ("i'm sorry", "i am sorry", "i cannot", "i can't", "i am unable", "i'm unable", "as an ai")
HEDGES = ("however", "actually", "assum", "approximately", "round", "not possible", "cannot be", "doesn't make sense",
          "does not make sense", "unclear", "not enough information", "i think", "wait", "mistake", "incorrect")
# the first artifact's cheap features (an artifact without a `features` list in its meta has these)
FEATURES_V1 = ("log_chars", "log_prompt_chars", "length_ratio", "has_final", "final_integer", "final_negative",
               "refusal", "hedges", "steps", "step_errors", "step_error_share", "prompt_numbers_used",
               "log_numbers", "repeated_lines", "cosine")
# answer-side signs of a wrong maths answer (`reasoning_features`), added for the second GSM8K scorer
FEATURES_V2 = ("has_hash", "final_is_last_result", "final_in_prompt", "final_log_abs", "final_decimal",
               "log_results", "ungrounded_operands", "ungrounded_share", "chain_share", "results_per_prompt_number",
               "prompt_numbers_unused", "log_prompt_numbers", "prompt_percent", "prompt_fraction", "log_lines",
               "prompt_money", "prompt_rate")
# the arithmetic judge's checks as features (`arithmetic_features`), added for the third GSM8K scorer
FEATURES_V3 = ("arith_claims", "arith_wrong", "arith_wrong_any", "arith_wrong_share", "arith_final_is_last",
               "arith_final_is_result", "arith_no_claims", "arith_prompt_numbers_unused")
FEATURES_SECOND = FEATURES_V1[:-1] + FEATURES_V2 + ("cosine",)  # the second scorer's (builtin:gsm8k-scorer-v2)
FEATURES = FEATURES_V1[:-1] + FEATURES_V2 + FEATURES_V3 + ("cosine",)  # what a scorer trained now uses
# an operand of an answer's step that is neither in the question nor an earlier result, nor a common constant
COMMON_CONSTANTS = frozenset({1.0, 2.0, 100.0, 60.0, 24.0, 7.0, 12.0, 10.0, 52.0, 30.0, 365.0, 1000.0, 0.5})
NUMBER_WORDS = {"half": 0.5, "twice": 2, "double": 2, "triple": 3, "dozen": 12, "one": 1, "two": 2, "three": 3,
                "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11,
                "twelve": 12, "quarter": 0.25, "third": 3, "percent": 100, "hundred": 100, "thousand": 1000}
RESULT = re.compile(r"<<([^=<>]*)=([^<>]*)>>|((?:[\d.,$%()\s]|[-+*/x×÷])+)=\s*\$?(-?\d[\d,]*(?:\.\d+)?)")
OPERAND = re.compile(r"\d+(?:\.\d+)?")

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _to_float(text: str) -> float | None:
    try:
        return float(text.replace("$", "").replace(",", "").rstrip("."))
    except ValueError:
        return None


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate(node.operand)
    raise ValueError("not arithmetic")


def check_steps(text: str) -> tuple[int, int]:
    """(arithmetic steps found, steps whose result is wrong): a model that miscalculates is often wrong."""
    steps = errors = 0
    for left, right in STEP.findall(text[:6000]):
        expr = left.replace("$", "").replace(",", "").replace("%", "/100").replace("×", "*").replace("÷", "/")
        expr = re.sub(r"(?<=\d)\s*x\s*(?=\d)", "*", expr).strip()
        if not re.search(r"\d\s*[-+*/]\s*\(?\d", expr):
            continue
        try:
            value = _evaluate(ast.parse(expr, mode="eval"))
        except (SyntaxError, ValueError, ZeroDivisionError, RecursionError):
            continue
        claimed = _to_float(right)
        if claimed is None:
            continue
        steps += 1
        if not math.isclose(value, claimed, rel_tol=1e-3, abs_tol=0.011):  # rounding to cents passes, 101 for 100 not
            errors += 1
    return steps, errors


def final_number(text: str) -> float | None:
    """The answer's final number: after '####' / 'answer is' / the last '=', else the last number."""
    tail = text[-600:]
    marked = FINAL.findall(tail)
    if marked:
        return _to_float(marked[-1])
    numbers = NUMBER.findall(tail)
    return _to_float(numbers[-1]) if numbers else None


def answer_features(prompt: str, answer: str) -> dict[str, float]:
    """Cheap features of an answer (no model): each is documented in FEATURES' order above."""
    low = answer.lower().replace("\u2019", "'")
    final = final_number(answer)
    steps, errors = check_steps(answer)
    prompt_numbers = {n for n in (_to_float(x) for x in NUMBER.findall(prompt)) if n is not None}
    answer_numbers = [n for n in (_to_float(x) for x in NUMBER.findall(answer)) if n is not None]
    lines = [line.strip() for line in answer.splitlines() if line.strip()]
    return {
        "log_chars": math.log1p(len(answer)),
        "log_prompt_chars": math.log1p(len(prompt)),
        "length_ratio": min(len(answer) / max(len(prompt), 1), 20.0),
        "has_final": float(final is not None),
        "final_integer": float(final is not None and float(final).is_integer()),
        "final_negative": float(final is not None and final < 0),
        "refusal": float(any(low[:120].lstrip().startswith(p) for p in REFUSAL)),
        "hedges": float(sum(low.count(h) for h in HEDGES)),
        "steps": math.log1p(steps),
        "step_errors": float(errors),
        "step_error_share": errors / steps if steps else 0.0,
        "prompt_numbers_used": (len(prompt_numbers & set(answer_numbers)) / len(prompt_numbers)
                                if prompt_numbers else 1.0),
        "log_numbers": math.log1p(len(answer_numbers)),
        "repeated_lines": 1 - len(set(lines)) / len(lines) if lines else 0.0,
    }


def reasoning_features(prompt: str, answer: str) -> dict[str, float]:
    """Signs that a worked maths answer went wrong, without solving it (FEATURES_V2's order):
    - has_hash: a `#### N` final line (the worked-answer format); final_is_last_result: the final number is the
      last step's result (the answer's own steps agree with what it states); final_in_prompt: it only restates a
      number of the question; final_log_abs, final_decimal: its size, and a fraction where counts are asked;
    - log_results, chain_share: how many steps (`a op b = c`, `<<a*b=c>>`) and the share of their results that a
      later step uses (a chain rather than loose computations); ungrounded_operands / ungrounded_share: operands
      that are neither the question's numbers (digits or number words) nor an earlier result nor a common
      constant (7 days, 60 minutes, ...): numbers the answer made up or misread;
    - results_per_prompt_number, prompt_numbers_unused: steps per given number, given numbers never used;
    - the question's shape: log_prompt_numbers, prompt_percent, prompt_fraction, prompt_money, prompt_rate
      ("each", "per"), and the answer's log_lines."""
    low_prompt = prompt.lower()
    given = [n for n in (_to_float(x) for x in NUMBER.findall(prompt)) if n is not None]
    known = set(given) | {float(v) for k, v in NUMBER_WORDS.items() if re.search(rf"\b{k}\b", low_prompt)}
    final = final_number(answer)
    results: list[float] = []
    operands: list[list[float]] = []
    ungrounded = count = 0
    for calc_left, calc_right, left, right in RESULT.findall(answer[:6000]):
        ops = [float(x) for x in OPERAND.findall(calc_left or left)]
        operands.append(ops)
        for op in ops:
            count += 1
            ungrounded += op not in known and op not in results and op not in COMMON_CONSTANTS
        value = _to_float((calc_right or right).strip())
        if value is not None:
            results.append(value)
    used = {op for ops in operands for op in ops}
    chained = sum(1 for r in results[:-1] if r in used)
    answer_numbers = {n for n in (_to_float(x) for x in NUMBER.findall(answer)) if n is not None}
    return {
        "has_hash": float("####" in answer),
        "final_is_last_result": float(final is not None and bool(results) and math.isclose(final, results[-1],
                                                                                          rel_tol=1e-6)),
        "final_in_prompt": float(final is not None and final in set(given)),
        "final_log_abs": math.log1p(abs(final)) if final is not None else 0.0,
        "final_decimal": float(final is not None and not float(final).is_integer()),
        "log_results": math.log1p(len(results)),
        "ungrounded_operands": float(ungrounded),
        "ungrounded_share": ungrounded / count if count else 0.0,
        "chain_share": chained / (len(results) - 1) if len(results) > 1 else 1.0,
        "results_per_prompt_number": len(results) / max(1, len(set(given))),
        "prompt_numbers_unused": float(len(set(given) - answer_numbers)),
        "log_prompt_numbers": math.log1p(len(set(given))),
        "prompt_percent": float("%" in prompt or "percent" in low_prompt),
        "prompt_fraction": float(bool(re.search(r"\d/\d|half|third|quarter|fifth", low_prompt))),
        "log_lines": math.log1p(len([line for line in answer.splitlines() if line.strip()])),
        "prompt_money": float("$" in prompt),
        "prompt_rate": float(" each" in low_prompt or " per " in low_prompt),
    }


def arithmetic_features(prompt: str, answer: str) -> dict[str, float]:
    """The `arithmetic` judge's checks (turnout.models.arithmetic) as numbers (FEATURES_V3's order): how many
    computations the answer states, how many are wrong (a count, any, a share), whether the stated final answer is
    the last computed result or any of them, no computation at all, and the share of the question's numbers that
    no computation uses."""
    result = arithmetic.check(answer)
    claims, wrong = len(result.claims), len(result.wrong)
    given = arithmetic.prompt_numbers(prompt)
    used = set(result.results) | {float(x) for c in result.claims for x in OPERAND.findall(c.expression)}
    return {
        "arith_claims": math.log1p(claims),
        "arith_wrong": float(wrong),
        "arith_wrong_any": float(wrong > 0),
        "arith_wrong_share": wrong / claims if claims else 0.0,
        "arith_final_is_last": float(result.final_is_last_result),
        "arith_final_is_result": float(result.final_is_a_result),
        "arith_no_claims": float(claims == 0),
        "arith_prompt_numbers_unused": len(given - used) / max(1, len(given)),
    }


def feature_matrix(prompts: Sequence[str], answers: Sequence[str], encoder: str,
                   features: Sequence[str] = FEATURES) -> np.ndarray:
    """(n, 2·dim + len(features)): prompt vector, answer vector, then the named cheap features (the cosine of
    the two vectors where `cosine` is named)."""
    enc = get_encoder(encoder)
    p = enc.encode(list(prompts))
    a = enc.encode([x or " " for x in answers])
    cosine = (p * a).sum(axis=1)
    v2 = any(name in FEATURES_V2 for name in features)
    v3 = any(name in FEATURES_V3 for name in features)
    rows = []
    for i, (q, x) in enumerate(zip(prompts, answers)):
        values = {**answer_features(q, x), **(reasoning_features(q, x) if v2 else {}),
                  **(arithmetic_features(q, x) if v3 else {}), "cosine": float(cosine[i])}
        rows.append([values[name] for name in features])
    cheap = np.array(rows, dtype=np.float32).reshape(len(prompts), len(features))
    return np.hstack([p, a, cheap]).astype(np.float32)


@dataclass
class AnswerScorer:
    coef: np.ndarray  # (features,)
    intercept: float
    mean: np.ndarray  # feature standardisation learned on the training rows
    scale: np.ndarray
    encoder: str
    meta: dict[str, Any] = field(default_factory=dict)
    features: tuple[str, ...] = FEATURES  # the cheap features' names, in their columns' order

    def score_features(self, x: np.ndarray) -> np.ndarray:
        z = ((x - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def score(self, prompts: Sequence[str], answers: Sequence[str]) -> np.ndarray:
        """P(good answer) for each (prompt, answer)."""
        return self.score_features(feature_matrix(prompts, answers, self.encoder, self.features))

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, coef=self.coef.astype(np.float32), intercept=np.float32(self.intercept),
                            mean=self.mean.astype(np.float32), scale=self.scale.astype(np.float32),
                            encoder=np.array(self.encoder),
                            meta=np.array(json.dumps({**self.meta, "features": list(self.features)})))

    @classmethod
    def load(cls, path: str | Path) -> AnswerScorer:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            scorer = cls(data["coef"].astype(np.float32), float(data["intercept"]), data["mean"].astype(np.float32),
                         data["scale"].astype(np.float32), str(data["encoder"]), meta,
                         tuple(meta.get("features") or FEATURES_V1))
        if scorer.coef.shape != scorer.mean.shape:
            raise ValueError(f"{path}: coef and mean have different shapes")
        unknown = set(scorer.features) - set(FEATURES) - {"cosine"}
        if unknown:
            raise ValueError(f"{path}: unknown feature(s) {', '.join(sorted(unknown))}")
        return scorer

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, *, encoder: str, C: float = 0.03, embedding_shrink: float = 16.0,
            meta: dict[str, Any] | None = None, features: Sequence[str] = FEATURES,
            sample_weight: np.ndarray | None = None) -> AnswerScorer:
        """Standardised logistic regression. The encoder's dimensions (all but the last len(features) columns)
        are divided by `embedding_shrink` on top: standardised one by one, 512 of them would drown the dozen
        cheap features under the same L2 penalty (an embedding weight then costs shrink² as much).
        `sample_weight`: each row's weight in the loss (the standardisation is over every row, unweighted)."""
        from sklearn.linear_model import LogisticRegression

        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale = np.where(scale < 1e-6, 1.0, scale)
        scale[: x.shape[1] - len(features)] *= embedding_shrink
        model = LogisticRegression(C=C, max_iter=5000)
        model.fit((x - mean) / scale, y.astype(int), sample_weight=sample_weight)
        return cls(model.coef_[0].astype(np.float32), float(model.intercept_[0]), mean.astype(np.float32),
                   scale.astype(np.float32), encoder, meta or {}, tuple(features))


def scorer_path(artifact: str) -> Path:
    """'builtin:NAME' is a scorer shipped in turnout/models/data/scorers/NAME/; anything else a file or folder."""
    if artifact.startswith("builtin:"):
        name = artifact.split(":", 1)[1]
        return Path(str(resources.files("turnout.models").joinpath(f"data/scorers/{name}/scorer.npz")))
    path = Path(artifact)
    return path / "scorer.npz" if path.is_dir() else path


@cache
def load_scorer(artifact: str) -> AnswerScorer:
    path = scorer_path(artifact)
    if not path.exists():
        raise FileNotFoundError(f"no scorer at {path}")
    return AnswerScorer.load(path)
