"""Block Kit rendering: escaping, Slack's size limits, buttons, and question clean-up."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from fakes.slack_helpers import assert_blocks_valid

from bot.answer import Answer, Quote, Source
from bot.slack.app import slack_text_to_plain
from bot.slack.render import (
    ACTION_DOWN,
    ACTION_SHARE,
    ACTION_UP,
    BLOCK_LIMIT,
    QUOTE_LIMIT,
    SECTION_LIMIT,
    VALUE_LIMIT,
    button_value,
    parse_button_value,
    render_answer,
    render_sources,
)
from index.model import Article

PING = re.compile(r"<[!@#]")


def article(body: str, **meta: str | None) -> Article:
    fields = {"title": "Russia asks for help from China", "outlet": "Impakter",
              "author": "Claude Forthomme", "published": "2022-03-15",
              "url": "https://impakter.com/russia-asks-china/"}
    fields.update(meta)
    return Article(id="000_x", path="000_x.txt", body=body,
                   sha256=hashlib.sha256(body.encode()).hexdigest(), **fields)


def quote_of(art: Article, text: str, score: float = 0.8) -> Quote:
    start = art.body.index(text)
    return Quote(text=text, start=start, end=start + len(text), score=score, article=art)


def texts(message: dict) -> list[str]:
    """The fallback text and every mrkdwn/plain text of the blocks: what Slack parses."""
    out = [message["text"]]
    for block in message["blocks"]:
        if "text" in block:
            out.append(block["text"]["text"])
        if block["type"] == "rich_text":
            continue  # literal text, see quote_elements()
        for element in block.get("elements", []):
            text = element.get("text")
            out.append(text["text"] if isinstance(text, dict) else text)
    return out


def quote_elements(message: dict) -> list[list[dict[str, Any]]]:
    """For each rich-text quote block, the elements inside its rich_text_quote."""
    out = []
    for block in message["blocks"]:
        if block["type"] == "rich_text":
            [quote] = block["elements"]
            assert quote["type"] == "rich_text_quote"
            out.append(quote["elements"])
    return out


def quote_texts(message: dict) -> list[str]:
    return ["".join(e["text"] for e in elements) for elements in quote_elements(message)]


def assert_slack_sdk_accepts(message: dict) -> None:
    assert_blocks_valid(message["blocks"])


def test_article_text_cannot_ping_or_inject_links() -> None:
    body = ("Officials said <!channel> & <!here> should read <@U024BE7LH> and "
            "<https://evil.example|this> at once, @everyone.")
    art = article(body, title="A <!everyone> title & more", outlet="<@U1> News",
                  author="Bob <b>", url="https://example.org/a?x=1&y=2")
    answer = Answer(question="What <!channel> said?", quotes=(quote_of(art, body),))
    message = render_answer(answer, answer_id="abc123", shareable=True)
    assert_slack_sdk_accepts(message)
    for text in texts(message):
        assert not PING.search(text), text
        assert "<https://evil" not in text
    # The quote is one literal rich-text element: shown as written, and no user, broadcast
    # or link element that could notify anyone or link anywhere.
    [[element]] = quote_elements(message)
    assert element == {"type": "text", "text": body}
    joined = "\n".join(texts(message))
    assert "&lt;!channel&gt; &amp; &lt;!here&gt;" in message["text"]  # the fallback is escaped
    assert "A &lt;!everyone&gt; title &amp; more" in joined
    # The real link survives, with its & escaped as Slack requires.
    assert "<https://example.org/a?x=1&amp;y=2|A &lt;!everyone&gt; title &amp; more>" in joined


def test_markup_in_a_quote_comes_out_byte_for_byte() -> None:
    body = ("He said *bold* and _italic_ and ~struck~ with `code` and ```block``` "
            "to <!channel> <!here|here> <@U123> <#C123|news> @everyone @here "
            "&amp; &lt;b&gt; a < b > c & d :fire: > not a quote \\*x\\* "
            "<https://evil.example|click> https://example.org/a_b_c.")
    art = article(body)
    message = render_answer(Answer("q?", (quote_of(art, body),)), answer_id="id0")
    assert_slack_sdk_accepts(message)
    [[element]] = quote_elements(message)
    assert element == {"type": "text", "text": body}  # no style, no escaping, nothing added
    assert element["text"].encode() == body.encode()
    # Nothing Slack parses as mrkdwn carries the quote's markup unescaped.
    assert not any(PING.search(t) for t in texts(message))


def test_an_unsafe_url_is_shown_without_a_link() -> None:
    art = article("Some text here.", url="https://example.org/a|<!channel>")
    message = render_answer(Answer("q?", (quote_of(art, "Some text here."),)))
    source = next(t for t in texts(message) if t.startswith("[1]"))
    assert "<https://" not in source and "Russia asks for help from China" in source


def test_long_quote_is_split_into_quote_blocks_within_the_limit() -> None:
    sentence = "The pipeline & the port <were> *closed* for the winter season again. "
    body = sentence * 120  # ~8,000 characters
    art = article(body)
    message = render_answer(Answer("q?", (quote_of(art, body.strip()),)), answer_id="id1")
    assert_slack_sdk_accepts(message)
    chunks = quote_texts(message)
    assert len(chunks) >= 3
    assert all(0 < len(c) <= QUOTE_LIMIT for c in chunks)
    assert " ".join(chunks) == " ".join(body.split())  # nothing lost, nothing reordered
    types = [b["type"] for b in message["blocks"]]
    assert types == ["context", *["rich_text"] * len(chunks), "context", "actions"]


def test_a_word_longer_than_the_limit_is_cut_not_lost() -> None:
    body = "start " + "x" * (2 * QUOTE_LIMIT + 10) + " end"
    art = article(body)
    message = render_answer(Answer("q?", (quote_of(art, body),)))
    chunks = quote_texts(message)
    assert all(len(c) <= QUOTE_LIMIT for c in chunks)
    assert "".join(chunks).replace(" ", "") == body.replace(" ", "")


def test_many_quotes_stay_under_fifty_blocks_and_say_what_was_left_out() -> None:
    body = " ".join(f"Sentence number {i} of the article." for i in range(80))
    art = article(body)
    quotes = tuple(quote_of(art, f"Sentence number {i} of the article.") for i in range(60))
    message = render_answer(Answer("q?", quotes), answer_id="id2", shareable=True)
    assert len(message["blocks"]) <= BLOCK_LIMIT
    assert message["blocks"][-1]["type"] == "actions"
    assert any("more quote(s) left out" in t for t in texts(message))
    assert_slack_sdk_accepts(message)
    shown = quote_texts(message)
    assert shown == [f"Sentence number {i} of the article." for i in range(len(shown))]
    assert len(message["text"]) <= 4000


def test_buttons_and_their_value_fit_slack() -> None:
    body = "Beijing denied it. " * 50
    art = article(body)
    quotes = tuple(Quote("Beijing denied it.", i * 19, i * 19 + 18, 0.5, art) for i in range(40))
    answer = Answer("why " * 300, quotes)  # a long question and many quotes
    message = render_answer(answer, answer_id="feedbeef", shareable=True)
    buttons = message["blocks"][-1]["elements"]
    assert [b["action_id"] for b in buttons] == [ACTION_UP, ACTION_DOWN, ACTION_SHARE]
    value = buttons[0]["value"]
    assert len(value) <= VALUE_LIMIT
    data = parse_button_value(value)
    assert data["id"] == "feedbeef" and answer.question.startswith(data["q"])
    assert data["k"][0] == ["000_x", 0, 18]
    assert len(button_value("x", Answer("short?", quotes[:2]))) < 200


def test_fallback_text_carries_the_quotes_and_sources() -> None:
    body = "Russia also denied on Monday that it had asked China for military help."
    art = article(body)
    message = render_answer(Answer("Did Moscow deny it?", (quote_of(art, body),)))
    assert body in message["text"]
    assert "Impakter" in message["text"] and "2022-03-15" in message["text"]
    assert "actions" not in [b["type"] for b in message["blocks"]]  # no id: no buttons


def test_a_declined_answer_names_the_closest_articles() -> None:
    art = article("Body.", title="Coal & China")
    answer = Answer("Who is the CEO of Tesla?", reason="The dossier does not cover that.",
                    closest=(art,))
    message = render_answer(answer, answer_id="id3")
    joined = "\n".join(texts(message))
    assert "The dossier does not cover that." in joined
    assert "Coal &amp; China" in joined
    assert "Coal &amp; China" in message["text"] or "Coal &amp; China" in joined
    assert ACTION_SHARE not in json.dumps(message)


def test_sources_fit_slack_however_many_articles() -> None:
    sources = [Source(article(f"body {i}", title=f"Article {i} <!here> " + "x" * 80), 12)
               for i in range(2000)]
    message = render_sources(sources)
    assert len(message["blocks"]) <= BLOCK_LIMIT
    assert all(len(t) <= SECTION_LIMIT for t in texts(message)[1:])
    assert "…and" in texts(message)[-1]
    assert not any(PING.search(t) for t in texts(message))
    assert render_sources([])["text"].startswith("The dossier is empty")


def test_question_markup_is_undone_and_the_bot_mention_dropped() -> None:
    assert slack_text_to_plain("<@UBOT> did China agree?", "UBOT") == "did China agree?"
    assert slack_text_to_plain("<@UBOT>: what about coal?", "UBOT") == "what about coal?"
    assert (slack_text_to_plain("ask <@U2|ann> and <!here> about <#C1|news> &amp; "
                                "<https://x.org|this> &lt;b&gt;", "UBOT")
            == "ask @ann and @here about #news & this <b>")


def test_every_mrkdwn_text_is_verbatim_so_slack_parses_no_mention() -> None:
    # Without verbatim, Slack "automatically parses" plain text in mrkdwn objects (links
    # channel names, turns some mentions into real ones) even when < > & are escaped.
    from bot.slack.render import notice

    body = "Someone wrote @channel and @here and #general in this quote."
    article = Article(id="000_x", path="000_x.md", body=body,
                      sha256=hashlib.sha256(body.encode()).hexdigest(), title="@here title",
                      outlet="@channel news")
    messages = [render_answer(Answer("@everyone?", (Quote(body, 0, len(body), 0.9, article),))),
                render_answer(Answer("@everyone?", reason="Not covered", closest=(article,))),
                render_sources([Source(article, 3)]), notice("@here notice")]
    found = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for message in messages:
        walk(message.get("blocks", []))
    assert found and all(node.get("verbatim") is True for node in found)
