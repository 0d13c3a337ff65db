"""Policy: whether to answer, and which passages to quote.

Three outcomes, from the refusal model's probability that the dossier answers the question
(thresholds fitted on the training questions, ``index.scorer.RankerModel``): an answer
(``"high"``); the closest passages, marked as such (``"low"``); or a plain decline (None).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from index.model import Article
from index.segment import Segment

HIGH = "high"
LOW = "low"


def confidence(probability: float, answer_at: float, low_at: float) -> str | None:
    if probability >= answer_at:
        return HIGH
    if probability >= low_at:
        return LOW
    return None


@dataclass(frozen=True)
class Evidence:
    article: Article
    start: int
    end: int
    score: float  # the candidate's probability of answering

    @property
    def text(self) -> str:
        return self.article.body[self.start:self.end]


@dataclass(frozen=True)
class Ranked:
    """A candidate sentence with its probability of answering."""

    segment: Segment
    row: int
    probability: float

    @property
    def article(self) -> Article:
        return self.segment.article_of(self.row)


def select_quotes(ranked: list[Ranked], *, max_quotes: int, ratio: float) -> tuple[Evidence, ...]:
    """Up to ``max_quotes`` non-overlapping windows, the best first; a further one needs at
    least ``ratio`` of the best's probability. A window that overlaps one already quoted is
    passed over (its neighbour's quote already shows most of it; on the training questions,
    out of fold, passing over found the answer in more replies with fewer quotes than keeping
    the part not yet shown: docs/ranking.md), as is one whose sentence another quote shows word
    for word (a wire story that several outlets ran, a file dropped in twice)."""
    if not ranked:
        return ()
    floor = ranked[0].probability * ratio
    chosen: list[Evidence] = []
    taken: list[tuple[str, int, int]] = []  # (segment, first row, last row) quoted
    shown: list[str] = []  # the quotes' words, to find a sentence repeated elsewhere
    for c in ranked:
        if len(chosen) >= max_quotes or (chosen and c.probability < floor):
            break
        seg = c.segment
        if _repeated(seg.sentence_text(c.row), shown):
            continue
        lo, hi = int(seg.passage_first[c.row]), int(seg.passage_last[c.row])
        if any(seg_id == seg.id and a <= hi and lo <= b for seg_id, a, b in taken):
            continue
        # Sentences at the window's ends that another quote shows word for word go too.
        while lo < c.row and _repeated(seg.sentence_text(lo), shown):
            lo += 1
        while hi > c.row and _repeated(seg.sentence_text(hi), shown):
            hi -= 1
        if lo > hi:
            continue
        start, end = int(seg.sentence_start[lo]), int(seg.sentence_end[hi])
        chosen.append(Evidence(c.article, start, end, round(c.probability, 4)))
        taken.append((seg.id, lo, hi))
        shown.append(_words(c.article.body[start:end]))
    return tuple(chosen)


def _words(text: str) -> str:
    return " ".join(text.split())


def _repeated(sentence: str, shown: list[str]) -> bool:
    """Whether ``sentence`` stands in a shown quote as whole words ("5 people died." is not
    shown by "Officials said 15 people died."); punctuation or quotation marks may stand
    either side. (str.find, not a regular expression: one per sentence would be compiled
    on every question.)"""
    words = _words(sentence)
    for text in shown if words else ():
        at = text.find(words)
        while at != -1:
            end = at + len(words)
            if not (_word_char(text, at - 1) or _word_char(text, end)):
                return True
            at = text.find(words, at + 1)
    return False


def _word_char(text: str, i: int) -> bool:
    return 0 <= i < len(text) and (text[i].isalnum() or text[i] == "_")


def closest_articles(ranked: list[Ranked], n: int = 3) -> tuple[Article, ...]:
    out: list[Article] = []
    for c in ranked:
        if c.article not in out:
            out.append(c.article)
        if len(out) == n:
            break
    return tuple(out)


def order(segment_rows: tuple[tuple[Segment, int], ...], probs: np.ndarray) -> list[Ranked]:
    idx = np.argsort(-probs, kind="stable")
    return [Ranked(segment_rows[i][0], segment_rows[i][1], float(probs[i])) for i in idx]
