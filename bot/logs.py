"""Logging: text or one JSON object per line, with secrets masked in everything written.

Our code logs questions by length and a short digest, never their text, at INFO. The
redactor is defence in depth for what other libraries log (slack_sdk logs request headers
at DEBUG): it masks the configured secret values and anything shaped like a token.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import sys
from collections.abc import Iterable
from typing import Any, TextIO

REDACTED = "[redacted]"

_TOKEN_PATTERNS = (
    (re.compile(r"\bxox[abposre]-[A-Za-z0-9-]{6,}"), REDACTED),  # Slack bot/user/refresh tokens
    (re.compile(r"\bxapp-[A-Za-z0-9-]{6,}"), REDACTED),  # Slack app-level tokens
    # Discord bot tokens: base64 user id . timestamp . HMAC
    (re.compile(r"\b[A-Za-z0-9_-]{18,}\.[A-Za-z0-9_-]{5,7}\.[A-Za-z0-9_-]{20,}"), REDACTED),
    # Authorization header values, whatever the token looks like
    (re.compile(r"\b((?:Bearer|Bot) )[A-Za-z0-9._~+/=-]{20,}"), rf"\1{REDACTED}"),
    (re.compile(r"(?i)(['\"]?Authorization['\"]?\s*[:=]\s*['\"]?)[^'\",}\s][^'\",}]*"),
     rf"\1{REDACTED}"),
    # Discord webhook and interaction URLs carry a token in the path: /webhooks/<id>/<token>
    # and /interactions/<id>/<token>/callback (discord.py logs them at DEBUG).
    (re.compile(r"(/(?:webhooks|interactions)/\d+/)[^/\s?#'\"]+"), rf"\1{REDACTED}"),
    # Slack's response_url and incoming webhooks: whoever has the URL can post with it.
    (re.compile(r"(\bhooks\.slack\.com/)[^\s'\"]+"), rf"\1{REDACTED}"),
)

# Attributes every LogRecord has; anything else was passed with ``extra=`` and is data.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class Redactor:
    """Masks known secrets and token-shaped strings in text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        for s in secrets:
            if s and len(s) >= 6 and s not in self._secrets:
                self._secrets.append(s)
        self._secrets.sort(key=len, reverse=True)  # longest first: no partial leftovers

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        for pattern, replacement in _TOKEN_PATTERNS:
            text = pattern.sub(replacement, text)
        return text


class RedactingFilter(logging.Filter):
    """Rewrites a record's message and extra fields through the redactor before any handler."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad %-format must not hide the record
            message = f"{record.msg!r} {record.args!r}"
        record.msg = self.redactor(message)
        record.args = None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD and isinstance(value, str):
                setattr(record, key, self.redactor(value))
        return True


class _Redacting(logging.Formatter):
    """Redacts the final line too: tracebacks are formatted after filters run."""

    def __init__(self, inner: logging.Formatter, redactor: Redactor) -> None:
        super().__init__()
        self.inner = inner
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor(self.inner.format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, and every ``extra=`` field."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                plain = isinstance(value, (int, float, bool, type(None)))
                out[key] = value if plain else str(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Human-readable line; ``extra=`` fields follow as key=value so text logs keep the data."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = [f"{k}={v}" for k, v in vars(record).items()
                  if k not in _STANDARD and not k.startswith("_")]
        if extras:
            head, sep, tail = line.partition("\n")  # keep a traceback below the fields
            line = f"{head} {' '.join(extras)}{sep}{tail}"
        return line


_HANDLER_NAME = "dossier-bot"
_redactor = Redactor()


def redactor() -> Redactor:
    return _redactor


def setup_logging(fmt: str = "text", level: str = "INFO", *, secrets: Iterable[str] = (),
                  stream: TextIO | None = None) -> logging.Handler:
    """Install one root handler (replacing ours from an earlier call) and return it."""
    _redactor.add(secrets)
    root = logging.getLogger()
    for handler in list(root.handlers):
        # Ours from an earlier call, and logging.basicConfig's plain one (the CLI group sets
        # it up), which would print every line a second time, unredacted.
        if handler.get_name() == _HANDLER_NAME or type(handler) is logging.StreamHandler:
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    inner = JsonFormatter() if fmt == "json" else TextFormatter()
    handler.setFormatter(_Redacting(inner, _redactor))
    handler.addFilter(RedactingFilter(_redactor))
    # The handler filters too: some libraries (bm25s) set DEBUG on their own logger.
    handler.setLevel(level.upper())
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Libraries that log whole request bodies (message texts) or URLs with tokens in them
    # (discord.webhook logs interaction webhook URLs) at DEBUG stay at INFO: our DEBUG is
    # for our code. "discord" covers all of discord.py (http, gateway, webhook, state, ...).
    for noisy in ("slack_sdk", "slack_bolt", "urllib3", "discord", "websockets", "aiohttp",
                  "sentence_transformers", "filelock", "bm25s"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))
    logging.getLogger("watchfiles").setLevel(logging.WARNING)  # one line per file event
    logging.getLogger("faiss").setLevel(logging.WARNING)  # which CPU build it tried, at INFO
    return handler


def question_digest(question: str) -> str:
    """A short stable digest that lets an operator correlate log lines without the text."""
    return hashlib.sha256(question.encode("utf-8")).hexdigest()[:10]
