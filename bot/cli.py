"""The `dossier-bot` command line: one click group with verbs; `--json` wherever scripts read."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from bot.config import ConfigError, Settings

log = logging.getLogger("dossier_bot")


class Failure(click.ClickException):
    """A one-line error for the user (no traceback), exit status 1."""

    def show(self, file=None) -> None:
        click.echo(f"Error: {self.message}", err=True)


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Turn the errors a user can fix into one clear line instead of a traceback."""
    from index.embed import ModelError
    from index.store import IndexError_

    try:
        yield
    except (ConfigError, ModelError, IndexError_, FileNotFoundError) as exc:
        raise Failure(str(exc)) from None


def load_settings(**overrides: object) -> Settings:
    with friendly_errors():
        return Settings.from_env().with_overrides(**overrides)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dossier-bot")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def main(verbose: int) -> None:
    """Ask questions about a dossier of news articles; get verbatim quotes with sources.

    \b
    Quick start:
      dossier-bot index build        # index the articles in ./corpus
      dossier-bot ask "Did China agree to send weapons to Russia?"
      dossier-bot chat               # interactive console chat
    """
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(logging.DEBUG, level),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


corpus_option = click.option(
    "--corpus", "corpus", type=click.Path(path_type=Path, file_okay=False),
    help="Folder of articles (default: $DOSSIER_CORPUS_DIR or ./corpus).")
index_option = click.option(
    "--index", "index_dir", type=click.Path(path_type=Path, file_okay=False),
    help="Index folder (default: $DOSSIER_INDEX_DIR or ./.dossier/index).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@main.group("index")
def index_group() -> None:
    """Build and inspect the search index of the dossier."""


@index_group.command("build")
@corpus_option
@index_option
@json_option
def index_build(corpus: Path | None, index_dir: Path | None, as_json: bool) -> None:
    """Index new and changed articles; drop removed ones (incremental, atomic).

    Only new or changed articles are embedded. The new index is switched in atomically:
    a running bot keeps answering from the previous one until the switch, and a build
    that is interrupted leaves the previous index in service.
    """
    from bot.progress import embedding_progress
    from bot.runtime import make_live_index

    settings = load_settings(corpus_dir=corpus, index_dir=index_dir)
    with friendly_errors():
        live = make_live_index(settings)
        with embedding_progress(enabled=not as_json) as progress:
            report = _build(live, settings, progress)
    for p in report.problems:
        click.echo(f"Skipped {p.path}: {p.reason}", err=True)
    if as_json:
        click.echo(json.dumps(report.as_dict()))
        return
    if not report.changed:
        click.echo(f"Index is up to date: {report.articles} articles, {report.chunks} passages "
                   f"({report.seconds:.2f} s).")
    else:
        click.echo(f"Indexed {report.articles} articles, {report.chunks} passages: "
                   f"{report.added} added, {report.updated} changed, {report.removed} removed, "
                   f"{report.embedded} passages embedded in {report.seconds:.1f} s.")


def _build(live, settings: Settings, progress):
    from index.build import build_index, require_corpus

    require_corpus(settings.corpus_dir)  # before the model loads: fail fast
    return build_index(settings.corpus_dir, settings.index_dir, live.embedder, progress=progress)


@index_group.command("status")
@corpus_option
@index_option
@json_option
def index_status(corpus: Path | None, index_dir: Path | None, as_json: bool) -> None:
    """Show what the index holds and which corpus files changed since the last build."""
    from bot.status import index_status as compute

    settings = load_settings(corpus_dir=corpus, index_dir=index_dir)
    with friendly_errors():
        status = compute(settings.corpus_dir, settings.index_dir)
    if as_json:
        click.echo(json.dumps(status))
        return
    if not status["built"]:
        click.echo(f"No index at {settings.index_dir}. Build it with `dossier-bot index build`.")
        return
    click.echo(f"Index:     {settings.index_dir} (generation {status['generation']})")
    click.echo(f"Built:     {status['built_at']}")
    click.echo(f"Model:     {status['model']}")
    click.echo(f"Articles:  {status['articles']}   Passages: {status['passages']}")
    pending = status["added"] + status["changed"] + status["removed"]
    if not pending:
        click.echo("Corpus:    up to date")
    else:
        for key in ("added", "changed", "removed"):
            for name in status[key]:
                click.echo(f"  {key:8} {name}")
        click.echo("Run `dossier-bot index build` to index these changes.")
    for item in status.get("unreadable", []):
        click.echo(f"  skipped  {item['path']}: {item['reason']}")


@main.command("ask")
@click.argument("question")
@json_option
@corpus_option
@index_option
def ask(question: str, as_json: bool, corpus: Path | None, index_dir: Path | None) -> None:
    """Answer QUESTION with verbatim quotes; `-` reads one question per line from stdin.

    With `--json -`, the model is loaded once and one JSON object is printed per input line.
    A line may also be a JSON object {"question": "...", "conversation": "ID"}: lines with
    the same ID are one conversation, in order, and later ones are read as follow-ups
    ("what did he say next?", "and Beijing?", "why?").
    """
    from bot.conversation import ConversationalAnswerer
    from bot.render import answer_to_json, render_text
    from bot.runtime import make_answerer

    settings = load_settings(corpus_dir=corpus, index_dir=index_dir)
    with friendly_errors():
        answerer = ConversationalAnswerer(make_answerer(settings))
    questions = _stdin_questions() if question == "-" else iter([(question, None)])
    for q, conversation in questions:
        answer = answerer.ask(q, conversation)
        if as_json:
            out = answer_to_json(answer)
            if conversation is not None:
                out.update(conversation=conversation, read_as=answer.read_as,
                           more=answer.has_more)
            click.echo(json.dumps(out, ensure_ascii=False))
            sys.stdout.flush()
        else:
            click.echo(render_text(answer))
            if question == "-":
                click.echo()


def _stdin_questions() -> Iterator[tuple[str, str | None]]:
    # Every input line gets exactly one output object (blank ones a reason), so scripts
    # can pair questions and answers by line number.
    for line in sys.stdin:
        text = line.rstrip("\r\n")
        yield _conversation_line(text) if text.lstrip().startswith("{") else (text, None)


def _conversation_line(text: str) -> tuple[str, str | None]:
    """`{"question": ..., "conversation": ...}`; anything else is read as a plain question."""
    try:
        raw = json.loads(text)
    except ValueError:
        return text, None
    if not isinstance(raw, dict) or not isinstance(raw.get("question"), str):
        return text, None
    conversation = raw.get("conversation")
    return raw["question"], None if conversation is None else str(conversation)


@main.command("chat")
@corpus_option
@index_option
def chat(corpus: Path | None, index_dir: Path | None) -> None:
    """Chat with the dossier in the terminal (no token needed). /help lists commands."""
    from bot.console import run_console
    from bot.runtime import make_answerer

    settings = load_settings(corpus_dir=corpus, index_dir=index_dir)
    with friendly_errors():
        answerer = make_answerer(settings)
    run_console(answerer, settings)


@main.command("sources")
@index_option
@json_option
def sources(index_dir: Path | None, as_json: bool) -> None:
    """List the articles of the dossier."""
    from bot.render import render_sources_text
    from bot.runtime import make_answerer

    settings = load_settings(index_dir=index_dir)
    with friendly_errors():
        items = make_answerer(settings).sources()
    if as_json:
        click.echo(json.dumps([{**s.article.meta(), "passages": s.passages} for s in items]))
    else:
        click.echo(render_sources_text(items))


@main.command("eval")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@index_option
@corpus_option
@json_option
def evaluate(file: Path, index_dir: Path | None, corpus: Path | None, as_json: bool) -> None:
    """Score answers against a JSONL file of {"q", "doc", "phrase"} lines.

    strict: the first quote contains the phrase and comes from the expected article;
    lenient: any quote shown contains it; refusal: off-topic questions (doc null) declined,
    answerable ones not.
    """
    from bot.evaluate import EvalFileError, load_cases, render_report, run_eval
    from bot.runtime import make_answerer

    settings = load_settings(index_dir=index_dir, corpus_dir=corpus)
    try:
        cases = load_cases(file)
    except EvalFileError as exc:
        raise Failure(str(exc)) from None
    with friendly_errors():
        answerer = make_answerer(settings)
    started = time.perf_counter()
    report = run_eval(answerer, cases)
    if as_json:
        click.echo(json.dumps(report.as_dict()))
    else:
        click.echo(render_report(report, time.perf_counter() - started))


@main.command("feedback")
@json_option
def feedback(as_json: bool) -> None:
    """Summarise the 👍/👎 votes given to answers in Slack and Discord."""
    from bot.feedback import FeedbackStore

    settings = load_settings()
    store = FeedbackStore(settings.feedback_path)
    summary = store.summary()
    if as_json:
        click.echo(json.dumps({"total": summary.total, "up": summary.up, "down": summary.down,
                               "by_platform": summary.by_platform,
                               "most_downvoted": summary.worst}))
        return
    if not summary.total:
        click.echo(f"No votes yet ({settings.feedback_path}).")
        return
    share = 100.0 * summary.up / summary.total
    click.echo(f"{summary.total} votes: {summary.up} 👍, {summary.down} 👎 ({share:.0f}% helpful)")
    for platform, (up, down) in sorted(summary.by_platform.items()):
        click.echo(f"  {platform}: {up} 👍, {down} 👎")
    if summary.worst:
        click.echo("Most 👎:")
        for q, n in summary.worst:
            click.echo(f"  {n}× {q}")


def _register_extensions() -> None:
    from bot import cli_serve

    cli_serve.register(main)


_register_extensions()
