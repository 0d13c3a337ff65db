"""The console adapter: the embedded default, no token needed."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from bot.answer import Answerer
from bot.config import Settings
from bot.render import render_sources_text, render_text

HELP = """Ask a question about the dossier in plain words, e.g.
  Did China agree to send weapons to Russia?
Commands:
  /sources   list the articles in the dossier
  /reindex   rebuild the index from the corpus folder
  /help      this help
  /quit      leave (Ctrl-D works too)"""


def run_console(answerer: Answerer, settings: Settings, *,
                lines: Iterator[str] | None = None,
                write: Callable[[str], None] | None = None) -> None:
    write = write or (lambda text: print(text, flush=True))
    interactive = lines is None and sys.stdin.isatty() and sys.stdout.isatty()
    if lines is None:
        lines = _prompt_lines(settings) if interactive else _plain_lines()
    n = len(answerer.sources())
    write(f"dossier-bot: {n} article(s) loaded. Ask a question, or /help.")
    for raw in lines:
        text = raw.strip()
        if not text:
            continue
        reply = handle(text, answerer, settings)
        if reply is None:
            break
        write(reply)
        write("")


def handle(text: str, answerer: Answerer, settings: Settings) -> str | None:
    """The reply to one console line; None means quit."""
    command = text.lower()
    if command in ("/quit", "/exit", "/q"):
        return None
    if command in ("/help", "/?", "help"):
        return HELP
    if command == "/sources":
        return render_sources_text(answerer.sources())
    if command == "/reindex":
        report = answerer.rebuild(settings.corpus_dir)
        if not report.changed:
            return f"The index is up to date ({report.articles} articles)."
        return (f"Reindexed: {report.articles} articles, {report.chunks} passages, "
                f"{report.embedded} embedded, {report.removed} removed.")
    if command.startswith("/"):
        return f"Unknown command {text.split()[0]!r}. {HELP}"
    answerer.reload_if_changed()
    return render_text(answerer.ask(text))


def _plain_lines() -> Iterator[str]:
    for line in sys.stdin:
        yield line.rstrip("\n")


def _prompt_lines(settings: Settings) -> Iterator[str]:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    history_path = Path(settings.index_dir).parent / "chat_history"
    try:
        history_path.parent.mkdir(parents=True, exist_ok=True)
        history = FileHistory(str(history_path))
    except OSError:
        history = InMemoryHistory()
    session: PromptSession[str] = PromptSession(history=history)
    while True:
        try:
            yield session.prompt("ask> ")
        except KeyboardInterrupt:
            continue
        except EOFError:
            return
