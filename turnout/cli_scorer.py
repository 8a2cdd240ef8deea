"""`turnout train-scorer`: fit the `scorer` judge's answer-quality model on recorded answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

out = Console()
err = Console(stderr=True)


def register(app: typer.Typer) -> None:
    @app.command("train-scorer")
    def train_scorer(
        data: Annotated[str, typer.Option(help="gsm8k (RouteLLM's recorded answers), or a CSV/JSONL/Parquet "
                                               "file with prompt, model, score, response (optional: split)")],
        out_dir: Annotated[Path, typer.Option("--out", help="the artifact directory to write (scorer.npz, "
                                                            "scorer.json)")],
        encoder: Annotated[str, typer.Option(help="minilm-static or minilm-onnx")] = "minilm-static",
        c: Annotated[float | None, typer.Option("--C", min=1e-6, help="inverse regularisation; default: "
                                                                         "chosen by 5-fold CV on train")] = None,
        resamples: Annotated[int, typer.Option(min=100, help="bootstrap resamples for the AUC interval")] = 1000,
        shared: Annotated[Path, typer.Option(help="the shared data folder (for gsm8k)")] = Path("../shared/data"),
        models: Annotated[str | None, typer.Option(help="comma-separated: train on these models' answers only "
                                                        "(those a cascade judges)")] = None,
        other_weight: Annotated[float, typer.Option(min=0.0, max=1.0, help="with --models: also fit the other "
                                                    "models' training answers at this sample weight")] = 0.0,
        embedding_shrink: Annotated[float | None, typer.Option(min=1e-6, help="how much more an encoder "
                                                               "dimension's weight is penalised; default: chosen "
                                                               "by 5-fold CV on train")] = None,
    ) -> None:
        """Train a scorer on the train split (by prompt) and report its held-out AUC with a 95 % interval."""
        from turnout.eval.scorer_train import load_answers, write
        from turnout.eval.scorer_train import train_scorer as fit
        from turnout.eval.table import DataError
        from turnout.models.encoders import ENCODERS

        if encoder not in ENCODERS:
            err.print(f"[red]error[/red] --encoder: unknown '{encoder}' (valid: {', '.join(ENCODERS)})")
            raise typer.Exit(1)
        try:
            rows = load_answers(data, shared)
            scorer, report = fit(rows, encoder, c, resamples, embedding_shrink=embedding_shrink,
                                 models=[m for m in (models or "").split(",") if m] or None,
                                 other_weight=other_weight)
        except (DataError, OSError) as exc:
            err.print(f"[red]error[/red] {exc}", highlight=False)
            raise typer.Exit(1) from None
        write(scorer, report, out_dir)
        test = report.get("held_out_test")
        summary = (f"held-out AUC {test['auc']:.3f} (95% CI {test['auc_ci95'][0]:.3f}–{test['auc_ci95'][1]:.3f}) "
                   f"on {test['rows']} answers to {test['prompts']} prompts" if test and test["auc"] is not None
                   else "no held-out rows with both good and bad answers: no AUC")
        out.print(f"wrote {out_dir}: scorer on {rows.name} ({report['train']['rows']} training answers, C "
                  f"{report['C']}); {summary}", highlight=False, markup=False)
        out.print(json.dumps({"artifact": str(out_dir / "scorer.npz")}), highlight=False)
