"""`turnout eval-signals`: every signal's held-out quality, the shipped models beside the ones they replaced."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

out = Console(width=160)


def _ci(r: dict[str, Any], key: str) -> str:
    return "{:.3f} ({:.3f}–{:.3f})".format(r[key], *r[f"{key}_ci95"]) if key in r else "-"


def _f(r: dict[str, Any], key: str) -> str:
    return f"{r[key]:.3f}" if isinstance(r.get(key), (int, float)) else "-"


def _classifier_table(report: dict[str, Any]) -> Table:
    table = Table(title="classifiers on held-out data: baseline (embedding only) vs shipped", title_justify="left")
    for col in ("signal", "model", "rows", "accuracy (95% CI)", "ECE", "AUC", "precision", "recall", "F1"):
        table.add_column(col, justify="left" if col in ("signal", "model") else "right")
    for task in ("domain", "complexity", "jailbreak"):
        for label, key in (("baseline", f"{task}_baseline"), ("embedding classifier (replaced; new detector below)" if task == "jailbreak" else "shipped", task)):
            if key in report:
                r = report[key]
                table.add_row(task, label, str(r["test_rows"]), _ci(r, "accuracy"), _f(r, "ece"), _f(r, "auc"),
                              _f(r, "precision"), _f(r, "recall"), _f(r, "f1"))
    for name, r in report.get("domain_cross_dataset", {}).items():
        table.add_row("domain", name.replace("_", " "), str(r["test_rows"]), _ci(r, "accuracy"), _f(r, "ece"), "-",
                      "-", "-", "-")
    return table


def _per_domain_table(report: dict[str, Any]) -> Table:
    table = Table(title="domain accuracy per domain (Wilson 95% CI)", title_justify="left")
    for col in ("domain", "rows", "baseline", "shipped"):
        table.add_column(col, justify="left" if col == "domain" else "right")
    new, old = report["domain"], report.get("domain_baseline", {})
    def cell(r: dict[str, Any], label: str) -> str:
        if label not in r.get("per_label_accuracy", {}):
            return "-"
        return "{:.3f} ({:.3f}–{:.3f})".format(r["per_label_accuracy"][label], *r["per_label_ci95"][label])

    for label, n in new["per_label_rows"].items():
        table.add_row(label, str(n), cell(old, label), cell(new, label))
    return table


def _binary_table(title: str, rows: list[tuple[str, str, dict[str, Any]]]) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("signal", "split", "rows", "accuracy (95% CI)", "precision", "recall", "F1 (95% CI)", "AUC",
                "false alarms"):
        table.add_column(col, justify="left" if col in ("signal", "split") else "right")
    for signal, split, r in rows:
        table.add_row(signal, split, str(r["rows"]), _ci(r, "accuracy"), _f(r, "precision"), _f(r, "recall"),
                      _ci(r, "f1"), _f(r, "auc"), _f(r, "false_alarm_rate"))
    return table


def _injection_table(injection: dict[str, Any]) -> Table:
    table = Table(title="jailbreak / injection detectors (turnout.eval.injection_report), at each default threshold",
                  title_justify="left")
    for col in ("split", "detector", "rows", "precision", "recall", "F1 (95% CI)", "AUC", "false alarms (everyday)"):
        table.add_column(col, justify="left" if col in ("split", "detector") else "right")
    for split, detectors in injection.get("splits", {}).items():
        for name, by_threshold in detectors.items():
            r = by_threshold.get(f"at_{by_threshold['default_threshold']:g}") or next(
                v for k, v in by_threshold.items() if k.startswith("at_"))
            alarms = _f(r.get("false_alarms_everyday", {}), "rate")
            if r.get("positives") == 0:  # a benign-only split: its false alarms are all it measures
                table.add_row(split, name, str(r["rows"]), "–", "–", "–", "–", alarms)
                continue
            f1 = "{:.3f} ({:.3f}–{:.3f})".format(r["f1"], *r["ci95"]["f1"])
            table.add_row(split, name, str(r["rows"]), _f(r, "precision"), _f(r, "recall"), f1, _f(r, "auc"), alarms)
    return table


def register(app: typer.Typer) -> None:
    @app.command("eval-signals")
    def eval_signals(
        json_out: Annotated[Optional[Path], typer.Option("--json", help="write the report here")] = None,
        shared: Annotated[Path, typer.Option(help="the shared data folder")] = Path("../shared/data"),
        pii_set: Annotated[Path, typer.Option(help="labelled PII prompts (JSONL)")] = Path("tests/data/pii_labelled.jsonl"),
        domain: Annotated[Optional[str], typer.Option(help="domain classifier to evaluate (default: shipped)")] = None,
        complexity: Annotated[Optional[str], typer.Option(help="complexity classifier (default: shipped)")] = None,
        jailbreak: Annotated[Optional[str], typer.Option(help="an embedding jailbreak classifier .npz (default: builtin:jailbreak-embedding, the one the detector replaced)")] = None,
    ) -> None:
        """Held-out quality of the domain, complexity, fact_check, modality, jailbreak and PII signals, each
        beside the model it replaced, on every split."""
        from turnout.eval.signals_report import evaluate_all

        artifacts = {k: v for k, v in (("domain", domain), ("complexity", complexity), ("jailbreak", jailbreak)) if v}
        report = evaluate_all(shared, pii_set, artifacts)
        out.print(_classifier_table(report))
        out.print(_per_domain_table(report))
        fact = [("fact_check", split, r) for split, r in report["fact_check"].items()]
        out.print(_binary_table("fact_check (threshold 0.5)", fact))
        modality = [(f"modality:{m}", split, r[m]) for split, r in report["modality"].items() if "image" in r
                    for m in ("image", "audio", "video")]
        out.print(_binary_table("modality: requests for output (rule-based; exact set accuracy below)", modality))
        for split, r in report["modality"].items():
            if "exact_accuracy" in r:
                out.print(f"modality {split}: exact accuracy {_ci(r, 'exact_accuracy')} on {r['rows']} prompts")
            else:
                out.print(f"modality {split}: {r['false_alarms']} false alarms on {r['rows']} text-only benchmark "
                          f"prompts (rate {r['false_alarm_rate']:.3f}, Wilson 95% CI "
                          f"{r['false_alarm_rate_ci95'][0]:.3f}–{r['false_alarm_rate_ci95'][1]:.3f})")
        if "injection" in report:
            out.print(_injection_table(report["injection"]))
        elif "injection_error" in report:
            out.print(f"injection report unavailable: {report['injection_error']}")
        pii = report["pii"]
        out.print(f"pii: recall {pii['recall']:.3f} on {pii['labelled_items']} labelled items; "
                  f"false positives on {pii['clean_prompts']} clean prompts: {pii['false_positives_on_clean_prompts']}")
        if json_out:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(json.dumps(report, indent=2))
            out.print(f"wrote {json_out}")
