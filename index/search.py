"""Find the sentences that answer a question, and decide whether the dossier covers it.

Candidates come from two retrievers over passages (dense FAISS and lexical BM25). Each
candidate *sentence* is then scored on evidence that a single passage score misses:
late interaction between the question's and the sentence's token vectors (which matches
"shipped" to "sent" and "proof" to "evidence"), dense similarity of the sentence and of its
window, how much of the question's content the window covers, how well the article as a
whole matches (its best windows and its title, outlet and author), and whether the
sentence holds the kind of thing asked for (a date for "when", a name for "who").
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from index.model import Article
from index.segment import Segment
from index.text import STOPWORDS, query_terms, terms


@dataclass(frozen=True)
class Weights:
    sentence_dense: float = 1.0
    window_dense: float = 1.0
    sentence_cover: float = 0.0
    window_cover: float = 0.6
    sentence_late: float = 1.0
    window_late: float = 2.0
    article: float = 0.3
    metadata: float = 0.5
    answer_type: float = 0.1
    interrogative: float = 0.1


@dataclass(frozen=True)
class Evidence:
    article: Article
    start: int
    end: int
    score: float
    support: float  # share of the question's content found around the evidence, 0..1

    @property
    def text(self) -> str:
        return self.article.body[self.start:self.end]


@dataclass(frozen=True)
class SearchResult:
    question: str
    evidence: tuple[Evidence, ...]
    covered: bool
    closest: tuple[Article, ...]


@dataclass
class _Candidate:
    seg: Segment
    row: int  # sentence row in the segment
    score: float = 0.0
    cover: float = 0.0


_MONTHS = ("January|February|March|April|May|June|July|August|September|October|November|"
           "December")
_DATE = re.compile(rf"\b(?:{_MONTHS})\b|\b(?:1[89]|20)\d\d\b|\b(?:Mon|Tues|Wednes|Thurs|Fri|"
                   r"Satur|Sun)day\b|\b(?:last|next|this) (?:week|month|year)\b|\bago\b")
_NAME = re.compile(r"\b[A-Z][a-z]+(?:[ -][A-Z][a-z]+)+\b")
_NUMBER = re.compile(r"\d")
_PLACE_WORDS = re.compile(r"\b(?:in|at|from|to) (?:the )?[A-Z][a-z]+")


def answer_type(question: str) -> str | None:
    q = question.strip().lower()
    if re.match(r"(?:when|what (?:year|date|day|month))\b", q):
        return "date"
    if re.match(r"(?:who|whom|whose)\b", q) or re.search(r"\bwho (?:wrote|said)\b", q):
        return "person"
    if re.search(r"\bhow (?:much|many|long|far|big|large)\b|\bwhat (?:percentage|share)\b", q):
        return "number"
    if re.match(r"where\b", q):
        return "place"
    return None


def _matches_type(kind: str | None, text: str) -> bool:
    if kind == "date":
        return bool(_DATE.search(text))
    if kind == "person":
        return bool(_NAME.search(text))
    if kind == "number":
        return bool(_NUMBER.search(text))
    if kind == "place":
        return bool(_PLACE_WORDS.search(text))
    return False


def _is_question(text: str) -> bool:
    return text.rstrip("”\"’' )").endswith("?")


class Retriever:
    """Searches one generation of the index (a list of loaded segments)."""

    def __init__(self, segments: list[Segment], live: dict[str, set[str]], embedder,
                 *, weights: Weights | None = None, candidates: int = 40,
                 max_quotes: int = 3) -> None:
        self.segments = segments
        self.embedder = embedder
        self.weights = weights or Weights()
        self.k = candidates
        self.max_quotes = max_quotes
        # live[segment id] = ids of the articles whose current version lives in that segment
        self._live_rows = {
            s.id: np.array([a.id in live.get(s.id, set()) for a in s.articles], dtype=bool)
            for s in segments
        }
        self._n_passages = sum(int(self._live_rows[s.id][s.sentences[s.passages[:, 0], 0]].sum())
                               for s in segments if s.n_passages)
        df: dict[str, int] = {}
        for s in segments:
            for t, n in s.term_df.items():
                df[t] = df.get(t, 0) + n
        self._df = df
        counts = np.zeros(1, dtype=np.int64)
        for s in segments:
            if s.token_ids.size:
                c = np.bincount(np.asarray(s.token_ids), minlength=counts.size)
                if c.size > counts.size:
                    counts = np.pad(counts, (0, c.size - counts.size))
                counts[: c.size] += c
        self._piece_counts = counts
        self._n_sentences = max(1, sum(len(s.sentences) for s in segments))
        self._skip_pieces = self._function_pieces()

    # -- public -------------------------------------------------------------------------------

    def search(self, question: str) -> SearchResult:
        qterms = query_terms(question)
        qvec, qtok = self._embed(question)
        cands = self._candidates(qvec, qterms)
        if not cands:
            return SearchResult(question, (), False, ())
        idf = {t: self._idf(t) for t in qterms}
        total_idf = sum(idf.values()) or 1.0
        kind = answer_type(question)
        asks_question = "question" in question.lower()
        w = self.weights
        qt_vecs, qt_weights = qtok
        article_best: dict[tuple[str, int], float] = {}
        window_cover: dict[tuple[str, int], float] = {}
        for c in cands:
            seg, row = c.seg, c.row
            lo, hi = self._window(seg, row)
            text = self._text(seg, row, row)
            sent_terms = set(terms(text))
            win_terms = set(terms(self._text(seg, lo, hi)))
            cover_s = sum(idf[t] for t in qterms if t in sent_terms) / total_idf
            cover_w = sum(idf[t] for t in qterms if t in win_terms) / total_idf
            dense_s = float(np.dot(seg.sentence_vectors[row], qvec))
            dense_w = float(np.dot(seg.passage_vectors[row], qvec))
            late_s, late_w = self._late(seg, row, lo, hi, qt_vecs, qt_weights)
            score = (w.sentence_dense * dense_s + w.window_dense * dense_w
                     + w.sentence_cover * cover_s + w.window_cover * cover_w
                     + w.sentence_late * late_s + w.window_late * late_w)
            if kind and _matches_type(kind, text):
                score += w.answer_type
            if _is_question(text):
                score += w.interrogative if asks_question else -w.interrogative
            c.score, c.cover = score, cover_w
            art_row = int(seg.sentences[row, 0])
            base = w.window_dense * dense_w + w.window_cover * cover_w + w.window_late * late_w
            key = (seg.id, art_row)
            article_best[key] = max(article_best.get(key, -1e9), base)
            window_cover[key] = max(window_cover.get(key, 0.0), cover_w)
        meta_cover = {}
        for key in article_best:
            seg = next(s for s in self.segments if s.id == key[0])
            meta_cover[key] = self._meta_cover(seg.articles[key[1]], qterms, idf, total_idf)
        for c in cands:
            key = (c.seg.id, int(c.seg.sentences[c.row, 0]))
            c.score += w.article * article_best[key] + w.metadata * meta_cover[key]
        cands.sort(key=lambda c: c.score, reverse=True)
        best = cands[0]
        covered = self._covered(best, qterms, idf, total_idf)
        evidence = self._quotes(cands) if covered else ()
        closest = self._closest(cands)
        return SearchResult(question, evidence, covered and bool(evidence), closest)

    # -- candidates ---------------------------------------------------------------------------

    def _embed(self, question: str):
        embed_tokens = getattr(self.embedder, "embed_with_tokens", None)
        if embed_tokens is None:
            vec = self.embedder.embed_batch([question])[0]
            return vec, (np.zeros((0, vec.shape[0]), np.float32), np.zeros(0, np.float32))
        vecs, toks = embed_tokens([question])
        tv = toks[0]
        keep = np.array([i not in self._skip_pieces for i in tv.ids.tolist()], dtype=bool)
        ids = tv.ids[keep]
        qt = tv.vectors[keep].astype(np.float32)
        weights = np.array([self._piece_idf(i) for i in ids.tolist()], dtype=np.float32)
        if weights.sum() > 0:
            weights /= weights.sum()
        return vecs[0], (qt, weights)

    def _candidates(self, qvec: np.ndarray, qterms: list[str]) -> list[_Candidate]:
        seen: dict[tuple[str, int], _Candidate] = {}
        for seg in self.segments:
            if not seg.n_passages:
                continue
            live = self._live_rows[seg.id]
            rows: list[int] = []
            k = min(self.k * 2, seg.n_passages)
            _, idx = seg.vector_index.search(qvec.reshape(1, -1).astype(np.float32), k)
            rows.extend(int(i) for i in idx[0] if i >= 0)
            if seg.bm25 is not None and qterms:
                known = [t for t in qterms if t in seg.bm25.vocab_dict]
                if known:
                    res, scores = seg.bm25.retrieve([known], k=min(self.k, seg.n_passages),
                                                    show_progress=False, n_threads=1)
                    rows.extend(int(r) for r, s in zip(res[0], scores[0], strict=True) if s > 0)
            for r in rows:
                first, last, centre = (int(x) for x in seg.passages[r])
                if not live[int(seg.sentences[centre, 0])]:
                    continue
                for s in range(first, last + 1):
                    seen.setdefault((seg.id, s), _Candidate(seg, s))
        return list(seen.values())

    # -- features -----------------------------------------------------------------------------

    def _window(self, seg: Segment, row: int) -> tuple[int, int]:
        first, last, _ = seg.passages[row]
        return int(first), int(last)

    def _text(self, seg: Segment, lo: int, hi: int) -> str:
        art = seg.articles[int(seg.sentences[lo, 0])]
        return art.body[int(seg.sentences[lo, 1]):int(seg.sentences[hi, 2])]

    def _late(self, seg: Segment, row: int, lo: int, hi: int, qt: np.ndarray,
              weights: np.ndarray) -> tuple[float, float]:
        """MaxSim: each question token's best match in the sentence (and in its window)."""
        if not qt.shape[0] or not seg.token_vectors.shape[0]:
            return 0.0, 0.0
        best_rows = []
        for s in range(lo, hi + 1):
            a, b = int(seg.token_offsets[s]), int(seg.token_offsets[s + 1])
            if b <= a:
                best_rows.append(np.zeros(qt.shape[0], np.float32))
                continue
            sims = qt @ np.asarray(seg.token_vectors[a:b], dtype=np.float32).T
            best_rows.append(sims.max(axis=1))
        per = np.vstack(best_rows)
        sentence = float(per[row - lo] @ weights)
        window = float(per.max(axis=0) @ weights)
        return sentence, window

    def _idf(self, term: str) -> float:
        n = max(1, self._n_passages)
        df = self._df.get(term, 0)
        return math.log(1 + (n - df + 0.5) / (df + 0.5))

    def _piece_idf(self, piece: int) -> float:
        count = int(self._piece_counts[piece]) if piece < self._piece_counts.size else 0
        return math.log(1 + self._n_sentences / (1 + count))

    def _function_pieces(self) -> set[int]:
        tokenizer = getattr(getattr(self.embedder, "_model", None), "tokenizer", None)
        if tokenizer is None:
            return set()
        vocab = tokenizer.get_vocab()
        skip = {i for tok, i in vocab.items() if not re.search(r"\w", tok)}
        skip |= {vocab[w] for w in STOPWORDS if w in vocab}
        return skip

    def _meta_cover(self, article: Article, qterms: list[str], idf: dict[str, float],
                    total: float) -> float:
        meta = " ".join(x for x in (article.title, article.outlet, article.author) if x)
        have = set(terms(meta))
        return sum(idf[t] for t in qterms if t in have) / total

    # -- decisions ----------------------------------------------------------------------------

    def _covered(self, best: _Candidate, qterms, idf, total_idf) -> bool:
        return best.cover >= 0.25 or best.score >= 3.2

    def _quotes(self, ranked: list[_Candidate]) -> tuple[Evidence, ...]:
        chosen: list[_Candidate] = []
        spans: list[tuple[str, int, int]] = []
        used_articles: set[str] = set()
        top = ranked[0].score
        # The best quote first; then the best of *other* articles that bear on the question,
        # so readers see how different outlets report it; then more from the same article.
        for same_article_ok in (False, True):
            for c in ranked:
                if len(chosen) >= self.max_quotes:
                    break
                art = c.seg.articles[int(c.seg.sentences[c.row, 0])]
                if chosen and c.score < top - 0.6:
                    break
                if not same_article_ok and art.id in used_articles and chosen:
                    continue
                lo, hi = self._window(c.seg, c.row)
                start, end = int(c.seg.sentences[lo, 1]), int(c.seg.sentences[hi, 2])
                if any(a == art.id and start < e and s < end for a, s, e in spans):
                    continue
                chosen.append(c)
                spans.append((art.id, start, end))
                used_articles.add(art.id)
        out = []
        for c, (_, start, end) in zip(chosen, spans, strict=True):
            art = c.seg.articles[int(c.seg.sentences[c.row, 0])]
            out.append(Evidence(art, start, end, round(c.score, 4), round(c.cover, 4)))
        return tuple(out)

    def _closest(self, ranked: list[_Candidate]) -> tuple[Article, ...]:
        out: list[Article] = []
        for c in ranked:
            art = c.seg.articles[int(c.seg.sentences[c.row, 0])]
            if art not in out:
                out.append(art)
            if len(out) == 3:
                break
        return tuple(out)
