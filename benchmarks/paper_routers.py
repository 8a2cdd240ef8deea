"""The routers named after papers against the baselines their papers beat, in the direction each paper reports,
with paired 95 % bootstrap intervals of the differences (the same resamples of the test prompts for every router).

    python benchmarks/paper_routers.py --json bench-out/paper_routers.json [--shared ../shared/data]
        [--datasets gsm8k,mmlu,llmrouter] [--resamples 1000]

Each router is trained with its default parameters on the train split (minilm-static embeddings) and evaluated on
the test split; LLMRouter also leave-tasks-out (train on half of the tasks, test on the other half's). Claims
checked (the paper's metric first):
- RouterDC (Chen et al. 2024): routing by quality alone (cost_weight 0) is more accurate than the best single
  model and than a per-model classifier on the embedding (our stand-in for its CosineClassifier baseline), and the
  sample–sample loss helps (λ = 1 vs λ = 0);
- GraphRouter (Feng et al. 2025): a better cost–quality trade-off (AIQ here; the paper's reward mixes the two)
  than an MLP and a kNN router on the same embedding;
- RouteLLM's MF (Ong et al. 2024): a higher APGR than the random mix and than a classifier (the paper's
  BERT/causal-LLM classifiers; ours is one logistic regression per model on the embedding).
Per resample the best single model is the best on that resample (which favours the baseline)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from turnout.eval.bootstrap import Resamples, _summary
from turnout.eval.datasets import load_named
from turnout.eval.metrics import reference, summary, sweep_choices
from turnout.eval.table import RoutingTable
from turnout.models.encoders import get_encoder
from turnout.selection import selectors

ROUTERS = {"routerdc": ("routerdc", {}), "routerdc λ=0": ("routerdc", {"sample_weight": 0.0}),
           "graph": ("graph", {}), "mf": ("mf", {}), "mlp": ("mlp", {}), "knn": ("knn", {}),
           "classifier": ("classifier", {})}
CLAIMS = [("routerdc", "best single", "quality_only"), ("routerdc", "classifier", "quality_only"),
          ("routerdc", "routerdc λ=0", "quality_only"), ("routerdc", "routerdc λ=0", "aiq"),
          ("graph", "mlp", "aiq"), ("graph", "knn", "aiq"), ("graph", "best single", "quality_only"),
          ("mf", "random", "apgr"), ("mf", "classifier", "apgr"), ("mf", "random", "aiq")]


def leave_tasks_out(table: RoutingTable) -> tuple[RoutingTable, RoutingTable]:
    held = set(sorted(set(table.tasks))[1::2])
    rows = np.arange(len(table))
    return (table.subset([i for i in rows if table.tasks[i] not in held], name=f"{table.name}:tasks-even"),
            table.subset([i for i in rows if table.tasks[i] in held], name=f"{table.name}:tasks-odd"))


def per_resample(test: RoutingTable, boot: Resamples, choices: np.ndarray) -> dict[str, np.ndarray]:
    """AIQ, APGR and quality-only accuracy of a router's choices (knobs × prompts) on every resample."""
    rows = np.arange(len(test))
    cost, quality = boot.mean(test.costs[rows, choices]), boot.mean(test.scores[rows, choices])
    two = len(test.models) == 2
    shares = [boot.mean((choices == m).astype(np.float64)) for m in range(len(test.models))] if two else None
    aiq, apgr = [], []
    for b, ref in enumerate(boot.references):
        s = _summary(list(zip(cost[:, b].tolist(), quality[:, b].tolist())), ref,
                     None if shares is None else shares[ref.strong][:, b].tolist())
        aiq.append(s["aiq"])
        apgr.append(s["apgr"])
    return {"aiq": np.array(aiq), "apgr": np.array(apgr), "quality_only": quality[0]}


def random_per_resample(test: RoutingTable, boot: Resamples) -> dict[str, np.ndarray]:
    mix = np.linspace(0, 1, 21)
    aiq, apgr = [], []
    for ref in boot.references:
        (cw, qw), (cs, qs) = ref.single[ref.weak], ref.single[ref.strong]
        s = _summary([(cw + p * (cs - cw), qw + p * (qs - qw)) for p in mix], ref,
                     mix.tolist() if len(test.models) == 2 else None)
        aiq.append(s["aiq"])
        apgr.append(s["apgr"])
    best = boot.model_quality.max(axis=0)
    return {"aiq": np.array(aiq), "apgr": np.array(apgr), "quality_only": best}


def interval(values: np.ndarray) -> list[float]:
    return [round(float(v), 4) for v in np.percentile(values, [2.5, 97.5])]


def run(train: RoutingTable, test: RoutingTable, resamples: int) -> dict:
    encoder = get_encoder()
    x_train, x_test = encoder.encode(train.prompts), encoder.encode(test.prompts)
    boot = Resamples(test, resamples)
    ref = reference(test)
    samples: dict[str, dict[str, np.ndarray]] = {}
    point: dict[str, dict[str, float]] = {}
    for label, (name, params) in ROUTERS.items():
        selector = selectors.get(name)(**params).fit(train, x_train)
        predicted = selector.predict_quality(x_test)[:, [selector.models_.index(m) for m in test.models]]
        choices = sweep_choices(test, predicted)
        rows = np.arange(len(test))
        shares = [float((c == ref.strong).mean()) for c in choices] if len(test.models) == 2 else None
        full = summary([(float(test.costs[rows, c].mean()), float(test.scores[rows, c].mean())) for c in choices],
                       ref, shares)
        point[label] = {"aiq": full["aiq"], "apgr": full["apgr"],
                        "quality_only": float(test.scores[rows, choices[0]].mean())}
        samples[label] = per_resample(test, boot, choices)
    base = random_per_resample(test, boot)
    samples["random"] = {k: base[k] for k in ("aiq", "apgr")} | {"quality_only": base["quality_only"] * np.nan}
    samples["best single"] = {"quality_only": base["quality_only"]}
    single = test.scores.mean(axis=0)
    point["best single"] = {"quality_only": float(single.max())}
    random_full = summary([(ref.single[ref.weak][0] + p * (ref.single[ref.strong][0] - ref.single[ref.weak][0]),
                            ref.single[ref.weak][1] + p * (ref.single[ref.strong][1] - ref.single[ref.weak][1]))
                           for p in np.linspace(0, 1, 21)], ref,
                          np.linspace(0, 1, 21).tolist() if len(test.models) == 2 else None)
    point["random"] = {"aiq": random_full["aiq"], "apgr": random_full["apgr"]}
    report = {"train": f"{train.name} ({len(train)})", "test": f"{test.name} ({len(test)})", "models": test.models,
              "resamples": resamples, "routers": {}, "claims": []}
    for label, values in point.items():
        report["routers"][label] = {k: {"value": round(v, 4), "ci95": interval(samples[label][k])}
                                    for k, v in values.items()}
    for a, b, metric in CLAIMS:
        diff = samples[a][metric] - samples[b][metric]
        report["claims"].append({"router": a, "baseline": b, "metric": metric,
                                 "difference": round(point[a][metric] - point[b][metric], 4),
                                 "ci95": interval(diff), "share_of_resamples_above_0": round(float((diff > 0).mean()), 3)})
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--datasets", default="gsm8k,mmlu,llmrouter")
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    out: dict = {"runs": {}}
    for name in args.datasets.split(","):
        table = load_named(name, args.shared)
        runs = {name: (table.split("train"), table.split("test"))}
        if name == "llmrouter":
            runs["llmrouter:unseen-tasks"] = leave_tasks_out(table)
        for run_name, (train, test) in runs.items():
            report = out["runs"][run_name] = run(train, test, args.resamples)
            print(f"\n{run_name}: train {report['train']}, test {report['test']}")
            for label, r in report["routers"].items():
                print(f"  {label:14s} " + "  ".join(f"{k} {v['value']:.4f} ({v['ci95'][0]:.4f}–{v['ci95'][1]:.4f})"
                                                   for k, v in r.items()))
            for c in report["claims"]:
                print(f"  {c['router']} − {c['baseline']} [{c['metric']}]: {c['difference']:+.4f} "
                      f"({c['ci95'][0]:+.4f} to {c['ci95'][1]:+.4f}; above 0 on {c['share_of_resamples_above_0']:.0%})")
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
