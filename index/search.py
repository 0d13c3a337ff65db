"""Find the sentences that answer a question, and decide whether the dossier covers it.

The ranker runs in stages, one module each: ``index.candidates`` (dense + lexical
retrieval), ``index.features`` (named evidence columns per candidate sentence),
``index.scorer`` (a learned model: the probability each candidate answers, and the
probability the dossier answers at all) and ``index.policy`` (answer, unsure or decline;
which windows to quote). ``Retriever`` wires them over one generation of the index.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import numpy as np
from threadpoolctl import ThreadpoolController

from index import candidates as candidates_module
from index import features as features_module
from index import spelling
from index.features import FeatureMatrix, IndexStats, QueryVectors
from index.model import Article
from index.policy import HIGH, Evidence, closest_articles, confidence, order, select_quotes
from index.scorer import RankerModel, default_model, sigmoid
from index.segment import Segment
from index.text import terms

__all__ = ["Evidence", "Ranker", "Retriever", "SearchResult"]


@dataclass(frozen=True)
class SearchResult:
    question: str
    evidence: tuple[Evidence, ...]  # quotes (answered) or the closest passages (low confidence)
    covered: bool
    closest: tuple[Article, ...]
    confidence: str | None = None  # "high", "low" or None (declined)
    probability: float = 0.0  # the refusal model's P(the dossier answers the question)
    # The question as searched when the speller changed a word of it ("Glazzer" ->
    # "Glazer"); None when it was searched as asked.
    corrected: str | None = None


class Ranker(Protocol):
    """What a live index needs to answer: one search over one generation."""

    def search(self, question: str) -> SearchResult: ...


# Builds a ranker over one generation: (segments, live article ids per segment, embedder).
RankerFactory = Callable[[list[Segment], dict[str, set[str]], object], Ranker]


@lru_cache(maxsize=1)
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def _one_blas_thread():
    """BLAS on one thread for the duration of a search.

    A search's matrix products are small; split over two threads they gain nothing, and the
    idle thread then spins, taking the core the next question's embedding needs (measured:
    a question's CPU time 33 -> 21 ms).
    """
    return _blas().limit(limits=1, user_api="blas")


@lru_cache(maxsize=1)
def _packaged_model() -> RankerModel:
    return default_model()


class Retriever:
    """Searches one generation of the index (a list of loaded segments)."""

    def __init__(self, segments: list[Segment], live: dict[str, set[str]], embedder, *,
                 model: RankerModel | None = None, candidates: int = 40,
                 max_quotes: int = 3, spelling_fix: bool | None = None) -> None:
        self.segments = segments
        self.embedder = embedder
        self._model = model
        self.k = candidates
        self.max_quotes = max_quotes
        # live[segment id] = ids of the articles whose current version lives in that segment
        self._live_rows = {
            s.id: np.array([a.id in live.get(s.id, ()) for a in s.articles], dtype=bool)
            for s in segments
        }
        self.stats = IndexStats(segments, self._live_rows, embedder)
        # None: as DOSSIER_SPELLING says (on unless turned off).
        on = spelling.enabled() if spelling_fix is None else spelling_fix
        self.speller = self.make_speller() if on else None

    def make_speller(self) -> spelling.Speller:
        """A speller over the words of this generation's live articles."""
        return spelling.Speller(
            spelling.dossier_words(self.segments, self._live_rows),
            is_english=spelling.english(self.embedder),
            # Known in another form: a word whose stem the dossier has ("resorts" where it
            # says "resort"), which BM25 finds as it is. Not the demonym prefixes of
            # ``is_known``: "resorth" starts like "resort" but matches nothing.
            is_known=lambda w: any(self.stats.mentions(t) for t in terms(w)))

    @property
    def model(self) -> RankerModel:
        if self._model is None:
            self._model = _packaged_model()
        return self._model

    def widened(self, max_quotes: int) -> Retriever:
        """The same ranker (sharing the index and caches) quoting up to ``max_quotes``
        windows, reaching down to a quarter of an answer's own floor: the pool "more" and
        "next" draw on (bounded, so "More quotes" runs out once the relevant ones are shown).
        """
        wide = copy.copy(self)
        wide.max_quotes = max_quotes
        wide._model = dataclasses.replace(self.model, quote_ratio=self.model.quote_ratio / 4)
        return wide

    def search(self, question: str) -> SearchResult:
        corrected = self.correct(question)
        with _one_blas_thread():
            result = self._search(corrected or question)
        return dataclasses.replace(result, question=question, corrected=corrected)

    def correct(self, question: str) -> str | None:
        """The question with misspelt words replaced by the dossier's own, or None when the
        speller changes nothing (or is off)."""
        return self.speller.correct(question).corrected if self.speller else None

    def embed(self, question: str) -> QueryVectors:
        return features_module.embed_question(self.embedder, self.stats, question)

    def features(self, question: str) -> FeatureMatrix | None:
        """Evidence columns of every candidate sentence (one row each), before scoring."""
        q = self.stats.question(question)
        qv = self.embed(question)
        found = candidates_module.gather(self.segments, self._live_rows, qv.vector,
                                         list(q.terms), self.k)
        return features_module.compute(self.stats, q, qv, found)

    def _search(self, question: str) -> SearchResult:
        fm = self.features(question)
        if fm is None:
            return SearchResult(question, (), False, ())
        logits = self.model.candidate_logits(fm)
        ranked = order(fm.rows, sigmoid(logits))
        p_answer = self.model.answer_probability(fm, logits)
        level = confidence(p_answer, self.model.answer_at, self.model.low_at)
        evidence = select_quotes(ranked, max_quotes=self.max_quotes,
                                 ratio=self.model.quote_ratio) if level else ()
        return SearchResult(question, evidence, level == HIGH and bool(evidence),
                            closest_articles(ranked), level, round(p_answer, 4))
