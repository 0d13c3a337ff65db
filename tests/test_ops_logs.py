"""Structured logs, and no token in any log line whoever logs it."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot.logs import REDACTED, Redactor, question_digest, setup_logging

SLACK_BOT = "xoxb-1111111111-2222222222-SeCrEtBoTtOkEnVaLuE"
SLACK_APP = "xapp-1-A0000000000-1234567890-SeCrEtApPtOkEn"
DISCORD = "MTA5ODc2NTQzMjEwOTg3NjU0.GAbCdE.SeCrEtDiScOrDtOkEnVaLuEaBcDeFgHiJk"
SIGNING = "8f742231b10e8888abcd99yyyzzz85a5"  # no recognisable shape: only the value list knows it


@pytest.fixture
def capture() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    yield stream
    for handler in list(root.handlers):
        if handler.get_name() == "dossier-bot":
            root.removeHandler(handler)
    root.setLevel(level)


def test_json_lines_carry_extra_fields(capture: io.StringIO) -> None:
    setup_logging("json", "INFO", stream=capture)
    logging.getLogger("bot.serve").info(
        "question answered", extra={"event": "question", "platform": "slack",
                                    "seconds": 0.123, "outcome": "answered", "chars": 42})
    logging.getLogger("bot.serve").debug("not shown at INFO")
    (line,) = capture.getvalue().splitlines()
    record = json.loads(line)
    assert record["level"] == "INFO" and record["logger"] == "bot.serve"
    assert record["msg"] == "question answered"
    assert record["seconds"] == 0.123 and record["outcome"] == "answered"
    assert record["ts"].endswith("Z")


def test_text_format_keeps_fields(capture: io.StringIO) -> None:
    setup_logging("text", "INFO", stream=capture)
    logging.getLogger("x").warning("slow", extra={"seconds": 2.5})
    line = capture.getvalue()
    assert "WARNING" in line and "slow seconds=2.5" in line


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_no_token_reaches_the_log(capture: io.StringIO, fmt: str) -> None:
    setup_logging(fmt, "DEBUG", stream=capture, secrets=[SIGNING])
    lib = logging.getLogger("slack_sdk.web.base_client")
    lib.setLevel(logging.DEBUG)
    try:
        lib.debug("Sending a request - headers: %s", {"Authorization": f"Bearer {SLACK_BOT}"})
        logging.getLogger("discord.client").info("logging in using static token %s", DISCORD)
        logging.getLogger("bot").info("app token %s", SLACK_APP, extra={"detail": SLACK_BOT})
        logging.getLogger("bot").info("signing secret was %s", SIGNING)
        logging.getLogger("aiohttp").warning("Authorization: Bot %s", "opaque-token-value-123")
        try:
            raise RuntimeError(f"auth failed for {SLACK_BOT}")
        except RuntimeError:
            logging.getLogger("bot").exception("request failed")
    finally:
        lib.setLevel(logging.NOTSET)
    out = capture.getvalue()
    for secret in (SLACK_BOT, SLACK_APP, DISCORD, SIGNING, "opaque-token-value-123"):
        assert secret not in out
    assert "SeCrEt" not in out
    assert out.count(REDACTED) >= 7
    assert "request failed" in out and "RuntimeError" in out  # the rest stays readable


def test_redactor_leaves_ordinary_text_alone() -> None:
    r = Redactor(["short", "a-longer-secret"])
    text = "Did China agree to send weapons to Russia? see https://example.com/a.b.c"
    assert r(text) == text
    assert r("value a-longer-secret here") == f"value {REDACTED} here"
    assert r("short") == "short"  # too short to redact without mangling words


def test_question_digest_is_stable_and_short() -> None:
    assert question_digest("Who?") == question_digest("Who?")
    assert len(question_digest("Who?")) == 10
    assert question_digest("Who?") != question_digest("Why?")


INTERACTION_TOKEN = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5MDEyMzQ1Njc4OlNlQ3JFdEludGVyYWN0aW9u"
WEBHOOK_URL = f"https://discord.com/api/v10/webhooks/1098765432109876543/{INTERACTION_TOKEN}"
CALLBACK_URL = (f"https://discord.com/api/v10/interactions/1200000000000000001/"
                f"{INTERACTION_TOKEN}/callback")


def test_discord_py_stays_at_info_when_we_log_at_debug(capture: io.StringIO) -> None:
    import discord.http
    import discord.webhook.async_

    setup_logging("text", "DEBUG", stream=capture)
    # discord.py's own module loggers: webhook/interaction URLs (with their token) and
    # request bodies are logged at DEBUG, which must not be on even though ours is.
    for lib in (discord.webhook.async_._log, discord.http._log, logging.getLogger("discord")):
        assert not lib.isEnabledFor(logging.DEBUG), lib.name
        assert lib.isEnabledFor(logging.INFO), lib.name
    discord.webhook.async_._log.debug("Webhook ID %s with %s %s has returned status code %s",
                                      1098765432109876543, "POST", WEBHOOK_URL, 204)
    logging.getLogger("bot.discord").debug("ours still logs at DEBUG")
    out = capture.getvalue()
    assert INTERACTION_TOKEN not in out and "Webhook ID" not in out
    assert "ours still logs at DEBUG" in out


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_webhook_and_interaction_tokens_are_redacted_from_urls(capture: io.StringIO,
                                                               fmt: str) -> None:
    import discord.webhook.async_

    setup_logging(fmt, "DEBUG", stream=capture)
    lib = discord.webhook.async_._log
    lib.setLevel(logging.DEBUG)  # as if someone turned discord.py's DEBUG on anyway
    try:
        # The exact line discord.py writes, for a follow-up and for an interaction callback.
        for url in (WEBHOOK_URL, f"{WEBHOOK_URL}/messages/@original", CALLBACK_URL):
            lib.debug("Webhook ID %s with %s %s has returned status code %s",
                      1098765432109876543, "POST", url, 200)
        logging.getLogger("bot").warning("reply failed", extra={"url": CALLBACK_URL})
        logging.getLogger("bot").info(
            "response_url https://hooks.slack.com/actions/T0001/123456/SeCrEtHoOkToKeN failed")
    finally:
        lib.setLevel(logging.NOTSET)
    out = capture.getvalue()
    assert INTERACTION_TOKEN not in out and "SeCrEt" not in out
    assert out.count(REDACTED) >= 5
    # The rest of the URL stays, so the line still says which webhook and route it was.
    assert f"/webhooks/1098765432109876543/{REDACTED}/messages/@original" in out
    assert f"/interactions/1200000000000000001/{REDACTED}/callback" in out


def test_redactor_leaves_other_webhook_looking_paths_alone() -> None:
    r = Redactor()
    text = "see /docs/webhooks/overview and /interactions/receiving"
    assert r(text) == text
