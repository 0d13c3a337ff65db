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
        # Rows agree wherever the score is not tied with another passage's.
        for r, s in zip(rows, scores, strict=True):
            if np.sum(np.isclose(scores, s)) == 1 and np.sum(np.isclose(ref, s)) == 1:
                assert r in ref_rows[0]
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
