"""The `dossier-bot` command line: one click group with verbs; `--json` wherever scripts read."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from bot.config import ConfigError, Settings

log = logging.getLogger("dossier_bot")


# Exit statuses, the same for every command (README "Exit status"): scripts branch on them.
EXIT_OK = 0
EXIT_FAILURE = 1  # the command could not do its work: no index, no model, a bad config
EXIT_USAGE = 2  # the command line or its input is wrong (click uses 2 for usage errors too)


class Failure(click.ClickException):
    """A one-line error for the user (no traceback), exit status 1."""

    exit_code = EXIT_FAILURE

    def show(self, file=None) -> None:
        click.echo(f"Error: {self.message}", err=True)


class BadInput(Failure):
    """Input the command cannot use (an empty question): exit status 2, like a usage error."""

    exit_code = EXIT_USAGE


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Turn the errors a user can fix into one clear line instead of a traceback."""
    from index.embed import ModelError
    from index.store import IndexError_

    try:
        yield
    except (ConfigError, ModelError, IndexError_, FileNotFoundError) as exc:
        raise Failure(str(exc)) from None
    except OSError as exc:  # a read-only or full disk, a permission: the machine's, not ours
        from bot.runtime import os_problem

        raise Failure(os_problem(exc)) from None


def load_settings(**overrides: object) -> Settings:
    with friendly_errors():
        settings = Settings.from_env().with_overrides(**overrides)
    if settings.index_dir.exists() and not settings.index_dir.is_dir():
        raise BadInput(f"{settings.index_dir} is a file, not a folder; point --index or "
                       "DOSSIER_INDEX_DIR at a folder (it is created when missing).")
    return settings


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
    echo_build_report(report, settings.corpus_dir, as_json=as_json)


def echo_build_report(report, corpus_dir: Path, *, as_json: bool) -> None:
    """The one report of a build, for `index build` and every rebuild of `index watch`:
    skipped files and an empty corpus on stderr, the figures (or one JSON object) on stdout."""
    from bot.render import one_line

    for p in report.problems:  # file names come from anyone who can drop a file in
        click.echo(f"Skipped {one_line(p.path)}: {one_line(p.reason)}", err=True)
    if not report.articles:
        # An index of nothing answers every question with "not covered": say why, loudly.
        click.echo(f"Warning: no articles in {corpus_dir}; the index is empty. Put articles "
                   "(.md, .txt, .html, .pdf, .docx) in it and build again.", err=True)
    if as_json:
        click.echo(json.dumps(report.as_dict()))
    elif not report.changed:
        click.echo(f"Index is up to date: {report.articles} articles, {report.chunks} passages "
                   f"({report.seconds:.2f} s).")
    else:
        click.echo(f"Indexed {report.articles} articles, {report.chunks} passages: "
                   f"{report.added} added, {report.updated} changed, {report.removed} removed, "
                   f"{report.embedded} passages embedded in {report.seconds:.1f} s.")
    sys.stdout.flush()


def _build(live, settings: Settings, progress):
    from index.build import build_index, require_corpus

    require_corpus(settings.corpus_dir)  # before the model loads: fail fast
    return build_index(settings.corpus_dir, settings.index_dir, live.embedder, progress=progress)


@index_group.command("status")
@corpus_option
@index_option
@json_option
def index_status(corpus: Path | None, index_dir: Path | None, as_json: bool) -> None:
    """Show what the index holds and which corpus files changed since the last build.

    Exits 1 when there is no index yet, or it is damaged (the JSON object is printed all
    the same).
    """
    from bot.render import one_line
    from bot.status import index_status as compute

    settings = load_settings(corpus_dir=corpus, index_dir=index_dir)
    with friendly_errors():
        status = compute(settings.corpus_dir, settings.index_dir)
    if as_json:
        click.echo(json.dumps(status))
        if not status["built"] or status["damaged"]:
            sys.exit(EXIT_FAILURE)
        return
    if not status["built"]:
        click.echo(f"No index at {settings.index_dir}. Build it with `dossier-bot index build"
                   f"{'' if index_dir is None else f' --index {index_dir}'}`.", err=True)
        sys.exit(EXIT_FAILURE)
    click.echo(f"Index:     {settings.index_dir} (generation {status['generation']})")
    click.echo(f"Built:     {status['built_at']}")
    click.echo(f"Model:     {status['model']}")
    click.echo(f"Articles:  {status['articles']}   Passages: {status['passages']}")
    pending = status["added"] + status["changed"] + status["removed"]
    if status["damaged"]:
        click.echo(f"Damaged:   segment(s) {', '.join(status['damaged'])}: questions fail until "
                   "`dossier-bot index build` repairs them (only those are re-embedded).")
    if not status["cut_current"]:
        click.echo("Passages:  cut by another release of the bot: `dossier-bot index build` "
                   "cuts and embeds every article again.")
    if not pending:
        click.echo("Corpus:    up to date")
    else:
        for key in ("added", "changed", "removed"):
            for name in status[key]:
                click.echo(f"  {key:8} {one_line(name)}")
        click.echo("Run `dossier-bot index build` to index these changes.")
    for item in status.get("unreadable", []) + status.get("ignored", []):
        click.echo(f"  skipped  {one_line(item['path'])}: {one_line(item['reason'])}")
    if status["damaged"]:
        sys.exit(EXIT_FAILURE)


@main.command("ask")
@click.argument("question")
@json_option
@corpus_option
@index_option
def ask(question: str, as_json: bool, corpus: Path | None, index_dir: Path | None) -> None:
    """Answer QUESTION with verbatim quotes; `-` reads one question per line from stdin.

    Without an index yet, one is built from the corpus folder first (said on stderr).

    With `--json -`, the model is loaded once and one JSON object is printed per input line.
    A line may also be a JSON object {"question": "...", "conversation": "ID"}: lines with
    the same ID are one conversation, in order, and later ones are read as follow-ups
    ("what did he say next?", "and Beijing?", "why?"). JSON that is not such an object (no
    "question" string, or an array) gets a reason instead of an answer.
    """
    from bot.answer import Answer, question_problem
    from bot.conversation import ConversationalAnswerer
    from bot.render import answer_to_json, render_text
    from bot.runtime import make_answerer

    settings = load_settings(corpus_dir=corpus, index_dir=index_dir)
    problem = None if question == "-" else question_problem(question)
    if problem:
        # Checked before the model loads (seconds): bad input is answered at once, exit 2.
        if as_json:
            click.echo(json_line(answer_to_json(Answer(question=question, reason=problem))))
        raise BadInput(problem)
    with friendly_errors():
        plain = make_answerer(settings)
        answerer = ConversationalAnswerer(plain)
    questions = _stdin_questions() if question == "-" else iter([(question, None, None)])
    for q, conversation, bad_line in questions:
        if question == "-":
            # A long-running reader: a generation built meanwhile is picked up here.
            plain.reload_if_changed()
        answer = (Answer(question=q, reason=bad_line) if bad_line
                  else answerer.ask(q, conversation))
        if as_json:
            out = answer_to_json(answer)
            if conversation is not None:
                out.update(conversation=conversation, read_as=answer.read_as,
                           more=answer.has_more)
            click.echo(json_line(out))
            sys.stdout.flush()
        else:
            click.echo(render_text(answer))
            if question == "-":
                click.echo()


# A JSON line that is not an object with a "question" string: answered with this reason.
BAD_JSON_LINE = 'a JSON line needs a "question" string, e.g. {"question": "…"}'


def json_line(obj: object) -> str:
    """One JSON object on one line, UTF-8 kept readable: the characters that would break a
    line for a reader splitting on every line break (U+2028/9, NEL), act on a terminal (C1
    controls, bidi overrides) or cannot be written as UTF-8 (lone surrogates, from
    undecodable input) are written as escapes, which JSON reads back the same."""
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}",
                               json.dumps(obj, ensure_ascii=False))


_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069"
                             "\ud800-\udfff]")  # lone surrogates: no UTF-8 holds them


def _stdin_questions() -> Iterator[tuple[str, str | None, str | None]]:
    # Every input line gets exactly one output object (blank ones a reason), so scripts
    # can pair questions and answers by line number.
    from bot.console import stdin_lines

    for line in stdin_lines():
        text = line.rstrip("\r\n")
        head = text.lstrip()[:1]
        yield _conversation_line(text) if head in ("{", "[") else (text, None, None)


def _conversation_line(text: str) -> tuple[str, str | None, str | None]:
    """(question, conversation, problem) of `{"question": ..., "conversation": ...}`; text
    that is not JSON ("[Urgent] who…") is read as a plain question, and JSON that is not an
    object with a "question" string (`{"q": …}`, `["…", "…"]`) is refused (``BAD_JSON_LINE``)
    rather than searched for its brackets and quotation marks."""
    try:
        raw = json.loads(text)
    except ValueError:
        return text, None, None
    if not isinstance(raw, dict):
        return text, None, BAD_JSON_LINE
    if not isinstance(raw.get("question"), str):
        return text, None, BAD_JSON_LINE
    conversation = raw.get("conversation")
    return raw["question"], None if conversation is None else str(conversation), None


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
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, path_type=Path))
@index_option
@corpus_option
@json_option
@click.option("--misses", is_flag=True, help="With dossiers: list every miss before the table.")
def evaluate(files: tuple[Path, ...], index_dir: Path | None, corpus: Path | None,
             as_json: bool, misses: bool) -> None:
    """Score answers against question files and dossiers.

    \b
    FILES are any of:
      a JSONL file of {"q", "doc", "phrase"} lines, asked of --corpus / --index;
      a dossier folder (corpus/ and questions.jsonl);
      a folder of dossiers, e.g. ../shared/eval/dossiers.
    One JSONL file alone prints every miss and the figures. Otherwise each dossier gets an
    index of its own (kept under the index folder's eval/ sibling, rebuilt incrementally) and
    the figures are printed per dossier and in total.

    strict: the first quote contains the phrase and comes from the expected article;
    lenient: any quote shown contains it; refusal: off-topic questions (doc null) declined,
    answerable ones not. Phrases match with white space collapsed and case ignored.
    """
    from bot.evaluate import (
        Dossier,
        EvalFileError,
        check_docs,
        find_dossiers,
        load_cases,
        render_report,
        render_suite,
        run_eval,
        run_suite,
    )
    from bot.runtime import make_answerer, make_embedder

    settings = load_settings(index_dir=index_dir, corpus_dir=corpus)
    if len(files) == 1 and files[0].is_file():
        try:
            cases = load_cases(files[0])
            check_docs(cases, settings.corpus_dir)
        except EvalFileError as exc:
            raise BadInput(str(exc) if str(exc).startswith(str(files[0]))
                           else f"{files[0]}: {exc}") from None
        with friendly_errors():
            answerer = make_answerer(settings)
        started = time.perf_counter()
        report = run_eval(answerer, cases)
        if as_json:
            click.echo(json.dumps(report.as_dict()))
        else:
            click.echo(render_report(report, time.perf_counter() - started))
        return
    dossiers: list[Dossier] = []
    try:
        for f in files:
            found = ([Dossier(f.stem, settings.corpus_dir, f)] if f.is_file()
                     else find_dossiers(f))
            for d in found:  # a bad line or doc fails before any model loads
                try:
                    check_docs(load_cases(d.questions), d.corpus)
                except EvalFileError as exc:
                    raise EvalFileError(str(exc) if str(exc).startswith(str(d.questions))
                                        else f"{d.questions}: {exc}") from None
            dossiers += found
    except EvalFileError as exc:
        raise BadInput(str(exc)) from None
    names = [d.name for d in dossiers]
    if len(set(names)) != len(names):
        raise Failure(f"two dossiers share a name: {', '.join(sorted(names))}")
    started = time.perf_counter()
    with friendly_errors():
        suite = run_suite(dossiers, make_embedder(settings), settings.index_dir.parent / "eval",
                          say=lambda msg: click.echo(msg, err=True))
    if as_json:
        click.echo(json.dumps(suite.as_dict()))
    else:
        click.echo(render_suite(suite, time.perf_counter() - started, misses=misses))


@main.command("feedback")
@json_option
def feedback(as_json: bool) -> None:
    """Summarise the 👍/👎 votes given to answers in Slack and Discord."""
    from bot.feedback import FeedbackStore

    settings = load_settings()
    if not settings.feedback_path.is_file():  # a summary creates nothing
        if as_json:
            click.echo(json.dumps({"total": 0, "up": 0, "down": 0, "by_platform": {},
                                   "most_downvoted": []}))
        else:
            click.echo(f"No votes yet ({settings.feedback_path} does not exist).")
        return
    with friendly_errors():
        summary = FeedbackStore(settings.feedback_path).summary()
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
