"""Features: what is known about each candidate sentence, as named columns.

Every feature is generic (no story's vocabulary): similarity of the question to the sentence
and to its window (dense vectors, and late interaction over word-piece vectors), how much of
the question's content (idf-weighted terms) the sentence, its window and the sentences leading
up to it cover, the sentence scores of the window's best candidate sentence, and each of those
relative to the question's best candidate. How much each counts is learned
(``index.scorer``); the ablation in docs/ranking.md shows what each group buys, and which
measured groups were dropped for buying nothing.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from index.candidates import SegmentCandidates
from index.segment import Segment
from index.text import STOPWORDS, query_terms, terms

CACHE_MAX = 200_000  # entries per cache (terms of sentences, document frequencies)
CONTEXT_SENTENCES = 3  # how far back a sentence's context reaches (within its block)

# The columns of ``FeatureMatrix.matrix``, in order. Each group earns its place in the
# ablation of docs/ranking.md; groups that did not (retrieval ranks and BM25 score, answer
# type, sentence shape, position, speaker and title coverage) were measured and removed.
FEATURES = (
    # similarity: dense vectors, and late interaction over word-piece vectors
    "sentence_dense", "window_dense", "sentence_late", "window_late",
    # coverage of the question's content terms (idf-weighted share)
    "sentence_cover", "window_cover", "context_cover",
    # the best sentence of the window: its most similar / most covering candidate sentence
    "best_in_window_dense", "best_in_window_late", "best_in_window_cover",
    # relative to the question's best candidate (0 for the best)
    "sentence_dense_gap", "window_dense_gap", "sentence_late_gap", "window_late_gap",
    "context_cover_gap", "best_in_window_dense_gap", "best_in_window_late_gap",
    "best_in_window_cover_gap",
)
# What a window's best sentence is judged by. A quote is the whole window, so a window whose
# best sentence answers is right wherever that sentence sits in it; the sentence's own window
# vector blurs a one-sentence answer among its neighbours.
BEST_IN_WINDOW = {"best_in_window_dense": "sentence_dense",
                  "best_in_window_late": "sentence_late",
                  "best_in_window_cover": "sentence_cover"}
# The columns that also come relative to the question's best candidate, as "<name>_gap".
RELATIVE = ("sentence_dense", "window_dense", "sentence_late", "window_late", "context_cover",
            *BEST_IN_WINDOW)
_WORDS = re.compile(r"[A-Za-z][\w’'-]*")


@dataclass(frozen=True)
class QuestionInfo:
    """What the question asks, as the features and the policy need it."""

    text: str
    terms: tuple[str, ...]
    idf: dict[str, float]
    unknown: float  # idf share of the question's terms that no article mentions
    unknown_name: bool  # names something (capitalised past the first word) no article does

    def cover(self, have: set[str] | frozenset[str]) -> float:
        total = sum(self.idf.values()) or 1.0
        return sum(self.idf[t] for t in self.terms if t in have) / total


@dataclass(frozen=True)
class FeatureMatrix:
    """One row per candidate sentence, one column per name in ``FEATURES``."""

    question: QuestionInfo
    rows: tuple[tuple[Segment, int], ...]  # (segment, sentence row) per candidate
    matrix: np.ndarray

    def column(self, name: str) -> np.ndarray:
        return self.matrix[:, FEATURES.index(name)]


class IndexStats:
    """Corpus statistics and per-sentence caches over one generation's segments."""

    def __init__(self, segments: list[Segment], live_rows: dict[str, np.ndarray],
                 embedder) -> None:
        self.segments = segments
        self.n_passages = sum(int(live_rows[s.id] @ s.passages_per_article)
                              for s in segments if s.n_passages)
        self._df: dict[str, int] = {}
        counts = np.zeros(1, dtype=np.int64)
        for s in segments:
            c = s.piece_counts
            if c.size > counts.size:
                counts = np.pad(counts, (0, c.size - counts.size))
            counts[: c.size] += c
        self.piece_counts = counts
        self.n_sentences = max(1, sum(len(s.sentences) for s in segments))
        self.skip_pieces = _function_pieces(embedder)
        self._terms: dict[tuple[str, int], frozenset[str]] = {}

    def idf(self, term: str) -> float:
        n = max(1, self.n_passages)
        df = self._df.get(term)
        if df is None:
            if len(self._df) >= CACHE_MAX:
                self._df.clear()
            df = self._df[term] = sum(s.term_df.get(term, 0) for s in self.segments)
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def piece_idf(self, piece: int) -> float:
        count = int(self.piece_counts[piece]) if piece < self.piece_counts.size else 0
        return math.log(1 + self.n_sentences / (1 + count))

    def sentence_terms(self, seg: Segment, row: int) -> frozenset[str]:
        key = (seg.id, row)
        found = self._terms.get(key)
        if found is None:
            if len(self._terms) >= CACHE_MAX:
                self._terms.clear()
            found = self._terms[key] = seg.sentence_terms(row)
        return found

    def is_known(self, term: str) -> bool:
        # "Australian" is known where "Australia" is, "Singaporean" where "Singapore" is.
        return any(self._mentioned(t) for t in (term, *(term[:k] for k in range(6, len(term)))))

    def mentions(self, term: str) -> bool:
        """Whether an article's text or metadata has ``term`` itself (no prefix match)."""
        return self._mentioned(term)

    def _mentioned(self, term: str) -> bool:
        return any(term in s.term_df or term in s.metadata_terms() for s in self.segments)

    def question(self, text: str) -> QuestionInfo:
        qterms = query_terms(text)
        idf = {t: self.idf(t) for t in qterms}
        return QuestionInfo(text, tuple(qterms), idf, self._unknown(qterms, idf),
                            self._names_unknown(text))

    def _unknown(self, qterms: list[str], idf: dict[str, float]) -> float:
        # Acronym terms are left out: "Putin and Xi" makes a made-up "acr:px".
        plain = [t for t in qterms if not t.startswith("acr:")]
        total = sum(idf[t] for t in plain)
        if not total:
            return 0.0
        return sum(idf[t] for t in plain if not self.is_known(t)) / total

    def _names_unknown(self, question: str) -> bool:
        found = _WORDS.findall(question)
        # Demonyms ("the Australian academic") describe rather than name: left out.
        words = [w for w in found[1:]
                 if w[0].isupper() and w != "I" and not w.endswith(("ian", "ean", "ese", "ish"))]
        # Mixed case names a product or brand wherever it stands: "iPhone", "eBay".
        words += [w for w in found if any(c.isupper() for c in w[1:]) and not w.isupper()
                  and not w[1:].isupper()]
        return any((ts := terms(w)) and not any(self.is_known(t) for t in ts) for w in words)


def _function_pieces(embedder) -> set[int]:
    """Word pieces late interaction leaves out: punctuation and stop words. An embedder
    without a word-piece vocabulary (a test double) leaves nothing out."""
    vocab_of = getattr(embedder, "vocabulary", None)
    if not callable(vocab_of):
        return set()
    vocab = vocab_of()
    skip = {i for tok, i in vocab.items() if not re.search(r"\w", tok)}
    skip |= {vocab[w] for w in STOPWORDS if w in vocab}
    return skip


@dataclass(frozen=True)
class QueryVectors:
    """The question as the embedder sees it."""

    vector: np.ndarray  # unit sentence vector
    tokens: np.ndarray  # (t, d) word-piece vectors, function pieces removed
    token_weights: np.ndarray  # idf of each word piece, summing to 1


def embed_question(embedder, stats: IndexStats, question: str) -> QueryVectors:
    embed_tokens = getattr(embedder, "embed_with_tokens", None)
    if embed_tokens is None:
        vec = embedder.embed_batch([question])[0]
        return QueryVectors(vec, np.zeros((0, vec.shape[0]), np.float32), np.zeros(0, np.float32))
    vecs, toks = embed_tokens([question])
    tv = toks[0]
    keep, weights = content_pieces(stats, tv.ids)
    qt = tv.vectors[keep].astype(np.float32)
    if weights.sum() > 0:
        weights /= weights.sum()
    return QueryVectors(vecs[0], qt, weights)


def content_pieces(stats: IndexStats, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which of the word pieces ``ids`` late interaction reads (not punctuation or stop
    words), and the idf of each piece kept."""
    keep = np.array([i not in stats.skip_pieces for i in ids.tolist()], dtype=bool)
    return keep, np.array([stats.piece_idf(i) for i in ids[keep].tolist()], dtype=np.float32)


def late_interaction(seg: Segment, rows: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                     qv: QueryVectors) -> tuple[np.ndarray, np.ndarray]:
    """MaxSim: each question token's best match in the sentence, and in its window."""
    n = len(rows)
    qt, weights = qv.tokens, qv.token_weights
    if not qt.shape[0] or not seg.token_vectors.shape[0]:
        return np.zeros(n, np.float32), np.zeros(n, np.float32)
    span = np.unique(np.concatenate([np.arange(a, b + 1) for a, b in zip(lo, hi, strict=True)]))
    starts = seg.token_offsets[span]
    ends = seg.token_offsets[span + 1]
    lengths = ends - starts
    nonempty = lengths > 0
    span, starts, lengths = span[nonempty], starts[nonempty], lengths[nonempty]
    # Rows of ``per`` follow ``span`` (the sentences in any candidate's window, sorted), so the
    # work is proportional to the candidates, not to the segment; a last row of zeros stands
    # for sentences without tokens.
    per = np.zeros((len(span) + 1, qt.shape[0]), np.float32)
    if len(span):
        gather = np.concatenate([np.arange(a, a + k) for a, k in zip(starts, lengths,
                                                                     strict=True)])
        sims = qt @ seg.token_matrix(gather).T
        cuts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        per[:-1] = np.maximum.reduceat(sims, cuts, axis=1).T  # (sentences, q tokens)

    def at(sentences: np.ndarray) -> np.ndarray:
        pos = np.searchsorted(span, sentences)
        found = (pos < len(span)) & (span[np.minimum(pos, len(span) - 1)] == sentences) \
            if len(span) else np.zeros(len(sentences), bool)
        return np.where(found, pos, len(span))

    sentence = per[at(rows)] @ weights
    # A window's best match per question token, one offset into the windows at a time
    # (windows are a few sentences long; offsets past a window's end repeat its last).
    best = per[at(lo)]
    for d in range(1, int((hi - lo).max(initial=0)) + 1):
        best = np.maximum(best, per[at(np.minimum(lo + d, hi))])
    return sentence.astype(np.float32), (best @ weights).astype(np.float32)


def best_in_window(rows: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                   values: np.ndarray) -> np.ndarray:
    """Each candidate's highest ``values`` among the candidates of its window [lo, hi], itself
    included (``rows``: one segment's candidate sentences, ascending; a window sentence that is
    no candidate is not looked at)."""
    best = values.copy()
    if not len(rows):
        return best
    for d in range(-int((rows - lo).max()), int((hi - rows).max()) + 1):
        want = rows + d
        pos = np.minimum(np.searchsorted(rows, want), len(rows) - 1)
        hit = (rows[pos] == want) & (want >= lo) & (want <= hi)
        best = np.where(hit, np.maximum(best, values[pos]), best)
    return best


def fill_best_in_window(block: np.ndarray, rows: np.ndarray, lo: np.ndarray,
                        hi: np.ndarray) -> None:
    """Set the ``BEST_IN_WINDOW`` columns of one segment's candidates (``block``, in the order
    of ``rows``, ascending) from their source columns."""
    for name, source in BEST_IN_WINDOW.items():
        block[:, FEATURES.index(name)] = best_in_window(rows, lo, hi,
                                                        block[:, FEATURES.index(source)])


def fill_gaps(matrix: np.ndarray) -> None:
    """Set each ``RELATIVE`` column's "_gap" column: its value minus the question's best."""
    for name in RELATIVE:
        col = matrix[:, FEATURES.index(name)]
        matrix[:, FEATURES.index(f"{name}_gap")] = col - col.max()


def compute(stats: IndexStats, q: QuestionInfo, qv: QueryVectors,
            found: list[SegmentCandidates]) -> FeatureMatrix | None:
    """The feature matrix of every candidate of every segment."""
    if not found:
        return None
    rows: list[tuple[Segment, int]] = []
    blocks: list[np.ndarray] = []
    for cands in found:
        seg, r = cands.segment, cands.rows
        lo = seg.passage_first[r]
        hi = seg.passage_last[r]
        cols = {name: np.zeros(len(r), np.float32) for name in FEATURES}
        cols["sentence_dense"] = np.asarray(seg.sentence_vectors[r], np.float32) @ qv.vector
        cols["window_dense"] = np.asarray(seg.passage_vectors[r], np.float32) @ qv.vector
        cols["sentence_late"], cols["window_late"] = late_interaction(seg, r, lo, hi, qv)
        blocks_of = seg.sentence_block
        for k, row in enumerate(r.tolist()):
            sent = stats.sentence_terms(seg, row)
            win = set().union(*(stats.sentence_terms(seg, j)
                                for j in range(int(lo[k]), int(hi[k]) + 1)))
            block = int(blocks_of[row])
            ctx = set(win)
            for j in range(row - 1, max(-1, row - 1 - CONTEXT_SENTENCES), -1):
                if int(blocks_of[j]) != block:
                    break
                ctx |= stats.sentence_terms(seg, j)
            cols["sentence_cover"][k] = q.cover(sent)
            cols["window_cover"][k] = q.cover(win)
            cols["context_cover"][k] = q.cover(ctx)
            rows.append((seg, row))
        block = np.column_stack([cols[name] for name in FEATURES]).astype(np.float32, copy=False)
        fill_best_in_window(block, r, lo, hi)
        blocks.append(block)
    matrix = np.vstack(blocks)
    fill_gaps(matrix)
    return FeatureMatrix(q, tuple(rows), matrix)
