"""Decide which spans of a scraped article body are article text worth indexing.

Cleaning never rewrites text: it returns character ranges of the body, so every passage
maps back to exact offsets. Page furniture (menus, related-post lists, share widgets,
copyright footers, embed attributions, repeated blocks) is simply left out.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

# A line that, once the article has started, marks the end of the article proper.
_END_MARKERS = re.compile(
    r"^(?:related posts?|recent (?:news|posts)|previous (?:post|article)|next (?:post|article)"
    r"|read (?:more|next)|more from|you may also like|tags?:|share(?: this)?:?"
    r"|comments are closed\.?"
    r"|leave a (?:comment|reply)|error: content is protected|©|copyright\b|\(c\) \d{4}"
    r"|all rights reserved|sign up for|subscribe to)",
    re.IGNORECASE,
)
CLEANING_VERSION = 3  # bump when a change would alter which spans are indexed

_BULLET = re.compile(r"^\s*[•·▪●◦‣*–-]\s+")
_EMBED_ATTRIBUTION = re.compile(  # "— AFP News Agency (@AFP) March 14, 2022"
    r"^[—–-]\s*.{1,80}\(@\w{1,30}\)\s+\w+\s+\d{1,2},\s+\d{4}\s*$")
_URL = re.compile(r"(?:https?://|www\.|pic\.twitter\.com/)\S+")
_TRAILING_JUNK = re.compile(r"^(?:\s|\d+/\d*|" + _URL.pattern + r")*$")
_PROMO = re.compile(r"\bclick here\b|\bfree (?:\d+-month )?trial\b|\bsubscribe now\b",
                    re.IGNORECASE)
# Publishers' disclaimers: "Editor's Note: The opinions expressed here by ... are their own".
_DISCLAIMER = re.compile(r"^editor[’']s note\b|\b(?:opinions|views) expressed (?:here|in this)"
                         r"\b.*\bare (?:their|his|her|the author[’']s) own\b|"
                         r"\b(?:featured )?photo credit:", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?:;…\"”’)]\s*$")
_WORD = re.compile(r"\w+")
# Bylines and datelines: "By Jane Smith", "Published: 20 March 2022", "Updated 14:02 GMT".
_BYLINE = re.compile(r"^(?:by|written by|words by|reporting by)\s+\S", re.IGNORECASE)
_MONTH = (r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?")
_DATELINE = re.compile(
    r"^(?:(?:published|updated|last updated|posted|first published)(?:\s+on)?:?\s*)?"
    r"(?:(?:mon|tue|wed|thu|fri|sat|sun)[a-z]*,?\s+)?"
    rf"(?:\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH},?\s+\d{{4}}|{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?"
    r"\s+\d{4}|\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{4})"
    r"(?:[\s,|•·-]+(?:at\s+)?\d{1,2}[:.]\d{2}(?:\s*(?:am|pm))?(?:\s*[A-Z]{2,4})?)?\s*$",
    re.IGNORECASE)
# A line this long that stops without sentence punctuation and runs straight on (one line
# break) is a hard-wrapped paragraph (PDF text, e-mailed copy): its lines are read as one.
_WRAP_MIN = 40
_SOFT_END = re.compile(r"[.!?…\"”’)]\s*$")
# Near-duplicate detection looks at most this many earlier lines per shingle, so that it stays
# linear in the article's length (a shingle shared by more lines is boilerplate already seen).
_MAX_POSTINGS = 32


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    block: int  # spans of one block are contiguous article text, with no furniture between


def indexable_spans(body: str, title: str | None = None,
                    author: str | None = None) -> list[Span]:
    """Spans of ``body`` worth indexing. Lines that repeat the ``title`` (the headline of a
    plain-text article, a Markdown heading) and bylines naming the ``author`` are left out,
    so no quote starts with the headline glued to the first sentence."""
    title_norm = _normalise(_strip_heading(title)) if title else None
    author_norm = _normalise(author) if author else None
    kept: list[tuple[int, int]] = []
    started = False
    seen = _Shingles()
    seen_exact: set[str] = set()
    for start, end in _lines(body):
        text = body[start:end]
        stripped = text.strip()
        if not stripped:
            continue
        if started and _END_MARKERS.match(stripped):
            break
        if _is_furniture_line(stripped, started):
            continue
        norm = _normalise(stripped)
        if title_norm and _normalise(_strip_heading(stripped)) == title_norm:
            continue  # the headline: the article's title, never part of a quote
        if _is_byline(stripped, norm, author_norm):
            continue
        start, end = _trim_trailing_embed(body, start, end)
        if end <= start:
            continue
        norm = _normalise(body[start:end])
        shingles = set(_shingles(norm))
        if norm in seen_exact or seen.near_duplicate(shingles):
            continue  # scraped pages repeat blocks (pull quotes, teasers); index them once
        seen_exact.add(norm)
        seen.add(shingles)
        started = True
        kept.append((start, end))
    return _into_blocks(body, kept)


def is_byline_or_dateline(line: str) -> bool:
    """"By Jane Roe", "March 14, 2022", "Published: 20 March 2022 14:02 GMT"."""
    text = line.strip()
    return bool(_DATELINE.match(text)
                or (_BYLINE.match(text) and len(_WORD.findall(text)) <= 8))


def _strip_heading(text: str) -> str:
    return text.strip().lstrip("#").strip()


def _is_byline(text: str, norm: str, author_norm: str | None) -> bool:
    words = norm.split()
    if len(words) > 14 or (_SOFT_END.search(text) and len(words) > 6):
        return False
    if _DATELINE.match(text):
        return True
    if _BYLINE.match(text) and len(words) <= 8:
        return True
    # "Claude Forthomme - Senior EditorbyClaude Forthomme - Senior Editor": a short line
    # built around the author's name, without a sentence in it.
    return bool(author_norm) and author_norm in norm and not _SOFT_END.search(text)


def _lines(body: str):
    """(start, end) of each line, the lines of a hard-wrapped paragraph joined into one."""
    physical: list[tuple[int, int, bool]] = []  # start, end, ends with a line break
    pos = 0
    for line in body.splitlines(keepends=True):
        content = line.rstrip("\r\n")
        physical.append((pos, pos + len(content), len(content) < len(line)))
        pos += len(line)
    i = 0
    while i < len(physical):
        start, end, broken = physical[i]
        while broken and i + 1 < len(physical) and _wraps(body[start:end],
                                                          body[slice(*physical[i + 1][:2])]):
            i += 1
            end, broken = physical[i][1], physical[i][2]
        yield start, end
        i += 1


def _wraps(line: str, following: str) -> bool:
    """Whether ``following`` continues ``line`` as a hard wrap of one paragraph: a long line
    that stops mid-sentence, then a line that is long too or ends the sentence."""
    last = line[line.rfind("\n") + 1:].strip()
    nxt = following.strip()
    if (len(last) < _WRAP_MIN or not nxt or _SOFT_END.search(last) or _BULLET.match(line)
            or _BULLET.match(following) or _EMBED_ATTRIBUTION.match(last)
            or is_byline_or_dateline(last) or _URL.match(last.split()[-1])):
        return False
    return len(nxt) >= _WRAP_MIN or bool(_SOFT_END.search(nxt))


def _is_furniture_line(text: str, started: bool) -> bool:
    words = _WORD.findall(text)
    if _BULLET.match(text) and len(words) < 10:
        return True  # menu entries and link lists
    if _EMBED_ATTRIBUTION.match(text):
        return True
    if _PROMO.search(text) or _DISCLAIMER.search(text):
        return True
    if not _URL.sub("", text).strip():
        return True
    # Short lines without sentence punctuation are navigation, labels, counters or captions.
    # Before the article starts the bar is higher: menus and logos come first on scraped pages.
    minimum = 4 if started else 6
    return len(words) < minimum and not _SENTENCE_END.search(text)


def _trim_trailing_embed(body: str, start: int, end: int) -> tuple[int, int]:
    """Cut a trailing run of links ("…Ukraine https://t.co/x pic.twitter.com/y 1/") off a line."""
    text = body[start:end]
    for match in _URL.finditer(text):
        if _TRAILING_JUNK.match(text[match.start():]):
            end = start + match.start()
            break
    while end > start and body[end - 1].isspace():
        end -= 1
    while start < end and body[start].isspace():
        start += 1
    return start, end


def _normalise(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def _shingles(norm: str, n: int = 3) -> list[str]:
    words = norm.split()
    return [" ".join(words[i:i + n]) for i in range(max(1, len(words) - n + 1))]


class _Shingles:
    """The shingle sets of the lines kept so far, with an inverted index: finding a near
    duplicate costs the line's own shingles, not a comparison with every earlier line."""

    def __init__(self) -> None:
        self.postings: dict[str, list[int]] = {}
        self.sizes: list[int] = []

    def near_duplicate(self, shingles: set[str]) -> bool:
        if len(shingles) < 5:
            return False
        overlap: Counter[int] = Counter()
        for sh in shingles:
            overlap.update(self.postings.get(sh, ()))
        for line, shared in overlap.items():
            size = self.sizes[line]
            if size >= 5 and shared / min(len(shingles), size) >= 0.8:
                return True
        return False

    def add(self, shingles: set[str]) -> None:
        line = len(self.sizes)
        self.sizes.append(len(shingles))
        for sh in shingles:
            posting = self.postings.setdefault(sh, [])
            if len(posting) < _MAX_POSTINGS:
                posting.append(line)


def _into_blocks(body: str, kept: list[tuple[int, int]]) -> list[Span]:
    spans: list[Span] = []
    block = -1
    previous_end = None
    for start, end in kept:
        gap = body[previous_end:start] if previous_end is not None else None
        if gap is None or gap.strip():
            block += 1
        spans.append(Span(start, end, block))
        previous_end = end
    return spans
