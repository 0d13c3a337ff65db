"""The console adapter: the embedded default, no token needed."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from bot.answer import Answer, Answerer
from bot.config import Settings
from bot.conversation import ConversationalAnswerer, Conversations
from bot.render import render_sources_text, render_text

HELP = """Ask a question about the dossier in plain words, e.g.
  Did China agree to send weapons to Russia?
Follow-ups are read against the conversation: "what did he say next?", "and Beijing?",
"why?", "more".
Commands:
  /more      further quotes on the last question
  /new       start a new conversation (forget the earlier questions)
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
    talk = ConversationalAnswerer(answerer, Conversations(ttl=settings.conversation_ttl))
    for raw in lines:
        text = raw.strip()
        if not text:
            continue
        reply = handle(text, answerer, settings, talk)
        if reply is None:
            break
        write(reply)
        write("")


CONVERSATION = "console"


def handle(text: str, answerer: Answerer, settings: Settings,
           talk: ConversationalAnswerer | None = None) -> str | None:
    """The reply to one console line; None means quit. With ``talk`` the lines form one
    conversation (follow-ups, /more); without it each question stands alone."""
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
    if command == "/new":
        if talk is not None:
            talk.conversations = Conversations(ttl=talk.conversations.ttl)
        return "New conversation: earlier questions are forgotten."
    if command == "/more":
        if talk is None:
            return "Nothing to continue: ask a question first."
        return _shown(talk.more(CONVERSATION))
    if command.startswith("/"):
        return f"Unknown command {text.split()[0]!r}. {HELP}"
    answerer.reload_if_changed()
    if talk is None:
        return render_text(answerer.ask(text))
    return _shown(talk.ask(text, CONVERSATION))


def _shown(answer: Answer) -> str:
    """The answer, with how a follow-up was read and whether /more has further quotes."""
    out = render_text(answer)
    if answer.read_as and answer.read_as != answer.question:
        out = f"(read as: {answer.read_as})\n{out}"
    if answer.has_more:
        out += "\n(/more for further quotes)"
    return out


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
