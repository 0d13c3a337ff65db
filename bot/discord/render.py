"""Answers as Discord messages: embeds that stay inside Discord's limits and ping nobody."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import discord

from bot.answer import Answer, Quote, Source
from bot.render import correction_note, neutralise, one_line
from index.model import Article

# Discord's documented limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits).
CONTENT_MAX = 2000
TITLE_MAX = 256
DESCRIPTION_MAX = 4096
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
FIELDS_MAX = 25
FOOTER_MAX = 2048
AUTHOR_MAX = 256
EMBED_TOTAL_MAX = 6000  # all embeds of one message together
EMBEDS_MAX = 10

NO_PINGS = discord.AllowedMentions.none()

ANSWER_COLOUR = discord.Colour(0x3B82F6)
DECLINE_COLOUR = discord.Colour(0x9CA3AF)

QUESTION_PREFIX = "**Q:** "
# The footer of a quote embed locates the passage; votes are recorded from it, so a button
# pressed after a restart still knows which passages it judged.
_LOCATOR = re.compile(r"^(?P<path>.+?) · characters (?P<start>\d+)–(?P<end>\d+)")


@dataclass(frozen=True)
class Reply:
    """What the bot sends for one answer; ``omitted`` counts quotes left out to fit."""

    content: str
    embeds: tuple[discord.Embed, ...]
    omitted: int = 0


def u16len(text: str) -> int:
    """Length as Discord counts it (JavaScript string length: UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` UTF-16 units, ending in "…" when it was cut."""
    if u16len(text) <= limit:
        return text
    cut = text[: max(0, limit - 1)]
    while cut and u16len(cut) > limit - 1:
        cut = cut[:-1]
    return cut.rstrip() + "…"


def embed_size(embed: discord.Embed) -> int:
    """The characters that count towards the 6,000 per message, in UTF-16 units."""
    size = u16len(embed.title or "") + u16len(embed.description or "")
    for f in embed.fields:
        size += u16len(f.name or "") + u16len(f.value or "")
    size += u16len(embed.footer.text or "") + u16len(embed.author.name or "")
    return size


def limit_problems(content: str | None, embeds: Sequence[discord.Embed]) -> list[str]:
    """Every way a message breaks Discord's limits; empty when Discord would accept it."""
    problems: list[str] = []
    if content and u16len(content) > CONTENT_MAX:
        problems.append(f"content {u16len(content)} > {CONTENT_MAX}")
    if len(embeds) > EMBEDS_MAX:
        problems.append(f"{len(embeds)} embeds > {EMBEDS_MAX}")
    total = 0
    for n, e in enumerate(embeds):
        checks = [("title", e.title, TITLE_MAX), ("description", e.description, DESCRIPTION_MAX),
                  ("footer", e.footer.text, FOOTER_MAX), ("author", e.author.name, AUTHOR_MAX)]
        checks += [(f"field {i} name", f.name, FIELD_NAME_MAX) for i, f in enumerate(e.fields)]
        checks += [(f"field {i} value", f.value, FIELD_VALUE_MAX) for i, f in enumerate(e.fields)]
        for what, text, limit in checks:
            if text and u16len(text) > limit:
                problems.append(f"embed {n} {what} {u16len(text)} > {limit}")
        if len(e.fields) > FIELDS_MAX:
            problems.append(f"embed {n} has {len(e.fields)} fields > {FIELDS_MAX}")
        total += embed_size(e)
    if total > EMBED_TOTAL_MAX:
        problems.append(f"embeds total {total} > {EMBED_TOTAL_MAX}")
    return problems


def _web_url(url: str | None) -> str | None:
    # Discord rejects the whole message when an embed url is not http(s).
    return url if url and re.match(r"^https?://\S+$", url) else None


def _link(article: Article) -> str:
    title = escape(one_line(article.label))
    url = _web_url(article.url)
    return f"[{title}]({url})" if url else title


def _byline(article: Article) -> str:
    return one_line(" · ".join(p for p in (article.outlet,
                                             article.author and f"by {article.author}",
                                             article.published) if p))


# Characters that start Discord markup anywhere, and line-start markup (headers, subtext,
# block quotes, lists).
_MARKUP = re.compile(r"[\\*_~`|\[\]<>]|^\s*(?:#|-|\d+\.)", re.MULTILINE)


def escape(text: str) -> str:
    """Untrusted text (quotes, questions, titles, bylines, reasons) shown exactly as written:
    a backslash before every markup character, which Discord hides.

    Not ``discord.utils.escape_markdown``: its masked-link pattern is greedy, so of two
    ``[text](url)`` in one string it escapes only the first and the second shows as a live
    link with any text; nor does it escape ``<``, so ``<@id>``, ``<@&id>``, ``<#id>``,
    ``<:emoji:id>``, ``<t:…>`` and ``</cmd:id>`` would show as a mention, channel, emoji,
    timestamp or command. Mentions could never notify anyone (embeds do not, and every
    message sets ``allowed_mentions`` to none); ``escape_mentions`` is not used, since its
    zero-width space would change a quote's characters.
    """
    # Links are left as written: Discord links them before it reads escapes, so a backslash
    # in one would show, and lead elsewhere. The text around them is escaped.
    text = neutralise(text)
    out, at = [], 0
    for link in _LINK.finditer(text):
        out += [_escaped(text[at:link.start()]), link.group()]
        at = link.end()
    return "".join([*out, _escaped(text[at:])])


_LINK = re.compile(r"https?://[^\s<>]*[^\s<>.,:;\"')\]]")


def _escaped(text: str) -> str:
    return _MARKUP.sub(lambda m: m[0][:-1] + "\\" + m[0][-1], text)


def question_line(question: str) -> str:
    return clip(QUESTION_PREFIX + escape(one_line(question)), CONTENT_MAX)


def quote_embed(quote: Quote, n: int, of: int, *, description_max: int = DESCRIPTION_MAX
                ) -> discord.Embed:
    article = quote.article
    text = escape(one_line(quote.text))  # read_back undoes it
    embed = discord.Embed(
        title=clip(one_line(article.label), TITLE_MAX),
        url=_web_url(article.url),
        description=clip(f"“{text}”", description_max),
        colour=ANSWER_COLOUR,
    )
    if article.outlet:
        embed.set_author(name=clip(one_line(article.outlet), AUTHOR_MAX))
    if article.author:
        embed.add_field(name="By", value=clip(escape(one_line(article.author)), FIELD_VALUE_MAX))
    if article.published:
        embed.add_field(name="Published",
                        value=clip(escape(one_line(article.published)), FIELD_VALUE_MAX))
    embed.set_footer(text=clip(f"{article.path} · characters {quote.start}–{quote.end}"
                               f" · quote {n} of {of}", FOOTER_MAX))
    return embed


def decline_embed(answer: Answer) -> discord.Embed:
    # The reason may echo the question (a follow-up that needs context): escaped like it.
    reason = escape(answer.reason) if answer.reason else "The dossier does not cover that question."
    # The reason may also be a bad question or a restart: only a searched-and-missed
    # question (one with nearest articles) is headed "Not in the dossier".
    if (note := correction_note(answer)):
        reason = f"{reason}\n\n{escape(one_line(note))}"
    embed = discord.Embed(title="Not in the dossier" if answer.closest else None,
                          description=clip(reason, DESCRIPTION_MAX), colour=DECLINE_COLOUR)
    lines: list[str] = []
    for article in answer.closest:
        line = f"• {_link(article)}"
        if (by := _byline(article)):
            line += f" — {escape(by)}"
        if u16len("\n".join([*lines, line])) > FIELD_VALUE_MAX:
            break
        lines.append(line)
    if lines:
        embed.add_field(name="Closest articles", value="\n".join(lines), inline=False)
    return embed


def render_answer(answer: Answer) -> Reply:
    """The question as content and one embed per quote, the best first, within every limit."""
    content = question_line(answer.question)
    if not answer.answered and not answer.unsure:
        return Reply(content, (decline_embed(answer),))
    if (note := correction_note(answer)):  # the quotes answer the corrected wording
        content = clip(f"{content}\n-# {escape(one_line(note))}",
                       CONTENT_MAX)
    if answer.unsure and answer.reason:
        # Closest passages, not an answer: the note comes before them, in the content.
        content = clip(f"{content}\n{escape(answer.reason)}", CONTENT_MAX)
    embeds: list[discord.Embed] = []
    budget = EMBED_TOTAL_MAX
    total = len(answer.quotes)
    for n, quote in enumerate(answer.quotes, 1):
        if len(embeds) == EMBEDS_MAX:
            break
        embed = quote_embed(quote, n, total)
        size = embed_size(embed)
        if size > budget:
            # Shorten this quote to what is left, if enough is left to be worth reading.
            room = u16len(embed.description or "") - (size - budget)
            if room < 200:
                break
            embed = quote_embed(quote, n, total, description_max=room)
            size = embed_size(embed)
        embeds.append(embed)
        budget -= size
    omitted = total - len(embeds)
    if omitted:
        content = clip(f"{content}\n-# {omitted} more passage(s) matched; not shown to keep "
                       "the message within Discord's limits.", CONTENT_MAX)
    return Reply(content, tuple(embeds), omitted)


def render_sources(sources: Sequence[Source]) -> Reply:
    """The dossier's articles as links, packed into as few embeds as the limits allow."""
    if not sources:
        empty = discord.Embed(title="The dossier is empty", colour=DECLINE_COLOUR,
                              description="Add articles to the corpus folder, then run /reindex.")
        return Reply("", (empty,))
    lines = []
    for s in sources:
        by = _byline(s.article)
        tail = f" — {escape(by)}" if by else ""
        lines.append(clip(f"• {_link(s.article)}{tail} ({s.passages} passages)", 1000))
    title = f"The dossier: {len(sources)} article(s)"
    embeds: list[discord.Embed] = []
    budget = EMBED_TOTAL_MAX - u16len(title) - 60  # room for the "…and N more" line
    current: list[str] = []
    shown = 0
    for line in lines:
        cost = u16len(line) + 1
        if cost > budget:
            break
        if u16len("\n".join([*current, line])) > DESCRIPTION_MAX:
            if len(embeds) + 1 == EMBEDS_MAX:
                break
            embeds.append(discord.Embed(description="\n".join(current), colour=ANSWER_COLOUR))
            current = []
        current.append(line)
        budget -= cost
        shown += 1
    if shown < len(lines):
        current.append(f"…and {len(lines) - shown} more article(s).")
    embeds.append(discord.Embed(description="\n".join(current), colour=ANSWER_COLOUR))
    embeds[0].title = title
    return Reply("", tuple(embeds), len(lines) - shown)


@dataclass(frozen=True)
class Located:
    """A quote as read back from a sent message: enough to find it in the dossier again."""

    path: str
    start: int
    end: int
    shown: str


def read_back(message: discord.Message) -> tuple[str, list[Located]]:
    """The question and the located quotes of an answer the bot sent (for feedback votes)."""
    content = message.content or ""
    first = content.split("\n", 1)[0]
    question = first[len(QUESTION_PREFIX):] if first.startswith(QUESTION_PREFIX) else first
    quotes: list[Located] = []
    for embed in message.embeds:
        match = _LOCATOR.match(embed.footer.text or "")
        if match:
            shown = (embed.description or "").strip("“”")
            quotes.append(Located(match["path"], int(match["start"]), int(match["end"]),
                                  _unescape(shown)))
    return _unescape(question), quotes


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def quote_records(located: Iterable[Located], articles: Iterable[Article]) -> list[dict]:
    """Quotes in the JSON shape of ``answer_to_json`` (text from the dossier when it is found)."""
    by_path = {a.path: a for a in articles}
    out: list[dict] = []
    for q in located:
        article = by_path.get(q.path)
        if article is not None and q.end <= len(article.body):
            out.append({"text": article.body[q.start:q.end], "start": q.start, "end": q.end,
                        "article": article.meta()})
        else:  # the article left the dossier since: keep what the user saw
            out.append({"text": q.shown, "start": q.start, "end": q.end,
                        "article": {"path": q.path}})
    return out
