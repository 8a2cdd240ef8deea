"""The cascade arithmetic benchmarks/cascades.py shares, and its operating points: thresholds chosen without the
test prompts (5-fold out-of-fold scores of all training prompts, or a scorer fitted on 80 % of them and its
threshold set on the other 20 %), the arithmetic judge's fail rates, and the ensemble judge run for itself."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from turnout.eval.datasets import STRONG, WEAK
from turnout.eval.scorer_train import hash_fold
from turnout.eval.table import RoutingTable
from turnout.judges import build_judge
from turnout.judges.base import Judge
from turnout.models.scorer import FEATURES, AnswerScorer, feature_matrix

TARGET = 0.95
MARGIN = 0.005  # the margin over 95 % a deployed threshold is set at, chosen by benchmarks/scorer_cv.py


def request_of(prompt: str) -> dict[str, Any]:
    return {"model": WEAK, "messages": [{"role": "user", "content": prompt}]}


def completion_of(model: str, text: str) -> dict[str, Any]:
    return {"object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}


async def judge_scores(judge: Judge, prompts: list[str], texts: list[str], model: str) -> np.ndarray:
    """The judge's score of each recorded answer, through its own `judge` coroutine (as a plan calls it)."""
    verdicts = [await judge.judge(request_of(p), completion_of(model, t), None)  # type: ignore[arg-type]
                for p, t in zip(prompts, texts)]
    return np.array([v.score for v in verdicts])


def cascade_rows(test: RoutingTable, weak_scores: np.ndarray, strong_scores: np.ndarray,
                 thresholds: np.ndarray, on_fail: str = "best") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per threshold and prompt: quality, cost and escalation of a two-model cascade (weak first)."""
    s, w = test.models.index(STRONG), test.models.index(WEAK)
    quality, cost, escalated = [], [], []
    for t in thresholds:
        accept_weak = weak_scores >= t
        strong_passes = strong_scores >= t
        # none passed: on_fail "best", the later (strong) model wins ties
        strong_chosen = ~accept_weak & (strong_passes | (strong_scores >= weak_scores) | (on_fail == "last"))
        quality.append(np.where(strong_chosen, test.scores[:, s], test.scores[:, w]))
        cost.append(test.costs[:, w] + np.where(accept_weak, 0.0, test.costs[:, s]))
        escalated.append(~accept_weak)
    return np.array(quality), np.array(cost), np.array(escalated, dtype=float)


def family(name: str, quality: np.ndarray, cost: np.ndarray, knobs: list[float] | None = None,
           escalated: np.ndarray | None = None) -> dict[str, Any]:
    return {"name": name, "quality": np.atleast_2d(quality), "cost": np.atleast_2d(cost), "knobs": knobs,
            "escalated": None if escalated is None else np.atleast_2d(escalated)}


def cheapest_reaching(quality: np.ndarray, cost: np.ndarray, target: np.ndarray | float) -> np.ndarray:
    """quality, cost: (knobs, B) means; target (B,): the least cost among knobs reaching it (inf if none)."""
    reach = quality >= np.asarray(target)[None, ...] - 1e-12
    return np.where(reach, cost, np.inf).min(axis=0)



def row_weights(model_names: list[str], models: list[str] | None, other_weight: float) -> np.ndarray:
    """Each answer's sample weight in an artifact's recipe: 1 for the judged `models` (all when None), the
    others' `other_weight` (0: not fitted)."""
    return np.array([1.0 if not models or m in models else other_weight for m in model_names])


def operating_point(train_answers: Any, test: RoutingTable, weak_texts: list[str], strong_texts: list[str],
                    C: float, shrink: float, weights: np.ndarray,
                    features: tuple[str, ...] = FEATURES, models: list[str] | None = None,
                    other_weight: float = 0.0) -> dict[str, Any]:
    """A scorer fitted on 80 % of the training prompts (the answers of `models` only, when given, the others at
    `other_weight`, as the artifact was), its threshold set on the other 20 %, run on test."""
    fold = np.array([hash_fold(p) for p in train_answers.prompts])
    w_all = row_weights(train_answers.models, models, other_weight)
    fit = train_answers.subset([i for i in np.where(fold != 0)[0] if w_all[i] > 0])
    calib = train_answers.subset(np.where(fold == 0)[0])
    scorer = AnswerScorer.fit(feature_matrix(fit.prompts, fit.responses, "minilm-static", features),
                              (fit.scores >= 0.5).astype(int), encoder="minilm-static", C=C,
                              embedding_shrink=shrink, features=features,
                              sample_weight=row_weights(fit.models, models, other_weight) if other_weight else None)
    by_prompt: dict[str, dict[str, tuple[str, float]]] = {}
    for p, m, r, s in zip(calib.prompts, calib.models, calib.responses, calib.scores):
        by_prompt.setdefault(p, {})[m] = (r, s)
    prompts = [p for p, v in by_prompt.items() if WEAK in v and STRONG in v]
    w_text = [by_prompt[p][WEAK][0] for p in prompts]
    w_ok = np.array([by_prompt[p][WEAK][1] for p in prompts])
    s_ok = np.array([by_prompt[p][STRONG][1] for p in prompts])
    w_score = scorer.score(prompts, w_text)
    target = TARGET * s_ok.mean()
    chosen = 1.0
    for t in np.unique(w_score):  # the lowest escalation (highest accept share) that reaches the target
        strong = w_score < t  # on_fail last: a rejected Mixtral answer is replaced by GPT-4's
        if np.where(strong, s_ok, w_ok).mean() >= target:
            chosen = float(t)
            break
    return at_threshold(test, scorer.score(test.prompts, weak_texts), scorer.score(test.prompts, strong_texts),
                        chosen, weights, calibration_prompts=len(prompts))


def out_of_fold(train_answers: Any, C: float, shrink: float, features: tuple[str, ...],
                models: list[str] | None, other_weight: float = 0.0) -> np.ndarray:
    """Out-of-fold scores of every training answer: 5 folds by prompt (turnout.eval.scorer_train.hash_fold), each
    scored by a scorer with the artifact's recipe fitted on the other four (on the answers of `models` only, the
    others' at `other_weight`)."""
    x = feature_matrix(train_answers.prompts, train_answers.responses, "minilm-static", features)
    y = (train_answers.scores >= 0.5).astype(int)
    fold = np.array([hash_fold(p) for p in train_answers.prompts])
    w = row_weights(train_answers.models, models, other_weight)
    fits = w > 0
    oof = np.zeros(len(y))
    for k in range(5):
        mine = fits & (fold != k)
        scorer = AnswerScorer.fit(x[mine], y[mine], encoder="minilm-static", C=C, embedding_shrink=shrink,
                                  features=features, sample_weight=w[mine] if other_weight else None)
        oof[fold == k] = scorer.score_features(x[fold == k])
    return oof


def threshold_for(weak_ok: np.ndarray, strong_ok: np.ndarray, weak_score: np.ndarray, margin: float = 0.0) -> float:
    """The highest-accepting threshold (least escalation) at which an on_fail-last cascade reaches 95 % (+
    `margin`) of the strong model's accuracy on these prompts; 1.01 (always escalate) when none does."""
    target = (TARGET + margin) * strong_ok.mean()
    for t in np.unique(weak_score):
        if np.where(weak_score < t, strong_ok, weak_ok).mean() >= target - 1e-12:
            return float(t)
    return 1.01


def train_cv(train_answers: Any, train: RoutingTable, C: float, shrink: float, features: tuple[str, ...],
             models: list[str] | None, other_weight: float = 0.0, arithmetic: np.ndarray | None = None,
             margin: float = MARGIN) -> dict[str, Any]:
    """The figures a scorer recipe is chosen by, on training prompts only: out-of-fold scores of Mixtral's
    answers (`out_of_fold`), then the cascade's least cost share at 95 % of GPT-4 on the training prompts
    (on_fail last), the AUC on Mixtral's answers, and the threshold that reaches 95 % of GPT-4 there: the
    operating point a deployment takes (`cv_threshold`). `arithmetic`: whether each training answer passes
    the arithmetic judge; given, the cascade judges with the ensemble of both (rule all). `cv_threshold_margin`:
    the threshold that reaches 95 % + `margin` there instead (benchmarks/scorer_cv.py: a threshold set at 95 %
    reaches 94.7–94.9 % on unseen folds; +0.5 % reaches 95.3–95.4 %)."""
    from turnout.eval.scorer_train import _auc

    y = (train_answers.scores >= 0.5).astype(int)
    oof = out_of_fold(train_answers, C, shrink, features, models, other_weight)
    weak = np.array([m == WEAK for m in train_answers.models])
    idx = np.where(weak)[0]
    judged = oof[idx] if arithmetic is None else np.where(arithmetic[idx], oof[idx], -1.0)
    row = {p: i for i, p in enumerate(train.prompts)}
    rows = np.array([row[train_answers.prompts[i]] for i in idx])
    sub = train.subset(rows, train.name)
    q, c, _ = cascade_rows(sub, judged, np.zeros(len(idx)), np.unique(np.concatenate([judged, [1.01]])), "last")
    s, w = train.models.index(STRONG), train.models.index(WEAK)
    strong_q, strong_c = sub.scores[:, s].mean(), sub.costs[:, s].mean()
    point = cheapest_reaching(q.mean(axis=1)[:, None], c.mean(axis=1)[:, None], np.array([TARGET * strong_q]))[0]
    return {"prompts": len(idx), "auc_mixtral": round(float(_auc(y[idx], oof[idx]) or 0.0), 4),
            "cost_share_at_95pct_gpt4": None if not np.isfinite(point) else round(float(point / strong_c), 4),
            "cv_threshold": round(threshold_for(sub.scores[:, w], sub.scores[:, s], judged), 4),
            "cv_threshold_margin": round(threshold_for(sub.scores[:, w], sub.scores[:, s], judged, margin), 4),
            "margin": margin}


def at_threshold(test: RoutingTable, weak: np.ndarray, strong: np.ndarray, threshold: float,
                 weights: np.ndarray, **extra: Any) -> dict[str, Any]:
    """An on_fail-last cascade on the test prompts at one threshold, with 95 % bootstrap intervals."""
    q, c, e = cascade_rows(test, weak, strong, np.array([threshold]), "last")
    s = test.models.index(STRONG)
    n = len(test)
    boot_acc = (q @ weights.T / n)[0]
    boot_q = boot_acc / (test.scores[:, s] @ weights.T / n)
    boot_c = (c @ weights.T / n)[0] / (test.costs[:, s] @ weights.T / n)
    return {"threshold": round(threshold, 4), "on_fail": "last", **extra, "accuracy": round(float(q.mean()), 4),
            "accuracy_ci95": [round(float(v), 4) for v in np.percentile(boot_acc, [2.5, 97.5])],
            "accuracy_share_of_gpt4": round(float(q.mean() / test.scores[:, s].mean()), 4),
            "accuracy_share_ci95": [round(float(v), 4) for v in np.percentile(boot_q, [2.5, 97.5])],
            "cost_share": round(float(c.mean() / test.costs[:, s].mean()), 4),
            "cost_share_ci95": [round(float(v), 4) for v in np.percentile(boot_c, [2.5, 97.5])],
            "escalated": round(float(e.mean()), 4)}



def operating_points(report: dict[str, Any], answers: Any, table: RoutingTable, test: RoutingTable,
                     weak_texts: list[str], strong_texts: list[str], scorers: list[str], scores: dict[str, Any],
                     weights: np.ndarray) -> None:
    """Thresholds set without the test prompts, for each builtin scorer's recipe (its C, shrink, features,
    models) alone and with the arithmetic judge (ensemble, rule all):
    - `scorer_operating_point*`: a scorer refitted on 80 % of train, its threshold set on the other 20 %;
    - `cv_operating_points`: the threshold that reaches 95 % of GPT-4 on all the training prompts' out-of-fold
      scores (`train_cv`), applied to the shipped artifact (fitted on all of train) on the test prompts; and
      for each scorer alone, `(margin +0.5%)`: the threshold that reaches 95.5 % there (MARGIN)."""
    from turnout.judges.arithmetic import ArithmeticJudge
    from turnout.models.scorer import load_scorer, scorer_path

    train_answers = answers.split("train")
    arithmetic = build_judge({"name": "arithmetic"}, "cascade.judge")
    assert isinstance(arithmetic, ArithmeticJudge)
    passes = np.array([arithmetic.score_text(t).passed for t in train_answers.responses])
    report["arithmetic_fail_rates"] = fail_rates(arithmetic, answers, passes)
    arith_weak, arith_strong = (scores["arithmetic"][0] >= arithmetic.threshold,
                                scores["arithmetic"][1] >= arithmetic.threshold)
    for i, artifact in enumerate(a for a in scorers if a.startswith("builtin:")):
        label = "scorer" if i == 0 else f"scorer {artifact[8:]}"
        meta = json.loads(scorer_path(artifact).with_suffix(".json").read_text())
        recipe = (float(meta["C"]), float(meta["embedding_shrink"]), load_scorer(artifact).features,
                  meta.get("models"), float(meta.get("other_weight", 0.0)))
        point = operating_point(train_answers, test, weak_texts, strong_texts, *recipe[:2], weights, *recipe[2:])
        report["scorer_operating_point" if i == 0 else f"scorer_operating_point {artifact[8:]}"] = point
        weak, strong = scores[label]
        for name, flags, w, s in ((label, None, weak, strong),
                                  (f"arithmetic+{label}", passes, np.where(arith_weak, weak, -1.0),
                                   np.where(arith_strong, strong, -1.0))):
            cv = train_cv(train_answers, table.split("train"), *recipe, arithmetic=flags)
            report.setdefault("train_cv", {})[name] = cv
            report.setdefault("cv_operating_points", {})[name] = at_threshold(
                test, w, s, cv["cv_threshold"], weights, threshold_from="out-of-fold scores of all training prompts")
            if flags is None:  # the deployed operating point: 95 % + MARGIN on the out-of-fold scores
                report["cv_operating_points"][f"{name} (margin +{cv['margin']:.1%})"] = at_threshold(
                    test, w, s, cv["cv_threshold_margin"], weights,
                    threshold_from=f"out-of-fold scores of all training prompts, 95 % + {cv['margin']:.1%}")
    report["ensemble_check"] = ensemble_check(test, weak_texts, scorers[0],
                                              report["cv_operating_points"]["arithmetic+scorer"]["threshold"],
                                              np.where(arith_weak, scores["scorer"][0], -1.0))


def fail_rates(arithmetic: Judge, answers: Any, train_passes: np.ndarray) -> dict[str, Any]:
    """How often the arithmetic judge fails a wrong and a right answer, per split and model."""
    out: dict[str, Any] = {}
    for split in ("train", "test"):
        rows = answers.split(split)
        passes = train_passes if split == "train" else np.array(
            [arithmetic.score_text(t).passed for t in rows.responses])  # type: ignore[attr-defined]
        for model in sorted(set(rows.models)):
            mine = np.array([m == model for m in rows.models])
            good = rows.scores >= 0.5
            out.setdefault(split, {})[model] = {
                kind: {"failed": int((~passes & mine & sel).sum()), "of": int((mine & sel).sum())}
                for kind, sel in (("wrong", ~good), ("right", good))}
    return out


def ensemble_check(test: RoutingTable, weak_texts: list[str], artifact: str, threshold: float,
                   emulated: np.ndarray) -> dict[str, Any]:
    """The ensemble judge itself (rule all: arithmetic, then the scorer at `threshold`) on Mixtral's test answers
    accepts exactly the answers the benchmark's emulation of it accepts."""
    judge = build_judge({"name": "ensemble", "params": {"rule": "all", "judges": [
        {"name": "arithmetic"}, {"name": "scorer", "params": {"artifact": artifact, "threshold": threshold}}]}},
        "cascade.judge")
    verdicts = asyncio.run(judge_scores_verdicts(judge, test.prompts, weak_texts))
    agree = int(sum(v == (e >= threshold) for v, e in zip(verdicts, emulated)))
    return {"prompts": len(test), "agree": agree, "threshold": threshold}


async def judge_scores_verdicts(judge: Judge, prompts: list[str], texts: list[str]) -> list[bool]:
    return [(await judge.judge(request_of(p), completion_of(WEAK, t), None)).passed  # type: ignore[arg-type]
            for p, t in zip(prompts, texts)]


