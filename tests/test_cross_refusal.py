"""The cross-refusal experiment's bookkeeping (its fitting takes an hour and is not run here)."""

import numpy as np

from train import cross_refusal as cr


def test_split_bundled_keeps_order_and_scores_together():
    rows = [{"story": "a"}, {"story": "bundled"}, {"story": "b"}, {"story": "bundled"}]
    scores = [np.array([0.0]), np.array([1.0]), np.array([2.0]), np.array([3.0])]
    (six, six_s), (bundled, b_s) = cr.split_bundled(rows, scores)
    assert [r["story"] for r in six] == ["a", "b"]
    assert [float(s[0]) for s in six_s] == [0.0, 2.0]
    assert len(bundled) == 2 and [float(s[0]) for s in b_s] == [1.0, 3.0]


def test_pairs_read_one_window_of_a_foreign_question_and_k_of_the_others():
    own = {"q": "q1", "texts": ["t1", "t2", "t3"], "labels": np.array([False, True, False]),
           "foreign": False}
    foreign = {"q": "q2", "texts": ["u1", "u2", "u3"], "labels": np.zeros(3, bool),
               "foreign": True}
    pairs = cr._pairs([own, foreign])
    assert pairs == [("q1", "t1", 0.0), ("q1", "t2", 1.0), ("q1", "t3", 0.0), ("q2", "u1", 0.0)]


def test_stale_indexes_says_what_to_rerun():
    message = cr.stale_indexes("seg-123")
    assert "seg-123" in message and "train.finetune_embedder features" in message
