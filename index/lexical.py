"""BM25 top-k over a bm25s index, scored with vectorised numpy instead of ``np.add.at``.

bm25s (numpy backend) accumulates each query term's posting list with ``np.add.at``,
which costs ~160 ms per question at a million passages of one story (its common words sit
in half a million postings per question). A posting list holds each passage once, so a
plain fancy-index add gives the same sums ~9x faster; ``argpartition`` then picks the top k.

Above ``DIRECT_MAX`` postings per question, candidates come MaxScore-style: the k-th best
full score among the passages of the rarest terms is a threshold; the commonest terms whose
largest scores together stay below it cannot lift a passage into the top k on their own, so
their long posting lists are only looked up (binary search) for the passages the other terms
found, never scattered, and only while a passage can still reach the threshold (which rises as
the lookups go). The top k is the same as scoring everything (up to ties and float rounding);
scores are bm25s's own precomputed ones.
"""

from __future__ import annotations

import bm25s
import numpy as np

DIRECT_MAX = 200_000  # postings per question below which everything is scored directly
SEED_POSTINGS = 2_000  # postings of the rarest terms that set the first threshold


def top_k(bm25: bm25s.BM25, terms: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and scores of the ``k`` best passages for ``terms`` (unknown terms ignored),
    best first; passages scoring 0 are left out."""
    vocab = bm25.vocab_dict
    ids = np.array(sorted({vocab[t] for t in terms if t in vocab}), dtype=np.int64)
    n = int(bm25.scores["num_docs"])
    if not ids.size or k <= 0 or n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    data, indices, indptr = bm25.scores["data"], bm25.scores["indices"], bm25.scores["indptr"]
    lo, hi = np.asarray(indptr[ids], np.int64), np.asarray(indptr[ids + 1], np.int64)
    k = min(k, n)
    scores = np.zeros(n, dtype=np.float32)
    if int((hi - lo).sum()) <= DIRECT_MAX or ids.size == 1:
        for a, b in zip(lo.tolist(), hi.tolist(), strict=True):
            scores[indices[a:b]] += data[a:b]  # one entry per passage in a posting list
        return _best(scores, np.arange(n), k)
    lists = [(a, b) for a, b in zip(lo.tolist(), hi.tolist(), strict=True)]
    bound = _bounds(data, lists)
    theta, lookup, scatter = _split(data, indices, lists, k, bound)
    for a, b in scatter:
        scores[indices[a:b]] += data[a:b]
    cand = np.flatnonzero(scores)
    part = scores[cand]
    # Highest bound first: each lookup tightens the bound of the passages still in the race.
    lookup.sort(key=lambda ab: -bound[ab])
    rest = sum(bound[ab] for ab in lookup)
    for i, (a, b) in enumerate([(0, 0), *lookup]):
        if i:
            part += _lookup(indices, data, a, b, cand)
            rest -= bound[(a, b)]
        if part.size >= k:
            theta = max(theta, float(np.partition(part, part.size - k)[part.size - k]))
        alive = part + rest >= theta * (1 - 1e-4)  # margin for float32 rounding
        cand, part = cand[alive], part[alive]
    return _best(part, cand, k)


def _bounds(data: np.ndarray, lists: list[tuple[int, int]]) -> dict[tuple[int, int], float]:
    """Each list's largest score: all it can add to a passage. Common terms' lists are long,
    so a question computes each bound once."""
    return {(a, b): float(data[a:b].max()) if b > a else 0.0 for a, b in lists}


def _split(data: np.ndarray, indices: np.ndarray, lists: list[tuple[int, int]], k: int,
           bound: dict[tuple[int, int], float] | None = None
           ) -> tuple[float, list[tuple[int, int]], list[tuple[int, int]]]:
    """A first threshold (no passage below it can be in the top k), and the posting lists to
    look up only (common terms) and to scatter (the rest)."""
    bound = bound if bound is not None else _bounds(data, lists)
    # The threshold: the k-th best full score among the passages in the shortest lists.
    seed: list[np.ndarray] = []
    total = 0
    for a, b in sorted(lists, key=lambda ab: ab[1] - ab[0]):
        seed.append(np.asarray(indices[a:b]))
        total += b - a
        if total >= max(SEED_POSTINGS, 4 * k):
            break
    docs = np.unique(np.concatenate(seed))
    if docs.size < k:
        return 0.0, [], lists
    full = np.zeros(docs.size, np.float32)
    for a, b in lists:
        full += _lookup(indices, data, a, b, docs)
    theta = float(np.partition(full, docs.size - k)[docs.size - k])
    # Terms, lowest upper bound first, while their bounds sum below the threshold (with a
    # margin for float32 rounding): a passage in only these lists scores below the k-th.
    lookup: list[tuple[int, int]] = []
    acc = 0.0
    for top, ab in sorted((bound[ab], ab) for ab in lists if ab[1] > ab[0]):
        if acc + top >= theta * (1 - 1e-4):
            break
        acc += top
        lookup.append(ab)
    return theta, lookup, [ab for ab in lists if ab not in lookup]


def _lookup(indices: np.ndarray, data: np.ndarray, a: int, b: int,
            docs: np.ndarray) -> np.ndarray:
    """Scores of one posting list at ``docs`` (sorted), 0 where a passage is absent.
    bm25s stores each list sorted by passage, so a binary search finds them."""
    out = np.zeros(docs.size, np.float32)
    if b <= a or not docs.size:
        return out
    postings = indices[a:b]
    pos = np.minimum(np.searchsorted(postings, docs), b - a - 1)
    hit = postings[pos] == docs
    out[hit] = data[a + pos[hit]]
    return out


def _best(scores: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    k = min(k, scores.size)
    if k <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    top = np.argpartition(-scores, k - 1)[:k] if k < scores.size else np.arange(scores.size)
    top = top[np.argsort(-scores[top], kind="stable")]
    keep = scores[top] > 0
    return rows[top][keep].astype(np.int64), scores[top][keep]
