"""Train routers on a RoutingTable and evaluate them against the baselines (what `turnout train` and
`turnout eval` run)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from turnout.eval.bootstrap import RESAMPLES, SEED, Resamples
from turnout.eval.datasets import DATASETS, load_named
from turnout.eval.metrics import baselines, curve_of_sweep, prompt_blind, reference, summary, sweep_choices
from turnout.eval.table import DataError, RoutingTable, load_table
from turnout.selection.base import _params_model, selectors
from turnout.selection.learned import LearnedSelector


def load_data(spec: str, shared: Path, costs: dict[str, float] | None = None) -> RoutingTable:
    """A built-in dataset name or a file in the generic format."""
    if spec in DATASETS:
        return load_named(spec, shared)
    return load_table(spec, costs)


def parse_params(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise DataError(f"--params takes key=value, got {pair!r}")
        try:
            params[key] = json.loads(value)
        except ValueError:
            params[key] = value
    return params


def train(table: RoutingTable, router: str, params: dict[str, Any], out: Path, split: str = "train") -> LearnedSelector:
    cls = selectors.get(router)
    if not getattr(cls, "needs_fit", False):
        raise DataError(f"'{router}' learns nothing; learned routers: "
                        f"{', '.join(n for n in selectors.names() if getattr(selectors.get(n), 'needs_fit', False))}")
    checked = _params_model(cls).model_validate(params).model_dump()
    data = table.split(split) if split else table
    if len(data) == 0:
        raise DataError(f"{table.name}: no rows in split '{split}'")
    selector = cls(**checked).fit(data)
    selector.save(out)
    return selector


def score_router(test: RoutingTable, predicted: np.ndarray, resamples: Resamples, router: str) -> dict[str, Any]:
    """A router's curve, metrics and their 95 % intervals on `test`, from its predicted qualities (aligned with
    test.models)."""
    two = len(test.models) == 2
    choices = sweep_choices(test, predicted)
    points, shares = curve_of_sweep(test, choices)
    return {"router": router, "prompt_blind": prompt_blind(predicted),
            **summary(points, reference(test), shares if two else None), "ci95": resamples.interval(choices, two)}


def score_baselines(test: RoutingTable, resamples: Resamples) -> dict[str, dict]:
    """Each single model, the random mix and the oracle, with their intervals; all labelled `baseline`."""
    two = len(test.models) == 2
    out = baselines(test)
    for j, model in enumerate(test.models):
        out[f"single:{model}"]["ci95"] = resamples.interval(np.full((1, len(test)), j), two)
    out["random"]["ci95"] = resamples.interval_of_random(two)
    out["oracle"]["ci95"] = resamples.interval(sweep_choices(test, test.scores), two)
    for name, entry in out.items():
        entry.update(baseline=True, prompt_blind=name != "oracle")
    return out


def beat_random(report: dict[str, Any]) -> dict[str, Any]:
    """Which routers beat the random mix. Prompt-blind ones (best_single, elo) are left out of the count: their
    curve is the random mix by construction. `everywhere`: the hull is above random at every cost between the
    weak and the strong model on the test prompts; `mean_gain_ci95_above_0`: the lower end of the 95 % interval
    of the mean gain over random is above 0 (a gain that resampling the prompts does not erase)."""
    routers = {n: r for n, r in report["routers"].items() if not r["prompt_blind"]}
    return {"routers": len(routers),
            "prompt_blind_left_out": sorted(n for n, r in report["routers"].items() if r["prompt_blind"]),
            "everywhere": [n for n, r in routers.items() if r["gain_over_random"]["beats_random_everywhere"]],
            "mean_gain_ci95_above_0": [n for n, r in routers.items()
                                       if (r["ci95"]["gain_over_random_mean"][0] or 0.0) > 0]}


def evaluate(table: RoutingTable, routers: list[Path], split: str = "test", resamples: int = RESAMPLES,
             seed: int = SEED) -> dict[str, Any]:
    from turnout.models.encoders import get_encoder

    test = table.split(split) if split else table
    if len(test) == 0:
        raise DataError(f"{table.name}: no rows in split '{split}'")
    boot = Resamples(test, resamples, seed)
    report: dict[str, Any] = {"data": table.name, "split": split, "rows": len(test), "models": test.models,
                              "bootstrap": boot.describe(), "routers": {}, "baselines": score_baselines(test, boot)}
    encoded: dict[str, np.ndarray] = {}
    for directory in routers:
        meta = json.loads((Path(directory) / "router.json").read_text())
        selector = selectors.get(meta["name"]).load(directory)
        missing = [m for m in test.models if m not in selector.models_]
        if missing:
            raise DataError(f"{directory}: trained on {', '.join(selector.models_)}, the data also has "
                            f"{', '.join(missing)}")
        if selector.encoder not in encoded:
            encoded[selector.encoder] = get_encoder(selector.encoder).encode(test.prompts)
        predicted = selector.predict(test.prompts, encoded[selector.encoder])
        order = [selector.models_.index(m) for m in test.models]
        report["routers"][Path(directory).name] = score_router(test, predicted[:, order], boot, meta["name"])
    report["beat_random"] = beat_random(report)
    return report


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from turnout.eval.metrics import upper_hull

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for name, result in report["routers"].items():
        xs, ys = zip(*result["curve"])
        ax.plot(xs, ys, marker=".", label=f"{name} (AIQ {result['aiq']:.3f})")
    for name in ("random", "oracle"):
        xs, ys = zip(*report["baselines"][name]["curve"])
        ax.plot(xs, ys, linestyle="--", label=f"{name} (AIQ {report['baselines'][name]['aiq']:.3f})")
    singles = [(v["curve"][0][0], v["curve"][0][1], k[len("single:"):]) for k, v in report["baselines"].items()
               if k.startswith("single:")]
    ax.scatter([s[0] for s in singles], [s[1] for s in singles], color="black", zorder=3, label="single models")
    for c, q, name in singles:
        ax.annotate(name, (c, q), fontsize=7, xytext=(3, 3), textcoords="offset points")
    all_points = [tuple(p) for r in report["routers"].values() for p in r["curve"]]
    if all_points:
        xs, ys = zip(*upper_hull(all_points))
        ax.plot(xs, ys, color="grey", alpha=0.4, linewidth=4, label="Pareto front of the routers")
    ax.set_xlabel("mean cost per prompt (USD)")
    ax.set_ylabel("mean quality")
    ax.set_title(f"{report['data']} [{report['split']}], {report['rows']} prompts")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def calibrate(table: RoutingTable, directory: Path, target: str, split: str = "test") -> dict[str, Any]:
    """Set a learned router's `cost_weight` so that, on `split`, it meets one target:
    `cost=USD` (mean cost per prompt at most this), `rate=R` (share of calls to the best single model at most
    R) or `quality=Q` (at least Q × the best single model's mean quality, as cheaply as possible)."""
    from turnout.eval.metrics import choices_at, curve_of_choices
    from turnout.models.encoders import get_encoder

    kind, _, raw = target.partition("=")
    if kind not in ("cost", "rate", "quality") or not raw:
        raise DataError(f"--target must be cost=USD, rate=SHARE or quality=FRACTION, got {target!r}")
    try:
        goal = float(raw)
    except ValueError:
        raise DataError(f"--target {kind}= needs a number, got {raw!r}") from None
    data = table.split(split) if split else table
    meta = json.loads((Path(directory) / "router.json").read_text())
    selector = selectors.get(meta["name"]).load(directory)
    order = [selector.models_.index(m) for m in data.models]
    predicted = selector.predict(data.prompts, get_encoder(selector.encoder).encode(data.prompts))[:, order]
    ref = reference(data)
    knobs = np.concatenate([[0.0], np.geomspace(1e-4, 1e4, 401)])  # only weights a server accepts (≥ 0)
    outcomes = [(float(k), *curve_of_choices(data, choices_at(data, predicted, float(k)))) for k in knobs]
    if kind == "quality":
        floor = goal * ref.single[ref.strong][1]
        feasible = [o for o in outcomes if o[2] >= floor]
        pick = min(feasible, key=lambda o: o[1]) if feasible else None
    else:
        column = 1 if kind == "cost" else 3
        feasible = [o for o in outcomes if o[column] <= goal]
        pick = max(feasible, key=lambda o: o[2]) if feasible else None
    if pick is None:
        best = max(outcomes, key=lambda o: o[2])
        raise DataError(f"no cost_weight ≥ 0 of {meta['name']} meets {target} on {data.name} [{split}] (best "
                        f"quality {best[2]:.4f} at cost_weight {best[0]:g}, mean cost ${best[1]:.6f})")
    meta["params"]["cost_weight"] = pick[0]
    (Path(directory) / "router.json").write_text(json.dumps(meta, indent=2) + "\n")
    return {"cost_weight": pick[0], "mean_cost_usd": pick[1], "mean_quality": pick[2], "strong_call_share": pick[3],
            "best_single_quality": ref.single[ref.strong][1], "best_single_cost_usd": ref.single[ref.strong][0]}


def operating_point(table: RoutingTable, directory: Path, split: str = "test", resamples: int = RESAMPLES,
                    seed: int = SEED) -> dict[str, Any]:
    """What a router serves at its saved `cost_weight` on `split`: its mean quality and cost as shares of the
    best single model's, and its share of calls to that model, each with a 95 % percentile-bootstrap interval."""
    from turnout.eval.metrics import choices_at
    from turnout.models.encoders import get_encoder

    data = table.split(split) if split else table
    meta = json.loads((Path(directory) / "router.json").read_text())
    selector = selectors.get(meta["name"]).load(directory)
    order = [selector.models_.index(m) for m in data.models]
    predicted = selector.predict(data.prompts, get_encoder(selector.encoder).encode(data.prompts))[:, order]
    choices = choices_at(data, predicted, selector.cost_weight)
    rows, ref, boot = np.arange(len(data)), reference(data), Resamples(data, resamples, seed)
    strong = ref.strong
    samples = {"quality_share": boot.mean(data.scores[rows, choices][None, :])[0] / boot.model_quality[strong],
               "cost_share": boot.mean(data.costs[rows, choices][None, :])[0] / boot.model_cost[strong],
               "strong_call_share": boot.mean((choices == strong).astype(float)[None, :])[0]}
    point = {"quality_share": float(data.scores[rows, choices].mean()) / ref.single[strong][1],
             "cost_share": float(data.costs[rows, choices].mean()) / ref.single[strong][0],
             "strong_call_share": float((choices == strong).mean())}
    out: dict[str, Any] = {"data": data.name, "prompts": len(data),
                           "cost_weight": selector.cost_weight, "best_single": data.models[strong]}
    for key, values in samples.items():
        out[key] = round(point[key], 4)
        out[f"{key}_ci95"] = [round(float(v), 4) for v in np.percentile(values, [2.5, 97.5])]
    out["bootstrap"] = boot.describe()
    return out
