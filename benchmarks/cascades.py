"""Cascades on RouteLLM's recorded GSM8K answers: Mixtral first, GPT-4 when the judge rejects Mixtral's answer.

    .venv/bin/python benchmarks/cascades.py --json bench-out/cascades.json --plot bench-out/cascades.png

On the test prompts (turnout.eval.table.held_out: 20 %, the split `turnout eval` and the shipped gsm8k
routers use), every method is a family of per-prompt (quality, cost) choices, one row per knob setting:
- single models; the routing oracle (the cheapest correct model) and the cascade oracle (a perfect judge: it
  accepts Mixtral exactly when Mixtral is right, and pays for both calls when it escalates);
- `cascade` with each offline-evaluable judge: the same Judge classes the server runs (their `judge` coroutine
  on the recorded answers), the accept rule of turnout/plans/cascade.py (the first answer that passes is
  returned; when none passes, on_fail `best`: the higher score, the later model on a tie; the scorer also with
  on_fail `last`, GPT-4's answer); the cost of an escalated prompt is both calls. `scorer`'s knob is its
  threshold; `format` and `arithmetic` have none (their score is 0 or 1). `arithmetic+scorer` is the `ensemble`
  judge (rule all) of both, over the scorer's threshold; `ensemble_check` runs that judge itself at one
  threshold and counts the accept decisions that agree with this emulation;
- the learned routers (default: the shipped builtin:gsm8k-svm), over their cost_weight knob, as `turnout eval`.
For each: the least cost share of GPT-4 at which it reaches 95 % of GPT-4's accuracy (the goal: ≤ 40 %), with a
95 % percentile-bootstrap interval over test prompts (the same 1,000 resamples for every method; on each the
GPT-4 target and every method's best knob are found again). Each scorer, alone and with `arithmetic`, is also
run at operating points chosen without the test prompts (on_fail last): `cv_operating_points`, the threshold
that reaches 95 % of GPT-4 on the out-of-fold scores of all training prompts (`train_cv`), applied to the
shipped artifact; and `scorer_operating_point*`, a scorer fitted on 80 % of the training prompts, its threshold
set on the other 20 %. `arithmetic_fail_rates` counts the wrong and right answers the arithmetic judge fails.

Not evaluable offline: `consistency` (one recorded answer per model and prompt; it needs k samples), `logprob`
(no logprobs recorded), `verifier` (it asks a model). LLMRouter: its per-model responses are in tables the
shared snapshot does not have (see ../shared/data/llmrouter/README.md), so no judge can be run on it."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from turnout.eval.bootstrap import RESAMPLES, SEED
from turnout.eval.datasets import STRONG, WEAK, gsm8k
from turnout.eval.metrics import sweep_choices
from turnout.eval.scorer_train import gsm8k_answers, hash_fold
from turnout.eval.table import RoutingTable
from turnout.judges import build_judge
from turnout.judges.base import Judge
from turnout.models.scorer import FEATURES, AnswerScorer, feature_matrix

GOAL_SHARE = 0.40
TARGET = 0.95


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


def summarise(fam: dict[str, Any], test: RoutingTable, weights: np.ndarray) -> dict[str, Any]:
    n = len(test)
    s = test.models.index(STRONG)
    strong_q, strong_c = test.scores[:, s].mean(), test.costs[:, s].mean()
    q_mean, c_mean = fam["quality"].mean(axis=1), fam["cost"].mean(axis=1)
    point = cheapest_reaching(q_mean[:, None], c_mean[:, None], np.array([TARGET * strong_q]))[0]
    boot_q = fam["quality"] @ weights.T / n  # (knobs, B)
    boot_c = fam["cost"] @ weights.T / n
    target = TARGET * (test.scores[:, s] @ weights.T / n)
    boot_share = cheapest_reaching(boot_q, boot_c, target) / (test.costs[:, s] @ weights.T / n)
    with np.errstate(invalid="ignore"):  # inf − inf where a resample never reaches the target: read as None
        low, high = np.percentile(boot_share, [2.5, 97.5])
    best = int(np.argmax(q_mean))
    out: dict[str, Any] = {
        "curve": [{"cost_share": round(float(c / strong_c), 4), "accuracy": round(float(q), 4),
                   **({"knob": fam["knobs"][k]} if fam["knobs"] else {}),
                   **({"escalated": round(float(fam["escalated"][k].mean()), 4)} if fam["escalated"] is not None
                      else {})}
                  for k, (q, c) in enumerate(zip(q_mean, c_mean))],
        "best_accuracy": round(float(q_mean[best]), 4),
        "cost_share_at_95pct_gpt4": None if not np.isfinite(point) else round(float(point / strong_c), 4),
        "cost_share_at_95pct_gpt4_ci95": [None if not np.isfinite(v) else round(float(v), 4) for v in (low, high)],
        "reaches_goal": bool(np.isfinite(point) and point / strong_c <= GOAL_SHARE),
    }
    if len(out["curve"]) > 25:  # keep the JSON readable: every 5th knob and the ends
        keep = set(range(0, len(out["curve"]), 5)) | {len(out["curve"]) - 1}
        out["curve"] = [row for k, row in enumerate(out["curve"]) if k in keep]
    return out


def operating_point(train_answers: Any, test: RoutingTable, weak_texts: list[str], strong_texts: list[str],
                    C: float, shrink: float, weights: np.ndarray,
                    features: tuple[str, ...] = FEATURES, models: list[str] | None = None) -> dict[str, Any]:
    """A scorer fitted on 80 % of the training prompts (the answers of `models` only, when given, as the
    artifact was), its threshold set on the other 20 %, run on test."""
    fold = np.array([hash_fold(p) for p in train_answers.prompts])
    fit = train_answers.subset([i for i in np.where(fold != 0)[0] if not models or train_answers.models[i] in models])
    calib = train_answers.subset(np.where(fold == 0)[0])
    scorer = AnswerScorer.fit(feature_matrix(fit.prompts, fit.responses, "minilm-static", features),
                              (fit.scores >= 0.5).astype(int), encoder="minilm-static", C=C,
                              embedding_shrink=shrink, features=features)
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
                models: list[str] | None) -> np.ndarray:
    """Out-of-fold scores of every training answer: 5 folds by prompt (turnout.eval.scorer_train.hash_fold), each
    scored by a scorer with the artifact's recipe fitted on the other four (on the answers of `models` only)."""
    x = feature_matrix(train_answers.prompts, train_answers.responses, "minilm-static", features)
    y = (train_answers.scores >= 0.5).astype(int)
    fold = np.array([hash_fold(p) for p in train_answers.prompts])
    fits = np.array([not models or m in models for m in train_answers.models])
    oof = np.zeros(len(y))
    for k in range(5):
        scorer = AnswerScorer.fit(x[fits & (fold != k)], y[fits & (fold != k)], encoder="minilm-static", C=C,
                                  embedding_shrink=shrink, features=features)
        oof[fold == k] = scorer.score_features(x[fold == k])
    return oof


def threshold_for(weak_ok: np.ndarray, strong_ok: np.ndarray, weak_score: np.ndarray) -> float:
    """The highest-accepting threshold (least escalation) at which an on_fail-last cascade reaches 95 % of the
    strong model's accuracy on these prompts; 1.01 (always escalate) when none does."""
    target = TARGET * strong_ok.mean()
    for t in np.unique(weak_score):
        if np.where(weak_score < t, strong_ok, weak_ok).mean() >= target - 1e-12:
            return float(t)
    return 1.01


def train_cv(train_answers: Any, train: RoutingTable, C: float, shrink: float, features: tuple[str, ...],
             models: list[str] | None, arithmetic: np.ndarray | None = None) -> dict[str, Any]:
    """The figures a scorer recipe is chosen by, on training prompts only: out-of-fold scores of Mixtral's
    answers (`out_of_fold`), then the cascade's least cost share at 95 % of GPT-4 on the training prompts
    (on_fail last), the AUC on Mixtral's answers, and the threshold that reaches 95 % of GPT-4 there: the
    operating point a deployment takes (`cv_threshold`). `arithmetic`: whether each training answer passes
    the arithmetic judge; given, the cascade judges with the ensemble of both (rule all)."""
    from turnout.eval.scorer_train import _auc

    y = (train_answers.scores >= 0.5).astype(int)
    oof = out_of_fold(train_answers, C, shrink, features, models)
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
            "cv_threshold": round(threshold_for(sub.scores[:, w], sub.scores[:, s], judged), 4)}


def at_threshold(test: RoutingTable, weak: np.ndarray, strong: np.ndarray, threshold: float,
                 weights: np.ndarray, **extra: Any) -> dict[str, Any]:
    """An on_fail-last cascade on the test prompts at one threshold, with 95 % bootstrap intervals."""
    q, c, e = cascade_rows(test, weak, strong, np.array([threshold]), "last")
    s = test.models.index(STRONG)
    n = len(test)
    boot_q = (q @ weights.T / n)[0] / (test.scores[:, s] @ weights.T / n)
    boot_c = (c @ weights.T / n)[0] / (test.costs[:, s] @ weights.T / n)
    return {"threshold": round(threshold, 4), "on_fail": "last", **extra, "accuracy": round(float(q.mean()), 4),
            "accuracy_share_of_gpt4": round(float(q.mean() / test.scores[:, s].mean()), 4),
            "accuracy_share_ci95": [round(float(v), 4) for v in np.percentile(boot_q, [2.5, 97.5])],
            "cost_share": round(float(c.mean() / test.costs[:, s].mean()), 4),
            "cost_share_ci95": [round(float(v), 4) for v in np.percentile(boot_c, [2.5, 97.5])],
            "escalated": round(float(e.mean()), 4)}


def router_family(name: str, directory: Path, test: RoutingTable) -> dict[str, Any]:
    from turnout.models.encoders import get_encoder
    from turnout.selection.base import selectors

    meta = json.loads((directory / "router.json").read_text())
    selector = selectors.get(meta["name"]).load(directory)
    predicted = selector.predict_quality(get_encoder(selector.encoder).encode(test.prompts))
    predicted = predicted[:, [selector.models_.index(m) for m in test.models]]
    choices = sweep_choices(test, predicted)  # (knobs, n) model indices, as `turnout eval` sweeps them
    rows = np.arange(len(test))
    return family(name, test.scores[rows, choices], test.costs[rows, choices])


def oracle(test: RoutingTable, cascade: bool) -> dict[str, Any]:
    """Perfect knowledge: GPT-4 only where Mixtral is wrong and GPT-4 right, the cheapest GPT-4 calls first
    (knob k: the k cheapest such prompts). A cascade pays for both calls there; a router only for GPT-4's."""
    s, w = test.models.index(STRONG), test.models.index(WEAK)
    useful = np.where((test.scores[:, w] < 0.5) & (test.scores[:, s] >= 0.5))[0]
    order = useful[np.argsort(test.costs[useful, s], kind="stable")]
    quality, cost, escalated = [], [], []
    for k in range(len(order) + 1):
        up = np.zeros(len(test), dtype=bool)
        up[order[:k]] = True
        quality.append(np.where(up, test.scores[:, s], test.scores[:, w]))
        cost.append(np.where(up, test.costs[:, s], 0.0) + np.where(up & ~cascade, 0.0, test.costs[:, w]))
        escalated.append(up)
    return family(f"oracle ({'cascade' if cascade else 'routing'})", np.array(quality), np.array(cost), list(range(len(order) + 1)),
                  np.array(escalated, dtype=float))


def families(test: RoutingTable, weak_texts: list[str], strong_texts: list[str], scorers: list[str],
             routers: list[Path]) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """`scorers`: the scorer artifacts to run; the first is labelled `scorer`, the others by their name. Also
    returns each judge's scores of the test answers, by label."""
    out = [family(f"single:{m}", test.scores[:, j], test.costs[:, j]) for j, m in enumerate(test.models)]
    out += [oracle(test, cascade=False), oracle(test, cascade=True)]
    judges_used: dict[str, Any] = {}
    scores: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # each judge's scores of the test answers
    specs = [("format", {"name": "format"}), ("arithmetic", {"name": "arithmetic"})]
    specs += [("scorer" if i == 0 else f"scorer {artifact.removeprefix('builtin:')}",
               {"name": "scorer", "params": {"artifact": artifact}}) for i, artifact in enumerate(scorers)]
    for label, spec in specs:
        judge = build_judge(spec, f"cascade.judge[{spec['name']}]")
        weak = asyncio.run(judge_scores(judge, test.prompts, weak_texts, WEAK))
        strong = asyncio.run(judge_scores(judge, test.prompts, strong_texts, STRONG))
        scores[label] = (weak, strong)
        if spec["name"] == "arithmetic":
            arith_weak, arith_strong = weak >= judge.threshold, strong >= judge.threshold
        if spec["name"] in ("format", "arithmetic"):
            knobs = np.array([judge.threshold])
        else:  # every distinct score of Mixtral's answers is a threshold setting
            knobs = np.unique(np.concatenate([[0.0], weak, [1.01]]))
        for on_fail in ("best", "last") if spec["name"] == "scorer" else ("best",):
            q, c, e = cascade_rows(test, weak, strong, knobs, on_fail)
            out.append(family(f"cascade:{label}" + (" (on_fail last)" if on_fail == "last" else ""), q, c,
                              [round(float(k), 4) for k in knobs], e))
        judges_used[label] = {"params": judge.params.model_dump(), "weak_pass_rate_at_default":
                              round(float((weak >= judge.threshold).mean()), 4)}
        if spec["name"] == "scorer":
            # the ensemble judge, rule all, of `arithmetic` and this scorer: an answer passes when its steps are
            # right and the scorer passes it. Over the scorer's threshold t that is a score of 0 where a step is
            # wrong, else the scorer's (checked against the Judge itself in ensemble_check)
            both_weak = np.where(arith_weak, weak, -1.0)
            both_strong = np.where(arith_strong, strong, -1.0)
            q, c, e = cascade_rows(test, both_weak, both_strong, knobs, "last")
            out.append(family(f"cascade:arithmetic+{label} (on_fail last)", q, c,
                              [round(float(k), 4) for k in knobs], e))
    for directory in routers:
        out.append(router_family(f"router:{directory.name}", directory, test))
    return out, judges_used, scores


def run(shared: Path, scorer: str | list[str], routers: list[Path], limit: int | None = None,
        resamples: int = RESAMPLES, operating: bool = True) -> dict[str, Any]:
    scorers = [scorer] if isinstance(scorer, str) else list(scorer)
    table = gsm8k(shared)
    test = table.split("test")
    if limit:
        test = test.subset(np.arange(min(limit, len(test))), test.name)
    answers = gsm8k_answers(shared)
    text = {(p, m): r for p, m, r in zip(answers.prompts, answers.models, answers.responses)}
    weak_texts = [text[(p, WEAK)] for p in test.prompts]
    strong_texts = [text[(p, STRONG)] for p in test.prompts]
    rng = np.random.default_rng(SEED)
    weights = rng.multinomial(len(test), np.full(len(test), 1 / len(test)), size=resamples).astype(float)
    fams, judges_used, scores = families(test, weak_texts, strong_texts, scorers, routers)
    s = test.models.index(STRONG)
    report: dict[str, Any] = {
        "data": "RouteLLM gsm8k (contaminated prompts dropped)", "split": "test", "prompts": len(test),
        "order": [WEAK, STRONG], "gpt4_accuracy": round(float(test.scores[:, s].mean()), 4),
        "target_accuracy": round(float(TARGET * test.scores[:, s].mean()), 4), "goal_cost_share": GOAL_SHARE,
        "cost": "estimated: list prices × tokens (prompt ≈ chars/4; output from each recorded answer)",
        "gpt4_mean_cost_usd": round(float(test.costs[:, s].mean()), 8), "judges": judges_used,
        "bootstrap": {"resamples": resamples, "seed": SEED, "level": 0.95, "over": "test prompts"},
        "methods": {f["name"]: summarise(f, test, weights) for f in fams},
        "not_evaluated": {"consistency": "one recorded answer per model and prompt; it needs k samples",
                          "logprob": "no logprobs recorded", "verifier": "asks a model: not offline",
                          "llmrouter": "its per-model responses are not in the shared snapshot (the tables that "
                                       "hold them were left out), so no judge can read an answer"}}
    if operating:
        operating_points(report, answers, table, test, weak_texts, strong_texts, scorers, scores, weights)
    return report


def operating_points(report: dict[str, Any], answers: Any, table: RoutingTable, test: RoutingTable,
                     weak_texts: list[str], strong_texts: list[str], scorers: list[str], scores: dict[str, Any],
                     weights: np.ndarray) -> None:
    """Thresholds set without the test prompts, for each builtin scorer's recipe (its C, shrink, features,
    models) alone and with the arithmetic judge (ensemble, rule all):
    - `scorer_operating_point*`: a scorer refitted on 80 % of train, its threshold set on the other 20 %;
    - `cv_operating_points`: the threshold that reaches 95 % of GPT-4 on all the training prompts' out-of-fold
      scores (`train_cv`), applied to the shipped artifact (fitted on all of train) on the test prompts."""
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
                  meta.get("models"))
        point = operating_point(train_answers, test, weak_texts, strong_texts, recipe[0], recipe[1], weights,
                                recipe[2], recipe[3])
        report["scorer_operating_point" if i == 0 else f"scorer_operating_point {artifact[8:]}"] = point
        weak, strong = scores[label]
        for name, flags, w, s in ((label, None, weak, strong),
                                  (f"arithmetic+{label}", passes, np.where(arith_weak, weak, -1.0),
                                   np.where(arith_strong, strong, -1.0))):
            cv = train_cv(train_answers, table.split("train"), *recipe, arithmetic=flags)
            report.setdefault("train_cv", {})[name] = cv
            report.setdefault("cv_operating_points", {})[name] = at_threshold(
                test, w, s, cv["cv_threshold"], weights, threshold_from="out-of-fold scores of all training prompts")
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


def table_text(report: dict[str, Any]) -> str:
    lines = [(f"{report['data']}, {report['prompts']} test prompts; GPT-4 accuracy {report['gpt4_accuracy']:.3f}, "
              f"target (95 %) {report['target_accuracy']:.3f}; goal: reach it at ≤ {report['goal_cost_share']:.0%} "
              "of GPT-4's cost"),
             f"{'method':58} {'best acc':>9} {'cost share at 95% of GPT-4 (95% CI)':>38} {'goal':>5}"]
    for name, m in report["methods"].items():
        share, (lo, hi) = m["cost_share_at_95pct_gpt4"], m["cost_share_at_95pct_gpt4_ci95"]
        fmt = lambda v: "never" if v is None else f"{v:.3f}"
        lines.append(f"{name:58} {m['best_accuracy']:>9.3f} {fmt(share) + ' (' + fmt(lo) + '–' + fmt(hi) + ')':>38}"
                     f" {'yes' if m['reaches_goal'] else 'no':>5}")
    for key in [k for k in report if k.startswith("scorer_operating_point")]:
        op = report[key]
        name = key.replace("scorer_operating_point", "scorer").strip()
        lines.append(f"{name} threshold {op['threshold']} set on training prompts: accuracy {op['accuracy']:.3f} "
                     f"({op['accuracy_share_of_gpt4']:.1%} of GPT-4, CI {op['accuracy_share_ci95']}), cost share "
                     f"{op['cost_share']:.3f} (CI {op['cost_share_ci95']}), escalated {op['escalated']:.1%}")
    for name, op in report.get("cv_operating_points", {}).items():
        lines.append(f"{name} at the threshold {op['threshold']} chosen by CV on training prompts: accuracy "
                     f"{op['accuracy']:.3f} ({op['accuracy_share_of_gpt4']:.1%} of GPT-4, CI "
                     f"{op['accuracy_share_ci95']}), cost share {op['cost_share']:.3f} (CI {op['cost_share_ci95']}), "
                     f"escalated {op['escalated']:.1%}")
    for name, cv in report.get("train_cv", {}).items():
        lines.append(f"{name}, 5-fold CV on the {cv['prompts']} training prompts: AUC on Mixtral's answers "
                     f"{cv['auc_mixtral']:.3f}, cascade cost share at 95 % of GPT-4 {cv['cost_share_at_95pct_gpt4']}")
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for name, m in report["methods"].items():
        xs = [p["cost_share"] for p in m["curve"]]
        ys = [p["accuracy"] for p in m["curve"]]
        ax.plot(xs, ys, "o" if len(xs) == 1 else "-", label=name, markersize=7 if len(xs) == 1 else 3)
    ax.axhline(report["target_accuracy"], color="grey", linestyle="--", linewidth=1, label="95 % of GPT-4")
    ax.axvline(report["goal_cost_share"], color="grey", linestyle=":", linewidth=1, label="goal: 40 % of cost")
    ax.set_xlabel("mean cost, share of GPT-4's")
    ax.set_ylabel("accuracy (test prompts)")
    ax.set_title(f"GSM8K cascades, Mixtral first ({report['prompts']} test prompts)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared/data")
    parser.add_argument("--json", type=Path, default=Path("bench-out/cascades.json"))
    parser.add_argument("--plot", type=Path, default=Path("bench-out/cascades.png"))
    parser.add_argument("--scorer", default="builtin:gsm8k-scorer,builtin:gsm8k-scorer-v2,builtin:gsm8k-scorer-v1",
                        help="the scorer judge's artifacts, comma-separated (the first is `scorer`)")
    parser.add_argument("--routers", default=str(ROOT / "turnout/models/data/routers/gsm8k-svm"),
                        help="learned router directories, comma-separated")
    parser.add_argument("--limit", type=int, default=None, help="only the first N test prompts (a smoke run)")
    parser.add_argument("--resamples", type=int, default=RESAMPLES)
    parser.add_argument("--no-operating-point", action="store_true")
    args = parser.parse_args()
    report = run(args.shared, [a for a in args.scorer.split(",") if a], [Path(p) for p in args.routers.split(",") if p], args.limit,
                 args.resamples, not args.no_operating_point)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(table_text(report))
    if args.plot:
        plot(report, args.plot)
    print(f"wrote {args.json}" + (f" and {args.plot}" if args.plot else ""))


if __name__ == "__main__":
    main()
