"""The RoutingTable: one row per (prompt, model) with the model's score on the prompt and what it cost.

Long form: columns `prompt, model, score, cost_usd` and optional `latency_s, task, split, response`.
Wide form: one score column per model (`score__MODEL` or just the model names given), with a cost table.
Loaders for ../shared/data produce the same table. Every problem in a user's file is reported with the row
and column it is in."""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

REQUIRED = ("prompt", "model", "score", "cost_usd")
OPTIONAL = ("latency_s", "task", "split", "response")


class DataError(ValueError):
    """A routing data file that cannot be used; the message says where and why."""


@dataclass
class RoutingTable:
    """Dense view: prompts × models matrices of scores and costs, plus per-prompt task and split."""

    prompts: list[str]
    models: list[str]
    scores: np.ndarray  # (n_prompts, n_models) in [0, 1]
    costs: np.ndarray  # (n_prompts, n_models) USD
    tasks: list[str] = field(default_factory=list)
    splits: list[str] = field(default_factory=list)
    latencies: np.ndarray | None = None
    name: str = "table"

    def __post_init__(self) -> None:
        n, m = len(self.prompts), len(self.models)
        if self.scores.shape != (n, m) or self.costs.shape != (n, m):
            raise DataError(f"{self.name}: scores/costs must be {n}×{m}")
        if not self.tasks:
            self.tasks = [""] * n
        if not self.splits:
            self.splits = ["test" if held_out(p) else "train" for p in self.prompts]

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, rows: Iterable[int] | np.ndarray, name: str | None = None) -> "RoutingTable":
        idx = np.asarray(list(rows) if not isinstance(rows, np.ndarray) else rows, dtype=int)
        return RoutingTable([self.prompts[i] for i in idx], list(self.models), self.scores[idx], self.costs[idx],
                            [self.tasks[i] for i in idx], [self.splits[i] for i in idx],
                            None if self.latencies is None else self.latencies[idx], name or self.name)

    def split(self, which: str) -> "RoutingTable":
        return self.subset([i for i, s in enumerate(self.splits) if s == which], f"{self.name}[{which}]")

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for prompt in self.prompts:
            digest.update(prompt.encode("utf-8", "replace"))
        digest.update(json.dumps(self.models).encode())
        digest.update(np.round(self.scores, 6).tobytes())
        return digest.hexdigest()[:16]


def held_out(prompt: str, percent: int = 20) -> bool:
    """Deterministic, content-keyed split: a prompt (and every copy of it) is always on the same side."""
    return int(hashlib.sha1(prompt.encode("utf-8", "replace")).hexdigest()[:8], 16) % 100 < percent


def _read_rows(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            with path.open(newline="", encoding="utf-8") as f:
                return list(csv.DictReader(f))
        if suffix in (".jsonl", ".ndjson"):
            rows = []
            for i, line in enumerate(path.open(encoding="utf-8"), start=1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except ValueError as exc:
                        raise DataError(f"{path}: line {i} is not JSON ({exc})") from None
            return rows
        if suffix == ".parquet":
            import pyarrow.parquet as pq  # optional: only for Parquet files

            return pq.read_table(path).to_pylist()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    except ImportError:
        raise DataError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow)") from None
    raise DataError(f"{path}: unknown format '{suffix}' (use .csv, .jsonl or .parquet)")


def _number(value: Any, where: str, column: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{where}: column '{column}' must be a number, got {value!r}") from None
    if not np.isfinite(number):
        raise DataError(f"{where}: column '{column}' must be finite, got {value!r}")
    return number


def from_long_rows(rows: list[dict[str, Any]], name: str = "table") -> RoutingTable:
    if not rows:
        raise DataError(f"{name}: no rows")
    missing = [c for c in REQUIRED if c not in rows[0]]
    if missing:
        raise DataError(f"{name}: missing column(s) {', '.join(missing)}; a long-form table needs "
                        f"{', '.join(REQUIRED)} (optional: {', '.join(OPTIONAL)})")
    models: dict[str, int] = {}
    prompts: dict[str, int] = {}
    cells: dict[tuple[int, int], tuple[float, float, float | None]] = {}
    tasks: dict[int, str] = {}
    splits: dict[int, str] = {}
    for i, row in enumerate(rows, start=2 if name.endswith(".csv") else 1):
        where = f"{name}: row {i}"
        prompt = str(row["prompt"] or "")
        if not prompt.strip():
            raise DataError(f"{where}: empty prompt")
        score = _number(row["score"], where, "score")
        if not 0 <= score <= 1:
            raise DataError(f"{where}: column 'score' must be in [0, 1], got {score}")
        cost = _number(row["cost_usd"], where, "cost_usd")
        if cost < 0:
            raise DataError(f"{where}: column 'cost_usd' must be ≥ 0, got {cost}")
        latency = _number(row["latency_s"], where, "latency_s") if row.get("latency_s") not in (None, "") else None
        p = prompts.setdefault(prompt, len(prompts))
        m = models.setdefault(str(row["model"]), len(models))
        if (p, m) in cells:
            raise DataError(f"{where}: duplicate row for this prompt and model '{row['model']}'")
        cells[(p, m)] = (score, cost, latency)
        if row.get("task"):
            tasks[p] = str(row["task"])
        if row.get("split"):
            split = str(row["split"]).lower()
            if split not in ("train", "test", "validation", "dev"):
                raise DataError(f"{where}: column 'split' must be train/test/validation, got {row['split']!r}")
            splits[p] = "train" if split in ("validation", "dev") else split
    missing_cells = [(p, m) for p in prompts.values() for m in models.values() if (p, m) not in cells]
    if missing_cells:
        names = {v: k for k, v in models.items()}
        texts = {v: k for k, v in prompts.items()}
        p, m = missing_cells[0]
        raise DataError(f"{name}: {len(missing_cells)} (prompt, model) pairs have no row, e.g. model '{names[m]}' "
                        f"on prompt {texts[p][:60]!r}; every prompt needs a row for every model")
    n, k = len(prompts), len(models)
    scores, costs, lat = np.zeros((n, k)), np.zeros((n, k)), np.full((n, k), np.nan)
    for (p, m), (s, c, latency) in cells.items():
        scores[p, m], costs[p, m] = s, c
        if latency is not None:
            lat[p, m] = latency
    order = list(prompts)
    return RoutingTable(order, list(models), scores, costs, [tasks.get(i, "") for i in range(n)],
                        [splits[i] for i in range(n)] if len(splits) == n else [],
                        None if np.isnan(lat).all() else lat, name)


def from_wide_rows(rows: list[dict[str, Any]], cost_per_prompt: dict[str, float], name: str = "table",
                   prompt_column: str = "prompt") -> RoutingTable:
    """Wide form: a `prompt` column and one score column per model (named MODEL or score__MODEL)."""
    if not rows:
        raise DataError(f"{name}: no rows")
    columns = {c[len("score__"):] if c.startswith("score__") else c: c for c in rows[0]}
    missing = [m for m in cost_per_prompt if m not in columns]
    if prompt_column not in rows[0] or missing:
        raise DataError(f"{name}: needs a '{prompt_column}' column and a score column per model; missing: "
                        f"{', '.join(([prompt_column] if prompt_column not in rows[0] else []) + missing)}")
    long = []
    for row in rows:
        for model, cost in cost_per_prompt.items():
            long.append({"prompt": row[prompt_column], "model": model, "score": row[columns[model]], "cost_usd": cost,
                         "task": row.get("task", ""), "split": row.get("split", "")})
    return from_long_rows(long, name)


def load_table(path: str | Path, costs: dict[str, float] | None = None) -> RoutingTable:
    """A user's file: long form, or wide form when `costs` (model → USD per prompt) is given."""
    path = Path(path)
    rows = _read_rows(path)
    if costs:
        return from_wide_rows(rows, costs, name=path.name)
    return from_long_rows(rows, name=path.name)
