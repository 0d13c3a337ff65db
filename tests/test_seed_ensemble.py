"""train/seed_ensemble: several embedders' candidate logits averaged per sentence."""

from __future__ import annotations

import numpy as np

from index.features import FEATURES
from train.fit_ranker import QuestionRows
from train.seed_ensemble import first_is_right


def rows(sentences: list[tuple[str, int, bool]]) -> QuestionRows:
    """One question's candidates as one embedder retrieved them: (article, position, holds
    the answer)."""
    return QuestionRows(
        dossier="d", q="q?", answerable=True,
        matrix=np.zeros((len(sentences), len(FEATURES)), dtype=np.float32),
        labels=np.array([right for _, _, right in sentences]),
        articles=[a for a, _, _ in sentences], positions=[p for _, p, _ in sentences])


def test_one_embedder_is_judged_by_its_own_best_candidate() -> None:
    seen = rows([("a", 1, False), ("b", 4, True)])
    assert first_is_right([(seen, np.array([2.0, 1.0]))]) is False
    assert first_is_right([(seen, np.array([1.0, 2.0]))]) is True


def test_the_ensemble_averages_logits_per_sentence() -> None:
    first = rows([("a", 1, False), ("b", 4, True)])
    second = rows([("b", 4, True), ("a", 1, False)])  # same sentences, another order
    # The first embedder prefers the wrong sentence narrowly, the second the right one widely.
    assert first_is_right([(first, np.array([2.0, 1.5])), (second, np.array([3.0, 0.0]))])


def test_a_sentence_an_embedder_missed_gets_its_lowest_logit() -> None:
    first = rows([("a", 1, False), ("b", 4, True), ("c", 0, False)])
    second = rows([("a", 1, False), ("c", 0, False)])  # never retrieved the answer
    # Mean for b: (2.0 + min(second) = -1.0) / 2 = 0.5; for a: (1.0 + 1.5) / 2 = 1.25.
    items = [(first, np.array([1.0, 2.0, 0.0])), (second, np.array([1.5, -1.0]))]
    assert first_is_right(items) is False
    items = [(first, np.array([1.0, 4.0, 0.0])), (second, np.array([1.5, -1.0]))]
    assert first_is_right(items) is True  # b: (4.0 - 1.0) / 2 = 1.5 > 1.25


def test_a_question_no_embedder_scored_counts_as_missed() -> None:
    assert first_is_right([(rows([("a", 1, True)]), None)]) is False
