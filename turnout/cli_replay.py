"""`turnout replay`: a config's whole router over a RoutingTable as a stream of requests, without backends."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

out = Console()
err = Console(stderr=True)


def _fail(message: str) -> None:
    err.print(f"[red]error[/red] {message}", highlight=False, markup=False)
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    @app.command()
    def replay(
        config: Annotated[Path, typer.Option(help="the turnout config whose router is replayed")],
        data: Annotated[str, typer.Option(help="llmrouter, mmlu, gsm8k, mt-bench, or a CSV/JSONL/Parquet file")],
        order: Annotated[str, typer.Option(help="random (seeded) or table")] = "random",
        seed: Annotated[int, typer.Option(help="seed of the random order")] = 0,
        feedback: Annotated[str, typer.Option(help="scores: learn from the table's scores; none: learn nothing")] = "scores",
        json_out: Annotated[Path | None, typer.Option("--json", help="write the report here")] = None,
        plot_out: Annotated[Path | None, typer.Option("--plot", help="write a PNG of the regret curves")] = None,
        limit: Annotated[int | None, typer.Option(min=1, help="replay at most this many rows")] = None,
        split: Annotated[str, typer.Option(help="replay this split only ('' for all rows)")] = "",
        shared: Annotated[Path, typer.Option(help="the shared data folder (for built-in dataset names)")] = Path("../shared/data"),
    ) -> None:
        """Route every row of a RoutingTable through the config's router (signals, decisions, selectors, stickiness),
        feed the table's score for the chosen model back to online selectors, and report cost, quality, regret
        against the best fixed model and the oracle, exploration share, per-model load and switches."""
        from turnout.config import ConfigError
        from turnout.eval.harness import load_data
        from turnout.eval.replay import json_ready, plot
        from turnout.eval.replay import replay as run
        from turnout.eval.table import DataError
        from turnout.pipeline import Router

        try:
            table = load_data(data, shared)
            table = table.split(split) if split else table
            result = asyncio.run(_replay(Router, config, table, run, order, seed, limit, feedback))
        except ConfigError as exc:
            _fail(f"{config}: {exc}")
        except (DataError, KeyError, OSError) as exc:
            _fail(str(exc.args[0] if isinstance(exc, KeyError) else exc))
        result["config"] = str(config)
        if json_out is not None:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(json.dumps(json_ready(result), indent=2) + "\n")
        if plot_out is not None:
            plot({config.stem: result}, plot_out, f"{result['data']}: {result['rows']} requests, {order} order")
        out.print(summary_table(result))


async def _replay(router_cls, config, table, run, order, seed, limit, feedback):
    router = router_cls.load(config)
    total = min(len(table), limit or len(table))
    try:
        with Progress(TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err, transient=True) as progress:
            task = progress.add_task("replay", total=total)
            return await run(router, table, order=order, seed=seed, limit=limit, feedback=feedback,
                             on_step=lambda k: progress.update(task, completed=k) if k % 50 == 0 or k == total else None)
    finally:
        await router.aclose()


def summary_table(result: dict) -> Table:
    table = Table(title=f"replay of {result['data']}: {result['rows']} requests")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [("mean quality", f"{result['mean_quality']:.4f}"), ("mean reward", f"{result['mean_reward']:.4f}"),
            ("total cost (USD)", f"{result['total_cost_usd']:.6f}"),
            (f"best fixed model ({result['best_fixed']['model']}) mean reward", f"{result['best_fixed']['mean_reward']:.4f}"),
            ("oracle mean reward", f"{result['oracle']['mean_reward']:.4f}"),
            ("regret vs best fixed", f"{result['regret_vs_best_fixed']:.2f}"),
            ("regret vs oracle", f"{result['regret_vs_oracle']:.2f}"),
            ("explore share", f"{result['explore_share']:.1%}"), ("switches", str(result["switches"]))]
    rows += [(f"load {m}", f"{share:.1%}") for m, share in result["load"].items() if share]
    for name, value in rows:
        table.add_row(name, value)
    return table
