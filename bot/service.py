"""The question service under the chat adapters: validation, rate limits, index reload,
conversations and counting, so that each adapter only turns a platform event into a call and
the reply into a message.

Every question is counted here, once: in ``dossier_questions_total`` with its outcome, in
``dossier_question_seconds``, and in one ``question`` log line. Not in the answerer, which
also serves "More quotes", re-asks for "Share" and the console, none of them a new question.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from bot import health
from bot.answer import Answer, Answerer, question_problem
from bot.config import Settings
from bot.conversation import ConversationalAnswerer, Conversations
from bot.health import Metrics
from bot.logs import question_digest
from bot.ratelimit import RateLimiter

log = logging.getLogger(__name__)


class NotTakingQuestions(Exception):
    """Raised by an answerer that is shutting down; the message is for the asker."""


@dataclass(frozen=True)
class Reply:
    """Either an answer to show, or a short notice for the asker alone (``private``)."""

    answer: Answer | None = None
    notice: str | None = None

    @property
    def private(self) -> bool:
        return self.answer is None


class QuestionService:
    def __init__(self, answerer: Answerer, settings: Settings, limiter: RateLimiter,
                 *, platform: str, metrics: Metrics | None = None) -> None:
        self.answerer = answerer
        self.settings = settings
        self.limiter = limiter
        self.platform = platform
        # `serve` hands the adapters an ObservedAnswerer that carries the registry its
        # /metrics shows; otherwise the process-wide one.
        self.metrics: Metrics = metrics or getattr(answerer, "metrics", None) or health.metrics
        self.conversations = Conversations(ttl=settings.conversation_ttl)
        self.talk = ConversationalAnswerer(answerer, self.conversations)

    def reload(self) -> None:
        """Pick up an index rebuilt by another process (the CLI, a watcher); cheap when not."""
        try:
            self.answerer.reload_if_changed()
        except Exception:
            log.exception("checking for a rebuilt index failed; answering from the current one")

    def ask(self, question: str, *, user: str, conversation: str | None) -> Reply:
        """Answer ``question`` in ``conversation``; raises only on an internal error."""
        started = time.perf_counter()
        refused = self.screen(question, user=user, started=started)
        if refused is not None:
            return refused
        return self.answer(question, conversation=conversation, started=started)

    def screen(self, question: str, *, user: str, started: float | None = None
               ) -> Reply | None:
        """The notice that turns ``question`` away (unusable, or the asker is over the rate
        limit), counted as ``rejected``; None when it is to be answered: then ``answer`` it.

        ``ask`` is both steps; an adapter that must reply before answering (Discord's slash
        command defers) calls them one after the other.
        """
        started = time.perf_counter() if started is None else started
        problem = question_problem(question)
        if problem:
            self._record(question, started, "rejected", reason="unusable")
            return Reply(notice=problem)
        wait = self.limiter.check(user)
        if wait:
            self._record(question, started, "rejected", reason="rate limit")
            return Reply(notice=self.limiter.message(wait))
        return None

    def answer(self, question: str, *, conversation: str | None,
               started: float | None = None) -> Reply:
        """Answer a question ``screen`` let through, counted as ``answered``, ``declined``,
        ``rejected`` (the bot is shutting down) or ``error`` (and re-raised)."""
        started = time.perf_counter() if started is None else started
        self.reload()
        try:
            answer = self.talk.ask(question, conversation)
        except NotTakingQuestions as exc:
            self._record(question, started, "rejected", reason="shutting down")
            return Reply(answer=Answer(question=question, reason=str(exc)))
        except Exception:
            self._record(question, started, "error")
            raise
        # Not answered: not covered, not sure, or a follow-up with nothing to follow.
        outcome = "answered" if answer.answered else "declined"
        self._record(question, started, outcome, quotes=len(answer.quotes))
        return Reply(answer=answer)

    def _record(self, question: str, started: float, outcome: str, **fields: Any) -> None:
        seconds = time.perf_counter() - started
        self.metrics.observe_question(self.platform, seconds, outcome)
        # The question's length and digest only: its text may be private (DMs).
        level = logging.ERROR if outcome == "error" else logging.INFO
        log.log(level, "question %s", outcome, extra={
            "event": "question", "platform": self.platform, "outcome": outcome,
            "seconds": round(seconds, 4), "chars": len(question),
            "question_id": question_digest(question), **fields})

    def more(self, conversation: str, *, user: str) -> Reply:
        """The next quotes for the conversation's last question ("More quotes")."""
        wait = self.limiter.check(user)
        if wait:
            return Reply(notice=self.limiter.message(wait))
        return Reply(answer=self.talk.more(conversation))

    def knows(self, conversation: str) -> bool:
        """Whether the bot is in that conversation (it answered there, recently)."""
        return self.conversations.get(conversation, create=False) is not None

    def is_admin(self, user: str | None) -> bool:
        return bool(user) and user in self.settings.admins
