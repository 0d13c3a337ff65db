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
    least ``ratio`` of the best's probability. A window that overlaps one already quoted keeps
    the part around its own sentence, or is dropped if that sentence is already shown."""
    if not ranked:
        return ()
    floor = ranked[0].probability * ratio
    chosen: list[Evidence] = []
    taken: list[tuple[str, int, int]] = []  # (segment, first row, last row) quoted
    for c in ranked:
        if len(chosen) >= max_quotes or (chosen and c.probability < floor):
            break
        seg = c.segment
        lo, hi = int(seg.passage_first[c.row]), int(seg.passage_last[c.row])
        for seg_id, a, b in taken:
            if seg_id != seg.id or b < lo or a > hi:
                continue
            if a <= c.row <= b:
                lo, hi = 1, 0
                break
            lo, hi = (b + 1, hi) if a < c.row else (lo, a - 1)
        if lo > hi:
            continue
        chosen.append(Evidence(c.article, int(seg.sentence_start[lo]), int(seg.sentence_end[hi]),
                               round(c.probability, 4)))
        taken.append((seg.id, lo, hi))
    return tuple(chosen)


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
