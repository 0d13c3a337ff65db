"""Decide which spans of a scraped article body are article text worth indexing.

Cleaning never rewrites text: it returns character ranges of the body, so every passage
maps back to exact offsets. Page furniture (menus, related-post lists, share widgets,
copyright footers, embed attributions, repeated blocks) is simply left out.
"""

from __future__ import annotations

import re
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
CLEANING_VERSION = 2  # bump when a change would alter which spans are indexed

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


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    block: int  # spans of one block are contiguous article text, with no furniture between


def indexable_spans(body: str) -> list[Span]:
    lines = list(_lines(body))
    kept: list[tuple[int, int]] = []
    started = False
    seen: list[set[str]] = []
    seen_exact: set[str] = set()
    for start, end in lines:
        text = body[start:end]
        stripped = text.strip()
        if not stripped:
            continue
        if started and _END_MARKERS.match(stripped):
            break
        if _is_furniture_line(stripped, started):
            continue
        start, end = _trim_trailing_embed(body, start, end)
        if end <= start:
            continue
        norm = _normalise(body[start:end])
        if norm in seen_exact or _near_duplicate(norm, seen):
            continue  # scraped pages repeat blocks (pull quotes, teasers); index them once
        seen_exact.add(norm)
        seen.append(set(_shingles(norm)))
        started = True
        kept.append((start, end))
    return _into_blocks(body, kept)


def _lines(body: str):
    pos = 0
    for line in body.splitlines(keepends=True):
        content = line.rstrip("\r\n")
        yield pos, pos + len(content)
        pos += len(line)


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


def _near_duplicate(norm: str, seen: list[set[str]]) -> bool:
    shingles = set(_shingles(norm))
    if len(shingles) < 5:
        return False
    for other in seen:
        if len(other) < 5:
            continue
        overlap = len(shingles & other) / min(len(shingles), len(other))
        if overlap >= 0.8:
            return True
    return False


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
