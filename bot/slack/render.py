"""Block Kit for Slack: answers, sources and notices, escaped and within Slack's limits.

Quotes go into rich-text quote blocks as literal text, so they show exactly as written;
everything else is mrkdwn with Slack's control characters escaped.
"""

from __future__ import annotations

import json
import re
from typing import Any

from bot.answer import Answer, Quote, Source
from bot.render import attribution, correction_note, neutralise, one_line
from index.model import Article

SECTION_LIMIT = 3000  # characters of mrkdwn in one section or context element
# Characters of quote in one rich_text block. Slack documents no limit for a rich-text
# `text` element; we keep each block to the section limit, the largest Slack documents for
# the text of one block, so that no one block is larger than what the section code sent.
QUOTE_LIMIT = SECTION_LIMIT
BLOCK_LIMIT = 50  # blocks in one message
TEXT_LIMIT = 3900  # the plain `text` fallback; Slack advises staying under 4,000
VALUE_LIMIT = 2000  # characters in a button's value

ACTION_UP = "dossier_feedback_up"
ACTION_DOWN = "dossier_feedback_down"
ACTION_SHARE = "dossier_share"

Message = dict[str, Any]


def escape(text: str) -> str:
    """Escape Slack's control characters, so no text can become <!channel>, <@U…> or a link;
    bidi overrides, zero-width and terminal control characters neutralised."""
    return neutralise(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _link(article: Article) -> str:
    title = escape(one_line(article.title or article.path))
    url = article.url or ""
    # A `|` or whitespace would end Slack's <url|label> syntax early; show no link then.
    if re.fullmatch(r"https?://[^\s|<>]+", url):
        return f"<{escape(url)}|{title}>"
    return title


def source_line(article: Article) -> str:
    """Linked title · outlet · author · date, as mrkdwn."""
    parts = [f"*{_link(article)}*"]
    if article.outlet:
        parts.append(escape(one_line(article.outlet)))
    if article.author:
        parts.append("by " + escape(one_line(article.author)))
    if article.published:
        parts.append(escape(article.published))
    return " · ".join(parts)


def _quote_chunks(text: str, limit: int = QUOTE_LIMIT) -> list[str]:
    """The quote on one line, split at spaces into pieces of at most ``limit`` characters.

    Joined with single spaces the pieces give back the whole quote: nothing is clipped (a
    "word" longer than ``limit`` is cut into ``limit``-sized parts).
    """
    chunks: list[str] = []
    current = ""
    for word in one_line(text).split(" "):
        while len(word) > limit:
            if current:
                chunks.append(current)
                current = ""
            chunks.append(word[:limit])
            word = word[limit:]
        if current and len(current) + 1 + len(word) > limit:
            chunks.append(current)
            current = ""
        current = f"{current} {word}" if current else word
    if current:
        chunks.append(current)
    return chunks


def _quote_block(text: str) -> dict[str, Any]:
    """A Block Kit rich-text quote holding ``text`` as one literal text element.

    Text in a rich-text ``text`` element is shown as it is: no mrkdwn (``*``, ``_``, ``~``,
    backticks stay characters) and no mentions (those are separate element types, which we
    never emit), so the quote is neither formatted nor escaped.
    """
    return {"type": "rich_text",
            "elements": [{"type": "rich_text_quote",
                          "elements": [{"type": "text", "text": text}]}]}


def _mrkdwn(text: str) -> dict[str, Any]:
    # verbatim: Slack leaves the text as sent. Without it, Slack "automatically parses"
    # plain text: links channel names and turns some mentions into real ones.
    return {"type": "mrkdwn", "text": _clip(text, SECTION_LIMIT), "verbatim": True}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(text)}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [_mrkdwn(text)]}


def _button(text: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "action_id": action_id,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def button_value(answer_id: str, answer: Answer) -> str:
    """What a button carries: the answer's id plus enough to record a vote after a restart."""
    refs = [[q.article.id, q.start, q.end] for q in answer.quotes]
    question = answer.question
    while True:
        value = json.dumps({"id": answer_id, "q": question, "k": refs}, ensure_ascii=False,
                           separators=(",", ":"))
        if len(value) <= VALUE_LIMIT:
            return value
        if len(question) > 40:
            question = question[: max(40, len(question) - (len(value) - VALUE_LIMIT) - 1)]
        elif refs:
            refs = refs[:-1]
        else:  # pragma: no cover - an id and 40 characters always fit
            return json.dumps({"id": answer_id})


def parse_button_value(value: str) -> dict[str, Any]:
    try:
        data = json.loads(value)
    except (TypeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def quote_dict(quote: Quote) -> dict[str, Any]:
    """A quote as recorded with a vote."""
    return {"text": quote.text, "start": quote.start, "end": quote.end,
            "score": round(float(quote.score), 4), "article": quote.article.id,
            "title": quote.article.title}


def fallback_text(answer: Answer) -> str:
    """Plain text for notifications and clients without Block Kit; it contains the quotes."""
    note = correction_note(answer)
    if not answer.answered and not answer.unsure:
        lines = [answer.reason or "The dossier does not cover that question."]
        if note:
            lines.append(one_line(note))
        if answer.closest:
            lines.append("Closest articles: " + "; ".join(attribution(a) for a in answer.closest))
        return _clip(escape("\n".join(lines)), TEXT_LIMIT)
    lines = [one_line(note)] if note else []
    lines += [answer.reason] if answer.unsure and answer.reason else []
    for n, quote in enumerate(answer.quotes, 1):
        lines.append(f"[{n}] “{one_line(quote.text)}” — {attribution(quote.article)}")
    return _clip(escape("\n".join(lines)), TEXT_LIMIT)


def render_answer(answer: Answer, *, answer_id: str | None = None,
                  shareable: bool = False, shared: bool = False) -> Message:
    """The answer as a Slack message: question, quotes with sources, then the buttons.

    ``answer_id`` adds the 👍/👎 buttons; ``shareable`` adds "Share in channel" (for the
    ephemeral reply to /ask).
    """
    blocks: list[dict[str, Any]] = []
    if answer.question.strip():
        label = "Shared answer to" if shared else "Question"
        blocks.append(_context(f"{label}: {escape(_clip(one_line(answer.question), 500))}"))
    if answer.read_differently:
        # A follow-up is answered as the question it continues: say which, as Discord does.
        blocks.append(_context(
            f"Read as: {escape(_clip(one_line(answer.read_differently), 500))}"))
    reserve = 2 if answer_id else 0  # the actions block, and a note on quotes left out
    note = correction_note(answer)
    if note and answer.quotes:  # the quotes below answer the corrected wording
        blocks.append(_context(escape(one_line(note))))
    if answer.unsure and answer.reason:
        blocks.append(_section(escape(answer.reason)))
    if answer.answered or answer.unsure:
        shown = 0
        for n, quote in enumerate(answer.quotes, 1):
            quote_blocks = [_quote_block(c) for c in _quote_chunks(quote.text)]
            quote_blocks.append(_context(f"[{n}] {source_line(quote.article)}"))
            if len(blocks) + len(quote_blocks) > BLOCK_LIMIT - reserve - 1:
                break
            blocks.extend(quote_blocks)
            shown += 1
        if shown < len(answer.quotes):
            left = len(answer.quotes) - shown
            blocks.append(_context(f"{left} more quote(s) left out to fit Slack's limits."))
    else:
        reason = answer.reason or "The dossier does not cover that question."
        blocks.append(_section(escape(reason)))
        if note:
            blocks.append(_section(escape(one_line(note))))
        if answer.closest:
            lines = "\n".join(f"• {source_line(a)}" for a in answer.closest)
            blocks.append(_context(f"Closest articles in the dossier:\n{lines}"))
    if answer_id:
        value = button_value(answer_id, answer)
        elements = [_button("👍 Helpful", ACTION_UP, value),
                    _button("👎 Not helpful", ACTION_DOWN, value)]
        if shareable:
            elements.append(_button("Share in channel", ACTION_SHARE, value, style="primary"))
        blocks.append({"type": "actions", "block_id": "dossier_answer_actions",
                       "elements": elements})
    return {"text": fallback_text(answer), "blocks": blocks[:BLOCK_LIMIT]}


def render_sources(sources: list[Source]) -> Message:
    if not sources:
        return notice("The dossier is empty: add articles to the corpus folder and run /reindex.")
    head = f"The dossier holds {len(sources)} article(s):"
    lines = [f"• {source_line(s.article)} ({s.passages} passages)" for s in sources]
    blocks: list[dict[str, Any]] = [_section(f"*{head}*")]
    current: list[str] = []
    shown = 0
    for line in lines:
        if current and len("\n".join([*current, line])) > SECTION_LIMIT:
            blocks.append(_section("\n".join(current)))
            current = []
        if len(blocks) >= BLOCK_LIMIT - 1:
            break
        current.append(line)
        shown += 1
    if current:
        blocks.append(_section("\n".join(current)))
    if shown < len(lines):
        blocks = blocks[: BLOCK_LIMIT - 1]
        blocks.append(_context(f"…and {len(lines) - shown} more."))
    text = escape(head) + "\n" + "\n".join(
        "• " + escape(attribution(s.article)) for s in sources)
    return {"text": _clip(text, TEXT_LIMIT), "blocks": blocks}


def notice(text: str) -> Message:
    """A short message of our own, with any user- or article-provided text escaped."""
    safe = escape(text)
    return {"text": _clip(safe, TEXT_LIMIT), "blocks": [_section(safe)]}


def render_report(report: Any) -> Message:
    data = report.as_dict() if hasattr(report, "as_dict") else dict(vars(report))
    text = (f"Index rebuilt: {data.get('articles')} article(s), {data.get('chunks')} passage(s); "
            f"{data.get('embedded')} embedded, {data.get('removed')} removed, "
            f"in {float(data.get('seconds') or 0):.1f} s.")
    return notice(text)
