"""Spelling: question words the dossier does not know, matched to words it does.

A misspelt name ("Glazzer") finds nothing in BM25 and makes the question look as if it named
something the dossier never mentions, which pushes the refusal model towards declining. The
speller replaces such a word by the closest word of the dossier's own vocabulary (the words of
its articles, with their counts, written with each index segment), and only when the match is
close and unambiguous: a wrong correction is worse than none. Words it leaves alone: short ones
(under ``MIN_LENGTH`` letters), numbers and words joined to digits, words the dossier uses
(in any inflection), and ordinary English words the dossier just does not use (the embedding
model's word-piece vocabulary and simplemma's English dictionary).

Edit distances are optimal string alignment (an adjacent swap is one edit), computed by
rapidfuzz over the dossier words of nearby length.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import OSA

from index.text import STOPWORDS

if TYPE_CHECKING:
    from index.segment import Segment

ENV = "DOSSIER_SPELLING"  # "0", "false", "no" or "off": questions are searched as typed

MIN_LENGTH = 4  # shorter words are left alone: too many real words lie one edit apart
LONG = 8  # words this long may be two edits off; shorter ones one
# A correction must be this many times as frequent in the dossier as the runner-up at the
# same distance; otherwise the word is ambiguous and left alone.
DOMINANCE = 2.0

# Letter runs; a run touching a digit ("3rd", "G8", "mp3") is part of a number, left alone.
_WORD = re.compile(r"[^\W\d_]+")


def word_counts(texts: Iterable[str]) -> Counter[str]:
    """Lower-cased letter runs of ``texts`` with their counts: the dossier's vocabulary."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(_WORD.findall(text.lower()))
    return counts


@dataclass(frozen=True)
class Change:
    """One word of a question replaced: ``question[start:end]`` was ``original``."""

    start: int
    end: int
    original: str
    replacement: str


@dataclass(frozen=True)
class Correction:
    """A question and what the speller made of it."""

    question: str
    changes: tuple[Change, ...]

    @property
    def corrected(self) -> str | None:
        """The corrected question, or None when no word changed."""
        if not self.changes:
            return None
        out, pos = [], 0
        for c in self.changes:
            out += [self.question[pos:c.start], c.replacement]
            pos = c.end
        out.append(self.question[pos:])
        return "".join(out)


class Speller:
    """Corrects question words against one dossier's vocabulary (immutable once built)."""

    def __init__(self, counts: Mapping[str, int], *,
                 is_english: Callable[[str], bool] = lambda w: False,
                 is_known: Callable[[str], bool] = lambda w: False) -> None:
        """``counts``: lower-cased dossier words and how often they occur. ``is_english``:
        whether a lower-cased word is ordinary English (never corrected). ``is_known``:
        whether the dossier knows a word in another form (its stem, its inflections)."""
        self._counts = {w: int(n) for w, n in counts.items() if n > 0}
        self._is_english = is_english
        self._is_known = is_known
        # Dossier words by length: a word ``d`` edits off can only match words whose length
        # is within ``d`` of its own, so each look-up scans a few buckets, not the vocabulary.
        self._by_length: dict[int, list[str]] = {}
        # Shorter words are no targets either: "isng" is not "isn" (of "isn't").
        for w in self._counts:
            if len(w) >= MIN_LENGTH and w not in STOPWORDS:
                self._by_length.setdefault(len(w), []).append(w)

    def correct(self, question: str) -> Correction:
        changes = []
        for m in _WORD.finditer(question):
            word = m.group(0)
            if _touches_digit(question, m.start(), m.end()):
                continue
            found = self.suggest(word)
            if found is not None:
                changes.append(Change(m.start(), m.end(), word, _same_case(found, word)))
        return Correction(question, tuple(changes))

    def suggest(self, word: str) -> str | None:
        """The dossier word ``word`` is a misspelling of (lower case), or None."""
        low = word.lower()
        if (len(low) < MIN_LENGTH or low in self._counts or low in STOPWORDS
                or self._is_english(low) or self._is_known(low)):
            return None
        limit = 2 if len(low) >= LONG else 1
        pool = [w for n in range(len(low) - limit, len(low) + limit + 1)
                for w in self._by_length.get(n, ())]
        if not pool:
            return None
        found = process.extract(low, pool, scorer=OSA.distance, score_cutoff=limit,
                                limit=None)
        if not found:
            return None
        best = min(d for _, d, _ in found)
        ranked = sorted((self._counts[w] for w, d, _ in found if d == best), reverse=True)
        if len(ranked) > 1 and ranked[0] < DOMINANCE * ranked[1]:
            return None  # two dossier words fit about as well: do not guess
        return max((w for w, d, _ in found if d == best), key=self._counts.__getitem__)


def _touches_digit(text: str, start: int, end: int) -> bool:
    return (start > 0 and text[start - 1].isdigit()) or (end < len(text) and text[end].isdigit())


def _same_case(word: str, like: str) -> str:
    """``word`` in the case pattern of ``like``: "GLAZER", "Glazer" or "glazer"."""
    if like.isupper() and len(like) > 1:
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def enabled() -> bool:
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def english(embedder) -> Callable[[str], bool]:
    """Whether a lower-cased word is ordinary English: a whole word of the embedding model's
    word-piece vocabulary (30k pieces for MiniLM, names of places and people included), or a
    word or inflection simplemma's English dictionary knows."""
    import simplemma

    try:
        pieces = _whole_words(embedder)
    except TypeError:  # an embedder that cannot be a cache key
        pieces = _whole_words.__wrapped__(embedder)
    return lambda w: w in pieces or simplemma.is_known(w, lang="en")


@lru_cache(maxsize=4)
def _whole_words(embedder) -> frozenset[str]:
    # Per embedder, not per generation: reading the tokenizer's vocabulary costs ~30 ms.
    vocab_of = getattr(embedder, "vocabulary", None)
    return frozenset(t for t in (vocab_of() if callable(vocab_of) else ())
                     if t.isalpha() and t.islower())


def dossier_words(segments: list[Segment], live_rows: dict[str, np.ndarray]) -> Counter[str]:
    """Words of the articles in service: each segment's counts, less those of its articles
    that were changed or removed since (counted again from their bodies: only those)."""
    from index.segment import article_words

    total: Counter[str] = Counter()
    for seg in segments:
        total.update(seg.words)
        live = live_rows.get(seg.id)
        if live is not None and not live.all():
            total.subtract(article_words([a for a, ok in zip(seg.articles, live.tolist(),
                                                             strict=True) if not ok]))
    return +total  # drops words no live article uses
