"""Platform-neutral renderers: plain text for people, JSON for scripts (DESIGN.md contract)."""

from __future__ import annotations

import re
import textwrap
from typing import Any

from bot.answer import Answer, Quote, Source
from index.model import Article

# Characters that change how text *looks* without being seen: bidi embeddings, overrides and
# isolates (an article can make "gpj.exe" read "exe.jpg"), zero-width spaces and joiners, and
# the byte-order mark. Shown text drops them; JSON keeps the exact span.
_INVISIBLE = re.compile(
    # a flag's tag sequence (England, Scotland, Wales) is kept: group 1
    "(\U0001f3f4[\U000e0020-\U000e007e]+\U000e007f)"
    "|[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\u061c\u180e\ufeff"
    "\ufff9-\ufffb\u3164\uffa0"
    # other tag characters: invisible text ("ASCII smuggling")
    "\U000e0000-\U000e007f]")
# Control characters other than tab and line breaks, and lone surrogates (undecodable input,
# which no terminal can be sent): ESC starts terminal escape sequences
# (colours, cursor moves, window titles) that a quote must not send to a console.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def neutralise(text: str) -> str:
    """``text`` safe to show: invisible formatting characters removed, every line break
    (CR, CRLF, U+2028/9) a newline, other control characters shown as U+FFFD."""
    text = _LINE_BREAK.sub("\n", text)
    return _CONTROL.sub("\ufffd", _INVISIBLE.sub(lambda m: m.group(1) or "", text))


def one_line(text: str) -> str:
    """``neutralise``d, on one line: a name or title cannot start a line of its own (and
    pass for another article's attribution)."""
    return " ".join(neutralise(text).split())


_LINE_BREAK = re.compile("\r\n?|[\u2028\u2029\x85]")


def attribution(article: Article, *, with_url: bool = True) -> str:
    """“Title”, Outlet, by Author, 2022-03-15 — url; falls back to the file name."""
    parts: list[str] = []
    parts.append(f"“{article.title}”" if article.title else article.path)
    if article.outlet:
        parts.append(article.outlet)
    if article.author:
        parts.append(f"by {article.author}")
    if article.published:
        parts.append(article.published)
    line = ", ".join(parts)
    if with_url and article.url:
        line += f" — {article.url}"
    return one_line(line)


def correction_note(answer: Answer) -> str | None:
    """What to say of a corrected question: the wording searched when quotes are shown; a
    suggestion when nothing was found. None when the question was searched as asked."""
    if not answer.corrected:
        return None
    if answer.quotes:
        return f"Searched for: {answer.corrected}"
    return f"Did you mean: {answer.corrected}?"


def render_text(answer: Answer, *, width: int = 88) -> str:
    text = _render_text(answer, width)
    note = correction_note(answer)
    if note:
        # A suggestion follows the decline it answers; the searched wording heads the quotes.
        text = f"{text}\n\n{note}" if not answer.quotes else f"({note})\n{text}"
    return neutralise(text)


def _render_text(answer: Answer, width: int) -> str:
    if answer.unsure:
        blocks = [answer.reason or "I am not sure the dossier covers this; the closest "
                  "passages are:"]
        blocks += [_quote_block(n, q, width) for n, q in enumerate(answer.quotes, 1)]
        return "\n\n".join(blocks)
    if not answer.answered:
        lines = [answer.reason or "The dossier does not cover that question."]
        if answer.closest:
            lines.append("")
            lines.append("Closest articles in the dossier:")
            lines.extend(f"  • {attribution(a)}" for a in answer.closest)
        return "\n".join(lines)
    blocks: list[str] = []
    for n, quote in enumerate(answer.quotes, 1):
        blocks.append(_quote_block(n, quote, width))
    return "\n\n".join(blocks)


def _quote_block(n: int, quote: Quote, width: int) -> str:
    # A margin bar marks the quote: wrapping it in quotation marks would clash with the
    # article's own, which a verbatim quote often starts or ends with.
    text = " ".join(neutralise(quote.text).split())
    wrapped = textwrap.fill(text, width=width - 4, initial_indent="  │ ", subsequent_indent="  │ ")
    return f"[{n}] {attribution(quote.article)}\n{wrapped}"


def answer_to_json(answer: Answer) -> dict[str, Any]:
    return {
        "question": answer.question,
        "answered": answer.answered,
        "reason": None if answer.answered else answer.reason,
        "confidence": answer.confidence,
        "quotes": [
            {
                "text": q.text,
                "start": q.start,
                "end": q.end,
                "score": round(float(q.score), 4),
                "article": q.article.meta(),
            }
            for q in answer.quotes
        ],
        "answer": render_text(answer),
        "closest": [] if answer.answered else [a.meta() for a in answer.closest],
        # Added after the first contract: the question as searched when the speller changed
        # a word of it, else null.
        "corrected_question": answer.corrected,
    }


def render_sources_text(sources: list[Source]) -> str:
    if not sources:
        return "The dossier is empty: add articles to the corpus folder and rebuild the index."
    lines = [f"The dossier holds {len(sources)} article(s):"]
    for s in sources:
        lines.append(f"  • {attribution(s.article)} ({s.passages} passages)")
    return neutralise("\n".join(lines))
