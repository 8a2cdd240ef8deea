"""The `turnout` command line: serve, validate, route, models."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="turnout: an OpenAI-compatible LLM router.", no_args_is_help=True, add_completion=False)
out = Console()
err = Console(stderr=True)

ConfigOption = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config; default: the embedded demo",
                                                      envvar="TURNOUT_CONFIG", show_default=False)]


def _load(config: Path | None):
    """The config (file or embedded demo) or exit 1 with every problem listed."""
    from turnout.config import ConfigError, load_config
    from turnout.demo import demo_config

    try:
        return load_config(config) if config else demo_config()
    except ConfigError as exc:
        _print_issues(exc.issues, str(config))
        raise typer.Exit(1) from None


def _build(config: Path | None):
    from turnout.config import ConfigError
    from turnout.pipeline import Router

    try:
        return Router.build(_load(config))
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
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
    watch: Annotated[bool, typer.Option(help="reload when the config file changes (SIGHUP always reloads)")] = True,
) -> None:
    """Start the router. With no --config it serves the embedded demo (recorded answers, no keys needed)."""
    import uvicorn

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    cfg = _load(config)
    host = host or cfg.server.host
    port = port if port is not None else cfg.server.port
    source = str(config) if config else "the embedded demo"
    err.print(f"turnout serving {source} on http://{host}:{port}/v1 (models: {', '.join(cfg.models)}; "
              f"route with model={cfg.routing.aliases[0]!r})", highlight=False)
    if workers > 1:
        if config:
            os.environ["TURNOUT_CONFIG"] = str(config.resolve())
        os.environ["TURNOUT_WATCH"] = "1" if watch else "0"
        uvicorn.run("turnout.server.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                    log_level=log_level, access_log=False)
        return
    from turnout.config import ConfigError
    from turnout.server import create_app

    try:
        application = create_app(config, watch=watch)
    except ConfigError as exc:
        _print_issues(exc.issues, source)
        raise typer.Exit(1) from None
    uvicorn.run(application, host=host, port=port, log_level=log_level, access_log=False)


@app.command()
def validate(file: Annotated[Path, typer.Argument(help="the YAML config to check")]) -> None:
    """Check a config: every problem is printed with its path; exit 1 if any is an error."""
    router = _build(file)
    asyncio.run(router.aclose())
    _print_issues(router.warnings, str(file))
    out.print(f"[green]ok[/green] {file}: {len(router.config.models)} models, {len(router.config.signals)} signals, "
              f"{len(router.decisions)} decisions, {len(router.warnings)} warning(s)", highlight=False)


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


if __name__ == "__main__":
    app()
