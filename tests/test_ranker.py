"""The ranker's stages on a real index of the dossier: candidates, features, the learned
scorer, and the policy (answer, unsure, decline; which windows are quoted)."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from bot.answer import UNSURE, Answerer
from bot.render import answer_to_json, render_text
from index import candidates
from index.chunk import ChunkParams
from index.features import BEST_IN_WINDOW, FEATURES, best_in_window
from index.live import LiveIndex
from index.policy import HIGH, LOW, Ranked, confidence, select_quotes
from index.scorer import DEFAULT_MODEL, QUESTION_FEATURES, RankerModel, default_model
from index.search import Retriever

QUESTION = "Did Moscow deny asking Beijing for military help?"


@pytest.fixture(scope="module")
def retriever(built_index, embedder) -> Retriever:
    return LiveIndex(built_index, embedder).current().retriever


def test_candidates_come_from_both_retrievers_with_their_ranks(retriever):
    q = retriever.stats.question(QUESTION)
    qv = retriever.embed(QUESTION)
    found = candidates.gather(retriever.segments, retriever._live_rows, qv.vector,
                              list(q.terms), 10)
    assert found
    for c in found:
        assert np.all(np.diff(c.rows) > 0), "rows ascend, each once"
        ranked = c.dense_rank < candidates.NO_RANK
        assert ranked.any() and (c.lexical_rank < candidates.NO_RANK).any()
        assert set(c.dense_rank[ranked].tolist()) <= set(range(10))
        # A sentence reached only as a window neighbour has no rank of its own.
        assert (c.lexical_score[c.lexical_rank == candidates.NO_RANK] == 0).all()


def test_features_are_named_columns_with_sane_ranges(retriever):
    fm = retriever.features(QUESTION)
    assert fm.matrix.shape == (len(fm.rows), len(FEATURES))
    for name in ("sentence_cover", "window_cover", "context_cover"):
        col = fm.column(name)
        assert col.min() >= 0 and col.max() <= 1, name
    for name in FEATURES:
        if name.endswith("_gap"):
            assert fm.column(name).max() == pytest.approx(0.0, abs=1e-6), name
    # The window holds its sentence, so it covers at least as much of the question.
    assert (fm.column("window_cover") >= fm.column("sentence_cover") - 1e-6).all()


def test_a_window_is_judged_by_its_best_candidate_sentence():
    rows = np.array([3, 4, 5, 9, 10])
    lo, hi = np.array([2, 3, 4, 8, 9]), np.array([4, 5, 6, 10, 11])
    values = np.array([0.1, 0.7, 0.2, 0.5, 0.3], np.float32)
    # Sentence 9's window (8-10) holds no other candidate above it; 6 and 11 are no candidates.
    np.testing.assert_allclose(best_in_window(rows, lo, hi, values), [0.7, 0.7, 0.7, 0.5, 0.5])
    assert best_in_window(rows[:0], lo[:0], hi[:0], values[:0]).shape == (0,)


def test_best_in_window_columns_follow_their_sentence_columns(retriever):
    fm = retriever.features(QUESTION)
    for name, source in BEST_IN_WINDOW.items():
        assert (fm.column(name) >= fm.column(source) - 1e-6).all(), name
        # Some candidate's window holds a better sentence than itself.
        assert (fm.column(name) > fm.column(source) + 1e-6).any(), name


def test_late_interaction_leaves_out_punctuation_and_stop_word_pieces(retriever, embedder):
    vocab = embedder.vocabulary()
    skip = retriever.stats.skip_pieces
    assert {vocab["the"], vocab["?"]} <= skip
    assert vocab["china"] not in skip


def test_the_question_s_unknown_content_is_measured_against_the_dossier(retriever):
    unknown = retriever.stats.question("Who won the Champions League final in Istanbul?")
    known = retriever.stats.question("What did China's embassy say about Russia?")
    assert unknown.unknown > known.unknown
    assert unknown.unknown_name and not known.unknown_name


def test_the_packaged_model_is_fitted_on_training_stories_and_reads_known_features():
    model = default_model()
    assert set(model.candidate.names) <= set(FEATURES)
    assert set(model.question.names) <= set(QUESTION_FEATURES)
    assert 0 < model.low_at <= model.answer_at < 1
    assert model.info["fitted_on"] == "train/dossiers"
    assert model.info["answerable"] >= 750 and model.info["unanswerable"] >= 150


def test_a_model_round_trips_and_rejects_features_it_does_not_know(tmp_path):
    model = RankerModel.load(DEFAULT_MODEL)
    model.save(tmp_path / "m.json")
    again = RankerModel.load(tmp_path / "m.json")
    assert again.candidate.names == model.candidate.names
    np.testing.assert_allclose(again.candidate.weights, model.candidate.weights)
    bad = dataclasses.replace(model.candidate, names=("no_such_feature",))
    with pytest.raises(ValueError, match="no_such_feature"):
        dataclasses.replace(model, candidate=bad)


def test_three_outcomes_by_probability():
    assert confidence(0.9, 0.5, 0.2) == HIGH
    assert confidence(0.3, 0.5, 0.2) == LOW
    assert confidence(0.1, 0.5, 0.2) is None


def test_quotes_never_overlap_and_respect_the_ratio(retriever):
    fm = retriever.features(QUESTION)
    probs = np.linspace(0.9, 0.01, len(fm.rows)).astype(np.float32)
    ranked = [Ranked(seg, row, float(p)) for (seg, row), p in zip(fm.rows, probs, strict=True)]
    quotes = select_quotes(ranked, max_quotes=5, ratio=0.0)
    assert 1 < len(quotes) <= 5
    spans = sorted((q.article.id, q.start, q.end) for q in quotes)
    for (a1, _s1, e1), (a2, s2, _e2) in itertools.pairwise(spans):
        assert a1 != a2 or e1 <= s2
    only_best = select_quotes(ranked, max_quotes=5, ratio=1.0)
    assert len(only_best) == 1 and only_best[0].score == pytest.approx(0.9, abs=1e-4)


def test_a_window_overlapping_a_quoted_one_is_passed_over_not_cut_down(retriever):
    fm = retriever.features(QUESTION)
    reach = (ChunkParams().max_sentences - 1) // 2
    full = {(s.id, r): s for s, r in fm.rows
            if (int(s.passage_first[r]), int(s.passage_last[r])) == (r - reach, r + reach)}
    # Two whole windows sharing one sentence (rows r and r + 2 * reach).
    seg_id, row = next(k for k in sorted(full) if (k[0], k[1] + 2 * reach) in full)
    seg = full[(seg_id, row)]
    ranked = [Ranked(seg, row, 0.9), Ranked(seg, row + 2 * reach, 0.8)]
    quotes = select_quotes(ranked, max_quotes=3, ratio=0.0)
    assert len(quotes) == 1
    assert (quotes[0].start, quotes[0].end) == (
        int(seg.sentence_start[row - reach]), int(seg.sentence_end[row + reach]))


def _answerer_with(built_index, embedder, **thresholds) -> Answerer:
    model = dataclasses.replace(default_model(), **thresholds)

    def ranker(segments, live, emb):
        return Retriever(segments, live, emb, model=model)

    return Answerer(LiveIndex(built_index, embedder, ranker=ranker))


def test_an_unsure_answer_shows_the_closest_passages_marked_as_such(built_index, embedder):
    unsure = _answerer_with(built_index, embedder, answer_at=1.01, low_at=0.0)
    answer = unsure.ask(QUESTION)
    assert not answer.answered and answer.unsure and answer.quotes
    assert answer.confidence == LOW
    data = answer_to_json(answer)
    assert data["answered"] is False and data["confidence"] == "low"
    assert data["quotes"] and data["closest"]
    assert render_text(answer).startswith(UNSURE)


def test_a_plain_decline_has_no_quotes_and_names_the_closest_articles(built_index, embedder):
    declines = _answerer_with(built_index, embedder, answer_at=1.01, low_at=1.01)
    data = answer_to_json(declines.ask(QUESTION))
    assert data["answered"] is False and data["confidence"] is None
    assert data["quotes"] == [] and data["closest"]


def test_a_confident_answer_is_marked_high(answerer):
    data = answer_to_json(answerer.ask(QUESTION))
    assert data["answered"] is True and data["confidence"] == "high"
    assert data["closest"] == []


def test_a_sentence_counts_as_shown_only_word_for_word_as_whole_words() -> None:
    from index.policy import _repeated

    shown = ["Officials said 15 people died. The port stayed shut."]
    assert _repeated("The port stayed\nshut.", shown)  # line breaks are not words
    assert not _repeated("5 people died.", shown)  # another fact inside the same letters
    assert not _repeated("said 15", ["Officials said 150 people died."])
    assert _repeated("The port stayed shut.", ["He said: “The port stayed shut.” Ferries waited."])
