"""``dossier-bot serve [slack|discord]``: run the chat adapters with health, metrics and watch."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from bot.config import ConfigError, Settings

_FORMATS = click.Choice(["text", "json"])
_LEVELS = click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False)


def _common(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options every serve command takes, so they work before or after the platform name."""
    fn = click.option("--watch/--no-watch", default=None,
                      help="Rebuild the index when a corpus file is added, edited or removed "
                           "(default: DOSSIER_WATCH).")(fn)
    fn = click.option("--health-port", type=click.IntRange(0, 65535), default=None,
                      help="Port of /healthz, /readyz, /metrics; 0 picks a free one "
                           "(default: DOSSIER_HEALTH_PORT or 8080).")(fn)
    fn = click.option("--log-format", type=_FORMATS, default=None,
                      help="text or one JSON object per line (default: DOSSIER_LOG_FORMAT).")(fn)
    fn = click.option("--log-level", type=_LEVELS, default=None,
                      help="Default: DOSSIER_LOG_LEVEL or INFO.")(fn)
    return fn


@click.group("serve", invoke_without_command=True)
@_common
@click.pass_context
def serve(ctx: click.Context, **options: Any) -> None:
    """Serve every platform whose token is set, in one process sharing one index.

    Slack is served when SLACK_BOT_TOKEN is set (Socket Mode with SLACK_APP_TOKEN, else
    HTTP on DOSSIER_SLACK_PORT with SLACK_SIGNING_SECRET), Discord when DISCORD_TOKEN is
    set. SIGTERM, SIGHUP or Ctrl-C stops taking questions, answers those in flight, and exits 0.
    """
    ctx.ensure_object(dict)
    ctx.obj["serve_options"] = options
    if ctx.invoked_subcommand is None:
        _run(None, options)


@serve.command("slack")
@click.option("--http", "http", is_flag=True, default=None,
              help="Receive events over HTTP (Events API) instead of Socket Mode.")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Port of the Slack HTTP endpoint /slack/events "
                   "(default: DOSSIER_SLACK_PORT or 3000).")
@_common
@click.pass_context
def serve_slack(ctx: click.Context, http: bool | None, port: int | None, **options: Any) -> None:
    """Serve Slack only (Socket Mode when SLACK_APP_TOKEN is set, unless --http)."""
    _run(("slack",), _merge(ctx, options), slack_http=http, slack_port=port)


@serve.command("discord")
@_common
@click.pass_context
def serve_discord(ctx: click.Context, **options: Any) -> None:
    """Serve Discord only."""
    _run(("discord",), _merge(ctx, options))


def _merge(ctx: click.Context, options: dict[str, Any]) -> dict[str, Any]:
    parent = (ctx.obj or {}).get("serve_options", {})
    return {k: v if v is not None else parent.get(k) for k, v in options.items()}


def _run(platforms: tuple[str, ...] | None, options: dict[str, Any], *,
         slack_http: bool | None = None, slack_port: int | None = None) -> None:
    from bot.logs import setup_logging
    from bot.serve import EXIT_CONFIG, EXIT_FAILED, Server
    from index.embed import ModelError
    from index.store import IndexError_

    try:
        settings = Settings.from_env().with_overrides(
            health_port=options.get("health_port"), log_format=options.get("log_format"),
            log_level=(options.get("log_level") or "").upper() or None,
            watch=options.get("watch"))
    except ConfigError as exc:
        _fail(f"{exc}\n(`dossier-bot config check` shows every setting)", EXIT_CONFIG)
    setup_logging(settings.log_format, settings.log_level, secrets=settings.secrets())
    server = Server(settings=settings, platforms=platforms or settings.platforms,
                    slack_http=slack_http, slack_port=slack_port, watch=settings.watch)
    try:
        status = server.run()
    except ConfigError as exc:
        _fail(str(exc), EXIT_CONFIG)
    except (ModelError, IndexError_, FileNotFoundError, OSError) as exc:
        _fail(str(exc), EXIT_FAILED)  # e.g. the health port is taken, the index is damaged
    sys.exit(status)


def _fail(message: str, status: int) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(status)


def register(main: click.Group) -> None:
    """Add ``serve`` (replacing a plainer one) and the operator commands to the main CLI."""
    from bot import cli_ops

    main.add_command(serve)
    cli_ops.register(main)
