"""Shared pieces of the Slack tests: settings pointing at the fake, and reading posts back."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from slack_sdk.models.blocks import Block

from bot.answer import Answer
from bot.config import Settings

from .fake_slack import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, Call

ADMIN = "U0ADMIN"
USER = "U0ASKER"
# Answerable from the dossier (001: "Russia also denied on Monday ...").
QUESTION = "Did Moscow deny asking Beijing for help?"


def slack_settings(fake_api_url: str, tmp_path: Path, *, app_token: bool = False,
                   corpus_dir: Path | None = None, index_dir: Path | None = None,
                   rate_limit: int = 100, **extra: Any) -> Settings:
    return Settings(**extra,
        corpus_dir=corpus_dir or tmp_path / "corpus",
        index_dir=index_dir or tmp_path / "index",
        admins=frozenset({ADMIN}),
        rate_limit_per_minute=rate_limit,
        feedback_db=tmp_path / "feedback.sqlite3",
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_app_token=APP_TOKEN if app_token else None,
        slack_api_url=fake_api_url,
    )


def norm(text: str) -> str:
    return " ".join(text.split())


def quoted(call: Call) -> str:
    """The rich-text quotes of a posted answer, joined, whitespace runs collapsed."""
    return norm(" ".join(call.quotes()))


def assert_blocks_valid(blocks: list[dict]) -> None:
    """slack_sdk's Block Kit models read every block back unchanged and find nothing wrong."""
    for block in blocks:
        parsed = Block.parse(block)
        assert parsed is not None and parsed.type == block["type"], block
        parsed.validate_json()
        assert parsed.to_dict() == block


def assert_quotes_posted(call: Call, expected: Answer) -> None:
    """Every quote of ``expected`` appears verbatim (literal, unescaped) in the rich-text
    quote blocks, in order, and the plain-text fallback carries the first one."""
    assert expected.answered, f"the dossier should answer {expected.question!r}: {expected.reason}"
    assert_blocks_valid(call.blocks)  # as sent over the wire
    body = quoted(call)
    position = 0
    for quote in expected.quotes:
        text = norm(quote.text)
        found = body.find(text, position)
        assert found >= 0, f"quote missing or out of order: {quote.text[:80]!r}"
        position = found + len(text)
    first = norm(expected.quotes[0].text)
    assert first[:200] in html.unescape(norm(call.text)), "fallback text lacks the first quote"


PING = re.compile(r"<[!@#]|<(?:!?)(?:channel|here|everyone)")


def assert_cannot_ping(calls: list[Call]) -> None:
    """Nothing posted holds Slack markup that would notify anyone: no mention syntax in any
    mrkdwn or fallback text, and only plain text elements (no user, broadcast, channel or
    usergroup element) in the rich-text quotes, whose text Slack shows literally."""
    for call in calls:
        for text in [call.text, *call.block_texts()]:
            assert not PING.search(text), f"{call.method} could ping: {text[:200]!r}"
        for leaf in call.rich_text_leaves():
            assert set(leaf) == {"type", "text"} and leaf["type"] == "text", (
                f"{call.method} has a rich-text element other than plain text: {leaf!r}")
