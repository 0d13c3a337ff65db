"""Features: what is known about each candidate sentence, as named columns.

Every feature is generic (no story's vocabulary): similarity of the question to the sentence
and its window (dense vectors, late interaction over word-piece vectors, BM25), how much of
the question's content (idf-weighted terms) the sentence, its window, the sentences leading
up to it, the sentences that introduce whoever it quotes and the article's title cover,
whether the sentence holds the kind of thing asked for (a date for "when", a number for "how
many", ...), where it stands in its article, and each similarity relative to the question's
best candidate. Which of them count, and how much, is learned (``index.scorer``); the
ablation in docs/ranking.md shows what each group buys.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from index.candidates import NO_RANK, SegmentCandidates
from index.segment import Segment
from index.speakers import Speaker, speaker
from index.text import STOPWORDS, query_terms, terms

CACHE_MAX = 200_000  # entries per cache (terms of sentences, speakers, document frequencies)
SPEAKER_TOP = 24  # candidates whose speaker is traced, by dense + lexical evidence
CONTEXT_SENTENCES = 3  # how far back a sentence's context reaches (within its block)

# The columns of ``FeatureMatrix.matrix``, in order.
FEATURES = (
    # similarity
    "sentence_dense", "window_dense", "sentence_late", "window_late", "lexical_score",
    "dense_rrf", "lexical_rrf",
    # coverage of the question's content terms (idf-weighted share)
    "sentence_cover", "window_cover", "context_cover", "speaker_cover", "metadata",
    # what the sentence holds
    "answer_type", "type_asked", "author", "new_name", "asked_question", "other_question",
    "has_number", "has_quote",
    # where it stands
    "lead", "position", "length",
    # relative to the question's best candidate (0 for the best)
    "sentence_dense_gap", "window_dense_gap", "sentence_late_gap", "window_late_gap",
    "context_cover_gap", "lexical_gap",
)
RRF_K = 10  # reciprocal-rank damping: 1 / (RRF_K + rank)

_MONTHS = ("January|February|March|April|May|June|July|August|September|October|November|"
           "December")
_DATE = re.compile(rf"\b(?:{_MONTHS})\b|\b(?:1[89]|20)\d\d\b|\b(?:Mon|Tues|Wednes|Thurs|Fri|"
                   r"Satur|Sun)day\b|\b(?:last|next|this) (?:week|month|year)\b|\bago\b")
_WORDS = re.compile(r"[A-Za-z][\w’'-]*")
_NAME = re.compile(r"\b[A-Z][a-z]+(?:[ -][A-Z][a-z]+)+\b")
_NUMBER = re.compile(r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
                     r"twenty|thirty|forty|fifty|hundred|thousand|million|billion|dozen|half)\b",
                     re.I)
_PLACE_WORDS = re.compile(r"\b(?:in|at|from|to) (?:the )?[A-Z][a-z]+")
_EVENT = re.compile(r"\b(?:during|at|ahead of|on the sidelines of) (?:the )?(?:[A-Z][a-z]+ )*"
                    r"[A-Z][a-z]+")
_REASON = re.compile(r"\b(?:because|due to|in order to|so as to|so that|in a bid to|"
                     r"in an effort to|seek(?:s|ing)? to|aim(?:s|ed|ing)? (?:to|at)|"
                     r"intended to|designed to|meant to|after|as a result|reason|since)\b",
                     re.I)
_QUOTE = re.compile(r"[“”\"]")


def answer_type(question: str) -> str | None:
    """The kind of thing a question asks for, from its wording alone."""
    q = question.strip().lower()
    if re.search(r"\bwho (?:wrote|authored|is the author)\b|\bauthor of\b|\bwritten by\b", q):
        return "author"
    if re.search(r"^(?:when|what (?:year|date|day|month|time))\b|\bwhen (?:did|was|will|is|do)\b",
                 q):
        return "date"
    if re.match(r"(?:who|whom|whose)\b", q) or re.search(r"\bwho (?:wrote|said)\b", q):
        return "person"
    if re.search(r"\bhow (?:much|many|long|far|big|large|old)\b|\bwhat (?:percentage|share|"
                 r"proportion|number|amount|price|age)\b", q):
        return "number"
    if re.search(r"\b(?:which|what) (?:event|occasion|summit|conference|ceremony|games)\b", q):
        return "event"
    if re.match(r"where\b", q):
        return "place"
    if re.match(r"why\b", q) or re.search(r"\b(?:reason|motive|because)\b", q):
        return "reason"
    return None


def matches_type(kind: str | None, text: str) -> bool:
    if kind == "date":
        return bool(_DATE.search(text))
    if kind == "person":
        return bool(_NAME.search(text))
    if kind == "number":
        return bool(_NUMBER.search(text))
    if kind == "place":
        return bool(_PLACE_WORDS.search(text))
    if kind == "event":
        return bool(_EVENT.search(text))
    if kind == "reason":
        return bool(_REASON.search(text))
    return False


def is_question(text: str) -> bool:
    return text.rstrip("”\"’' )").endswith("?")


@dataclass(frozen=True)
class QuestionInfo:
    """What the question asks, as the features and the policy need it."""

    text: str
    terms: tuple[str, ...]
    idf: dict[str, float]
    kind: str | None
    names: frozenset[str]
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
        self._speakers: dict[str, dict[int, Speaker | None]] = {}

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

    def speaker(self, seg: Segment, row: int) -> Speaker | None:
        """Who speaks in a sentence; their rows are the segment's (not the article's)."""
        cache = self._speakers.setdefault(seg.id, {})
        if row not in cache:
            if len(cache) >= CACHE_MAX:
                cache.clear()
            article = int(seg.sentence_article[row])
            first = int(seg.article_first_sentence[article])
            last = int(seg.article_first_sentence[article + 1])
            spans = seg.sentences[first:last, 1:3].tolist()
            found = speaker(seg.articles[article].body, spans, row - first)
            cache[row] = found and Speaker(found.name, first + found.introduced,
                                           tuple(first + j for j in found.rows),
                                           tuple(first + j for j in found.described))
        return cache[row]

    def is_known(self, term: str) -> bool:
        # "Australian" is known where "Australia" is, "Singaporean" where "Singapore" is.
        return any(self._mentioned(t) for t in (term, *(term[:k] for k in range(6, len(term)))))

    def _mentioned(self, term: str) -> bool:
        return any(term in s.term_df or term in s.metadata_terms() for s in self.segments)

    def question(self, text: str) -> QuestionInfo:
        qterms = query_terms(text)
        idf = {t: self.idf(t) for t in qterms}
        return QuestionInfo(text, tuple(qterms), idf, answer_type(text),
                            frozenset(_NAME.findall(text)), self._unknown(qterms, idf),
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
    vocab_of = getattr(embedder, "vocabulary", None)
    if callable(vocab_of):
        vocab = vocab_of()
    else:
        tokenizer = getattr(getattr(embedder, "_model", None), "tokenizer", None)
        if tokenizer is None:
            return set()
        vocab = tokenizer.get_vocab()
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
    keep = np.array([i not in stats.skip_pieces for i in tv.ids.tolist()], dtype=bool)
    ids = tv.ids[keep]
    qt = tv.vectors[keep].astype(np.float32)
    weights = np.array([stats.piece_idf(i) for i in ids.tolist()], dtype=np.float32)
    if weights.sum() > 0:
        weights /= weights.sum()
    return QueryVectors(vecs[0], qt, weights)


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


def compute(stats: IndexStats, q: QuestionInfo, qv: QueryVectors,
            found: list[SegmentCandidates], *, speakers: bool = True) -> FeatureMatrix | None:
    """The feature matrix of every candidate of every segment."""
    if not found:
        return None
    asks_question = "question" in q.text.lower()
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
        cols["lexical_score"] = cands.lexical_score
        cols["dense_rrf"] = np.where(cands.dense_rank < NO_RANK,
                                     RRF_K / (RRF_K + cands.dense_rank), 0.0)
        cols["lexical_rrf"] = np.where(cands.lexical_rank < NO_RANK,
                                       RRF_K / (RRF_K + cands.lexical_rank), 0.0)
        cols["type_asked"][:] = q.kind is not None and q.kind != "author"
        starts, ends, blocks_of = seg.sentence_start, seg.sentence_end, seg.sentence_block
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
            a = int(seg.sentence_article[row])
            article = seg.articles[a]
            text = article.body[int(starts[row]):int(ends[row])]
            if q.kind == "author":
                cols["author"][k] = bool(article.author and article.author in text)
            elif q.kind:
                cols["answer_type"][k] = matches_type(q.kind, text)
            cols["new_name"][k] = any(n not in q.names for n in _NAME.findall(text))
            if is_question(text):
                cols["asked_question" if asks_question else "other_question"][k] = 1.0
            cols["has_number"][k] = bool(_NUMBER.search(text))
            cols["has_quote"][k] = bool(_QUOTE.search(text))
            cols["metadata"][k] = q.cover(seg.article_terms(a))
            first = int(seg.article_first_sentence[a])
            count = int(seg.article_first_sentence[a + 1]) - first
            cols["lead"][k] = row == first
            cols["position"][k] = (row - first) / max(1, count - 1)
            cols["length"][k] = math.log1p(len(text.split()))
            rows.append((seg, row))
        blocks.append(np.column_stack([cols[name] for name in FEATURES]))
    matrix = np.vstack(blocks).astype(np.float32)
    for name in ("sentence_dense", "window_dense", "sentence_late", "window_late",
                 "context_cover"):
        col = matrix[:, FEATURES.index(name)]
        matrix[:, FEATURES.index(f"{name}_gap")] = col - col.max()
    lex = matrix[:, FEATURES.index("lexical_score")].copy()
    top = float(lex.max())
    matrix[:, FEATURES.index("lexical_score")] = lex / top if top > 0 else 0.0
    matrix[:, FEATURES.index("lexical_gap")] = (lex - top) / top if top > 0 else 0.0
    fm = FeatureMatrix(q, tuple(rows), matrix)
    if speakers:
        _speaker_cover(stats, fm)
    return fm


def _speaker_cover(stats: IndexStats, fm: FeatureMatrix) -> None:
    """``speaker_cover`` for the candidates most likely to come first: tracing who speaks costs
    a paragraph scan per sentence, so it is done for the best ``SPEAKER_TOP`` by similarity."""
    m = fm.matrix
    prior = m[:, FEATURES.index("window_dense")] + m[:, FEATURES.index("window_late")] \
        + m[:, FEATURES.index("context_cover")]
    col = FEATURES.index("speaker_cover")
    for i in np.argsort(-prior, kind="stable")[:SPEAKER_TOP].tolist():
        seg, row = fm.rows[i]
        who = stats.speaker(seg, row)
        if who and who.rows:
            have = set().union(*(stats.sentence_terms(seg, j) for j in who.rows))
            m[i, col] = fm.question.cover(have)
