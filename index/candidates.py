"""Candidates: the sentences worth scoring for a question, from two retrievers.

Dense (FAISS over passage vectors) and lexical (BM25 over passages) each return their top
``k`` passages per segment; every sentence of those windows becomes a candidate, with the rank
its passage reached in each retriever (a sentence reached only as a neighbour has no rank).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from index import lexical
from index.segment import Segment

NO_RANK = 1_000_000  # rank of a candidate a retriever did not return


@dataclass(frozen=True)
class SegmentCandidates:
    """Candidate sentences of one segment, with what the retrievers said of them."""

    segment: Segment
    rows: np.ndarray  # sentence rows, ascending
    dense_rank: np.ndarray  # 0-based rank of the sentence's own passage, or NO_RANK
    lexical_rank: np.ndarray
    lexical_score: np.ndarray  # BM25 score of the sentence's own passage (0 if not returned)


def gather(segments: list[Segment], live_rows: dict[str, np.ndarray], qvec: np.ndarray,
           qterms: list[str], k: int) -> list[SegmentCandidates]:
    out: list[SegmentCandidates] = []
    query = qvec.reshape(1, -1).astype(np.float32)
    for seg in segments:
        if not seg.n_passages:
            continue
        live = live_rows[seg.id]
        dense: dict[int, int] = {}
        lex: dict[int, tuple[int, float]] = {}
        _, idx = seg.vector_index.search(query, min(k, seg.n_passages))
        for rank, p in enumerate(int(i) for i in idx[0] if i >= 0):
            dense.setdefault(p, rank)
        if seg.bm25 is not None and qterms:
            found, scores = lexical.top_k(seg.bm25, qterms, k)
            for rank, (p, s) in enumerate(zip(found.tolist(), scores.tolist(), strict=True)):
                lex.setdefault(int(p), (rank, float(s)))
        chosen: set[int] = set()
        first, last, centre = seg.passage_first, seg.passage_last, seg.passage_centre
        for p in {*dense, *lex}:
            if live[int(seg.sentence_article[int(centre[p])])]:
                chosen.update(range(int(first[p]), int(last[p]) + 1))
        if not chosen:
            continue
        rows = np.array(sorted(chosen), dtype=np.int64)
        # One passage is centred on each sentence: the passage whose centre is the sentence
        # carries the sentence's own ranks.
        by_centre = {int(centre[p]): p for p in {*dense, *lex}}
        d_rank = np.full(len(rows), NO_RANK, dtype=np.int64)
        l_rank = np.full(len(rows), NO_RANK, dtype=np.int64)
        l_score = np.zeros(len(rows), dtype=np.float32)
        for i, r in enumerate(rows.tolist()):
            p = by_centre.get(r)
            if p is None:
                continue
            d_rank[i] = dense.get(p, NO_RANK)
            if p in lex:
                l_rank[i], l_score[i] = lex[p]
        out.append(SegmentCandidates(seg, rows, d_rank, l_rank, l_score))
    return out
