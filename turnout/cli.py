"""The `turnout` command line: serve, validate, route, models."""

from __future__ import annotations

import asyncio
import enum
import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="turnout: an OpenAI-compatible LLM router.", no_args_is_help=True, add_completion=False)
out = Console()
err = Console(stderr=True)

class LogLevel(str, enum.Enum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"
    critical = "critical"


ConfigOption = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config; default: the embedded demo",
                                                      envvar="TURNOUT_CONFIG", show_default=False)]


def _print_version(value: bool) -> None:
    if value:
        from turnout import __version__

        typer.echo(f"turnout {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="print turnout's version and exit")] = False,
) -> None:
    # the callback only carries the global --version option; each command does its own work
    pass


def _load(config: Path | None, missing_env: str = "error"):
    """The config (file or embedded demo) or exit 1 with every problem listed."""
    from turnout.config import ConfigError, load_config
    from turnout.demo import demo_config

    try:
        return load_config(config, missing_env=missing_env) if config else demo_config()
    except ConfigError as exc:
        from turnout.pipeline import Router  # the part that parsed is compiled too: every problem in one run

        _print_issues(Router.with_component_issues(exc).issues, str(config))
        raise typer.Exit(1) from None


def _build(config: Path | None, missing_env: str = "error"):
    from turnout.config import ConfigError
    from turnout.pipeline import Router

    try:
        return Router.build(_load(config, missing_env))
    except ConfigError as exc:
        _print_issues(exc.issues, str(config))
        raise typer.Exit(1) from None


def _print_issues(issues, source: str) -> None:
    errors = [i for i in issues if i.severity == "error"]
    for issue in issues:
        style = "red" if issue.severity == "error" else "yellow"
        err.print(f"[{style}]{issue.severity}[/{style}] {issue}", highlight=False, markup=True, soft_wrap=True)
    if errors:
        err.print(f"{source}: {len(errors)} error(s)", highlight=False)


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[Optional[str], typer.Option(help="default: server.host of the config, else 127.0.0.1")] = None,
    port: Annotated[Optional[int], typer.Option(help="default: server.port of the config, else 8080")] = None,
    workers: Annotated[int, typer.Option(min=1, help="processes; each reloads the config on its own")] = 1,
    log_level: Annotated[Optional[LogLevel],
                         typer.Option(help="default: server.log_level", case_sensitive=False)] = None,
    log_format: Annotated[Optional[str], typer.Option(help="text or json (default: server.log_format)")] = None,
    watch: Annotated[bool, typer.Option(help="reload when the config file changes (SIGHUP always reloads)")] = True,
) -> None:
    """Start the router. With no --config it serves the embedded demo (recorded answers, no keys needed)."""
    import tempfile

    import uvicorn

    from turnout.access import per_process_limits
    from turnout.server import logs
    from turnout.server.protocol import BoundedHttpToolsProtocol

    cfg = _load(config)
    if (problem := per_process_limits(cfg, workers)) is not None:
        err.print(f"[red]error[/red] {problem}", highlight=False)
        raise typer.Exit(1)
    log_format = log_format or cfg.server.log_format
    log_level = log_level.value if log_level else cfg.server.log_level
    logs.configure(log_level, log_format)
    os.environ["TURNOUT_LOG_FORMAT"] = log_format
    os.environ["TURNOUT_LOG_LEVEL"] = log_level  # read by each worker (app_from_env)
    host = host or cfg.server.host
    port = port if port is not None else cfg.server.port
    source = str(config) if config else "the embedded demo"
    err.print(f"turnout serving {source} on http://{host}:{port}/v1 (models: {', '.join(cfg.models)}; "
              f"route with model={cfg.routing.aliases[0]!r})", highlight=False)
    if workers > 1:
        if config:
            os.environ["TURNOUT_CONFIG"] = str(config.resolve())
        os.environ["TURNOUT_WATCH"] = "1" if watch else "0"
        # each worker writes its metrics here; /metrics in any worker adds them up
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="turnout-metrics-"))
        # the last file a worker accepted: one started later while the file is rejected serves it (holder.py)
        os.environ.setdefault("TURNOUT_LAST_GOOD",
                              os.path.join(tempfile.mkdtemp(prefix="turnout-config-"), "config.yaml"))
        uvicorn.run("turnout.server.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                    log_level=log_level, access_log=False, http=BoundedHttpToolsProtocol,
                    # uvicorn's 5 s: a worker slow to answer its supervisor's ping on a busy machine (loading its
                    # models, or under load) was killed and started again, over and over
                    timeout_worker_healthcheck=60, timeout_graceful_shutdown=cfg.server.shutdown_grace_s)
        return
    from turnout.config import ConfigError
    from turnout.server import create_app

    try:
        application = create_app(config, watch=watch, settle_heap=True)
    except ConfigError as exc:
        _print_issues(exc.issues, source)
        raise typer.Exit(1) from None
    # SIGTERM: uvicorn stops accepting at once and waits (bounded) for the connections in flight, streams
    # included; the app's lifespan then drains the Router (holder.aclose)
    uvicorn.run(application, host=host, port=port, log_level=log_level, access_log=False, http=BoundedHttpToolsProtocol,
                timeout_graceful_shutdown=cfg.server.shutdown_grace_s)


@app.command("hash-key")
def hash_key(key: Annotated[str, typer.Argument(help="an API key to store in a key file; prefer `-` and stdin")]) -> None:
    """Print the SHA-256 of an API key, for `key_sha256:` in `auth.keys` or a key file (keys are never stored)."""
    import sys

    from turnout.access import digest

    value = sys.stdin.readline().strip() if key == "-" else key
    typer.echo(digest(value))


@app.command()
def validate(file: Annotated[Path, typer.Argument(help="the YAML config to check")]) -> None:
    """Check a config: every problem is printed with its path; exit 1 if any is an error. Unset `env:`
    secrets are warnings here (CI has no secrets); `serve` refuses them."""
    router = _build(file, missing_env="warning")
    asyncio.run(router.aclose())
    _print_issues(router.config.load_warnings + router.warnings, str(file))
    out.print(f"[green]ok[/green] {file}: {len(router.config.models)} models, {len(router.config.signals)} signals, "
              f"{len(router.decisions)} decisions, {len(router.config.load_warnings) + len(router.warnings)} warning(s)",
              highlight=False)


@app.command()
def route(
    prompt: Annotated[str, typer.Argument(help="the user message to route")],
    config: ConfigOption = None,
    model: Annotated[str, typer.Option(help="the model the request asks for")] = "auto",
    system: Annotated[Optional[str], typer.Option(help="a system message")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the explanation as JSON")] = False,
) -> None:
    """Explain where a prompt would go (signals, decisions, candidates), without calling any model."""
    from turnout.context import RoutingContext
    from turnout.errors import TurnoutError

    router = _build(config)
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    ctx = RoutingContext({"model": model, "messages": messages})

    async def run():
        try:
            return (await router.route(ctx)).explanation(ctx)
        finally:
            await router.aclose()

    try:
        explanation = asyncio.run(run())
    except TurnoutError as exc:
        err.print(f"[red]error[/red] {exc.message}")
        raise typer.Exit(1) from None
    if as_json:
        out.print_json(json.dumps(explanation))
        return
    _print_explanation(explanation)


def _print_explanation(e: dict) -> None:
    if e["signals"]:
        table = Table(title="signals", title_justify="left")
        for col in ("signal", "kind", "matched", "score", "µs", "detail"):
            table.add_column(col, justify="right" if col in ("score", "µs") else "left")
        for s in e["signals"]:
            detail = s.get("error") or json.dumps(s.get("detail", {}), ensure_ascii=False)
            table.add_row(s["name"], s["kind"], "yes" if s["matched"] else "no", f"{s['score']:.3f}",
                          f"{s['elapsed_us']:.0f}", detail)
        out.print(table)
    if e["decisions"]:
        table = Table(title="decisions (by priority)", title_justify="left")
        for col in ("decision", "priority", "matched"):
            table.add_column(col)
        for d in e["decisions"]:
            won = d["name"] == e["decision"]
            table.add_row(f"[bold]{d['name']}[/bold]" if won else d["name"], str(d["priority"]),
                          ("yes ← wins" if won else "yes") if d["matched"] else "no")
        out.print(table)
    table = Table(title=f"candidates ({e['algorithm'] or 'direct'})", title_justify="left")
    table.add_column("model")
    table.add_column("score", justify="right")
    for c in e["candidates"]:
        table.add_row(c["model"], f"{c['score']:.4f}")
    out.print(table)
    out.print(f"→ [bold]{e['model']}[/bold] via decision [bold]{e['decision']}[/bold] ({e['reason']}); "
              f"routed in {e['elapsed_us']:.0f} µs", highlight=False)
    if e.get("plan"):  # a decision's plan (turnout/plans) answers with several models, not the one picked
        plan = e["plan"]
        rest = ", ".join(f"{k}={json.dumps(v)}" for k, v in plan.items() if k not in ("name", "models"))
        out.print(f"plan [bold]{plan['name']}[/bold] over {' → '.join(plan['models'])}"
                  f"{f' ({rest})' if rest else ''}", highlight=False)


@app.command()
def models(config: ConfigOption = None) -> None:
    """List the configured models, their providers and prices, and the routing aliases."""
    cfg = _load(config)
    table = Table(title="models", title_justify="left")
    for col in ("name", "provider", "upstream model", "base url", "$/1M in", "$/1M out"):
        table.add_column(col, justify="right" if col.startswith("$") else "left")
    for name, m in cfg.models.items():
        table.add_row(name, m.provider, m.model or name, m.base_url or "-", f"{m.cost.input:g}", f"{m.cost.output:g}")
    out.print(table)
    out.print(f"routing aliases: {', '.join(cfg.routing.aliases)}"
              f"{'' if cfg.routing.allow_direct else ' (direct model names are refused)'}", highlight=False)


@app.command("train-classifier")
def train_classifier(
    data: Annotated[Path, typer.Option(help="CSV or JSONL with a text column and a label column")],
    out_file: Annotated[Path, typer.Option("--out", help="where to write the classifier (.npz)")],
    text_column: Annotated[str, typer.Option(help="column with the prompt text")] = "text",
    label_column: Annotated[str, typer.Option(help="column with the label")] = "label",
    encoder: Annotated[str, typer.Option(help="minilm-static or minilm-onnx")] = "minilm-static",
) -> None:
    """Train a domain/complexity/jailbreak-style classifier on your own labelled prompts. Use it with the
    signal's `artifact:` parameter (labels must include `hard` for complexity, `jailbreak` for jailbreak)."""
    import csv as csv_module

    from turnout.models.classifier import LinearClassifier

    try:
        if data.suffix == ".jsonl":
            rows = [json.loads(line) for line in data.open(encoding="utf-8") if line.strip()]
        else:
            with data.open(newline="", encoding="utf-8") as f:
                rows = list(csv_module.DictReader(f))
    except (OSError, ValueError) as exc:
        err.print(f"[red]error[/red] cannot read {data}: {exc}")
        raise typer.Exit(1) from None
    missing = [c for c in (text_column, label_column) if rows and c not in rows[0]]
    if not rows or missing:
        err.print(f"[red]error[/red] {data}: " + (f"no column {', '.join(missing)} (columns: {', '.join(rows[0])})"
                                                  if rows else "no rows"))
        raise typer.Exit(1)
    texts = [str(r[text_column]) for r in rows]
    labels = [str(r[label_column]) for r in rows]
    if len(set(labels)) < 2:
        err.print(f"[red]error[/red] {data}: column {label_column} needs at least two different labels")
        raise typer.Exit(1)
    model = LinearClassifier.fit(texts, labels, encoder=encoder, meta={"trained_on": str(data), "rows": len(rows)})
    out_file.parent.mkdir(parents=True, exist_ok=True)
    model.save(out_file)
    out.print(f"wrote {out_file}: {len(rows)} rows, labels {', '.join(model.labels)}")


from turnout import cli_eval, cli_replay, cli_scorer, cli_signals  # noqa: E402  (train/eval, replay, eval-signals)

cli_eval.register(app)
cli_signals.register(app)
cli_replay.register(app)
cli_scorer.register(app)

if __name__ == "__main__":
    app()
