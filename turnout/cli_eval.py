"""`turnout train` and `turnout eval`: learned routers on routing data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

out = Console()
err = Console(stderr=True)
SharedOption = Annotated[Path, typer.Option(help="the shared data folder (for built-in dataset names)")]


def _fail(message: str) -> None:
    err.print(f"[red]error[/red] {message}", highlight=False)
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    register_calibrate(app)

    @app.command()
    def train(
        data: Annotated[str, typer.Option(help="llmrouter, mmlu, gsm8k, mt-bench, or a CSV/JSONL/Parquet file")],
        router: Annotated[str, typer.Option("--router", "--algorithm",
                                            help="the algorithm, e.g. ensemble, knn, mlp, mf, cluster, best_single")],
        out_dir: Annotated[Path, typer.Option("--out", help="the artifact directory to write")],
        params: Annotated[Optional[list[str]], typer.Option(help="algorithm parameter key=value (repeatable)")] = None,
        split: Annotated[str, typer.Option(help="train on this split ('' for all rows)")] = "train",
        shared: SharedOption = Path("../shared/data"),
    ) -> None:
        """Fit a learned router on routing data and save it as an artifact directory."""
        from pydantic import ValidationError

        from turnout.eval.harness import load_data, parse_params, train as fit
        from turnout.eval.table import DataError

        try:
            with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                          console=err, transient=True) as progress:
                progress.add_task(f"loading {data}", total=None)
                table = load_data(data, shared)
                progress.add_task(f"embedding {len(table)} prompts and fitting {router}", total=None)
                selector = fit(table, router, parse_params(params or []), out_dir, split)
        except (DataError, KeyError) as exc:
            _fail(str(exc.args[0] if isinstance(exc, KeyError) else exc))
        except ValidationError as exc:
            problems = "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())
            _fail(f"--params: {problems}")
        out.print(f"wrote {out_dir}: {router} on {table.name} ({split or 'all'} rows), models "
                  f"{', '.join(selector.models_)}", highlight=False, markup=False)

    @app.command("eval")
    def evaluate(
        data: Annotated[str, typer.Option(help="llmrouter, mmlu, gsm8k, mt-bench, or a CSV/JSONL/Parquet file")],
        routers: Annotated[str, typer.Option(help="artifact directories, comma-separated")],
        json_out: Annotated[Path, typer.Option("--json", help="write the report here")],
        split: Annotated[str, typer.Option(help="evaluate on this split ('' for all rows)")] = "test",
        plot_out: Annotated[Optional[Path], typer.Option("--plot", help="write a PNG of the curves")] = None,
        resamples: Annotated[int, typer.Option(min=100, help="bootstrap resamples of the test prompts")] = 1000,
        seed: Annotated[int, typer.Option(help="seed of the bootstrap resamples")] = 0,
        shared: SharedOption = Path("../shared/data"),
    ) -> None:
        """Cost–quality curves, AIQ, APGR, CPT of routers against single models, random mix and oracle, each with
        a 95 % percentile-bootstrap interval over the test prompts."""
        from turnout.eval.harness import evaluate as run, load_data, plot
        from turnout.eval.table import DataError

        try:
            report = run(load_data(data, shared), [Path(p) for p in routers.split(",") if p], split, resamples, seed)
        except (DataError, KeyError, OSError, ValueError) as exc:
            _fail(str(exc.args[0] if isinstance(exc, KeyError) else exc))
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2))
        out.print(report_table(report))
        counts = report["beat_random"]
        blind = counts["prompt_blind_left_out"]
        out.print(f"beat random at every cost: {len(counts['everywhere'])} of {counts['routers']} routers; with the "
                  f"mean gain's 95% interval above 0: {len(counts['mean_gain_ci95_above_0'])} of {counts['routers']}"
                  + (f" (prompt-blind, counted as baselines: {', '.join(blind)})" if blind else ""),
                  highlight=False, markup=False)
        if plot_out:
            plot(report, plot_out)
            out.print(f"wrote {plot_out}")
        out.print(f"wrote {json_out}")


def _with_ci(result: dict, key: str, places: int) -> str:
    value, (low, high) = result[key], result["ci95"][key]
    if value is None:
        return "-"
    show = lambda v: "∞" if v is None else f"{v:.{places}f}"  # an unreached bound
    return f"{value:.{places}f} ({show(low)}–{show(high)})"


def report_table(report: dict) -> Table:
    boot = report["bootstrap"]
    table = Table(title=f"{report['data']} ({report['split']} split), {report['rows']} prompts; (95% CI: "
                        f"{boot['resamples']} bootstrap resamples of the prompts, seed {boot['seed']})",
                  title_justify="left")
    for col in ("router", "kind", "AIQ", "APGR", "CPT(50%)", "CPT(80%)", "quality at best-single cost",
                "cost for 95% of best single (share of its cost)", "for 100%", "mean gain over random"):
        table.add_column(col, justify="left" if col in ("router", "kind") else "right")
    for name, r in {**report["routers"], **report["baselines"]}.items():
        kind = "baseline" if r.get("baseline") else "prompt-blind baseline" if r["prompt_blind"] else "router"
        gain = {"gain_over_random_mean": r["gain_over_random"]["mean"], "ci95": r["ci95"]}
        table.add_row(name, kind, _with_ci(r, "aiq", 4), _with_ci(r, "apgr", 3), _with_ci(r, "cpt50", 3),
                      _with_ci(r, "cpt80", 3), _with_ci(r, "quality_at_best_single_cost", 4),
                      _with_ci(r, "cost_share_at_95pct", 3), _with_ci(r, "cost_share_at_100pct", 3),
                      _with_ci(gain, "gain_over_random_mean", 4))
    return table


def register_calibrate(app: typer.Typer) -> None:
    @app.command()
    def calibrate(
        router: Annotated[Path, typer.Option(help="an artifact directory from `turnout train`")],
        data: Annotated[str, typer.Option(help="llmrouter, mmlu, gsm8k, mt-bench, or a CSV/JSONL/Parquet file")],
        target: Annotated[str, typer.Option(help="cost=USD per prompt | rate=strong-call share | quality=fraction "
                                                 "of the best single model's quality")],
        split: Annotated[str, typer.Option(help="held-out split to calibrate on ('' for all rows)")] = "test",
        shared: SharedOption = Path("../shared/data"),
    ) -> None:
        """Set a router's quality/cost knob (cost_weight) from a target, measured on held-out data."""
        from turnout.eval.harness import calibrate as run, load_data
        from turnout.eval.table import DataError

        try:
            result = run(load_data(data, shared), router, target, split)
        except (DataError, KeyError, OSError, ValueError) as exc:
            _fail(str(exc.args[0] if isinstance(exc, KeyError) else exc))
        out.print(f"{router}: cost_weight = {result['cost_weight']:.6g} → mean cost ${result['mean_cost_usd']:.6f}"
                  f" (best single ${result['best_single_cost_usd']:.6f}), quality {result['mean_quality']:.4f}"
                  f" (best single {result['best_single_quality']:.4f}), strong-model calls "
                  f"{100 * result['strong_call_share']:.1f}%", highlight=False, markup=False)
