"""The console adapter: the embedded default, no token needed."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from prompt_toolkit.history import FileHistory, History, InMemoryHistory

from bot.answer import Answer, Answerer
from bot.config import Settings
from bot.conversation import NOTHING_TO_CONTINUE, ConversationalAnswerer, Conversations
from bot.render import one_line, render_sources_text, render_text

log = logging.getLogger(__name__)

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
        try:
            report = answerer.rebuild(settings.corpus_dir)
        except OSError as exc:  # a read-only index folder, a full disk: say so, keep chatting
            from bot.runtime import os_problem

            return f"Could not rebuild the index: {os_problem(exc)}"
        done = (f"The index is up to date ({report.articles} articles)." if not report.changed
                else f"Reindexed: {report.articles} articles, {report.chunks} passages, "
                     f"{report.embedded} embedded, {report.removed} removed.")
        skipped = [f"  skipped {one_line(p.path)}: {one_line(p.reason)}"
                   for p in report.problems]
        return "\n".join([done, *skipped])
    if command == "/new":
        if talk is not None:
            talk.conversations = Conversations(ttl=talk.conversations.ttl)
        return "New conversation: earlier questions are forgotten."
    if command == "/more":
        # No question yet, or none since /new: there is nothing to continue (not "expired").
        if talk is None or talk.conversations.get(CONVERSATION, create=False) is None:
            return NOTHING_TO_CONTINUE
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
    if answer.read_differently:
        out = f"(read as: {answer.read_differently})\n{out}"
    if answer.has_more:
        out += "\n(/more for further quotes)"
    return out


def _plain_lines() -> Iterator[str]:
    for line in stdin_lines():
        yield line.rstrip("\r\n")


def stdin_lines() -> Iterator[str]:
    """Lines of standard input in its encoding, bytes it cannot decode shown as U+FFFD: one
    undecodable line (a binary file piped in) must not end the session. A byte-order mark
    at the start is dropped."""
    raw = getattr(sys.stdin, "buffer", None)
    if raw is None:  # a text-only stream (an embedding program's)
        yield from sys.stdin
        return
    encoding = getattr(sys.stdin, "encoding", None) or "utf-8"
    for n, line in enumerate(raw):
        text = line.decode(encoding, "replace")
        yield text.lstrip("\ufeff") if n == 0 else text


def history_candidates(settings: Settings) -> list[Path]:
    """Where the chat history may be kept, best first: beside the index, then the user's
    state folder. In a read-only container (compose's ``read_only: true``) neither may be
    writable; the history is then kept in memory for the session."""
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return [Path(settings.index_dir).parent / "chat_history",
            state / "dossier-bot" / "chat_history"]


def make_history(candidates: Iterable[Path]) -> History:
    """A prompt_toolkit history on the first path that can be written, else in memory."""
    for path in candidates:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Opening for append is the real test (a read-only file system refuses it even
            # to root); it creates nothing but the file the history needs anyway.
            with open(path, "ab"):
                pass
        except OSError as exc:
            log.debug("chat history cannot be kept at %s: %s", path, exc)
            continue
        return _TolerantFileHistory(path)
    log.info("chat history is kept in memory only (no writable place for it)")
    return InMemoryHistory()


class _TolerantFileHistory(FileHistory):
    """A FileHistory whose failures to read or write (disk full, file system remounted
    read-only) are logged once and otherwise ignored: the history is a convenience and must
    never break the chat. Lines stay in memory for the session either way."""

    def __init__(self, filename: Path) -> None:
        super().__init__(str(filename))
        self._warned = False

    def load_history_strings(self) -> Iterable[str]:
        try:
            return list(super().load_history_strings())
        except OSError as exc:
            self._warn(exc)
            return []

    def store_string(self, string: str) -> None:
        try:
            super().store_string(string)
        except OSError as exc:
            self._warn(exc)

    def _warn(self, exc: OSError) -> None:
        if not self._warned:
            self._warned = True
            log.warning("chat history not saved to %s (%s); kept in memory only",
                        self.filename, exc)


def _prompt_lines(settings: Settings, **session_options: Any) -> Iterator[str]:
    """Lines typed at the prompt; ``session_options`` (input, output) are for tests."""
    from prompt_toolkit import PromptSession

    session: PromptSession[str] = PromptSession(
        history=make_history(history_candidates(settings)), **session_options)
    while True:
        try:
            yield session.prompt("ask> ")
        except KeyboardInterrupt:
            continue
        except EOFError:
            return
