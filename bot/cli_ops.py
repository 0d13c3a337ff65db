"""Operator commands ``config check`` and ``index watch``, added to the CLI by ``register``."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from bot.config import (
    VARIABLES,
    ConfigError,
    Settings,
    env_file_path,
    env_file_warnings,
    load_env_file,
    mask,
)
from bot.config import value_source as _source

log = logging.getLogger(__name__)


def check_config(env: dict[str, str] | None = None) -> dict[str, Any]:
    """The effective configuration (secrets masked) with every problem and warning found."""
    env_file = env_file_path()
    if env is None:
        load_env_file(env_file, warn=False)  # its warnings are listed below instead
        env = dict(os.environ)
    problems: list[str] = []
    warnings: list[str] = []
    if os.environ.get("DOSSIER_ENV_FILE") and not env_file.is_file():
        warnings.append(f"DOSSIER_ENV_FILE={str(env_file)!r} does not exist; only the "
                        "environment was read.")
    warnings.extend(env_file_warnings())
    settings: Settings | None = None
    try:
        settings = Settings.from_env(env)
    except ConfigError as exc:
        problems.extend(exc.problems)
    shown = settings.masked() if settings else {}
    typed = settings.typed() if settings else {}
    variables = []
    for var in VARIABLES:
        raw = (env.get(var.name) or "").strip()
        if settings is not None:
            value, text = typed[var.field], shown[var.field]
        else:  # the settings did not load: show what was given, secrets still masked
            value = (mask(raw) if var.secret else raw) if raw else None
            text = mask(raw) if var.secret else (raw or "(default)")
        # "value" is typed (JSON true/8080/null); "shown" is the line `config check` prints.
        variables.append({"name": var.name, "field": var.field, "value": value, "shown": text,
                          "source": _source(var.name) if raw else "default",
                          "secret": var.secret, "help": var.help})
    platforms: list[str] = []
    if settings is not None:
        problems.extend(settings.path_problems())
        for platform in settings.platforms:
            try:
                settings.require_platform(platform)
                platforms.append(platform)
            except ConfigError as exc:
                problems.extend(exc.problems)
        if settings.slack_signing_secret and not settings.slack_bot_token:
            warnings.append("SLACK_SIGNING_SECRET is set but SLACK_BOT_TOKEN is not; Slack "
                            "will not be served until the bot token is set.")
        if settings.slack_app_token and not settings.slack_bot_token:
            warnings.append("SLACK_APP_TOKEN is set but SLACK_BOT_TOKEN is not; Slack "
                            "will not be served until the bot token is set.")
        if not settings.platforms:
            warnings.append("no SLACK_BOT_TOKEN or DISCORD_TOKEN is set: `dossier-bot serve` "
                            "has no platform to serve (`dossier-bot chat` needs none).")
        if not re.search(r"/api/v\d+$", settings.discord_api_url):
            warnings.append(f"DISCORD_API_URL={settings.discord_api_url!r} does not end with "
                            "/api/v<N>; Discord's REST API lives under /api/v10.")
        if not settings.admins:
            warnings.append("DOSSIER_ADMINS is empty: nobody can rebuild the index from chat.")
    return {
        "ok": not problems,
        "env_file": str(env_file) if env_file.is_file() else None,
        "variables": variables,
        "platforms": [
            f"slack ({settings.slack_mode} mode)" if p == "slack" and settings else p
            for p in platforms],
        "problems": problems,
        "warnings": warnings,
    }


@click.group("config")
def config_group() -> None:
    """Inspect the configuration read from the environment and .env."""


@config_group.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def config_check(as_json: bool) -> None:
    """Print the effective configuration with secrets masked; exit 1 if anything is wrong."""
    report = check_config()
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        click.echo(f".env: {report['env_file'] or '(none found; environment only)'}")
        width = max(len(v["name"]) for v in report["variables"])
        for v in report["variables"]:
            click.echo(f"  {v['name']:<{width}}  {v['shown']:<28} {v['source']}")
        click.echo(f"platforms: {', '.join(report['platforms']) or '(none)'}")
        for w in report["warnings"]:
            click.echo(f"warning: {w}")
        for p in report["problems"]:
            click.echo(f"error: {p}", err=True)
        click.echo("configuration OK" if report["ok"] else
                   f"{len(report['problems'])} problem(s): fix them and run this again",
                   err=not report["ok"])
    sys.exit(0 if report["ok"] else 1)


@click.command("watch")
@click.option("--corpus", "corpus", type=click.Path(path_type=Path), default=None,
              help="Corpus folder (default: DOSSIER_CORPUS_DIR or ./corpus).")
@click.option("--index", "index_dir", type=click.Path(path_type=Path), default=None,
              help="Index folder (default: DOSSIER_INDEX_DIR or ./.dossier/index).")
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object per build, as `index build --json` does.")
@click.option("--quiet-seconds", type=click.FloatRange(min=0.05, max=3600.0), default=1.0,
              show_default=True, help="Rebuild once the folder has had no change for this long.")
def watch_cmd(corpus: Path | None, index_dir: Path | None, as_json: bool,
              quiet_seconds: float) -> None:
    """Build the index, then rebuild it whenever a corpus file is added, edited or removed.

    A running `dossier-bot serve` picks the new index up by itself. Stop with Ctrl-C.
    """
    from bot.cli import BadInput, echo_build_report, friendly_errors, load_settings
    from bot.logs import setup_logging
    from bot.watch import index_staleness, watch_corpus

    settings = load_settings(corpus_dir=corpus, index_dir=index_dir)
    setup_logging(settings.log_format, settings.log_level, secrets=settings.secrets())
    if settings.corpus_dir.exists() and not settings.corpus_dir.is_dir():
        raise BadInput(f"{settings.corpus_dir} is a file, not a folder; point --corpus or "
                       "DOSSIER_CORPUS_DIR at the folder that holds the articles.")
    if not settings.corpus_dir.is_dir():
        raise click.ClickException(f"corpus folder {settings.corpus_dir} does not exist; "
                                   "create it or pass --corpus DIR.")
    with friendly_errors():
        build = _index_builder(settings)

    def run_build(_paths: object = None) -> None:
        echo_build_report(build(), settings.corpus_dir, as_json=as_json)

    def stale() -> bool:  # what changed while the first build ran is built next
        return index_staleness(settings.corpus_dir, settings.index_dir,
                               settings.embed_model) is not None

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    with friendly_errors():
        run_build()
    if not as_json:
        click.echo(f"watching {settings.corpus_dir} (Ctrl-C to stop)")
    watch_corpus(settings.corpus_dir, run_build, stop, quiet=quiet_seconds, stale=stale)


def _index_builder(settings: Settings) -> Any:
    """A function that rebuilds the index incrementally and returns its BuildReport.

    The model is loaded once, here; each build embeds only new and changed articles. The
    watcher does not serve, so the index it writes is never loaded here.
    """
    from bot.runtime import make_embedder
    from index.build import build_index

    embedder = make_embedder(settings)
    return lambda: build_index(settings.corpus_dir, settings.index_dir, embedder)


def _settings_or_exit() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        raise click.ClickException(f"{exc}\n(run `dossier-bot config check` to see it all)") \
            from None


def register(main: click.Group) -> None:
    """Add the operator commands to the main CLI (called once from ``bot.cli``)."""
    main.add_command(config_group)
    index_group = main.commands.get("index")
    if isinstance(index_group, click.Group):
        index_group.add_command(watch_cmd)
