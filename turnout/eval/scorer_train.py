"""Train and evaluate the `scorer` judge's answer-quality model (what `turnout train-scorer` runs).

Data: rows of (prompt, model, response, score): the built-in `gsm8k` (RouteLLM's recorded GPT-4 and Mixtral
answers with their correctness, contaminated prompts dropped) or any long-form RoutingTable file with a
`response` column. An answer is "good" when its score ≥ 0.5. The split is by prompt (the table's `split`
column, else the content-keyed 80/20 split of turnout.eval.table.held_out), so no prompt's answers are on both
sides. C and the embedding shrink (how much more an encoder dimension's weight is penalised than a cheap
feature's) are chosen by grouped 5-fold cross-validation on the training prompts only. The held-out AUC has a
percentile-bootstrap interval over test prompts (all of a prompt's answers drawn together). With `models` and
`other_weight` > 0 the other models' answers to the training prompts are fitted too, at that sample weight
(the judged models' at 1); the CV and held-out AUCs are on the judged models' answers only."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from turnout.eval.bootstrap import RESAMPLES, SEED, percentile_intervals
from turnout.eval.table import DataError, _read_rows, held_out
from turnout.models.scorer import AnswerScorer, feature_matrix

GSM8K_MODELS = {"gpt-4-1106-preview": "gpt-4-1106-preview",
                "mistralai/Mixtral-8x7B-Instruct-v0.1": "mixtral-8x7b-instruct-v0.1"}
C_GRID = (0.003, 0.01, 0.03, 0.1, 0.3)
SHRINK_GRID = (1.0, 4.0, 16.0, 64.0)


@dataclass
class AnswerRows:
    """One row per (prompt, model): the model's recorded response and whether it was good."""

    prompts: list[str]
    models: list[str]
    responses: list[str]
    scores: np.ndarray
    splits: list[str]
    name: str

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, idx: np.ndarray | list[int]) -> AnswerRows:
        idx = list(idx)
        return AnswerRows([self.prompts[i] for i in idx], [self.models[i] for i in idx],
                          [self.responses[i] for i in idx], self.scores[idx], [self.splits[i] for i in idx],
                          self.name)

    def split(self, which: str) -> AnswerRows:
        return self.subset([i for i, s in enumerate(self.splits) if s == which])


def gsm8k_answers(shared: Path) -> AnswerRows:
    base = shared / "routellm/evals/gsm8k"
    if not base.exists():
        raise DataError(f"{base} does not exist (use --shared)")
    bad = {json.loads(line)["eval_prompt"] for line in (base / "contaminated_prompts.jsonl").open(encoding="utf-8")
           if line.strip()}
    with (base / "gsm8k_responses.csv").open(newline="", encoding="utf-8") as f:
        rows = {r["prompt"]: r for r in csv.DictReader(f) if r["prompt"] not in bad}
    prompts, models, responses, scores = [], [], [], []
    for prompt, row in rows.items():
        for column, model in GSM8K_MODELS.items():
            prompts.append(prompt)
            models.append(model)
            responses.append(row[f"{column}_response"].strip())
            scores.append(float(row[column] == "True"))
    return AnswerRows(prompts, models, responses, np.array(scores),
                      ["test" if held_out(p) else "train" for p in prompts], "gsm8k")


def file_answers(path: Path) -> AnswerRows:
    rows = _read_rows(path)
    if not rows:
        raise DataError(f"{path.name}: no rows")
    missing = [c for c in ("prompt", "model", "score", "response") if c not in rows[0]]
    if missing:
        raise DataError(f"{path.name}: missing column(s) {', '.join(missing)}; training a scorer needs prompt, "
                        "model, score and response (optional: split)")
    prompts, models, responses, scores, splits = [], [], [], [], []
    for i, row in enumerate(rows, start=2 if path.suffix == ".csv" else 1):
        try:
            score = float(row["score"])
        except (TypeError, ValueError):
            raise DataError(f"{path.name}: row {i}: column 'score' must be a number, got {row['score']!r}") from None
        if not 0 <= score <= 1:
            raise DataError(f"{path.name}: row {i}: column 'score' must be in [0, 1], got {score}")
        prompt = str(row["prompt"] or "")
        if not prompt.strip():
            raise DataError(f"{path.name}: row {i}: empty prompt")
        split = str(row.get("split") or ("test" if held_out(prompt) else "train")).lower()
        if split not in ("train", "test"):
            raise DataError(f"{path.name}: row {i}: column 'split' must be train or test, got {row['split']!r}")
        prompts.append(prompt)
        models.append(str(row["model"]))
        responses.append(str(row["response"] or ""))
        scores.append(score)
        splits.append(split)
    return AnswerRows(prompts, models, responses, np.array(scores), splits, path.name)


def load_answers(spec: str, shared: Path) -> AnswerRows:
    if spec == "gsm8k":
        return gsm8k_answers(shared)
    path = Path(spec)
    if not path.exists():
        raise DataError(f"--data: '{spec}' is neither 'gsm8k' nor an existing file")
    return file_answers(path)


def _auc(y: np.ndarray, p: np.ndarray, weights: np.ndarray | None = None) -> float | None:
    from sklearn.metrics import roc_auc_score

    if weights is not None:
        keep = weights > 0
        y, p, weights = y[keep], p[keep], weights[keep]
    if len(set(y.tolist())) < 2:
        return None
    return float(roc_auc_score(y, p, sample_weight=weights))


def auc_with_interval(rows: AnswerRows, predicted: np.ndarray, resamples: int = RESAMPLES,
                      seed: int = SEED) -> dict[str, Any]:
    """AUC of `predicted` for good answers, with a 95 % percentile-bootstrap interval over prompts."""
    y = (rows.scores >= 0.5).astype(int)
    unique = sorted(set(rows.prompts))
    index = {p: i for i, p in enumerate(unique)}
    group = np.array([index[p] for p in rows.prompts])
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(len(unique), np.full(len(unique), 1 / len(unique)), size=resamples)
    samples = [{"auc": _auc(y, predicted, draw[group].astype(float))} for draw in draws]
    return {"auc": _auc(y, predicted), "auc_ci95": percentile_intervals(samples)["auc"], "rows": len(rows),
            "prompts": len(unique), "good_share": round(float(y.mean()), 4)}


def choose_params(x: np.ndarray, y: np.ndarray, prompts: list[str], encoder: str,
                  weight: np.ndarray | None = None) -> tuple[float, float, dict[str, float]]:
    """C and embedding_shrink with the best mean AUC over 5 folds of training prompts (folds keyed by prompt).
    `weight`: each row's sample weight; the AUC is over the rows of weight 1 (the judged models' answers)."""
    fold = np.array([hash_fold(p) for p in prompts])
    judged = np.ones(len(y), dtype=bool) if weight is None else weight >= 1.0
    results: dict[str, float] = {}
    for shrink in SHRINK_GRID:
        for c in C_GRID:
            aucs = []
            for k in range(5):
                train, test = fold != k, fold == k
                model = AnswerScorer.fit(x[train], y[train], encoder=encoder, C=c, embedding_shrink=shrink,
                                         sample_weight=None if weight is None else weight[train])
                test &= judged
                auc = _auc(y[test], model.score_features(x[test]))
                if auc is not None:
                    aucs.append(auc)
            results[f"C={c},shrink={shrink}"] = round(float(np.mean(aucs)), 4) if aucs else 0.0
    best = max(results, key=lambda key: results[key])
    c_text, shrink_text = best.split(",")
    return float(c_text[2:]), float(shrink_text[7:]), results


def hash_fold(prompt: str) -> int:
    import hashlib

    return int(hashlib.sha1(prompt.encode("utf-8", "replace")).hexdigest()[8:16], 16) % 5


def train_scorer(rows: AnswerRows, encoder: str = "minilm-static", C: float | None = None,
                 resamples: int = RESAMPLES, embedding_shrink: float | None = None,
                 models: list[str] | None = None, other_weight: float = 0.0) -> tuple[AnswerScorer, dict[str, Any]]:
    """`models`: train (and test) on these models' answers only: the ones a cascade will judge (a cascade never
    judges its last model's answer when on_fail is `last`), whose mistakes differ from a stronger model's.
    `other_weight` (with `models`): also fit the other models' training answers, at this sample weight."""
    if not 0 <= other_weight <= 1:
        raise DataError(f"--other-weight: must be in [0, 1], got {other_weight}")
    if other_weight and not models:
        raise DataError("--other-weight: needs --models (the answers the weight is relative to)")
    judged_models = set(models or rows.models)
    if models:
        unknown = sorted(set(models) - set(rows.models))
        if unknown:
            raise DataError(f"--models: no answers of {', '.join(unknown)} in {rows.name} "
                            f"(models: {', '.join(sorted(set(rows.models)))})")
        keep = [i for i, (m, s) in enumerate(zip(rows.models, rows.splits))
                if m in judged_models or (other_weight > 0 and s == "train")]
        rows = rows.subset(keep)
    train = rows.split("train")
    test = rows.split("test").subset([i for i, m in enumerate(rows.split("test").models) if m in judged_models])
    weight = np.array([1.0 if m in judged_models else other_weight for m in train.models])
    if len(train) == 0:
        raise DataError(f"{rows.name}: no training rows")
    x = feature_matrix(train.prompts, train.responses, encoder)
    y = (train.scores >= 0.5).astype(int)
    if len(set(y.tolist())) < 2:
        raise DataError(f"{rows.name}: the training rows need both good (score ≥ 0.5) and bad answers")
    cv: dict[str, float] = {}
    weights = weight if other_weight > 0 else None
    if C is None or embedding_shrink is None:
        best_c, best_shrink, cv = choose_params(x, y, train.prompts, encoder, weights)
        C = best_c if C is None else C
        embedding_shrink = best_shrink if embedding_shrink is None else embedding_shrink
    scorer = AnswerScorer.fit(x, y, encoder=encoder, C=C, embedding_shrink=embedding_shrink, sample_weight=weights)
    report: dict[str, Any] = {"data": rows.name, "encoder": encoder, "C": C, "embedding_shrink": embedding_shrink,
                              "models": sorted(judged_models),
                              **({"other_weight": other_weight,
                                  "other_models": sorted(set(train.models) - judged_models)} if weights is not None
                                 else {}),
                              "cv_auc": cv,
                              "train": {"rows": len(train), "prompts": len(set(train.prompts))},
                              "split": "by prompt (split column, else turnout.eval.table.held_out: 20 % test)"}
    if len(test):
        predicted = scorer.score(test.prompts, test.responses)
        report["held_out_test"] = auc_with_interval(test, predicted, resamples)
        report["held_out_test"]["by_model"] = {
            m: auc_with_interval(test.subset([i for i, x in enumerate(test.models) if x == m]),
                                 predicted[[i for i, x in enumerate(test.models) if x == m]], resamples)
            for m in sorted(set(test.models))}
    scorer.meta = {"trained_on": f"{rows.name}[train]", **report}
    return scorer, report


def write(scorer: AnswerScorer, report: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    scorer.save(out / "scorer.npz")
    (out / "scorer.json").write_text(json.dumps(report, indent=2) + "\n")
