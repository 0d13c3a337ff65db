"""The Slack adapter: slack-bolt listeners for mentions, DMs, slash commands and buttons.

Every listener acknowledges first and answers afterwards on Bolt's listener threads
(``process_before_response=False``), so Slack always gets its reply within 3 seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import io
import json
import logging
import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from http.client import RemoteDisconnected
from socketserver import ThreadingMixIn
from typing import Any
from urllib.error import URLError
from urllib.parse import parse_qs, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from slack_bolt import App, BoltResponse
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_bolt.error import BoltError
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.webhook import WebhookClient

from bot.answer import Answer, Answerer, Quote
from bot.config import ConfigError, Settings
from bot.feedback import FeedbackStore
from bot.intake import (
    MAX_FILES,
    Intake,
    IntakeError,
    can_read,
    files_left_out,
    kind_of,
    too_large,
)
from bot.ratelimit import RateLimiter
from bot.service import QuestionService
from bot.slack import render

log = logging.getLogger(__name__)

PLATFORM = "slack"
EVENTS_PATH = "/slack/events"
# slack-manifest.yaml declares the same. /dossier ask|sources|add|reindex|help is the command;
# the other three are kept as aliases (they cost nothing and old habits keep working).
COMMANDS = ("/dossier", "/ask", "/sources", "/reindex")
BOT_EVENTS = ("app_mention", "message.im", "message.channels", "message.groups",
              "message.mpim")
SCOPES = ("app_mentions:read", "chat:write", "commands", "im:history", "channels:history",
          "groups:history", "mpim:history", "files:read")
ACTION_MORE = "dossier_more"
DOSSIER_HELP = ("*/dossier* commands:\n"
                "• `/dossier ask QUESTION`: answer a question (shown to you first)\n"
                "• `/dossier sources`: list the articles\n"
                "• `/dossier add URL`: add an article from a link (admins and DOSSIER_ADDERS); "
                "or upload a file (md, txt, html, pdf, docx) in a message that mentions me\n"
                "• `/dossier reindex`: rebuild the index from the corpus (admins)\n"
                "• `/dossier help`: this list\n"
                "Mention me in a channel or a thread, or write to me directly; in a thread I "
                "answer follow-ups (“what did he say next?”, “and Beijing?”, “why?”).")
SOCKET_CLOSE_TIMEOUT = 10.0
MAX_BODY_BYTES = 1_000_000  # Slack's payloads are a few kB; refuse anything absurd unread
ERROR_TEXT = ("Sorry, something went wrong while searching the dossier. "
              "Please try again in a minute; the error has been logged.")
BLOCK_ERRORS = ("invalid_blocks", "invalid_blocks_format", "msg_too_long", "msg_blocks_too_long")
ADD_ADMIN_ONLY_TEXT = ("Sorry, only the dossier's admins (and the people in DOSSIER_ADDERS) can "
                       "add articles. Ask one of them, or drop the file into the corpus folder "
                       "where the bot runs.")
ADD_USAGE_TEXT = "Give the article's link: `/dossier add https://…`"
ADMIN_ONLY_TEXT = ("Sorry, only the dossier's admins can rebuild the index. Ask one of them, "
                   "or run `dossier-bot index build` where the bot runs.")


class _DropSameTokenWarning(logging.Filter):
    """Bolt warns that SLACK_BOT_TOKEN from the environment goes unused when it is handed a
    client; ours is built from that very token, so the warning would only alarm operators."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


logging.getLogger("slack_bolt.App").addFilter(_DropSameTokenWarning())


class _NoRequestBodies(logging.Filter):
    """Bolt logs the whole body of a request that fails its signature check, at INFO: an
    unsigned POST could put arbitrary (multi-line, forged-looking) text into the log, and a
    genuine event failing on clock skew would leak its question. Keep the line, drop the
    body. (Our own check runs first, so Bolt's normally never fails; this is the backstop.)"""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "body:" in message or "body=" in message:
            record.msg = message.split("body", 1)[0].rstrip(" ,(") + " (request body not logged)"
            record.args = None
        return True


logging.getLogger("slack_bolt.RequestVerification").addFilter(_NoRequestBodies())

# Threads that run the listeners: acknowledging is done on the HTTP request's own thread;
# answering and posting happen here, so enough of them that a few slow Web API calls
# (each up to the client's 15 s timeout) delay nobody else's answer.
LISTENER_WORKERS = 32
SEARCH_SLOTS = max(2, min(4, os.cpu_count() or 2))  # questions searched at once
# Connections the kernel queues while every HTTP thread is busy (socketserver's default is 5:
# a burst of 20 events lost some to TCP resets).
HTTP_BACKLOG = 1024


POST_METHOD = "chat.postMessage"
# Every post carries message metadata of this type with an id of its own, so that after an
# error that may have come *after* Slack posted (a 5xx, a connection lost mid-request), the bot
# can look for the post before sending it again: Slack has no idempotency key of its own.
POST_EVENT = "dossier_bot_post"
POST_ATTEMPTS = 3
POST_BACKOFF_S = 0.5  # before the first check-and-retry; doubled each time
# The check reads messages from this long before the first attempt: Slack's clock may differ
# from ours, and the tag, not the time, tells our post apart.
POST_CLOCK_SLACK_S = 60


def _is_post(request) -> bool:
    return request.url.split("?", 1)[0].endswith("/" + POST_METHOD)


class _ServerErrors(ServerErrorRetryHandler):
    """Slack's 500/503 retried after a short back-off, except for chat.postMessage, which
    ``post_message`` retries only once it has checked the first attempt did not land."""

    def _can_retry(self, *, state, request, response=None, error=None) -> bool:
        return not _is_post(request) and super()._can_retry(
            state=state, request=request, response=response, error=error)


class _ConnectionErrors(ConnectionErrorRetryHandler):
    """A connection reset or dropped mid-request, retried, except for chat.postMessage (as
    ``_ServerErrors``)."""

    def _can_retry(self, *, state, request, response=None, error=None) -> bool:
        return not _is_post(request) and super()._can_retry(
            state=state, request=request, response=response, error=error)


def _retry_handlers() -> list:
    # 429s are retried after Retry-After (Slack did nothing, so a post is safe to repeat);
    # connection errors and 5xx (Slack's own hiccups) after a short back-off, instead of
    # losing the answer. Posts get their own, checked retries (post_message).
    return [_ConnectionErrors(max_retry_count=2),
            RateLimitErrorRetryHandler(max_retry_count=3),
            _ServerErrors(max_retry_count=2)]


# What a post that may have landed fails with: an HTTP 5xx, or the connection errors that
# _ConnectionErrors retries for every other call.
_UNCERTAIN = (URLError, ConnectionResetError, RemoteDisconnected, TimeoutError)


# Message subtypes that are still a person's message: a thread reply also sent to the
# channel, and a message carrying a file.
PERSON_SUBTYPES = (None, "thread_broadcast", "file_share")
# A mention of someone else, or of a group: a thread reply addressed to people, not the bot.
_ADDRESSED = re.compile(r"<@[UW]|<!(?:here|channel|everyone|subteam)")


def _is_dm(channel: str | None) -> bool:
    return str(channel or "").startswith("D")


def _addable(file: dict) -> bool:
    """Whether the bot may be able to read a shared file as an article, by the name or type
    the event gives (an event without them leaves it to files.info: maybe)."""
    name, mimetype = file.get("name"), file.get("mimetype")
    return not (name or mimetype) or can_read(name, mimetype)


def post_message(client: WebClient, **params: Any) -> None:
    """``chat.postMessage``, retried after a 5xx or a lost connection only when a look at the
    channel (or thread) shows the earlier attempt did not land, so that an answer is neither
    lost nor posted twice. When the look itself fails, it posts again: a duplicate is the
    lesser harm."""
    tag = secrets.token_hex(8)
    params["metadata"] = {"event_type": POST_EVENT, "event_payload": {"post": tag}}
    since = time.time() - POST_CLOCK_SLACK_S
    for attempt in range(1, POST_ATTEMPTS + 1):
        try:
            client.chat_postMessage(**params)
            return
        except SlackApiError as exc:
            if exc.response.status_code < 500 or attempt == POST_ATTEMPTS:
                raise
            why = f"HTTP {exc.response.status_code}"
        except _UNCERTAIN as exc:
            if attempt == POST_ATTEMPTS:
                raise
            why = type(exc).__name__
        time.sleep(POST_BACKOFF_S * 2 ** (attempt - 1))
        if _landed(client, channel=params.get("channel"), thread_ts=params.get("thread_ts"),
                   tag=tag, since=since):
            log.info("a post that failed with %s had landed; not posting it again", why)
            return
        log.info("a post failed with %s and did not land; posting it again", why)


def _landed(client: WebClient, *, channel: str | None, thread_ts: str | None, tag: str,
            since: float) -> bool:
    """Whether a message tagged ``tag`` is in the channel (or thread) since ``since``."""
    oldest = f"{since:.6f}"
    try:
        if thread_ts:
            found = client.conversations_replies(channel=channel, ts=thread_ts, oldest=oldest,
                                                 inclusive=True, include_all_metadata=True,
                                                 limit=200)
        else:
            found = client.conversations_history(channel=channel, oldest=oldest, inclusive=True,
                                                 include_all_metadata=True, limit=200)
    except (SlackApiError, *_UNCERTAIN) as exc:
        log.warning("could not check whether a failed post landed (%s); posting it again",
                    exc.response.get("error") if isinstance(exc, SlackApiError) else exc)
        return False
    return any((m.get("metadata") or {}).get("event_type") == POST_EVENT
               and (m["metadata"].get("event_payload") or {}).get("post") == tag
               for m in found.get("messages") or [])


def make_client(settings: Settings) -> WebClient:
    return WebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url,
                     timeout=15, retry_handlers=_retry_handlers())


def slack_text_to_plain(text: str, bot_user_id: str | None = None) -> str:
    """A question as the person typed it: Slack's <…> markup and &-entities undone.

    The bot's own mention is dropped; other mentions become plain ``@U123`` so that, once
    re-escaped for display, they can never ping anyone.
    """

    def plain(match: re.Match[str]) -> str:
        inner = match.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            return "" if target[1:] == bot_user_id else "@" + (label or target[1:])
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):
            return "@" + (label or target[1:].split("^")[0])
        return label or target

    text = re.sub(r"<([^<>]*)>", plain, text)
    text = html.unescape(text) if "&" in text else text
    return re.sub(r"^[\s:,]+", "", text).strip()


class _Seen:
    """Keys seen in the last hour (event ids, message timestamps), to drop Slack's retries."""

    def __init__(self, ttl: float = 3600.0, size: int = 20_000) -> None:
        self._ttl = ttl
        self._size = size
        self._keys: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first(self, keys: Iterable[str]) -> bool:
        """True when none of ``keys`` was seen before; all of them count as seen afterwards."""
        now = time.monotonic()
        keys = [k for k in keys if k]
        with self._lock:
            while self._keys and (len(self._keys) > self._size
                                  or now - next(iter(self._keys.values())) > self._ttl):
                self._keys.popitem(last=False)
            fresh = not any(k in self._keys for k in keys)
            for k in keys:
                self._keys[k] = now
            return fresh


class _Answers:
    """Recent answers by id, for the Share and feedback buttons (the value carries a fallback)."""

    def __init__(self, size: int = 1000) -> None:
        self._size = size
        self._items: OrderedDict[str, Answer] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, answer: Answer) -> str:
        answer_id = secrets.token_hex(6)
        with self._lock:
            self._items[answer_id] = answer
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return answer_id

    def get(self, answer_id: object) -> Answer | None:
        with self._lock:
            return self._items.get(answer_id) if isinstance(answer_id, str) else None


Post = Callable[[dict[str, Any]], None]


@dataclass
class SlackBot:
    """What the listeners share; ``register`` wires them onto a Bolt app."""

    settings: Settings
    answerer: Answerer
    feedback: FeedbackStore
    limiter: RateLimiter
    seen: _Seen = field(default_factory=_Seen)
    answers: _Answers = field(default_factory=_Answers)
    service: QuestionService | None = None
    # Searching is CPU work: more at once than there are cores only slows every one and
    # starves the threads that acknowledge requests. Posting (I/O) is not limited by this.
    searching: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(SEARCH_SLOTS))

    def __post_init__(self) -> None:
        if self.service is None:
            self.service = QuestionService(self.answerer, self.settings, self.limiter,
                                           platform=PLATFORM)
        self.intake = Intake.from_settings(self.answerer, self.settings)

    def register(self, app: App) -> None:
        app.middleware(self._drop_retried_events)
        app.event("app_mention")(self.on_mention)
        app.event("message")(self.on_message)
        listeners = (self.on_dossier, self.on_ask, self.on_sources, self.on_reindex)
        for command, listener in zip(COMMANDS, listeners, strict=True):
            app.command(command)(listener)
        app.action(render.ACTION_UP)(self.on_vote)
        app.action(render.ACTION_DOWN)(self.on_vote)
        app.action(render.ACTION_SHARE)(self.on_share)
        app.action(ACTION_MORE)(self.on_more)
        app.error(self.on_error)

    # -- events -----------------------------------------------------------------------

    def _drop_retried_events(self, body: dict, next: Callable[[], BoltResponse]) -> BoltResponse:
        if body.get("type") == "event_callback":
            event = body.get("event") or {}
            kind, channel = event.get("type"), str(event.get("channel") or "")
            # One message can come as two events (a mention in a channel the bot reads:
            # app_mention and message.channels; in a DM: app_mention and message.im), in
            # either order. Each has one owner, so neither copy is dropped for the other:
            # on_message leaves channel mentions to on_mention, and a DM mention without
            # files is left to message.im (a file share there carries a subtype that
            # on_message skips, so on_mention keeps those).
            if kind == "app_mention" and channel.startswith("D") and not event.get("files"):
                return BoltResponse(status=200, body="")
            keys = [f"event:{body.get('event_id')}"] if body.get("event_id") else []
            if kind in ("app_mention", "message") and event.get("ts"):
                # The same message under a new event id: answer it once.
                keys.append(f"msg:{kind}:{channel}:{event['ts']}")
            if keys and not self.seen.first(keys):
                log.info("dropping a repeated Slack event (%s)", keys[0])
                return BoltResponse(status=200, body="")
        return next()

    def on_mention(self, event: dict, context: Any, client: WebClient) -> None:
        channel, user = event.get("channel"), event.get("user")
        if not _is_dm(channel) and not self.settings.answers_in(channel):
            log.info("ignoring a mention in channel %s (not in DOSSIER_CHANNELS)", channel)
            return
        thread = event.get("thread_ts") or event.get("ts")
        question = slack_text_to_plain(event.get("text") or "", context.bot_user_id)

        def post(message: dict[str, Any]) -> None:
            _post(client, channel=channel, thread_ts=thread, message=message)

        if self._add_shared_files(event, user, client, post, question):
            return

        def private(message: dict[str, Any]) -> None:
            try:
                client.chat_postEphemeral(channel=channel, user=user, thread_ts=thread,
                                          **message)
            except SlackApiError:
                log.warning("could not post an ephemeral note; posting it in the thread")
                post(message)

        self.answer(question, user=user or "?", post=post, private=private,
                    conversation=_conversation_id(channel, thread))

    def on_message(self, event: dict, context: Any, client: WebClient) -> None:
        # DMs, every message of an auto-reply channel, and replies in a thread the bot is
        # answering in. Edits, joins and other bots' messages carry a subtype or bot_id (a
        # reply also sent to the channel, or a message with a file, is still a person's); a
        # message that mentions the bot is answered as app_mention instead.
        if event.get("bot_id") or event.get("subtype") not in PERSON_SUBTYPES:
            return
        channel = event.get("channel")
        text = event.get("text") or ""
        if event.get("channel_type") == "im":
            thread = event.get("thread_ts")
            # One conversation per DM, in a thread or not ("More quotes" posts in one).
            conversation = _conversation_id(channel, "dm")
        else:
            if context.bot_user_id and f"<@{context.bot_user_id}" in text:
                return
            if not self.settings.answers_in(channel):
                return
            thread = event.get("thread_ts") or event.get("ts")
            conversation = _conversation_id(channel, thread)
            auto = self.settings.auto_reply(channel)
            in_our_thread = bool(event.get("thread_ts")) and self.service.knows(conversation)
            if not (auto or in_our_thread):
                return
            if not auto and _ADDRESSED.search(text):
                return  # a reply in the bot's thread to someone else ("@Alice, can you…")
        question = slack_text_to_plain(text, context.bot_user_id)

        def post(message: dict[str, Any]) -> None:
            _post(client, channel=channel, thread_ts=thread, message=message)

        if event.get("channel_type") == "im" and self._add_shared_files(
                event, event.get("user"), client, post, question):
            return

        self.answer(question, user=event.get("user") or "?", post=post, private=post,
                    conversation=conversation)

    # -- slash commands -----------------------------------------------------------------

    def on_ask(self, ack: Callable[..., None], command: dict, context: Any) -> None:
        ack()
        url = command.get("response_url")

        def reply(message: dict[str, Any]) -> None:
            respond(url, {**message, "response_type": "ephemeral"})

        question = slack_text_to_plain(command.get("text") or "", context.bot_user_id)
        self.answer(question, user=command.get("user_id") or "?", post=reply, private=reply,
                    shareable=True)

    def on_sources(self, ack: Callable[..., None], command: dict) -> None:
        ack()
        url = command.get("response_url")
        try:
            self._reload()
            message = render.render_sources(self.answerer.sources())
        except Exception:
            log.exception("listing the sources failed")
            message = render.notice(ERROR_TEXT)
        respond(url, {**message, "response_type": "ephemeral"})

    def on_reindex(self, ack: Callable[..., None], command: dict) -> None:
        user = command.get("user_id") or ""
        if user not in self.settings.admins:
            ack(**render.notice(ADMIN_ONLY_TEXT), response_type="ephemeral")
            return
        ack(**render.notice("Rebuilding the index from the corpus; the report follows here. "
                            "Questions are answered from the current index meanwhile."),
            response_type="ephemeral")
        url = command.get("response_url")
        try:
            report = self.answerer.rebuild(self.settings.corpus_dir)
        except Exception as exc:
            log.exception("rebuilding the index from Slack failed")
            reason = render._clip(f"{type(exc).__name__}: {exc}", 300)
            message = render.notice(f"The rebuild failed ({reason}); "
                                    "the bot keeps answering from the previous index.")
        else:
            log.info("index rebuilt from Slack: %s", report.as_dict())
            message = render.render_report(report)
        respond(url, {**message, "response_type": "ephemeral"})

    # -- buttons ------------------------------------------------------------------------

    def on_vote(self, ack: Callable[..., None], body: dict, action: dict) -> None:
        ack()
        vote = 1 if action.get("action_id") == render.ACTION_UP else -1
        data = render.parse_button_value(action.get("value") or "")
        user = (body.get("user") or {}).get("id") or "?"
        answer = self.answers.get(data.get("id"))
        if answer is not None:
            question = answer.question
            quotes = [render.quote_dict(q) for q in answer.quotes]
        else:  # the bot restarted since: rebuild what it can from the button itself
            question = str(data.get("q") or "")
            quotes = self._quotes_from_refs(data.get("k") or [])
        try:
            before = self.feedback.record(platform=PLATFORM, user_id=user, question=question,
                                          quotes=quotes, vote=vote,
                                          answer_key=_answer_key(body, data, question))
            text = _vote_thanks(vote, before)
        except Exception:
            log.exception("recording feedback failed")
            text = "Sorry, your vote could not be recorded; please try again later."
        respond(body.get("response_url"),
                {**render.notice(text), "response_type": "ephemeral", "replace_original": False})

    def on_share(self, ack: Callable[..., None], body: dict, action: dict) -> None:
        ack()
        url = body.get("response_url")
        data = render.parse_button_value(action.get("value") or "")
        answer = self.answers.get(data.get("id"))
        try:
            if answer is None:  # the bot restarted since the answer was shown: ask again
                answer = self._ask(str(data.get("q") or ""))
            message = render.render_answer(answer, answer_id=self.answers.put(answer),
                                           shared=True)
            respond(url, {**message, "response_type": "in_channel", "replace_original": False})
            respond(url, {"delete_original": True})
        except Exception:
            log.exception("sharing an answer failed")
            respond(url, {**render.notice("Sorry, I could not share that answer in the channel."),
                          "response_type": "ephemeral", "replace_original": False})

    def on_error(self, error: Exception, body: dict) -> None:
        log.error("unhandled error in a Slack listener: %s", error, exc_info=error)

    # -- answering ----------------------------------------------------------------------

    def _reload(self) -> None:
        """Pick up an index rebuilt by another process (the CLI, a watcher); cheap when not."""
        try:
            self.answerer.reload_if_changed()
        except Exception:
            log.exception("checking for a rebuilt index failed; answering from the current one")

    def _ask(self, question: str) -> Answer:
        self._reload()
        return self.answerer.ask(question)

    def answer(self, question: str, *, user: str, post: Post, private: Post,
               shareable: bool = False, conversation: str | None = None) -> None:
        """Answer one question: limits, then the answer, then errors as a short message."""
        try:
            with self.searching:
                reply = self.service.ask(question, user=user, conversation=conversation)
        except Exception:
            log.exception("answering a Slack question failed")
            private(render.notice(ERROR_TEXT))
            return
        if reply.answer is None:
            private(render.notice(reply.notice or ERROR_TEXT))
            return
        self._post_answer(reply.answer, post=post, private=private, shareable=shareable,
                          conversation=conversation)

    def _post_answer(self, answer: Answer, *, post: Post, private: Post, shareable: bool,
                     conversation: str | None) -> None:
        message = render.render_answer(answer, answer_id=self.answers.put(answer),
                                       shareable=shareable and answer.answered)
        if answer.has_more and conversation:
            _add_more_button(message, conversation)
        try:
            post(message)
        except Exception:
            log.exception("posting an answer to Slack failed")
            try:
                private(render.notice("Sorry, I found an answer but Slack would not take it; "
                                      "please try again."))
            except Exception:
                log.exception("posting the error note failed too")

    def on_more(self, ack: Callable[..., None], body: dict, action: dict,
                client: WebClient) -> None:
        """"More quotes": the next quotes for the same question, posted in the thread."""
        ack()
        conversation = action.get("value") or ""
        channel = (body.get("channel") or {}).get("id")
        message = body.get("message") or {}
        # In a DM the answers are not threaded; in a channel they are.
        thread = message.get("thread_ts") or (None if _is_dm(channel) else message.get("ts"))
        user = (body.get("user") or {}).get("id") or "?"

        def post(msg: dict[str, Any]) -> None:
            _post(client, channel=channel, thread_ts=thread, message=msg)

        def private(msg: dict[str, Any]) -> None:
            respond(body.get("response_url"), {**msg, "response_type": "ephemeral",
                                               "replace_original": False})

        try:
            with self.searching:
                reply = self.service.more(conversation, user=user)
        except Exception:
            log.exception("showing more quotes failed")
            private(render.notice(ERROR_TEXT))
            return
        if reply.answer is None or not reply.answer.answered:
            private(render.notice(reply.notice or (reply.answer and reply.answer.reason)
                                  or ERROR_TEXT))
            return
        self._post_answer(reply.answer, post=post, private=private, shareable=False,
                          conversation=conversation)

    def on_dossier(self, ack: Callable[..., None], command: dict, context: Any) -> None:
        """/dossier ask|sources|add|reindex|help."""
        # Any white space separates the verb (Shift+Enter after "ask" gives a newline).
        verb, rest = [*(command.get("text") or "").split(None, 1), "", ""][:2]
        verb = verb.lower()
        sub = {**command, "text": rest.strip()}
        if verb == "ask":
            self.on_ask(ack, sub, context)
        elif verb == "sources":
            self.on_sources(ack, sub)
        elif verb == "reindex":
            self.on_reindex(ack, sub)
        elif verb == "add":
            self.on_add(ack, sub)
        elif verb in ("", "help"):
            ack(**render.notice(DOSSIER_HELP), response_type="ephemeral")
        else:
            ack(**render.notice(f"I do not know `/dossier {verb}`.\n\n{DOSSIER_HELP}"),
                response_type="ephemeral")

    def on_add(self, ack: Callable[..., None], command: dict) -> None:
        """/dossier add URL: fetch, store in the inbox, rebuild, and say what was added."""
        user = command.get("user_id") or ""
        if not self.settings.may_add(user):
            ack(**render.notice(ADD_ADMIN_ONLY_TEXT), response_type="ephemeral")
            return
        url = (command.get("text") or "").strip().strip("<>").split("|")[0]
        if not url:
            ack(**render.notice(ADD_USAGE_TEXT), response_type="ephemeral")
            return
        ack(**render.notice(f"Adding {url}; the result follows here."),
            response_type="ephemeral")
        log.info("slack: user %s adds %s", user, url)
        try:
            text = self.intake.add_url(url).describe()
            visible = "in_channel"  # the team sees what joined the dossier
        except IntakeError as exc:
            text, visible = f"Not added: {exc}", "ephemeral"
        except Exception:
            log.exception("adding %s from Slack failed", url)
            text, visible = "Sorry, adding that failed; nothing was added.", "ephemeral"
        respond(command.get("response_url"), {**render.notice(text), "response_type": visible})

    def _add_shared_files(self, event: dict, user: str | None, client: WebClient, post: Post,
                          question: str) -> bool:
        """Files handed to the bot (with a mention, or in a DM) that it can read are articles
        to add: add them and report, True. Files it cannot add (a screenshot beside a
        question) leave the question to be answered, False; with no question, say why."""
        files = [f for f in event.get("files") or [] if isinstance(f, dict)]
        addable = [f for f in files if _addable(f)]
        if not addable and (question.strip() or not files):
            return False
        if not self.settings.may_add(user):
            post(render.notice(ADD_ADMIN_ONLY_TEXT))
            return True
        lines = [self._add_file(client, f.get("id")) for f in files[:MAX_FILES]]
        lines += files_left_out(len(files))
        try:
            post(render.notice("\n".join(lines)))
        except Exception:
            # What was added stays added; the log keeps what the channel did not get.
            log.exception("posting the result of adding files failed: %s", " | ".join(lines))
        return True

    def _add_file(self, client: WebClient, file_id: str | None) -> str:
        """Download one shared file (files.info, then url_private with the bot token) and add
        it; the line to report."""
        name = file_id or "?"
        try:
            info = client.files_info(file=file_id)["file"]
            name = info.get("name") or name
            if int(info.get("size") or 0) > self.intake.max_bytes:
                raise IntakeError(too_large(int(info["size"]), self.intake.max_bytes))
            kind_of(name, info.get("mimetype"))  # refuse before downloading
            url = str(info.get("url_private") or "")
            if info.get("is_external") or not self._slack_hosted(url):
                # A file shared from Google Drive and the like lives elsewhere: the bot
                # token is for Slack alone.
                raise IntakeError("the file is not stored in Slack; share its link with "
                                  "/dossier add instead.")
            # Guarded like a link: files.info's URL is followed, redirects and all.
            data, _type, _url = self.intake.fetch(
                url, headers={"Authorization": f"Bearer {client.token}"})
            return self.intake.add_file(data, name, info.get("mimetype")).describe()
        except IntakeError as exc:
            return f"Not added ({name}): {exc}"
        except SlackApiError as exc:
            error = exc.response.get("error")
            return f"Not added ({name}): Slack did not hand over the file ({error})."
        except Exception:
            log.exception("adding the Slack file %s failed", name)
            return f"Sorry, adding {name} failed; nothing was added."

    def _slack_hosted(self, url: str) -> bool:
        """Whether ``url`` is one the bot token may be sent to: https on slack.com or a
        subdomain (files.slack.com), or the Web API's own host when SLACK_API_URL points
        elsewhere (a test server, an enterprise gateway)."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme == "https" and (host == "slack.com" or host.endswith(".slack.com")):
            return True
        api = urlsplit(self.settings.slack_api_url)
        return bool(parts.netloc) and (parts.scheme, parts.netloc) == (api.scheme, api.netloc)

    def _quotes_from_refs(self, refs: list) -> list[dict[str, Any]]:
        try:
            bodies = {s.article.id: s.article for s in self.answerer.sources()}
        except Exception:
            bodies = {}
        quotes = []
        for ref in refs:
            if not (isinstance(ref, list) and len(ref) == 3):
                continue
            article_id, start, end = ref
            article = bodies.get(article_id)
            if article is None or not isinstance(start, int) or not isinstance(end, int):
                quotes.append({"article": article_id, "start": start, "end": end})
                continue
            quotes.append(render.quote_dict(Quote(article.body[start:end], start, end, 0.0,
                                                  article)))
        return quotes


def _conversation_id(channel: str | None, thread: str | None) -> str:
    return f"{PLATFORM}:{channel}:{thread}"


def _add_more_button(message: dict[str, Any], conversation: str) -> None:
    """A "More quotes" button beside the feedback buttons (one actions block)."""
    button = {"type": "button", "action_id": ACTION_MORE, "value": conversation[:2000],
              "text": {"type": "plain_text", "text": "More quotes"}}
    for block in message.get("blocks", []):
        if block.get("type") == "actions":
            block["elements"].append(button)
            return
    message.setdefault("blocks", []).append({"type": "actions", "elements": [button]})


def _post(client: WebClient, *, channel: str | None, thread_ts: str | None,
          message: dict[str, Any]) -> None:
    kwargs = {"channel": channel, "thread_ts": thread_ts, "unfurl_links": False,
              "unfurl_media": False}
    try:
        post_message(client, **kwargs, **message)
    except SlackApiError as exc:
        if exc.response.get("error") not in BLOCK_ERRORS:
            raise
        # Rather plain text than nothing when Slack rejects the blocks.
        log.warning("Slack rejected the blocks (%s); posting plain text", exc.response.get("error"))
        post_message(client, **kwargs, text=message.get("text") or "…")


class ResponseRefused(RuntimeError):
    """Slack refused a ``response_url`` post (expired, or a payload it will not take)."""


def respond(url: str | None, payload: dict[str, Any]) -> None:
    """POST to an interaction's ``response_url``, retrying 429s after Retry-After. Blocks
    Slack rejects are sent again as plain text; a refusal after that raises
    ``ResponseRefused``, so a caller can say so another way rather than leave silence."""
    if not url:
        log.warning("no response_url to answer on")
        return
    payload = {"unfurl_links": False, "unfurl_media": False, **payload}
    if payload.get("delete_original"):
        payload = {"delete_original": True}
    client = WebhookClient(url, timeout=15, retry_handlers=_retry_handlers())
    response = client.send_dict(payload)
    if response.status_code != 200 and payload.get("blocks") and any(
            error in (response.body or "") for error in BLOCK_ERRORS):
        log.warning("Slack rejected the blocks (%s); sending plain text",
                    (response.body or "")[:100])
        plain = {k: v for k, v in payload.items() if k != "blocks"}
        response = client.send_dict({**plain, "text": payload.get("text") or "…"})
    if response.status_code != 200:
        raise ResponseRefused(f"Slack refused a response_url post: HTTP {response.status_code} "
                              f"{(response.body or '')[:200]}")


def create_slack_app(*, settings: Settings, answerer: Answerer, client: WebClient | None = None,
                     feedback: FeedbackStore | None = None, limiter: RateLimiter | None = None,
                     listener_executor: Executor | None = None) -> App:
    """A Bolt app with the dossier's listeners; calls ``auth.test`` once to learn its bot id."""
    if client is None:
        client = make_client(settings)
    else:
        # Ours replace the client's own of the same kinds (slack_sdk's default connection
        # handler would retry posts blindly).
        kinds = (ConnectionErrorRetryHandler, RateLimitErrorRetryHandler, ServerErrorRetryHandler)
        client.retry_handlers = [h for h in client.retry_handlers
                                 if not isinstance(h, kinds)] + _retry_handlers()
    app = App(
        name="dossier-bot",
        client=client,
        # Without a secret (Socket Mode) HTTP requests must still fail verification, so an
        # unguessable one stands in rather than the empty string.
        signing_secret=settings.slack_signing_secret or secrets.token_hex(32),
        process_before_response=False,
        listener_executor=listener_executor or ThreadPoolExecutor(
            max_workers=LISTENER_WORKERS, thread_name_prefix="slack-listener"),
    )
    bot = SlackBot(settings=settings, answerer=answerer,
                   feedback=feedback or FeedbackStore(settings.feedback_path),
                   limiter=limiter or RateLimiter(settings.rate_limit_per_minute))
    bot.register(app)
    return app


# -- serving -----------------------------------------------------------------------------


def check_settings(settings: Settings, *, http: bool) -> None:
    """Name a missing or malformed token in one line, before anything connects."""
    http_mode = http or not settings.slack_app_token
    settings.require_platform("slack", http=http_mode)
    # Settings built in code skip from_env's checks, so check the token kinds here too.
    if not (settings.slack_bot_token or "").startswith("xoxb-"):
        raise ConfigError("SLACK_BOT_TOKEN does not look like a bot token (it should start "
                          "with xoxb-); copy it again from OAuth & Permissions.")
    if not http_mode and not (settings.slack_app_token or "").startswith("xapp-"):
        raise ConfigError("SLACK_APP_TOKEN does not look like an app-level token (it should "
                          "start with xapp-); create one with the connections:write scope.")


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = HTTP_BACKLOG

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints a raw traceback to stderr (outside the JSON log and the
        # redactor); a client that hangs up mid-request is not worth more than a debug line.
        log.debug("Slack HTTP connection from %s failed", client_address[0], exc_info=True)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http: " + format, *args)

    def get_stderr(self) -> Any:
        # wsgiref writes errors of the WSGI app here; send them to the log instead.
        return _LogStream()


class _LogStream(io.TextIOBase):
    def write(self, text: str) -> int:
        if text.strip():
            log.warning("Slack HTTP server: %s", text.strip()[:500])
        return len(text)


def _plain(status: str, text: str, start_response: Callable) -> list[bytes]:
    body = json.dumps({"error": text}).encode()
    start_response(status, [("Content-Type", "application/json"),
                            ("Content-Length", str(len(body)))])
    return [body]


def _malformed(body: bytes, content_type: str) -> str | None:
    """Why a signed body is not a Slack payload (None: it is). Bolt would raise on these
    and answer 500 with a traceback; they are the sender's mistake, so 400."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "body is not UTF-8"
    if content_type.startswith("application/json"):
        try:
            data = json.loads(text)
        except ValueError:
            return "body is not JSON"
        return None if isinstance(data, dict) else "body is not a JSON object"
    if content_type.startswith("application/x-www-form-urlencoded"):
        form = parse_qs(text, keep_blank_values=True)
        if "payload" in form:
            try:
                data = json.loads(form["payload"][0])
            except ValueError:
                return "payload is not JSON"
            if not isinstance(data, dict):
                return "payload is not a JSON object"
        elif "command" not in form and "ssl_check" not in form:
            return "form has neither payload nor command"
        return None
    return "unsupported content type"


SIGNATURE_MAX_AGE = 300  # seconds, as Slack and Bolt allow: older requests may be replays


def signed_by_slack(body: bytes, timestamp: str | None, signature: str | None,
                    secret: str, *, now: float | None = None) -> bool:
    """Slack's v0 signature over the raw bytes (before any decoding: a body that is not even
    UTF-8 is refused as unsigned, not parsed), within the replay window."""
    if not timestamp or not signature or not secret:
        return False
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return False
    if age > SIGNATURE_MAX_AGE:
        return False
    base = b"v0:" + timestamp.encode("ascii", "replace") + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.encode("ascii", "replace"))


def _guard(wsgi_app: Callable, signing_secret: str) -> Callable:
    """In front of Bolt: size limit, then the signature over the raw bytes, then the shape
    of the body; Bolt sees only signed, well-formed requests. Nothing of a body is ever
    logged, and any failure is logged through the app's formatter and redactor."""
    def guarded(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST" or environ.get("PATH_INFO") != EVENTS_PATH:
            return _plain("404 Not Found", "not found", start_response)
        try:
            size = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            size = -1
        if size < 0:
            return _plain("400 Bad Request", "bad Content-Length", start_response)
        if size > MAX_BODY_BYTES:
            return _plain("413 Payload Too Large", "payload too large", start_response)
        try:
            body = environ["wsgi.input"].read(size) if size else b""
            if len(body) != size:
                return _plain("400 Bad Request", "body shorter than Content-Length",
                              start_response)
            if not signed_by_slack(body, environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP"),
                                   environ.get("HTTP_X_SLACK_SIGNATURE"), signing_secret):
                log.warning("Slack request refused: missing or wrong signature (%d bytes, "
                            "body not logged)", size, extra={"event": "slack.unsigned"})
                return _plain("401 Unauthorized", "invalid request", start_response)
            problem = _malformed(body, environ.get("CONTENT_TYPE") or "")
            if problem:
                log.warning("Slack request refused: %s (%d bytes, body not logged)", problem,
                            size, extra={"event": "slack.malformed"})
                return _plain("400 Bad Request", problem, start_response)
            environ["wsgi.input"] = io.BytesIO(body)
            return wsgi_app(environ, start_response)
        except Exception:
            log.exception("Slack request failed", extra={"event": "slack.error"})
            return _plain("500 Internal Server Error", "internal error", start_response)

    return guarded


@dataclass
class SlackService:
    """A running Slack adapter; ``stop()`` ends it after the answers in flight are posted."""

    app: App
    mode: str  # "socket" or "http"
    executor: ThreadPoolExecutor
    port: int | None = None
    _server: WSGIServer | None = None
    _thread: threading.Thread | None = None
    _socket: SocketModeHandler | None = None
    _stopped: threading.Event = field(default_factory=threading.Event)

    def stop(self, *, wait: bool = True) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._socket is not None:
            # slack_sdk's close() joins its reader threads; bound it so that a wedged socket
            # can never hold up the shutdown of the whole process.
            closer = threading.Thread(target=self._socket.close, name="slack-socket-close",
                                      daemon=True)
            closer.start()
            closer.join(SOCKET_CLOSE_TIMEOUT)
            if closer.is_alive():
                log.warning("the Socket Mode connection did not close within %.0f s; moving on",
                            SOCKET_CLOSE_TIMEOUT)
        self.executor.shutdown(wait=wait)
        log.info("Slack adapter stopped")

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    @property
    def connected(self) -> bool:
        """For readiness: serving over HTTP, or the Socket Mode connection is up."""
        if self.stopped:
            return False
        return self._socket is None or bool(self._socket.client.is_connected())


def start(settings: Settings, answerer: Answerer, *, http: bool, port: int,
          host: str = "0.0.0.0", client: WebClient | None = None,
          feedback: FeedbackStore | None = None,
          limiter: RateLimiter | None = None) -> SlackService:
    """Start the adapter without blocking: Socket Mode when SLACK_APP_TOKEN is set and not
    ``http``, else an HTTP server for ``/slack/events``. Raises ConfigError for bad tokens."""
    check_settings(settings, http=http)
    executor = ThreadPoolExecutor(max_workers=LISTENER_WORKERS,
                                  thread_name_prefix="slack-listener")
    try:
        app = create_slack_app(settings=settings, answerer=answerer, client=client,
                               feedback=feedback, limiter=limiter, listener_executor=executor)
    except (BoltError, SlackApiError) as exc:
        executor.shutdown(wait=False)
        raise ConfigError(f"SLACK_BOT_TOKEN was not accepted by Slack ({_reason(exc)}); "
                          "copy the Bot User OAuth Token again and reinstall the app.") from None
    except OSError as exc:
        executor.shutdown(wait=False)
        raise ConfigError(f"Could not reach Slack at SLACK_API_URL={settings.slack_api_url} "
                          f"({type(exc).__name__}).") from None

    if settings.slack_app_token and not http:
        handler = SocketModeHandler(app, app_token=settings.slack_app_token)
        try:
            handler.connect()
        except SlackApiError as exc:
            handler.close()
            executor.shutdown(wait=False)
            raise ConfigError(f"SLACK_APP_TOKEN was not accepted by Slack ({_reason(exc)}); "
                              "create an app-level token with connections:write.") from None
        log.info("Slack adapter connected in Socket Mode")
        return SlackService(app=app, mode="socket", executor=executor, _socket=handler)

    wsgi = _guard(SlackRequestHandler(app, path=EVENTS_PATH), settings.slack_signing_secret or "")
    server = make_server(host, port, wsgi, server_class=_ThreadingWSGIServer,
                         handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                              name="slack-http", daemon=True)
    thread.start()
    bound = server.server_address[1]
    log.info("Slack adapter listening on http://%s:%d%s", host, bound, EVENTS_PATH)
    return SlackService(app=app, mode="http", executor=executor, port=bound, _server=server,
                        _thread=thread)


def _reason(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            return str(response.get("error") or "refused")
        except Exception:
            return "refused"
    text = str(exc)
    match = re.search(r"error: (\w+)|'error': '(\w+)'", text)
    return next((g for g in match.groups() if g), "refused") if match else "refused"


def run(settings: Settings, answerer: Answerer, *, http: bool, port: int,
        stop: threading.Event | None = None, host: str = "0.0.0.0") -> None:
    """Serve Slack until ``stop`` is set (or Ctrl-C), then stop gracefully."""
    service = start(settings, answerer, http=http, port=port, host=host)
    stop = stop or threading.Event()
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        service.stop()


def _answer_key(body: dict, data: dict, question: str) -> str:
    """What names the answer voted on, the same for every click on it: the answer's id from
    the button (shared by its 👍 and 👎), else the message it sits in, else its question."""
    if data.get("id"):
        return f"answer:{data['id']}"
    container = body.get("container") or {}
    if container.get("message_ts"):
        return f"message:{container.get('channel_id')}:{container['message_ts']}"
    return f"question:{question}"


def _vote_thanks(vote: int, before: int | None) -> str:
    mark = "👍" if vote > 0 else "👎"
    if before is None:
        return f"Thanks, your {mark} was recorded."
    if before == vote:
        return f"Your {mark} on this answer was already recorded; it counts once."
    return f"Thanks, your vote is now {mark} (it replaces your earlier one)."
