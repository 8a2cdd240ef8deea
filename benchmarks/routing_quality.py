"""Train every learned router on each shared dataset's train split and evaluate it on the test split against
the baselines; then cross-dataset generalisation (train on one dataset, test on another).

    python benchmarks/routing_quality.py --json bench-out/routing_quality.json [--shared ../shared/data]
        [--datasets gsm8k,mmlu,llmrouter] [--encoder minilm-static] [--plots bench-out] [--routers mlp,ensemble]
        [--baseline benchmarks/baselines/routing_quality_before.json] [--cv 5]

`--cv K` instead runs K-fold cross-validation on each dataset's train split (every train prompt is predicted by
routers fitted on the other folds; the test splits are not read): a larger sample than the test splits, and
the one the ensemble's settings were chosen on.

After each run's table, "before → now" sets the figures of the baseline file (the previous routers, measured
before issue 17 by this script; `--baseline none` to skip) beside this run's: AIQ and the cost, as a share of the
best single model's, at which 95 % and 100 % of that model's quality are reached, with 95 % intervals.

Cross-dataset runs: MMLU → GSM8K and GSM8K → MMLU (same two models), and on LLMRouter leave-tasks-out (train
on the tasks of one half, test on the other half's tasks: prompts of a kind the router never saw).

Every metric has a 95 % percentile-bootstrap interval over the test prompts (turnout/eval/bootstrap.py).
Prompt-blind routers (`best_single`, `elo`: the same prediction for every prompt) are reported as baselines and
left out of the "beat random" counts."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from turnout.eval.bootstrap import Resamples
from turnout.eval.datasets import load_named
from turnout.eval.harness import beat_random, plot, score_baselines, score_router
from turnout.eval.table import RoutingTable
from turnout.models.encoders import get_encoder
from turnout.selection import selectors

SKIP = {"multi_objective"}  # a weighting of `hybrid`-style estimates for live objectives; same curve as mlp


def learned() -> list[str]:
    return [n for n in selectors.names() if getattr(selectors.get(n), "needs_fit", False) and n not in SKIP]


def run(name: str, train: RoutingTable, test: RoutingTable, encoder: str, cache: dict,
        routers: list[str] | None = None) -> dict:
    def encode(t: RoutingTable) -> np.ndarray:
        key = (t.name, len(t), t.fingerprint())
        if key not in cache:
            cache[key] = get_encoder(encoder).encode(t.prompts)
        return cache[key]

    boot = Resamples(test)  # the same resamples for every router and baseline of this run
    report = {"train": f"{train.name} ({len(train)} prompts)", "test": f"{test.name} ({len(test)} prompts)",
              "models": test.models, "bootstrap": boot.describe(), "routers": {},
              "baselines": score_baselines(test, boot)}
    x_train, x_test = encode(train), encode(test)
    for router in routers or learned():
        selector = selectors.get(router)()
        selector.encoder = encoder  # saved with an artifact; the server embeds requests with the same encoder
        start = time.perf_counter()
        selector.fit(train, x_train)
        seconds = time.perf_counter() - start
        predicted = selector.predict(test.prompts, x_test)[:, [selector.models_.index(m) for m in test.models]]
        report["routers"][router] = {**score_router(test, predicted, boot, router), "train_s": round(seconds, 2)}
    report["data"], report["split"], report["rows"] = name, "test", len(test)
    report["beat_random"] = beat_random(report)
    return report


def out_of_fold(table: RoutingTable, x: np.ndarray, encoder: str, router: str, k: int) -> np.ndarray:
    """Each prompt's predicted qualities (prompts × table.models) from `router` fitted on the other K − 1 folds
    (folds drawn with seed 0)."""
    folds = np.random.default_rng(0).permutation(len(table)) % k
    predicted = np.zeros_like(table.scores)
    for fold in range(k):
        fit, held = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
        selector = selectors.get(router)()
        selector.encoder = encoder
        selector.fit(table.subset(fit), x[fit])
        order = [selector.models_.index(m) for m in table.models]
        predicted[held] = selector.predict([table.prompts[i] for i in held], x[held])[:, order]
    return predicted


def cross_validated(table: RoutingTable, encoder: str, routers: list[str], k: int) -> dict:
    """Out-of-fold predictions of each router on `table` (K folds, seed 0), scored like a test split."""
    x = get_encoder(encoder).encode(table.prompts)
    boot = Resamples(table)
    report = {"train": f"{table.name} ({len(table)} prompts, {k}-fold)", "test": "out of fold",
              "models": table.models, "bootstrap": boot.describe(), "routers": {},
              "baselines": score_baselines(table, boot)}
    for router in routers:
        report["routers"][router] = score_router(table, out_of_fold(table, x, encoder, router, k), boot, router)
    report["data"], report["split"], report["rows"] = table.name, f"train, {k}-fold", len(table)
    report["beat_random"] = beat_random(report)
    return report


def leave_tasks_out(table: RoutingTable) -> tuple[RoutingTable, RoutingTable]:
    tasks = sorted(set(table.tasks))
    held = set(tasks[1::2])
    rows = np.arange(len(table))
    train = table.subset([i for i in rows if table.tasks[i] not in held], name=f"{table.name}:tasks-even")
    test = table.subset([i for i in rows if table.tasks[i] in held], name=f"{table.name}:tasks-odd")
    return train, test


def table_of(title: str, report: dict) -> Table:
    t = Table(title=title)
    for col in ("router", "kind", "AIQ (95% CI)", "APGR (95% CI)", "CPT50", "beats random everywhere",
                "mean gain (95% CI)", "cost @95% best / best cost (95% CI)", "cost @100% (95% CI)"):
        t.add_column(col)
    rows = {**report["routers"], **{f"({k})": v for k, v in report["baselines"].items() if not k.startswith("single")}}
    for name, r in sorted(rows.items(), key=lambda kv: -kv[1]["aiq"]):
        ci = r["ci95"]
        kind = "baseline" if r.get("baseline") else "prompt-blind baseline" if r["prompt_blind"] else "router"
        t.add_row(name, kind, f"{r['aiq']:.3f} ({ci['aiq'][0]:.3f}–{ci['aiq'][1]:.3f})",
                  f"{r['apgr']:.3f} ({ci['apgr'][0]:.3f}–{ci['apgr'][1]:.3f})",
                  "-" if r["cpt50"] is None else f"{r['cpt50']:.2f}",
                  "yes" if r["gain_over_random"]["beats_random_everywhere"] else "no",
                  f"{r['gain_over_random']['mean']:+.4f} ({ci['gain_over_random_mean'][0]:+.4f}–"
                  f"{ci['gain_over_random_mean'][1]:+.4f})", share_ci(r, "cost_share_at_95pct"),
                  share_ci(r, "cost_share_at_100pct"))
    return t


def _pct(value: float | None) -> str:
    return "∞" if value is None else f"{value:.0%}"


def share_ci(r: dict, key: str) -> str:
    """A cost share with its interval ("-" when the curve never reaches it, ∞ for an unreached bound)."""
    if r.get(key) is None:
        return "-"
    low, high = r.get("ci95", {}).get(key, [None, None])
    return f"{_pct(r[key])} ({_pct(low)}–{_pct(high)})"


def compare_table(title: str, report: dict, before: dict | None) -> Table:
    """The baseline file's routers (previous code) beside this run's, on the same run name."""
    t = Table(title=title)
    for col in ("router", "measured", "AIQ (95% CI)", "cost @95% of best (95% CI)", "cost @100% of best"):
        t.add_column(col)
    for name, r in sorted((before or {}).get("routers", {}).items(), key=lambda kv: -kv[1]["aiq"]):
        ci = r["cost_share_at_95pct_ci95"]
        t.add_row(name, "before", f"{r['aiq']:.3f} ({r['aiq_ci95'][0]:.3f}–{r['aiq_ci95'][1]:.3f})",
                  "-" if r["cost_share_at_95pct"] is None else
                  f"{_pct(r['cost_share_at_95pct'])} ({_pct(ci[0])}–{_pct(ci[1])})", _pct(r["cost_share_at_100pct"])
                  if r["cost_share_at_100pct"] is not None else "-")
    rows = {**report["routers"], "(oracle)": report["baselines"]["oracle"]}
    for name, r in sorted(rows.items(), key=lambda kv: -kv[1]["aiq"]):
        ci = r["ci95"]
        t.add_row(name, "now", f"{r['aiq']:.3f} ({ci['aiq'][0]:.3f}–{ci['aiq'][1]:.3f})",
                  share_ci(r, "cost_share_at_95pct"), share_ci(r, "cost_share_at_100pct"))
    return t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--datasets", default="gsm8k,mmlu,llmrouter")
    parser.add_argument("--encoder", default="minilm-static")
    parser.add_argument("--plots", type=Path, default=None, help="folder for one PNG per run")
    parser.add_argument("--routers", default=None, help="comma-separated learned routers (default: all)")
    parser.add_argument("--baseline", default=str(Path(__file__).resolve().parent / "baselines" /
                                                  "routing_quality_before.json"),
                        help="a previous run's figures to print beside this run's ('none': skip)")
    parser.add_argument("--cv", type=int, default=0, help="K-fold cross-validation on the train splits instead")
    args = parser.parse_args()
    routers = args.routers.split(",") if args.routers else None
    before = None if args.baseline == "none" else json.loads(Path(args.baseline).read_text())["runs"]
    console, cache = Console(width=170), {}
    tables = {d: load_named(d, args.shared) for d in args.datasets.split(",")}
    if args.cv:
        out_cv: dict = {"encoder": args.encoder, "cv": args.cv, "runs": {}}
        for name, table in tables.items():
            report = cross_validated(table.split("train"), args.encoder, routers or learned(), args.cv)
            out_cv["runs"][name] = report
            console.print(table_of(f"{name}: {report['train']}", report))
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out_cv, indent=1, default=float) + "\n")
        return
    runs = {d: (t.split("train"), t.split("test")) for d, t in tables.items()}
    if "mmlu" in tables and "gsm8k" in tables:
        runs["mmlu→gsm8k"] = (tables["mmlu"].split("train"), tables["gsm8k"].split("test"))
        runs["gsm8k→mmlu"] = (tables["gsm8k"].split("train"), tables["mmlu"].split("test"))
    if "llmrouter" in tables:
        runs["llmrouter:unseen-tasks"] = leave_tasks_out(tables["llmrouter"])
    out: dict = {"encoder": args.encoder, "baseline": args.baseline, "runs": {}}
    for name, (train, test) in runs.items():
        report = run(name, train, test, args.encoder, cache, routers)
        out["runs"][name] = report
        console.print(table_of(f"{name}: train {report['train']}, test {report['test']}", report))
        counts = report["beat_random"]
        console.print(f"  of {counts['routers']} routers that read the prompt (prompt-blind baselines left out: "
                      f"{', '.join(counts['prompt_blind_left_out'])}): beat random at every cost level "
                      f"{len(counts['everywhere'])} ({', '.join(counts['everywhere'])}); mean gain's 95% CI above 0 "
                      f"{len(counts['mean_gain_ci95_above_0'])} ({', '.join(counts['mean_gain_ci95_above_0'])})")
        if before is not None:
            console.print(compare_table(f"{name}: before → now", report, before.get(name)))
        if args.plots:
            plot(report, args.plots / f"eval-{name.replace('→', '-to-').replace(':', '-')}.png")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
