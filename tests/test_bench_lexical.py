"""The vectorised BM25 top-k agrees with bm25s's own retrieval on a real lexical index."""

from __future__ import annotations

import bm25s
import numpy as np
import pytest
from conftest import CORPUS, DEV_SET

from index.chunk import make_passages, split_sentences
from index.lexical import top_k
from index.load import load_corpus
from index.segment import _vocab_ids
from index.text import query_terms, terms


@pytest.fixture(scope="module")
def bm25() -> bm25s.BM25:
    """A bm25s index of the dossier's passages, tokenised as write_segment does."""
    texts = []
    for a in load_corpus(CORPUS).articles:
        texts += [p.text for p in make_passages(a, split_sentences(a))]
    index = bm25s.BM25()
    index.index(bm25s.tokenization.Tokenized(*_vocab_ids([terms(t) for t in texts])),
                show_progress=False)
    return index


def questions() -> list[str]:
    import json

    return [json.loads(line)["q"] for line in DEV_SET.read_text().splitlines() if line.strip()]


def test_same_passages_and_scores_as_bm25s(bm25):
    checked = 0
    for q in questions():
        known = [t for t in query_terms(q) if t in bm25.vocab_dict]
        if not known:
            continue
        rows, scores = top_k(bm25, query_terms(q), 10)
        ref_rows, ref_scores = bm25.retrieve([known], k=10, show_progress=False, n_threads=1)
        ref = ref_scores[0][ref_scores[0] > 0]
        assert np.allclose(scores, ref, rtol=1e-5)
        assert np.all(np.diff(scores) <= 0)  # best first
        # Each row returned has bm25s's own score for it, and no row left out scores higher
        # than the last one returned. (Rows are compared by score, not against bm25s's list:
        # windows cut back at a block's edges can be the same text, so tied rows stand either
        # side of the cut-off.)
        full = bm25.get_scores(known)
        assert np.allclose(full[rows], scores, rtol=1e-5)
        left_out = np.setdiff1d(np.flatnonzero(full > 0), rows)
        assert not len(left_out) or full[left_out].max() <= scores.min() * (1 + 1e-5)
        # Where bm25s chose another row, it is one tied with the last row returned.
        for r in set(ref_rows[0][:len(ref)].tolist()) - set(rows.tolist()):
            assert np.isclose(full[r], scores.min(), rtol=1e-5)
        checked += 1
    assert checked >= 30


def test_unknown_words_and_edge_sizes(bm25):
    rows, scores = top_k(bm25, ["zzzqqq"], 5)
    assert rows.size == 0 and scores.size == 0
    rows, _ = top_k(bm25, ["china"], 0)
    assert rows.size == 0
    n = int(bm25.scores["num_docs"])
    rows, scores = top_k(bm25, ["china", "russia"], n + 50)
    assert 0 < rows.size <= n and np.all(scores > 0)
    assert len(set(rows.tolist())) == rows.size


@pytest.fixture(scope="module")
def skewed() -> bm25s.BM25:
    """20,000 passages over a Zipf-like vocabulary: a few terms in most passages (like the
    words of one story), many rare ones."""
    rng = np.random.default_rng(3)
    vocab_size = 2000
    p = 1.0 / np.arange(1, vocab_size + 1)
    p /= p.sum()
    docs = [rng.choice(vocab_size, size=rng.integers(5, 40), p=p) + 1 for _ in range(20_000)]
    index = bm25s.BM25()
    vocab = {"": 0, **{f"t{i}": i for i in range(1, vocab_size + 1)}}
    index.index(bm25s.tokenization.Tokenized([d.tolist() for d in docs], vocab),
                show_progress=False)
    return index


def test_pruned_candidates_give_the_same_top_k_as_scoring_everything(skewed, monkeypatch):
    """MaxScore-style pruning (used above DIRECT_MAX postings) must not change the top k."""
    import index.lexical as lexical

    rng = np.random.default_rng(5)
    queries = [[f"t{t}" for t in rng.choice(np.arange(1, 300), size=rng.integers(2, 7),
                                            replace=False)] for _ in range(60)]
    queries += [["t1", "t2", "t3"], ["t1", "t1999"], ["t2", "t50", "t1500", "t1700"]]
    pruned_some = 0
    for q in queries:
        for k in (1, 10, 40):
            monkeypatch.setattr(lexical, "DIRECT_MAX", 10**12)
            ref_rows, ref_scores = lexical.top_k(skewed, q, k)
            monkeypatch.setattr(lexical, "DIRECT_MAX", 0)
            rows, scores = lexical.top_k(skewed, q, k)
            assert np.allclose(scores, ref_scores, rtol=1e-5)
            # Passages tied with the k-th best may be swapped for others with that score.
            sure = ref_scores > ref_scores[-1] * (1 + 1e-5)
            assert set(ref_rows[sure]) <= set(rows)
    for q in queries:
        data, indptr = skewed.scores["data"], skewed.scores["indptr"]
        ids = [skewed.vocab_dict[t] for t in q]
        lists = [(int(indptr[i]), int(indptr[i + 1])) for i in ids]
        _, lookup, _ = lexical._split(data, skewed.scores["indices"], lists, 10)
        pruned_some += bool(lookup)
    assert pruned_some > 10  # the test exercises the pruning, not only the fallback
