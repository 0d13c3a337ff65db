"""Answers, independent of any chat platform: quotes with their source, or a reason to decline."""

from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from index.model import Article

if TYPE_CHECKING:
    from collections.abc import Callable

    from index.build import BuildReport
    from index.live import LiveIndex
    from index.search import SearchResult

MAX_QUESTION_CHARS = 1000
NOT_COVERED = "The dossier does not cover that question."
UNSURE = "I am not sure the dossier covers this; the closest passages are:"


@dataclass(frozen=True)
class Quote:
    """A verbatim span of one article: ``text == article.body[start:end]``."""

    text: str
    start: int
    end: int
    score: float
    article: Article


@dataclass(frozen=True)
class Answer:
    question: str
    quotes: tuple[Quote, ...] = ()
    reason: str | None = None  # set when the bot declines or cannot take the question
    closest: tuple[Article, ...] = ()  # when declining: the articles that came nearest
    # "high": an answer; "low": not sure the dossier covers it, ``quotes`` are the closest
    # passages; None: declined (or not searched).
    confidence: str | None = None
    # In a conversation: the standalone question a follow-up was read as ("what did he say
    # next?" -> "What did Jake Sullivan say?"), and whether further quotes can be shown.
    read_as: str | None = None
    has_more: bool = False
    # The question as searched when misspelt words were corrected against the dossier's
    # vocabulary ("Glazzer" -> "Glazer"); None when it was searched as asked.
    corrected: str | None = None

    @property
    def answered(self) -> bool:
        return bool(self.quotes) and self.confidence != "low"

    @property
    def unsure(self) -> bool:
        return bool(self.quotes) and self.confidence == "low"

    @property
    def read_differently(self) -> str | None:
        """``read_as`` when it differs from what was typed: what every renderer shows."""
        return self.read_as if self.read_as and self.read_as != self.question else None


@dataclass(frozen=True)
class Source:
    """An article of the dossier as listed by ``/sources``."""

    article: Article
    passages: int


class Answerer:
    """Answers questions from a live index; safe to call from several threads at once.

    Adapters hold one of these. ``ask`` never raises for bad questions: it returns an
    ``Answer`` whose ``reason`` says what was wrong.
    """

    def __init__(self, live: LiveIndex) -> None:
        self._live = live
        self._rebuild_lock = threading.Lock()

    @property
    def live(self) -> LiveIndex:
        return self._live

    def ask(self, question: str) -> Answer:
        return self._answer(question, lambda text: self._live.current().search(text),
                            unsure=True)

    def ask_wide(self, question: str, limit: int) -> Answer:
        """Like ``ask``, with up to ``limit`` quotes reaching further below the best one:
        the pool that "more" and "what did he say next?" draw on (no unsure band: only
        quotes the bot stands by are continued)."""
        return self._answer(
            question, lambda text: self._live.current().retriever.widened(limit).search(text),
            unsure=False)

    def _answer(self, question: str, search: Callable[[str], SearchResult], *,
                unsure: bool) -> Answer:
        text = clean_question(question)
        problem = _problem(text)
        if problem:
            return Answer(question=question, reason=problem)
        result = search(text)
        corrected = result.corrected
        quotes = tuple(Quote(text=e.text, start=e.start, end=e.end, score=e.score,
                             article=e.article) for e in result.evidence)
        if result.covered:
            return Answer(question=question, quotes=quotes, confidence="high",
                          corrected=corrected)
        if unsure and result.confidence == "low" and quotes:
            return Answer(question=question, quotes=quotes, reason=UNSURE,
                          closest=result.closest, confidence="low", corrected=corrected)
        return Answer(question=question, reason=NOT_COVERED, closest=result.closest,
                      corrected=corrected)

    def sources(self) -> list[Source]:
        snapshot = self._live.current()
        counts = snapshot.passage_counts()
        return [Source(article=a, passages=counts.get(a.id, 0)) for a in snapshot.articles]

    def reload_if_changed(self) -> bool:
        return self._live.reload_if_changed()

    def rebuild(self, corpus_dir: Path) -> BuildReport:
        """Rebuild the index incrementally from ``corpus_dir`` and switch to it."""
        with self._rebuild_lock:
            report = self._live.rebuild(corpus_dir)
        return report


# OSC (window titles, links: ESC ] ... BEL or ST) whole, then CSI and two-character escapes.
_ANSI_ESCAPE = re.compile(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
                          r"|\x1b(?:\[[0-?]*[ -/]*[@-~]|[@-Z\\-_])")


def clean_question(question: str) -> str:
    """The question as searched: terminal escapes removed, control characters made spaces."""
    text = _ANSI_ESCAPE.sub("", question)
    # Cs: lone surrogates, which undecodable input bytes become; no tokenizer takes them.
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Cf", "Cs") else ch for ch in text)
    return " ".join(text.split())


def question_problem(question: str) -> str | None:
    """A short, friendly reason why a question cannot be searched, or None."""
    return _problem(clean_question(question))


def _problem(text: str) -> str | None:
    if not text:
        return "Please ask a question, e.g. “Did China agree to send weapons to Russia?”"
    if len(text) > MAX_QUESTION_CHARS:
        return (f"That question is {len(text):,} characters long; please keep it under "
                f"{MAX_QUESTION_CHARS:,} characters and ask one thing at a time.")
    if not any(unicodedata.category(ch)[0] in "LN" for ch in text):
        return "I could not find any words in that question; please ask it in words."
    return None
