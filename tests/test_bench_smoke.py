"""The benchmark code paths at tiny sizes, with the real model and the real index code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench import compare, scale
from bench.embed import measure
from bench.synth import (
    Pool,
    PoolEmbedder,
    PoolVectors,
    article_record,
    synth_articles,
    title_of,
    write_corpus,
)
from index import vectors
from index.load import load_article, load_corpus

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = ["Did China offer Russia military aid?", "Which pipeline was put on hold?"]


@pytest.fixture(scope="module")
def pool() -> Pool:
    return Pool.from_corpus(REPO / "corpus")


@pytest.fixture(scope="module")
def workroot(tmp_path_factory) -> Path:
    """One folder for the scale phases, so the pool's vectors are embedded once."""
    return tmp_path_factory.mktemp("bench")


def test_synthetic_articles_load_as_the_index_loads_them(tmp_path, pool):
    articles = list(synth_articles(pool, 300, seed=3, mean_len=25))
    assert sum(len(a.sentences) for a in articles) == 300
    write_corpus(tmp_path, articles)
    for a in articles:
        loaded = load_article(tmp_path / a.name, tmp_path)
        assert loaded == article_record(a)
        for p, start in zip(a.sentences, a.starts, strict=True):
            assert loaded.body[start:start + len(pool.sentences[p])] == pool.sentences[p]


def test_pool_embedder_reuses_real_vectors_and_embeds_the_rest(embedder, pool, tmp_path):
    small = Pool(pool.sentences[:12], pool.words[:12], "smoke")
    pv = PoolVectors.load_or_embed(small, embedder, tmp_path)
    again = PoolVectors.load_or_embed(small, embedder, tmp_path)  # from the cache file
    assert np.array_equal(pv.vectors, again.vectors)
    fake = PoolEmbedder(embedder, small, pv)
    one, two = small.sentences[0], small.sentences[1]
    vecs, toks = fake.embed_with_tokens([one, f"{one} {two}"])
    assert np.allclose(vecs[0], embedder.embed_batch([one])[0], atol=1e-3)
    assert np.array_equal(toks[1].ids, np.concatenate([pv.token_ids[0], pv.token_ids[1]]))
    window = fake.embed_batch([f"{one} {two}"])[0]
    expected = pv.vectors[0] + pv.vectors[1]
    assert np.allclose(window, expected / np.linalg.norm(expected), atol=1e-5)
    titled = fake.embed_batch([f"{title_of(one)}. {two}"])[0]  # as embedding_text writes it
    assert np.allclose(titled, expected / np.linalg.norm(expected), atol=1e-5)
    assert fake.misses == 0
    other = fake.embed_batch(["Completely unrelated text about gardening."])
    assert fake.misses == 1 and abs(float(np.linalg.norm(other[0])) - 1) < 1e-3


def test_scale_phases_end_to_end_at_a_tiny_size(embedder, workroot, monkeypatch):
    monkeypatch.setattr(vectors, "EXACT_MAX", 150)  # so the tiny index is an IVF one
    work = workroot / "n400"
    built = scale.phase_build(400, work, "segment", real=embedder)
    assert built["passages"] == 400 and built["index_bytes"] > 0
    served = scale.phase_serve(400, work, 1, real=embedder, questions=QUESTIONS)
    assert served["asks"] == 2 and served["ask_p50_ms"] > 0 and served["answered"] <= 2
    assert served["ann"].startswith("IVF")
    assert 0.9 <= served["recall_at_10"] <= 1.0
    assert served["index_breakdown"]["token_vectors.npy"] > 0
    added = scale.phase_add(400, work, False, real=embedder, lengths=(3,))
    assert added["add3"]["embedded"] == 3
    row = {"build": built, "serve": served, "add": {"add20": added["add3"],
                                                   "add80": added["add3"]}}
    text = scale.table([row])
    assert "| 400 |" in text and "IVF" in text


def test_scale_pool_mode_goes_through_build_index(embedder, workroot):
    built = scale.phase_build(120, workroot / "n120", "pool", real=embedder)
    assert built["mode"] == "pool" and 110 <= built["passages"] <= 120
    assert built["pool_hits"] > 0


def test_the_splitter_makes_overlapping_verbatim_chunks():
    body = load_corpus(REPO / "corpus").articles[0].body
    chunks = compare.RecursiveCharacterSplitter(1000, 200).chunks(body)
    assert len(chunks) > 5
    for c in chunks:
        assert 0 < len(c.text) <= 1000 and body[c.start:c.start + len(c.text)] == c.text
    assert [c.start for c in chunks] == sorted(c.start for c in chunks)
    covered = np.zeros(len(body), bool)
    for c in chunks:
        covered[c.start:c.start + len(c.text)] = True
    assert all(covered[i] or body[i].isspace() for i in range(len(body)))  # no text is lost
    with pytest.raises(ValueError):
        compare.RecursiveCharacterSplitter(100, 200)


def test_baselines_are_scored_like_the_bot(embedder):
    from bot.evaluate import Case

    articles = list(load_corpus(REPO / "corpus").articles)
    splitter = compare.RecursiveCharacterSplitter(1000, 200)
    cases = [Case("Which gas pipeline did the Chinese scholar expect to be put on hold?",
                  "000", "Nord Stream 2"),
             Case("What is the boiling point of mercury?", None, None)]
    lexical = compare.BM25Baseline(articles, splitter)
    row = compare.evaluate("bm25", lexical.ask, cases, 0.0)
    assert (row["answerable"], row["off_topic"]) == (1, 1)
    assert row["strict"] == 1 and row["off_topic_declined"] == 0  # never declines
    dense = compare.DenseRecipe(articles, splitter, embedder)
    rrf = compare.RRFRecipe(articles, embedder)
    for recipe in (dense, rrf):
        answer = recipe.ask(cases[0].q)
        assert 1 <= len(answer.quotes) <= compare.TOP
        for quote in answer.quotes:
            assert quote.article.body[quote.start:quote.end] == quote.text
    row["dossier"] = "bundled"
    assert "| bundled | bm25 | 1/1 (100%)" in compare.table({"rows": [row], "totals": []})


def test_embedding_throughput_is_measured(embedder, monkeypatch):
    # The session embedder is shared with other tests: its batch size is put back even when
    # an assertion fails.
    monkeypatch.setattr(embedder, "batch_size", embedder.batch_size)
    sentences = ["Russia asked China for help.", "The pipeline was put on hold."]
    passages = [" ".join(sentences)]
    row = measure(embedder, sentences, passages, batch=2)
    assert row["batch"] == 2 and row["sentences_per_s"] > 0 and row["passages_per_s"] > 0
    assert embedder.batch_size == 2
