"""Which scorer recipe a GSM8K cascade should ship, chosen on the TRAINING prompts only (never the test split).

    .venv/bin/python benchmarks/scorer_cv.py --json bench-out/scorer_cv.json [--reps 5]

Data: RouteLLM's recorded GSM8K answers, the 1,063 training prompts of turnout.eval.table.held_out (the test
prompts are dropped before anything is computed, and the script checks that none is left). The cascade judged
is Mixtral first, GPT-4 when the judge rejects Mixtral's answer (on_fail last).

Every recipe is scored on out-of-fold scores of Mixtral's answers: 5 folds by prompt, repeated over `--reps`
fold assignments (the first is turnout.eval.scorer_train.hash_fold, the one `turnout train-scorer` uses; the
others are seeded random ones). Per repetition:
- `auc`: the out-of-fold AUC for a right Mixtral answer;
- `cost_at_95`: the least mean cost, as a share of GPT-4's, at which the cascade reaches 95 % of GPT-4's
  accuracy on the training prompts (the best threshold, set on the same scores: optimistic);
- `deployed`: the figure a deployment gets, nested: the threshold is set on four folds' out-of-fold scores and
  applied to the fifth (another fold assignment), the accuracy (share of GPT-4's) and cost share pooled over
  the five; `margin` variants set the threshold to reach 95 % + margin instead, which buys robustness;
- `vs_v3`: the paired difference in cost_at_95 from the shipped v3 recipe on the same folds, per repetition.

Recipes (names in the JSON):
- `v3`: the shipped builtin:gsm8k-scorer recipe (Mixtral's answers, FEATURES, C 0.01, shrink 4);
- `v3+coverage`: with question-quantity coverage features (`coverage_features` below);
- `v3+priors`: with prompt-side priors, each learned from questions that are not RouteLLM's GSM8K prompts: the
  number of calculator steps of GSM8K's *training* questions' reference solutions (7,473, ridge on the encoder's
  vector and question counts) and the mean correctness of LLMRouter's 9 open models on its 500 GSM8K training
  questions (ridge): the probability a model fails this question, from the question alone;
- `benefit`: rank by P(Mixtral right) − P(GPT-4 right), both from (question, Mixtral's answer): escalate where
  the strong model is likely to fix the answer, not where both fail;
- `gbm-stack`: scikit-learn gradient boosting over the cheap features and the out-of-fold linear score (an inner
  5-fold on the fitting folds), blended 50/50 with the linear score;
- `plus-gpt4-answers w`: v3's model and features, also fitted on GPT-4's answers to the same training prompts at
  sample weight w (Mixtral's at 1; the standardisation is over both): more rows of what a right and a wrong
  worked answer look like, down-weighted because a strong model's mistakes differ from a weak one's."""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from turnout.eval.datasets import STRONG, WEAK, gsm8k
from turnout.eval.scorer_train import gsm8k_answers, hash_fold
from turnout.eval.table import held_out
from turnout.models import arithmetic
from turnout.models.scorer import FEATURES, AnswerScorer, feature_matrix

TARGET = 0.95
C, SHRINK = 0.01, 4.0  # v3's recipe
WORDS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
         "eleven": 11, "twelve": 12, "twenty": 20, "thirty": 30, "fifty": 50, "hundred": 100, "dozen": 12,
         "twice": 2, "double": 2, "triple": 3, "half": 2, "quarter": 4, "third": 3}
ASK = re.compile(r"\bhow (?:many|much)\s+((?:[a-z]+\s+){0,2}?[a-z]+?)(?:\s+(?:does|did|do|will|would|can|could|is|"
                 r"are|was|were|has|have|had|in|of|should|must|more|less)\b|[?,.])", re.IGNORECASE)
STOP = {"the", "a", "an", "of", "in", "money", "more", "total", "time", "he", "she", "they", "it", "is", "are"}
FitPredict = Callable[[np.ndarray, np.ndarray], np.ndarray]


def coverage_features(prompt: str, answer: str) -> list[float]:
    """Question-quantity coverage: number words of the question no step uses; the share of the question's
    quantities the answer never mentions; a negative result; a fraction where only whole counts were given; an
    operand repeated in one step that the question gives once and no step computed (8 x 8 x 8); the asked
    quantity's noun missing from the answer's end; the question's last sentence's words restated in the
    answer's last line; one step or none for three or more given quantities."""
    low_p, low_a = prompt.lower(), answer.lower()
    check = arithmetic.check(answer)
    given, mentioned = arithmetic.prompt_numbers(prompt), arithmetic.prompt_numbers(answer)
    words = {k: v for k, v in WORDS.items() if re.search(rf"\b{k}\b", low_p) and float(v) not in given}
    unused_words = [k for k, v in words.items() if float(v) not in mentioned and not re.search(rf"\b{k}\b", low_a)]
    quantities = len(given) + len(words)
    whole = all(float(g).is_integer() for g in given) and not re.search(r"%|\d/\d|half|quarter|third|percent|\$",
                                                                         low_p)
    overused = 0
    for claim in check.claims:
        ops = [float(x) for x in re.findall(r"\d+(?:\.\d+)?", claim.expression)]
        overused += sum(1 for v in set(ops) if ops.count(v) > 1 and v not in check.results
                        and prompt.count(f"{v:g}") <= 1)
    unit_missing = 0.0
    asks = list(ASK.finditer(prompt))
    phrase = [w for w in asks[-1].group(1).lower().split() if w not in STOP] if asks else []
    if phrase:
        unit_missing = float(not any(re.search(rf"\b{re.escape(w.rstrip('s'))}", low_a[-300:]) for w in phrase))
    last_q = re.split(r"(?<=[.!?])\s+", prompt.strip())[-1].lower()
    lines = [line for line in answer.strip().splitlines() if line.strip() and not line.strip().startswith("####")]
    q_words = set(re.findall(r"[a-z]{3,}", last_q)) - STOP
    a_words = set(re.findall(r"[a-z]{3,}", lines[-1].lower() if lines else ""))
    final = check.final
    return [float(len(unused_words)),
            (len(given - mentioned) + len(unused_words)) / quantities if quantities else 0.0,
            float(any(r < 0 for r in check.results) or (final is not None and final < 0)),
            float(final is not None and whole and not float(final).is_integer()),
            float(overused), unit_missing, len(q_words & a_words) / len(q_words) if q_words else 0.0,
            float(len(check.claims) <= 1 and quantities >= 3)]


def question_counts(q: str) -> list[float]:
    return [np.log1p(len(q)), np.log1p(len(arithmetic.prompt_numbers(q))), float(q.count(".") + q.count("?")),
            float("%" in q), float(len(re.findall(r"\b(half|twice|third|quarter|double|triple)\b", q.lower())))]


def prompt_priors(shared: Path, prompts: list[str], vectors: np.ndarray) -> np.ndarray:
    """(n, 2): the predicted log step count of a reference solution (ridge on GSM8K's training questions) and the
    predicted mean correctness of LLMRouter's 9 models (ridge on its GSM8K training questions)."""
    from sklearn.linear_model import Ridge

    from turnout.models.encoders import get_encoder

    enc = get_encoder("minilm-static")
    mine = np.hstack([vectors, [question_counts(q) for q in prompts]])
    reference = [json.loads(line) for line in (shared / "routellm/evals/gsm8k/train.jsonl").open(encoding="utf-8")]
    questions = [r["question"] for r in reference]
    assert not set(questions) & set(prompts), "GSM8K's training questions overlap the prompts"
    steps = np.log1p([r["answer"].count("<<") for r in reference])
    x_ref = np.hstack([enc.encode(questions), [question_counts(q) for q in questions]])
    with (shared / "llmrouter/routing_scores_merged.csv").open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["task_name"] == "gsm8k" and r["split"] == "train"
                and r["query"] not in set(prompts)]
    correct = np.array([np.mean([float(v) for k, v in r.items() if k.startswith("score__")]) for r in rows])
    x_lr = np.hstack([enc.encode([r["query"] for r in rows]), [question_counts(r["query"]) for r in rows]])
    return np.column_stack([Ridge(alpha=1.0).fit(x_ref, steps).predict(mine),
                            Ridge(alpha=10.0).fit(x_lr, correct).predict(mine)])


class Data:
    """Training prompts only: Mixtral's and GPT-4's answers, their correctness and estimated costs."""

    def __init__(self, shared: Path, with_priors: bool = True) -> None:
        table = gsm8k(shared).split("train")
        answers = gsm8k_answers(shared).split("train")
        assert not any(held_out(p) for p in table.prompts), "a test prompt reached the training rows"
        text = {(p, m): r for p, m, r in zip(answers.prompts, answers.models, answers.responses)}
        self.prompts = table.prompts
        s, w = table.models.index(STRONG), table.models.index(WEAK)
        self.weak_ok, self.strong_ok = table.scores[:, w], table.scores[:, s]
        self.weak_cost, self.strong_cost = table.costs[:, w], table.costs[:, s]
        self.y, self.y_strong = (self.weak_ok >= 0.5).astype(int), (self.strong_ok >= 0.5).astype(int)
        weak_texts = [text[(p, WEAK)] for p in self.prompts]
        self.x = feature_matrix(self.prompts, weak_texts, "minilm-static", FEATURES)
        self.x_strong = feature_matrix(self.prompts, [text[(p, STRONG)] for p in self.prompts], "minilm-static",
                                       FEATURES)
        self.embedding = self.x.shape[1] - len(FEATURES)
        self.coverage = np.array([coverage_features(p, a) for p, a in zip(self.prompts, weak_texts)])
        self.priors = (prompt_priors(shared, self.prompts, self.x[:, : self.embedding // 2]) if with_priors
                       else np.zeros((len(self.prompts), 2)))
        self.hash_folds = np.array([hash_fold(p) for p in self.prompts])

    def folds(self, rep: int) -> np.ndarray:
        return self.hash_folds if rep == 0 else np.random.default_rng(rep).integers(0, 5, len(self.prompts))


def linear(d: Data, x: np.ndarray, y: np.ndarray | None = None) -> FitPredict:
    def fit_predict(tr: np.ndarray, te: np.ndarray) -> np.ndarray:
        model = AnswerScorer.fit(x[tr], (d.y if y is None else y)[tr], encoder="minilm-static", C=C,
                                 embedding_shrink=SHRINK, features=["f"] * (x.shape[1] - d.embedding))
        return model.score_features(x[te])
    return fit_predict


def benefit(d: Data) -> FitPredict:
    weak, strong = linear(d, d.x), linear(d, d.x, d.y_strong)
    return lambda tr, te: weak(tr, te) - strong(tr, te)


def plus_gpt4_answers(d: Data, weight: float) -> FitPredict:
    def fit_predict(tr: np.ndarray, te: np.ndarray) -> np.ndarray:
        model = AnswerScorer.fit(np.vstack([d.x[tr], d.x_strong[tr]]), np.concatenate([d.y[tr], d.y_strong[tr]]),
                                 encoder="minilm-static", C=C, embedding_shrink=SHRINK,
                                 sample_weight=np.concatenate([np.ones(len(tr)), np.full(len(tr), weight)]))
        return model.score_features(d.x[te])
    return fit_predict


def gbm_stack(d: Data) -> FitPredict:
    from sklearn.ensemble import HistGradientBoostingClassifier

    cheap = np.hstack([d.x[:, d.embedding:], d.coverage])
    lin = linear(d, d.x)

    def fit_predict(tr: np.ndarray, te: np.ndarray) -> np.ndarray:
        inner, k = np.zeros(len(tr)), np.arange(len(tr)) % 5
        for j in range(5):
            inner[k == j] = lin(tr[k != j], tr[k == j])
        outer = lin(tr, te)
        model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.03, max_leaf_nodes=8,
                                               min_samples_leaf=30, l2_regularization=1.0, random_state=0)
        model.fit(np.hstack([cheap[tr], inner[:, None]]), d.y[tr])
        return 0.5 * model.predict_proba(np.hstack([cheap[te], outer[:, None]]))[:, 1] + 0.5 * outer
    return fit_predict


def recipes(d: Data) -> dict[str, FitPredict]:
    return {"v3": linear(d, d.x), "v3+coverage": linear(d, np.hstack([d.x, d.coverage])),
            "v3+priors": linear(d, np.hstack([d.x, d.priors])), "benefit": benefit(d), "gbm-stack": gbm_stack(d),
            **{f"plus-gpt4-answers {w}": plus_gpt4_answers(d, w) for w in (0.05, 0.1, 0.2, 0.3)}}


def least_cost(d: Data, score: np.ndarray, idx: np.ndarray, margin: float = 0.0) -> tuple[float, float]:
    """(least cost share reaching (95 % + margin) of GPT-4's accuracy on prompts idx, its threshold)."""
    sc, weak, strong = score[idx], d.weak_ok[idx], d.strong_ok[idx]
    cost_w, cost_s = d.weak_cost[idx], d.strong_cost[idx]
    target = (TARGET + margin) * strong.mean()
    best, threshold = np.inf, np.inf
    for t in np.unique(np.concatenate([sc, [np.inf]])):
        escalate = sc < t
        if np.where(escalate, strong, weak).mean() >= target - 1e-12:
            cost = (cost_w + np.where(escalate, cost_s, 0.0)).mean() / cost_s.mean()
            if cost < best:
                best, threshold = cost, float(t)
    return best, threshold


def deployed(d: Data, oof: np.ndarray, rep: int, margin: float) -> tuple[float, float]:
    """Nested: the threshold set on four folds' scores (to reach 95 % + margin), applied to the fifth."""
    folds = d.folds(rep + 100)
    acc = acc_strong = cost = cost_strong = 0.0
    for k in range(5):
        tr, te = np.where(folds != k)[0], np.where(folds == k)[0]
        _, t = least_cost(d, oof, tr, margin)
        escalate = oof[te] < t
        acc += np.where(escalate, d.strong_ok[te], d.weak_ok[te]).sum()
        acc_strong += d.strong_ok[te].sum()
        cost += (d.weak_cost[te] + np.where(escalate, d.strong_cost[te], 0.0)).sum()
        cost_strong += d.strong_cost[te].sum()
    return acc / acc_strong, cost / cost_strong


def evaluate(d: Data, fit_predict: FitPredict, reps: int, margins: tuple[float, ...]) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score

    out: dict[str, Any] = {"auc": [], "cost_at_95": [], "deployed": {f"{m:+.3f}": [] for m in margins}}
    for rep in range(reps):
        folds, oof = d.folds(rep), np.zeros(len(d.y))
        for k in range(5):
            oof[folds == k] = fit_predict(np.where(folds != k)[0], np.where(folds == k)[0])
        out["auc"].append(round(float(roc_auc_score(d.y, oof)), 4))
        out["cost_at_95"].append(round(least_cost(d, oof, np.arange(len(d.y)))[0], 4))
        for m in margins:
            acc, cost = deployed(d, oof, rep, m)
            out["deployed"][f"{m:+.3f}"].append({"accuracy_share": round(acc, 4), "cost_share": round(cost, 4)})
    out["mean"] = {"auc": round(float(np.mean(out["auc"])), 4),
                   "cost_at_95": round(float(np.mean(out["cost_at_95"])), 4),
                   "deployed": {m: {k: round(float(np.mean([r[k] for r in rows])), 4)
                                    for k in ("accuracy_share", "cost_share")}
                                for m, rows in out["deployed"].items()}}
    return out


def run(shared: Path, reps: int = 5, margins: tuple[float, ...] = (0.0, 0.005, 0.01),
        only: list[str] | None = None) -> dict[str, Any]:
    d = Data(shared, with_priors=not only or "v3+priors" in only)
    chosen = {k: v for k, v in recipes(d).items() if not only or k in only}
    report: dict[str, Any] = {"data": "RouteLLM gsm8k, training prompts only (turnout.eval.table.held_out)",
                              "prompts": len(d.y), "mixtral_accuracy": round(float(d.weak_ok.mean()), 4),
                              "gpt4_accuracy": round(float(d.strong_ok.mean()), 4), "reps": reps,
                              "folds": "5 by prompt; rep 0 hash_fold, others seeded random", "recipes": {}}
    for name, fit_predict in chosen.items():
        report["recipes"][name] = evaluate(d, fit_predict, reps, margins)
        print(f"{name}: {report['recipes'][name]['mean']}", flush=True)
    base = report["recipes"].get("v3")
    if base:
        for r in report["recipes"].values():
            diff = np.array(r["cost_at_95"]) - np.array(base["cost_at_95"])
            r["vs_v3"] = {"per_rep": [round(float(x), 4) for x in diff], "mean": round(float(diff.mean()), 4),
                          "lower_in": int((diff < 0).sum())}
    return report


def table_text(report: dict[str, Any]) -> str:
    margins = list(next(iter(report["recipes"].values()))["deployed"])
    lines = [f"{report['data']}: {report['prompts']} prompts, {report['reps']} fold assignments",
             f"{'recipe':24} {'AUC':>6} {'cost@95':>8} {'vs v3 (lower in)':>17} "
             + " ".join(f"{'deployed ' + m + ' acc/cost':>26}" for m in margins)]
    for name, r in report["recipes"].items():
        vs = r.get("vs_v3", {"mean": 0.0, "lower_in": 0})
        dep = " ".join(f"{r['mean']['deployed'][m]['accuracy_share']:>17.3f} / {r['mean']['deployed'][m]['cost_share']:.3f}"
                       for m in margins)
        lines.append(f"{name:24} {r['mean']['auc']:>6.3f} {r['mean']['cost_at_95']:>8.3f} "
                     f"{vs['mean']:>+9.3f} ({vs['lower_in']}/{report['reps']}) {dep}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared/data")
    parser.add_argument("--json", type=Path, default=ROOT / "bench-out/scorer_cv.json")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--only", default=None, help="comma-separated recipe names")
    args = parser.parse_args()
    report = run(args.shared, args.reps, only=args.only.split(",") if args.only else None)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(table_text(report))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
