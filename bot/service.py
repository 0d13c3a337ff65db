"""The question service under the chat adapters: validation, rate limits, index reload and
conversations, so that each adapter only turns a platform event into a call and the reply
into a message."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.answer import Answer, Answerer, question_problem
from bot.config import Settings
from bot.conversation import ConversationalAnswerer, Conversations
from bot.health import metrics
from bot.ratelimit import RateLimiter

log = logging.getLogger(__name__)


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
                 *, platform: str) -> None:
        self.answerer = answerer
        self.settings = settings
        self.limiter = limiter
        self.platform = platform
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
        problem = question_problem(question)
        if problem:
            metrics.observe_question(self.platform, 0.0, "rejected")
            return Reply(notice=problem)
        wait = self.limiter.check(user)
        if wait:
            metrics.observe_question(self.platform, 0.0, "rejected")
            return Reply(notice=self.limiter.message(wait))
        self.reload()
        return Reply(answer=self.talk.ask(question, conversation))

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
