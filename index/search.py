"""Find the sentences that answer a question, and decide whether the dossier covers it.

Candidates come from two retrievers over passages (dense FAISS and lexical BM25). Each
candidate *sentence* is then scored on evidence that a single passage score misses:
late interaction between the question's and the sentence's token vectors (which matches
"shipped" to "sent" and "proof" to "evidence"), the passage vector (which reads the
article's title and the sentences leading in), how much of the question's content the
window and its lead-in cover, the sentences that introduced whoever it quotes
(``index.speakers``), the article's title, outlet and author, and whether the sentence holds
the kind of thing asked for (a date for "when", a name for "who", a cause for "why"). The
weights are in ``Weights``; ``dossier-bot eval`` shows what they achieve. Declining weighs
the best score, the words it shares with the question, and how much of the question the
dossier never mentions at all.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from threadpoolctl import ThreadpoolController

from index import lexical
from index.model import Article
from index.segment import Segment
from index.speakers import Speaker, speaker
from index.text import STOPWORDS, query_terms, terms


@dataclass(frozen=True)
class Weights:
    """How evidence features combine (one weight per column of ``Features.matrix``).

    Set on the development set as round numbers; the features carry the method, so no weight
    is tuned to a single question.
    """

    sentence_dense: float = 0.0  # cosine of question and sentence vectors
    window_dense: float = 1.0  # cosine of question and the passage vector (title, lead-in)
    sentence_cover: float = 0.0  # share of the question's content terms (idf) in the sentence
    window_cover: float = 0.0  # ... in the window
    context_cover: float = 0.3  # ... in the window and the sentences leading up to it
    speaker_cover: float = 0.2  # ... in the sentences that introduce who is speaking
    sentence_late: float = 1.0  # late interaction (MaxSim over token vectors), sentence
    window_late: float = 1.0  # ... window
    answer_type: float = 0.5  # holds what is asked for: a date for "when", a name for "who", ...
    author: float = 1.0  # names the article's author, when asked who wrote it
    new_name: float = 0.2  # names someone or something the question does not
    asked_question: float = 0.5  # is itself a question, when a question is asked for
    other_question: float = -0.1  # is a question, otherwise (rhetorical, not an answer)
    metadata: float = 1.0  # question terms in the article's title, outlet and author
    # Declining weighs three kinds of evidence. The combined score must clear
    # ``decline_below`` (dev set: answerable at least 1.51; off-topic at most 1.23, or 1.46
    # where the window shares no content term); unless it is high (``confident``), the quoted
    # window must share at least one content term with the question; and the dossier must
    # mention most of what the question asks about: at ``unknown_above`` of the question's
    # content (idf) absent from every article, it is declined ("Who won the 2022 FIFA World
    # Cup?" matches "2022" and a name; answerable questions, paraphrased, reach 0.5).
    decline_below: float = 1.4
    confident: float = 1.9
    unknown_above: float = 0.6
    # A question that names something no article mentions ("Iran", "Leopard tanks") needs
    # stronger evidence: its nearest passages match the rest of it (drones, Russia, tanks).
    # Both sets: such off-topic questions at most 1.95; "Berlin" for Germany 2.17.
    confident_unknown_name: float = 2.05
    tie_margin: float = 0.1  # a runner-up this close in the same article is quoted too
    quote_margin: float = 0.5  # further quotes score at most this much below the best

    def vector(self) -> np.ndarray:
        """The evidence weights in the order of ``FEATURES`` (the columns of a matrix)."""
        return np.array([getattr(self, name) for name in FEATURES], dtype=np.float32)


FEATURES = ("sentence_dense", "window_dense", "sentence_cover", "window_cover", "context_cover",
            "speaker_cover", "sentence_late", "window_late", "answer_type", "author", "new_name",
            "asked_question", "other_question", "metadata")


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


@dataclass(frozen=True)
class Features:
    question: str
    rows: list  # (segment, sentence row) per candidate
    matrix: np.ndarray  # one row per candidate, one column per name in FEATURES
    unknown: float = 0.0  # share of the question's content (idf) the dossier never mentions
    unknown_name: bool = False  # the question names someone or something the dossier never does


@dataclass
class _Candidate:
    seg: Segment
    row: int  # sentence row in the segment
    score: float = 0.0
    cover: float = 0.0


CACHE_MAX = 200_000  # entries per retriever cache (terms of sentences, speakers, query terms)
SPEAKER_TOP = 24  # candidates whose speaker is traced (see Retriever._speaker_feature)
CONTEXT_SENTENCES = 3  # how far back a sentence's context reaches (within its block)

_MONTHS = ("January|February|March|April|May|June|July|August|September|October|November|"
           "December")
_DATE = re.compile(rf"\b(?:{_MONTHS})\b|\b(?:1[89]|20)\d\d\b|\b(?:Mon|Tues|Wednes|Thurs|Fri|"
                   r"Satur|Sun)day\b|\b(?:last|next|this) (?:week|month|year)\b|\bago\b")
# "According to the analyst", "what does the blogger expect": a question about what
# someone says, whose other remarks then answer it too.
_SAYING = ("say", "think", "believe", "expect", "describe", "argue", "warn", "claim", "predict",
           "suggest", "see")
_ATTRIBUTED = re.compile(rf"\baccording to\b|\b(?:said|{'|'.join(_SAYING)})s?\b", re.I)
_ATTRIBUTION_TERMS = frozenset(t.lower() for t in terms(" ".join(("according", *_SAYING))))
_ACCORDING = re.compile(r",?\s*\baccording to [^,?]*,?", re.I)
_DOES_SAY = re.compile(rf"\b(does|do|did)\s+(?:the\s+|an?\s+)?[^?,]*?\s+"
                       rf"(?:{'|'.join(_SAYING)})s?\b", re.I)
_WORDS = re.compile(r"[A-Za-z][\w’'-]*")
_NAME = re.compile(r"\b[A-Z][a-z]+(?:[ -][A-Z][a-z]+)+\b")
_NUMBER = re.compile(r"\d")
_PLACE_WORDS = re.compile(r"\b(?:in|at|from|to) (?:the )?[A-Z][a-z]+")
# "At which event": a named occasion something happened during or at.
_EVENT = re.compile(r"\b(?:during|at|ahead of|on the sidelines of) (?:the )?(?:[A-Z][a-z]+ )*"
                    r"[A-Z][a-z]+")
# "Why", "what is the goal": a sentence that gives a purpose or a cause.
_REASON = re.compile(r"\b(?:because|due to|in order to|so as to|so that|in a bid to|"
                     r"in an effort to|seek(?:s|ing)? to|aim(?:s|ed|ing)? (?:to|at)|"
                     r"intended to|designed to|meant to|goal|purpose|objective)\b", re.I)


def _share(qterms: list[str], idf: dict[str, float], have: set[str] | frozenset[str],
           total: float) -> float:
    """The idf-weighted share of the question's terms found in ``have``."""
    return sum(idf[t] for t in qterms if t in have) / total


def answer_type(question: str) -> str | None:
    q = question.strip().lower()
    if re.search(r"\bwho (?:wrote|authored|is the author)\b|\bauthor of\b|\bwritten by\b", q):
        return "author"
    if re.match(r"(?:when|what (?:year|date|day|month))\b", q):
        return "date"
    if re.match(r"(?:who|whom|whose)\b", q) or re.search(r"\bwho (?:wrote|said)\b", q):
        return "person"
    if re.search(r"\bhow (?:much|many|long|far|big|large)\b|\bwhat (?:percentage|share)\b", q):
        return "number"
    if re.search(r"\b(?:which|what) (?:event|occasion|summit|conference|ceremony|games)\b", q):
        return "event"
    if re.match(r"where\b", q):
        return "place"
    if re.match(r"why\b", q) or re.search(r"\b(?:goal|aim|purpose|reason|motive|objective)s?\b", q):
        return "reason"
    return None


def strip_attribution(question: str) -> str:
    """The question without who it asks about: "What does Moscow need from Beijing according
    to the Singapore professor?" -> "What does Moscow need from Beijing?"."""
    q = _ACCORDING.sub("", question)
    q = _DOES_SAY.sub(r"\1", q)
    return re.sub(r"\s+([?,.])", r"\1", q).strip(" ,") or question


def _matches_type(kind: str | None, text: str) -> bool:
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


def _is_question(text: str) -> bool:
    return text.rstrip("”\"’' )").endswith("?")


@lru_cache(maxsize=1)
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def _one_blas_thread():
    """BLAS on one thread for the duration of a search.

    A search's matrix products are small; split over two threads they gain nothing, and the
    idle thread then spins, taking the core the next question's embedding needs (measured:
    a question's CPU time 33 -> 21 ms).
    """
    return _blas().limit(limits=1, user_api="blas")


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
            s.id: np.array([a.id in live.get(s.id, ()) for a in s.articles], dtype=bool)
            for s in segments
        }
        # Everything below is O(segments) (plus one flag per article): a reload after adding
        # one article must not cost a pass over the whole index. Per-segment statistics
        # (document frequencies, word-piece counts) were computed when the segment was written.
        self._n_passages = sum(int(self._live_rows[s.id] @ s.passages_per_article)
                               for s in segments if s.n_passages)
        self._df_cache: dict[str, int] = {}
        counts = np.zeros(1, dtype=np.int64)
        for s in segments:
            c = s.piece_counts
            if c.size > counts.size:
                counts = np.pad(counts, (0, c.size - counts.size))
            counts[: c.size] += c
        self._piece_counts = counts
        self._n_sentences = max(1, sum(len(s.sentences) for s in segments))
        self._skip_pieces = self._function_pieces()
        # Bounded: a long-running bot would otherwise keep one entry per sentence ever scored.
        self._term_cache: dict[tuple[str, int], frozenset[str]] = {}
        self._speakers: dict[str, dict[int, Speaker | None]] = {}

    # -- public -------------------------------------------------------------------------------

    def search(self, question: str) -> SearchResult:
        with _one_blas_thread():
            return self._search(question)

    def _search(self, question: str) -> SearchResult:
        feats = self.features(question)
        if feats is None:
            return SearchResult(question, (), False, ())
        ranked = self.rank(feats)
        best = ranked[0]
        covered = self._covered(best, feats.unknown, feats.unknown_name)
        follow = self._speaker_remarks(question, ranked) if covered else []
        evidence = self._quotes(ranked, follow) if covered else ()
        return SearchResult(question, evidence, covered and bool(evidence), self._closest(ranked))

    def features(self, question: str) -> Features | None:
        """Evidence features of every candidate sentence (one row each), before weighting."""
        qterms = query_terms(question)
        qvec, (qt, qt_weights) = self._embed(question)
        by_segment = self._candidates(qvec, qterms)
        if not by_segment:
            return None
        idf = {t: self._idf(t) for t in qterms}
        total_idf = sum(idf.values()) or 1.0
        kind = answer_type(question)
        asks_question = "question" in question.lower()
        qnames = set(_NAME.findall(question))
        rows: list[tuple[Segment, int]] = []
        blocks: list[np.ndarray] = []
        for seg, cand_rows in by_segment:
            r = np.asarray(sorted(cand_rows), dtype=np.int64)
            lo = seg.passages[r, 0]
            hi = seg.passages[r, 1]
            cols = {name: np.zeros(len(r), np.float32) for name in FEATURES}
            cols["sentence_dense"] = np.asarray(seg.sentence_vectors[r], dtype=np.float32) @ qvec
            cols["window_dense"] = np.asarray(seg.passage_vectors[r], dtype=np.float32) @ qvec
            cols["sentence_late"], cols["window_late"] = self._late(seg, r, lo, hi, qt,
                                                                    qt_weights)

            def cover(have: set[str] | frozenset[str]) -> float:
                return _share(qterms, idf, have, total_idf)

            for k, row in enumerate(r.tolist()):
                sent = self._terms(seg, row)
                win = set().union(*(self._terms(seg, j) for j in range(int(lo[k]), int(hi[k]) + 1)))
                block = int(seg.sentences[row, 3])
                ctx = set(win)
                for j in range(row - 1, max(-1, row - 1 - CONTEXT_SENTENCES), -1):
                    if int(seg.sentences[j, 3]) != block:
                        break
                    ctx |= self._terms(seg, j)
                cols["sentence_cover"][k] = cover(sent)
                cols["window_cover"][k] = cover(win)
                cols["context_cover"][k] = cover(ctx)
                text = self._text(seg, row, row)
                article = seg.articles[int(seg.sentences[row, 0])]
                if kind == "author":
                    cols["author"][k] = bool(article.author and article.author in text)
                elif kind:
                    cols["answer_type"][k] = _matches_type(kind, text)
                cols["new_name"][k] = any(n not in qnames for n in _NAME.findall(text))
                if _is_question(text):
                    cols["asked_question" if asks_question else "other_question"][k] = 1.0
                cols["metadata"][k] = cover(seg.article_terms(int(seg.sentences[row, 0])))
                rows.append((seg, row))
            blocks.append(np.column_stack([cols[name] for name in FEATURES]))
        matrix = np.vstack(blocks).astype(np.float32)
        self._speaker_feature(matrix, rows, qterms, idf, total_idf)
        return Features(question, rows, matrix, self._unknown(qterms, idf),
                        self._names_unknown(question))

    def _speaker_feature(self, matrix: np.ndarray, rows: list[tuple[Segment, int]],
                         qterms: list[str], idf: dict[str, float], total_idf: float) -> None:
        """Fill ``speaker_cover`` for the candidates that could still come first.

        Tracing who speaks costs a paragraph scan per sentence; it only reorders close
        candidates, so it is done for the best ``SPEAKER_TOP`` by the other features.
        """
        col = FEATURES.index("speaker_cover")
        score = matrix @ self.weights.vector()
        for i in np.argsort(-score, kind="stable")[:SPEAKER_TOP].tolist():
            seg, row = rows[i]
            who = self._speaker(seg, row)
            if who and who.rows:
                have = set().union(*(self._terms(seg, j) for j in who.rows))
                matrix[i, col] = _share(qterms, idf, have, total_idf)

    def rank(self, feats: Features, weights: Weights | None = None) -> list[_Candidate]:
        m = feats.matrix
        score = m @ (weights or self.weights).vector()
        order = np.argsort(-score, kind="stable")
        cover = m[:, FEATURES.index("window_cover")]
        return [_Candidate(feats.rows[i][0], feats.rows[i][1], float(score[i]),
                           float(cover[i])) for i in order]

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

    def _candidates(self, qvec: np.ndarray, qterms: list[str]) -> list[tuple[Segment, set[int]]]:
        out: list[tuple[Segment, set[int]]] = []
        for seg in self.segments:
            if not seg.n_passages:
                continue
            live = self._live_rows[seg.id]
            rows: list[int] = []
            k = min(self.k, seg.n_passages)
            _, idx = seg.vector_index.search(qvec.reshape(1, -1).astype(np.float32), k)
            rows.extend(int(i) for i in idx[0] if i >= 0)
            if seg.bm25 is not None and qterms:
                found, _ = lexical.top_k(seg.bm25, qterms, self.k)
                rows.extend(found.tolist())
            chosen: set[int] = set()
            for r in rows:
                first, last, centre = (int(x) for x in seg.passages[r])
                if live[int(seg.sentences[centre, 0])]:
                    chosen.update(range(first, last + 1))
            if chosen:
                out.append((seg, chosen))
        return out

    # -- features -----------------------------------------------------------------------------

    def _window(self, seg: Segment, row: int) -> tuple[int, int]:
        first, last, _ = seg.passages[row]
        return int(first), int(last)

    def _text(self, seg: Segment, lo: int, hi: int) -> str:
        art = seg.articles[int(seg.sentences[lo, 0])]
        return art.body[int(seg.sentences[lo, 1]):int(seg.sentences[hi, 2])]

    def _late(self, seg: Segment, rows: np.ndarray, lo: np.ndarray, hi: np.ndarray,
              qt: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """MaxSim: each question token's best match in the sentence, and in its window."""
        n = len(rows)
        if not qt.shape[0] or not seg.token_vectors.shape[0]:
            return np.zeros(n, np.float32), np.zeros(n, np.float32)
        span = np.unique(np.concatenate([np.arange(a, b + 1) for a, b in zip(lo, hi, strict=True)]))
        starts = seg.token_offsets[span]
        ends = seg.token_offsets[span + 1]
        lengths = ends - starts
        nonempty = lengths > 0
        span, starts, lengths = span[nonempty], starts[nonempty], lengths[nonempty]
        # Rows of ``per`` follow ``span`` (the sentences in any candidate's window, sorted), so
        # the work is proportional to the candidates, not to the segment; a last row of zeros
        # stands for sentences without tokens.
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

    def _speaker(self, seg: Segment, row: int) -> Speaker | None:
        """Who speaks in a sentence; their rows are the segment's (not the article's)."""
        cache = self._speakers.setdefault(seg.id, {})
        if row not in cache:
            if len(cache) >= CACHE_MAX:
                cache.clear()
            article = int(seg.sentences[row, 0])
            first = int(seg.article_first_sentence[article])
            found = speaker(seg.articles[article].body, self._spans(seg, article), row - first)
            cache[row] = found and Speaker(found.name, first + found.introduced,
                                           tuple(first + j for j in found.rows),
                                           tuple(first + j for j in found.described))
        return cache[row]

    def _spans(self, seg: Segment, article: int) -> list[tuple[int, int]]:
        first = int(seg.article_first_sentence[article])
        last = int(seg.article_first_sentence[article + 1])
        return seg.sentences[first:last, 1:3].tolist()

    def _terms(self, seg: Segment, row: int) -> frozenset[str]:
        key = (seg.id, row)
        found = self._term_cache.get(key)
        if found is None:
            if len(self._term_cache) >= CACHE_MAX:
                self._term_cache.clear()
            found = self._term_cache[key] = seg.sentence_terms(row)  # precomputed at write
        return found

    def _idf(self, term: str) -> float:
        n = max(1, self._n_passages)
        df = self._df_cache.get(term)
        if df is None:
            if len(self._df_cache) >= CACHE_MAX:
                self._df_cache.clear()
            df = self._df_cache[term] = sum(s.term_df.get(term, 0) for s in self.segments)
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

    # -- decisions ----------------------------------------------------------------------------

    def _covered(self, best: _Candidate, unknown: float = 0.0,
                 unknown_name: bool = False) -> bool:
        w = self.weights
        if best.score < w.decline_below or unknown >= w.unknown_above:
            return False
        if unknown_name and best.score < w.confident_unknown_name:
            return False
        return best.score >= w.confident or best.cover > 0

    def _unknown(self, qterms: list[str], idf: dict[str, float]) -> float:
        # Acronym terms are left out: "Putin and Xi" makes a made-up "acr:px".
        plain = [t for t in qterms if not t.startswith("acr:")]
        total = sum(idf[t] for t in plain)
        if not total:
            return 0.0
        return sum(idf[t] for t in plain if not self._is_known(t)) / total

    def _names_unknown(self, question: str) -> bool:
        """Whether the question names (capitalised, past its first word) something that no
        article mentions: "Did Iran supply drones to Russia?" of a dossier without Iran."""
        # Demonyms ("the Australian academic") describe rather than name: they are left out.
        found = _WORDS.findall(question)
        words = [w for w in found[1:]
                 if w[0].isupper() and w != "I" and not w.endswith(("ian", "ean", "ese", "ish"))]
        # Mixed case names a product or brand wherever it stands: "iPhone", "eBay", "YouTube".
        words += [w for w in found if any(c.isupper() for c in w[1:]) and not w.isupper()
                  and not w[1:].isupper()]
        return any((ts := terms(w)) and not any(self._is_known(t) for t in ts) for w in words)

    def _is_known(self, term: str) -> bool:
        # "Australian" is known where "Australia" is, "Singaporean" where "Singapore" is.
        return any(self._mentioned(t) for t in (term, *(term[:k] for k in range(6, len(term)))))

    def _mentioned(self, term: str) -> bool:
        """Whether any passage, title, outlet or author holds the term."""
        return any(term in s.term_df or term in s.metadata_terms() for s in self.segments)

    def _asked_speaker(self, question: str,
                       ranked: list[_Candidate]) -> tuple[_Candidate, Speaker] | None:
        """The speaker a question asks about, if it asks what someone says and describes them
        in words the article uses of them ("according to the Singapore professor" for
        "Michael Raska, assistant professor and Singaporean ..."): the first of the best
        candidates whose speaker fits most of the description, with that speaker."""
        if not _ATTRIBUTED.search(question):
            return None
        content = set(query_terms(strip_attribution(question)))
        about = [t for t in query_terms(question)
                 if t not in content and t.lower() not in _ATTRIBUTION_TERMS]
        idf = {t: self._idf(t) for t in about}
        total = sum(idf.values())
        if not total:
            return None
        for c in ranked[:SPEAKER_TOP]:
            who = self._speaker(c.seg, c.row)
            if who is None:
                continue
            have = {t.lower() for j in who.described for t in self._terms(c.seg, j)}
            # "Singapore" describes "Singaporean": a shared stem of six letters counts.
            fits = sum(idf[t] for t in about if t.lower() in have or (len(t) >= 6
                       and any(h.startswith(t.lower()[:6]) for h in have)))
            if fits / total >= 0.5:
                return c, who
        return None

    def _speaker_remarks(self, question: str, ranked: list[_Candidate]) -> list[_Candidate]:
        """The asked-about speaker's sentences (in the article that quotes them best), best
        first, the best candidate apart.

        They are ranked against what the question asks with the speaker's description left
        out ("What does Moscow need from Beijing"): every one of them matches the description.
        """
        found = self._asked_speaker(question, ranked)
        if found is None:
            return []
        anchor, who = found
        article = self._article(anchor).id
        same = [c for c in ranked[1:] if self._article(c).id == article
                and (sp := self._speaker(c.seg, c.row)) and sp.introduced == who.introduced]
        if not same:
            return []
        qvec, (qt, qt_weights) = self._embed(strip_attribution(question))
        score = np.zeros(len(same), np.float32)
        for seg in {c.seg for c in same}:
            at = [i for i, c in enumerate(same) if c.seg is seg]
            r = np.array([same[i].row for i in at], dtype=np.int64)
            dense = np.asarray(seg.sentence_vectors[r], dtype=np.float32) @ qvec
            late, _ = self._late(seg, r, r, r, qt, qt_weights)
            score[at] = dense + late
        return [same[i] for i in np.argsort(-score, kind="stable")]

    def _quotes(self, ranked: list[_Candidate], remarks: list[_Candidate] | None = None
                ) -> tuple[Evidence, ...]:
        """Up to ``max_quotes`` non-overlapping windows, the best first.

        A near-tie within the best article is shown next (the evidence is split between two
        places); then the best of *other* articles that bear on the question, so readers see
        how different outlets report it; then anything else that scores close.
        """
        w = self.weights
        top = ranked[0].score
        close = [c for c in ranked if c.score >= top - w.quote_margin]
        best_article = self._article(ranked[0]).id
        passes = (
            [ranked[0]],
            [c for c in close if self._article(c).id == best_article
             and c.score >= top - w.tie_margin],
            remarks or [],
            [c for c in close if self._article(c).id != best_article],
            close,
        )
        chosen: list[Evidence] = []
        taken: list[tuple[str, int, int]] = []  # (segment, first row, last row) quoted
        seen_articles: set[str] = set()
        for n, group in enumerate(passes):
            for c in group:
                if len(chosen) >= self.max_quotes:
                    break
                art = self._article(c)
                if n == 3 and art.id in seen_articles:
                    continue  # one quote per other outlet in this pass
                lo, hi = self._window(c.seg, c.row)
                # Sentences already quoted are not repeated: keep the part of the window
                # around its own sentence, or nothing if that sentence is already shown.
                for seg_id, a, b in taken:
                    if seg_id != c.seg.id or b < lo or a > hi:
                        continue
                    if a <= c.row <= b:
                        lo, hi = 1, 0
                        break
                    lo, hi = (b + 1, hi) if a < c.row else (lo, a - 1)
                if lo > hi:
                    continue
                start, end = int(c.seg.sentences[lo, 1]), int(c.seg.sentences[hi, 2])
                chosen.append(Evidence(art, start, end, round(c.score, 4), round(c.cover, 4)))
                taken.append((c.seg.id, lo, hi))
                seen_articles.add(art.id)
                if n in (0, 1, 2):
                    break
        return tuple(chosen)

    def _article(self, c: _Candidate) -> Article:
        return c.seg.articles[int(c.seg.sentences[c.row, 0])]

    def _closest(self, ranked: list[_Candidate]) -> tuple[Article, ...]:
        out: list[Article] = []
        for c in ranked:
            art = c.seg.articles[int(c.seg.sentences[c.row, 0])]
            if art not in out:
                out.append(art)
            if len(out) == 3:
                break
        return tuple(out)
