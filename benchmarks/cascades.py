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
set on the other 20 %; for each scorer alone also `(margin +0.5%)`, the threshold that reaches 95.5 % on those
out-of-fold scores (the margin benchmarks/scorer_cv.py chose: a threshold set at exactly 95 % falls short on
unseen prompts). `arithmetic_fail_rates` counts the wrong and right answers the arithmetic judge fails. The
scorers run by default: builtin:gsm8k-scorer (v4, labelled `scorer`), -v3, -v2, -v1.

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
from turnout.eval.scorer_train import gsm8k_answers
from turnout.eval.table import RoutingTable
from turnout.judges import build_judge

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _cascade_points import (  # the cascade arithmetic, and the operating points chosen without the test prompts
    TARGET,
    cascade_rows,
    cheapest_reaching,
    family,
    judge_scores,
    operating_points,
)

GOAL_SHARE = 0.40



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

    fig, ax = plt.subplots(figsize=(12.5, 6))
    for name, m in report["methods"].items():
        xs = [p["cost_share"] for p in m["curve"]]
        ys = [p["accuracy"] for p in m["curve"]]
        ax.plot(xs, ys, "o" if len(xs) == 1 else "-", label=name, markersize=7 if len(xs) == 1 else 3)
    for name, op in report.get("cv_operating_points", {}).items():  # thresholds set without the test prompts
        if name.startswith("arithmetic+") or "-v1" in name or "-v2" in name:
            continue
        (a_lo, a_hi), (c_lo, c_hi) = op["accuracy_ci95"], op["cost_share_ci95"]
        ax.errorbar(op["cost_share"], op["accuracy"], xerr=[[op["cost_share"] - c_lo], [c_hi - op["cost_share"]]],
                    yerr=[[op["accuracy"] - a_lo], [a_hi - op["accuracy"]]], fmt="s", markersize=5, capsize=2,
                    linewidth=0.8, label=f"{name} at its CV threshold (95 % CI)")
    ax.axhline(report["target_accuracy"], color="grey", linestyle="--", linewidth=1, label="95 % of GPT-4")
    ax.axvline(report["goal_cost_share"], color="grey", linestyle=":", linewidth=1, label="goal: 40 % of cost")
    ax.set_xlabel("mean cost, share of GPT-4's")
    ax.set_ylabel("accuracy (test prompts)")
    ax.set_title(f"GSM8K cascades, Mixtral first ({report['prompts']} test prompts)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the curves, not over them
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared/data")
    parser.add_argument("--json", type=Path, default=Path("bench-out/cascades.json"))
    parser.add_argument("--plot", type=Path, default=Path("bench-out/cascades.png"))
    parser.add_argument("--scorer", default="builtin:gsm8k-scorer,builtin:gsm8k-scorer-v3,builtin:gsm8k-scorer-v2,"
                                          "builtin:gsm8k-scorer-v1",
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
