"""Discord embeds stay within Discord's limits whatever the dossier holds."""

from __future__ import annotations

import dataclasses
import hashlib
import re

import discord

from bot.answer import Answer, Answerer, Quote, Source
from bot.discord.render import (
    DESCRIPTION_MAX,
    EMBED_TOTAL_MAX,
    EMBEDS_MAX,
    NO_PINGS,
    clip,
    embed_size,
    escape,
    limit_problems,
    render_answer,
    render_sources,
    u16len,
)
from index.model import Article


def _articles(answerer: Answerer) -> list[Article]:
    return [s.article for s in answerer.sources()]


def _long_quotes(articles: list[Article], n: int, size: int) -> list[Quote]:
    """Verbatim spans of the real articles, longer than any passage the bot would pick."""
    quotes = []
    for i in range(n):
        a = articles[i % len(articles)]
        start = (i // len(articles)) * 97 % max(1, len(a.body) - size)
        end = min(len(a.body), start + size)
        quotes.append(Quote(a.body[start:end], start, end, 1.0 - i / 100, a))
    return quotes


def test_an_oversized_answer_is_cut_to_fit_every_limit(answerer: Answerer) -> None:
    quotes = _long_quotes(_articles(answerer), 12, 3000)
    reply = render_answer(Answer("What happened?", tuple(quotes)))
    assert limit_problems(reply.content, reply.embeds) == []
    assert sum(embed_size(e) for e in reply.embeds) <= EMBED_TOTAL_MAX
    assert 1 <= len(reply.embeds) <= EMBEDS_MAX
    assert reply.omitted == len(quotes) - len(reply.embeds) > 0
    assert f"{reply.omitted} more passage" in reply.content
    # The best quote comes first, and what is shown of each is the verbatim start of it.
    for quote, embed in zip(quotes, reply.embeds, strict=False):
        assert embed.footer.text.startswith(f"{quote.article.path} · characters {quote.start}")
        shown = embed.description.strip("“”").rstrip("…").replace("\\", "")
        assert " ".join(quote.text.split()).startswith(shown[:-5])


def test_many_quotes_never_exceed_ten_embeds(answerer: Answerer) -> None:
    quotes = _long_quotes(_articles(answerer), 30, 120)
    reply = render_answer(Answer("What happened?", tuple(quotes)))
    assert len(reply.embeds) == EMBEDS_MAX
    assert limit_problems(reply.content, reply.embeds) == []


def test_sources_of_a_large_dossier_fit(answerer: Answerer) -> None:
    base = _articles(answerer)
    many = [Source(dataclasses.replace(base[i % len(base)], id=f"{i:04d}",
                                       path=f"{i:04d}_{base[i % len(base)].path}"), 10 + i)
            for i in range(400)]
    reply = render_sources(many)
    assert limit_problems(reply.content, reply.embeds) == []
    assert reply.omitted > 0
    assert f"…and {reply.omitted} more article(s)." in reply.embeds[-1].description
    assert reply.embeds[0].title == "The dossier: 400 article(s)"


def test_every_real_source_is_listed(answerer: Answerer) -> None:
    sources = answerer.sources()
    reply = render_sources(sources)
    assert reply.omitted == 0 and limit_problems(reply.content, reply.embeds) == []
    text = "\n".join(e.description for e in reply.embeds)
    assert text.count("• ") == len(sources)


def test_a_link_that_is_not_http_is_left_out(answerer: Answerer) -> None:
    article = dataclasses.replace(_articles(answerer)[0], url="javascript:alert(1)")
    quote = Quote(article.body[:80], 0, 80, 0.5, article)
    [embed] = render_answer(Answer("q?", (quote,))).embeds
    assert embed.url is None
    assert "javascript" not in render_sources([Source(article, 1)]).embeds[0].description


def test_clip_counts_like_discord() -> None:
    # Discord counts UTF-16 code units: an emoji is two.
    text = clip("😀" * 5000, DESCRIPTION_MAX)
    assert u16len(text) <= DESCRIPTION_MAX and text.endswith("…")
    assert clip("short", 10) == "short"


def test_limit_problems_sees_what_discord_would_reject() -> None:
    too_long = discord.Embed(description="x" * (DESCRIPTION_MAX + 1))
    assert limit_problems(None, [too_long]) != []
    many = [discord.Embed(description="x" * 1000) for _ in range(7)]
    assert any("total" in p for p in limit_problems(None, many))
    assert any("embeds" in p for p in limit_problems(None, [discord.Embed(title="t")] * 11))


MARKUP = ("He said *bold* and **strong** and _italic_ and __under__ and ~~struck~~ with `code` "
          "and ||spoiler|| to <@123456789012345678> <@&123456789012345678> "
          "<#123456789012345678> <:fire:123456789012345678> <t:1700000000:R> "
          "</ask:123456789012345678> @everyone @here [click](https://evil.example) "
          "a \\ backslash, a < b > c & d, https://example.org/a_b*c_d and # not a header.")


def _shown(markdown: str) -> str:
    """What Discord displays for escaped text: each backslash escape stands for its character."""
    return re.sub(r"\\(.)", r"\1", markdown)


def test_a_quote_with_markup_and_mentions_shows_verbatim_and_pings_nobody() -> None:
    body = MARKUP
    article = Article(id="000_x", path="000_x.md", body=body,
                      sha256=hashlib.sha256(body.encode()).hexdigest(), title="T")
    reply = render_answer(Answer("q?", (Quote(body, 0, len(body), 0.9, article),)))
    [embed] = reply.embeds
    # Through discord.py's own serialisation, as it goes over the wire.
    description = discord.Embed.from_dict(embed.to_dict()).description
    assert _shown(description) == f"“{body}”"  # verbatim, with nothing added
    # Outside URLs, every character Discord treats as markup is escaped: no formatting,
    # no mention, channel, emoji, timestamp or command, no masked link.
    prose = re.sub(r"https://\S+", "", description)
    unescaped = re.sub(r"\\.", "", prose)
    assert not re.search(r"[*_~`|<\\]|\[[^\]]*\]\(", unescaped), unescaped
    assert "@everyone" in description  # shown as text: embeds never ping, nor does
    assert NO_PINGS.to_dict() == {"parse": []}  # allowed_mentions on every message we send
    assert limit_problems(reply.content, reply.embeds) == []


def test_escape_puts_a_backslash_before_each_markup_character_and_loses_nothing() -> None:
    assert escape("*a* <@1>") == "\\*a\\* \\<@1\\>"
    assert escape("# not a header\n- nor a list\n1. nor this") == (
        "\\# not a header\n\\- nor a list\n1\\. nor this")
    assert _shown(escape(MARKUP)) == MARKUP


def _bare(markdown: str) -> list[str]:
    """Characters that still start markup (a bracket or ``<`` not escaped by a backslash)."""
    return [m[1] for m in re.finditer(r"\\.|([\[\]<])", markdown) if m[1]]


TWO_LINKS = ("see [a](https://a.example) and [Verify your account](https://evil.example/login)"
             " \\[b](https://b.example)")


def test_no_masked_link_survives_in_any_field_an_article_or_question_fills() -> None:
    # discord.py's escape_markdown escapes only the first of several masked links.
    assert _bare(discord.utils.escape_markdown(TWO_LINKS)), "the gap this guards against"
    assert _shown(escape(TWO_LINKS)) == TWO_LINKS and not _bare(escape(TWO_LINKS))
    body = TWO_LINKS
    article = Article(id="000_x", path="000_x.md", body=body,
                      sha256=hashlib.sha256(body.encode()).hexdigest(), title=TWO_LINKS,
                      outlet=TWO_LINKS, author=TWO_LINKS, published=TWO_LINKS,
                      url="https://news.example/a")
    answered = render_answer(Answer(TWO_LINKS, (Quote(body, 0, len(body), 0.9, article),)))
    declined = render_answer(Answer(TWO_LINKS, reason=f"Not sure about {TWO_LINKS}",
                                    closest=(article,)))
    sources = render_sources([Source(article, 3)])
    for reply in (answered, declined, sources):
        wire = [discord.Embed.from_dict(e.to_dict()) for e in reply.embeds]
        shown = [reply.content, *(e.description or "" for e in wire),
                 *(f.value or "" for e in wire for f in e.fields)]
        own_link = f"[{escape(TWO_LINKS)}](https://news.example/a)"  # the bot's title link
        for text in shown:
            assert _bare(text.replace(own_link, "")) == [], text


def test_links_in_shown_text_stay_as_written_while_markup_around_them_is_escaped() -> None:
    from bot.discord.render import escape

    text = "See https://example.com/some_page_name?a=1*2, then *this* [x](https://e.vil)."
    shown = escape(text)
    assert "https://example.com/some_page_name?a=1*2," in shown
    assert "\\*this\\*" in shown and "\\[x\\]" in shown
