"""An immutable segment of the index: the articles added by one build, with their vectors.

A generation of the index is a list of segments plus tombstones (articles that were changed
or removed since their segment was written). Segments are never modified after they are
written, so a build only writes what changed, and a reader never sees a half-written file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import bm25s
import faiss
import numpy as np

from index import vectors as vectors_module
from index.load import search_title
from index.model import Article
from index.rows import RowFile
from index.spelling import word_counts
from index.store import CATALOG, ArticleEntry, write_catalog
from index.text import terms

# bm25s sets its own logger to DEBUG on import, which would print on every build.
logging.getLogger("bm25s").setLevel(logging.WARNING)

# Arrays larger than this stay on disk, their rows read per question (``RowFile``); smaller
# ones are read into memory.
ROWFILE_THRESHOLD = 256 << 20  # bytes

# Files of a segment, with what they hold.
ARTICLES = "articles.json"  # metadata and body of each article
SENTENCES = "sentences.npy"  # int64 (n, 4): article row, start, end, block
PASSAGES = "passages.npy"  # int64 (m, 3): first sentence, last sentence, centre sentence
SENT_VECTORS = "sentence_vectors.npy"  # float32 (n, d)
PASSAGE_VECTORS = "passage_vectors.npy"  # float32 (m, d)
TOKEN_IDS = "token_ids.npy"  # int32 (t,): word pieces of every sentence, concatenated
# int8 (t, d) with one float32 scale per vector: a quarter of float32, so the token vectors of
# a million passages (12 GB instead of 24 GB as float16) fit in this class of machine's page cache.
TOKEN_VECTORS = "token_vectors.npy"
TOKEN_SCALES = "token_scales.npy"  # float32 (t,): vector = int8 row * scale
TOKEN_OFFSETS = "token_offsets.npy"  # int64 (n + 1,): sentence i owns tokens [o[i], o[i+1])
PIECE_COUNTS = "piece_counts.npy"  # int64: occurrences of each word piece (a reader sums these)
TERM_COUNTS = "term_df.json"  # document frequency of each stemmed term over passages
TERM_VOCAB = "terms.json"  # list of the segment's stemmed terms; ids below index it
SENT_TERMS = "sentence_terms.npy"  # int32: distinct term ids of every sentence, concatenated
SENT_TERM_OFFSETS = "sentence_term_offsets.npy"  # int64 (n + 1,), like TOKEN_OFFSETS
# Lower-cased words of the articles with their counts: the speller's vocabulary. Optional: a
# segment written before it existed has its words counted from the bodies when it loads.
WORDS = "words.json"
FAISS_FILE = "passages.faiss"
BM25_DIR = "bm25"
# Byte size and SHA-256 of every file above: a truncated file is seen from its size, a file
# damaged in place (same size) from its checksum.
SIZES = "sizes.json"
ARRAYS = (SENTENCES, PASSAGES, SENT_VECTORS, PASSAGE_VECTORS, TOKEN_IDS, TOKEN_VECTORS,
          TOKEN_SCALES, TOKEN_OFFSETS, PIECE_COUNTS, SENT_TERMS, SENT_TERM_OFFSETS)
REQUIRED = (ARTICLES, *ARRAYS, TERM_COUNTS, TERM_VOCAB, CATALOG, FAISS_FILE)


class SegmentError(RuntimeError):
    """A segment on disk is missing, truncated or unreadable."""


@dataclass
class SegmentData:
    """Everything a build computes for a set of articles, before it is written."""

    articles: list[Article]
    sentences: np.ndarray
    passages: np.ndarray
    sentence_vectors: np.ndarray
    passage_vectors: np.ndarray
    token_ids: np.ndarray
    token_vectors: np.ndarray  # float (quantised when written), or int8 with token_scales
    token_offsets: np.ndarray
    token_scales: np.ndarray | None = None
    # corpus file (size, stamp: see index.diff.stamp) by article id, as hashed: lets the next
    # build skip re-reading
    stats: dict[str, tuple[int, int]] = field(default_factory=dict)


class Segment:
    """A loaded, read-only segment."""

    def __init__(self, path: Path, data: SegmentData, vector_index: faiss.Index,
                 bm25: bm25s.BM25 | None, term_df: dict[str, int], *,
                 piece_counts: np.ndarray, term_vocab: list[str],
                 sentence_terms: tuple[np.ndarray, np.ndarray],
                 words: dict[str, int] | None = None) -> None:
        self.path = path
        self.id = path.name
        self.articles = data.articles
        self.sentences = data.sentences
        self.passages = data.passages
        self.sentence_vectors = data.sentence_vectors
        self.passage_vectors = data.passage_vectors
        self.token_ids = data.token_ids
        self.token_vectors = data.token_vectors
        self.token_scales = data.token_scales  # None when token_vectors are float already
        self.token_offsets = data.token_offsets
        self.vector_index = vector_index
        self.bm25 = bm25
        self.term_df = term_df
        self.piece_counts = piece_counts
        self.term_vocab = term_vocab
        self._sent_terms = sentence_terms
        self.article_row = {a.id: i for i, a in enumerate(self.articles)}
        self._passages_per_article: np.ndarray | None = None
        self._article_first: np.ndarray | None = None
        self._metadata_terms: frozenset[str] | None = None
        self._article_terms: list[frozenset[str]] | None = None
        self._words = words

    # Named columns of ``sentences`` and ``passages`` (views, no copies).
    @property
    def sentence_article(self) -> np.ndarray:
        """Article row (into ``articles``) of each sentence."""
        return self.sentences[:, 0]

    @property
    def sentence_start(self) -> np.ndarray:
        return self.sentences[:, 1]

    @property
    def sentence_end(self) -> np.ndarray:
        return self.sentences[:, 2]

    @property
    def sentence_block(self) -> np.ndarray:
        """Paragraph run of each sentence: sentences of different blocks are never joined."""
        return self.sentences[:, 3]

    @property
    def passage_first(self) -> np.ndarray:
        return self.passages[:, 0]

    @property
    def passage_last(self) -> np.ndarray:
        return self.passages[:, 1]

    @property
    def passage_centre(self) -> np.ndarray:
        return self.passages[:, 2]

    def article_of(self, row: int) -> Article:
        """The article of sentence ``row``."""
        return self.articles[int(self.sentences[row, 0])]

    @property
    def article_first_sentence(self) -> np.ndarray:
        """Row of each article's first sentence, and the total at the end (rows are grouped
        by article, in article order)."""
        if self._article_first is None:
            counts = per_article(self.sentences, self.passages, len(self.articles))[0]
            self._article_first = np.concatenate([[0], np.cumsum(counts)])
        return self._article_first

    def article_terms(self, i: int) -> frozenset[str]:
        """Terms of article ``i``'s title, outlet and author."""
        return self._article_metadata()[i]

    def metadata_terms(self) -> frozenset[str]:
        """Terms of all the articles' titles, outlets and authors."""
        if self._metadata_terms is None:
            self._metadata_terms = frozenset().union(*self._article_metadata())
        return self._metadata_terms

    def _article_metadata(self) -> list[frozenset[str]]:
        if self._article_terms is None:  # once per segment: it is immutable
            self._article_terms = [
                frozenset(terms(" ".join(x for x in (search_title(a), a.outlet, a.author)
                                         if x)))
                for a in self.articles]
        return self._article_terms

    @property
    def words(self) -> dict[str, int]:
        """Lower-cased words of all the segment's articles with their counts."""
        if self._words is None:
            self._words = dict(article_words(self.articles))
        return self._words

    def on_disk(self) -> list[RowFile]:
        """The arrays left on disk and read per question, most read first."""
        arrays = (self.token_vectors, self.token_scales, self.passage_vectors,
                  self.sentence_vectors, self.token_ids)
        return [a for a in arrays if isinstance(a, RowFile)]

    @property
    def n_passages(self) -> int:
        return int(self.passages.shape[0])

    @property
    def passages_per_article(self) -> np.ndarray:
        if self._passages_per_article is None:
            self._passages_per_article = per_article(self.sentences, self.passages,
                                                     len(self.articles))[1]
        return self._passages_per_article

    def passage_text(self, row: int) -> str:
        first, last, _ = self.passages[row]
        art = self.articles[int(self.sentences[first, 0])]
        return art.body[int(self.sentences[first, 1]):int(self.sentences[last, 2])]

    def passage_article(self, row: int) -> Article:
        return self.articles[int(self.sentences[int(self.passages[row, 0]), 0])]

    def sentence_text(self, row: int) -> str:
        art = self.articles[int(self.sentences[row, 0])]
        return art.body[int(self.sentences[row, 1]):int(self.sentences[row, 2])]

    def sentence_terms(self, row: int) -> frozenset[str]:
        """``terms()`` of a sentence, computed when the segment was written."""
        ids, offsets = self._sent_terms
        vocab = self.term_vocab
        return frozenset(vocab[i] for i in ids[offsets[row]:offsets[row + 1]].tolist())

    def token_matrix(self, rows: np.ndarray) -> np.ndarray:
        """Token vectors at ``rows`` as float32 (de-quantised when stored as int8)."""
        out = np.asarray(self.token_vectors[rows], dtype=np.float32)
        if self.token_scales is not None:
            out *= np.asarray(self.token_scales[rows], dtype=np.float32)[:, None]
        return out


def article_words(articles: list[Article]) -> Counter[str]:
    """The words of articles (bodies and the metadata a reader may name) with their counts."""
    return word_counts(x for a in articles
                       for x in (a.body, a.title, a.outlet, a.author) if x)


def per_article(sentences: np.ndarray, passages: np.ndarray,
                n_articles: int) -> tuple[np.ndarray, np.ndarray]:
    """Sentences and passages of each article (rows are grouped by article, in order)."""
    owner = sentences[passages[:, 0], 0] if len(passages) else np.zeros(0, int)
    return (np.bincount(sentences[:, 0], minlength=n_articles),
            np.bincount(owner, minlength=n_articles))


def write_segment(path: Path, data: SegmentData) -> None:
    """Write a segment into ``path`` (a fresh folder), fsynced, ready to be referenced."""
    path.mkdir(parents=True, exist_ok=False)
    articles = [
        {**a.meta(), "sha256": a.sha256, "body": a.body} for a in data.articles
    ]
    _write_bytes(path / ARTICLES, json.dumps(articles, ensure_ascii=False).encode())
    for name, array in (
        (SENTENCES, data.sentences), (PASSAGES, data.passages),
        (SENT_VECTORS, data.sentence_vectors), (PASSAGE_VECTORS, data.passage_vectors),
        (TOKEN_IDS, data.token_ids), (TOKEN_OFFSETS, data.token_offsets),
        (PIECE_COUNTS, np.bincount(np.asarray(data.token_ids, dtype=np.int64))),
    ):
        _write_array(path / name, array)
    if data.token_scales is not None:
        _write_array(path / TOKEN_VECTORS, data.token_vectors.astype(np.int8, copy=False))
        _write_array(path / TOKEN_SCALES, data.token_scales.astype(np.float32, copy=False))
    else:
        write_token_vectors(path, _chunks(data.token_vectors), data.token_vectors.shape)
    texts = [_passage_text(data, i) for i in range(data.passages.shape[0])]
    tokenised = [terms(t) for t in texts]
    df = Counter(t for toks in tokenised for t in set(toks))
    _write_bytes(path / TERM_COUNTS, json.dumps(df).encode())
    _write_bytes(path / WORDS, json.dumps(article_words(data.articles),
                                          ensure_ascii=False).encode())
    _write_sentence_terms(path, data)
    # Looked up on the module at call time: bench.scale times it by patching ``index.vectors``.
    faiss.write_index(vectors_module.build_vector_index(data.passage_vectors),
                      str(path / FAISS_FILE))
    if texts:
        bm25 = bm25s.BM25()
        bm25.index(bm25s.tokenization.Tokenized(*_vocab_ids(tokenised)), show_progress=False)
        bm25.save(str(path / BM25_DIR))
    n_sent, n_pass = per_article(data.sentences, data.passages, len(data.articles))
    write_catalog(path, {
        a.id: ArticleEntry(path.name, a.sha256, a.path, int(n_sent[i]), int(n_pass[i]),
                           *data.stats.get(a.id, (-1, -1)))
        for i, a in enumerate(data.articles)})
    record_sizes(path)


def record_sizes(path: Path) -> None:
    """Record every file's size and checksum (written last: a segment without it is
    incomplete)."""
    sizes = {p.relative_to(path).as_posix(): [p.stat().st_size, _sha256(p)]
             for p in sorted(path.rglob("*")) if p.is_file() and p.name != SIZES}
    _write_bytes(path / SIZES, json.dumps(sizes).encode())
    _fsync_dir(path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def quantise(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 rows and one scale per row (max |x| maps to 127; error under 0.4% of the max)."""
    v = np.asarray(vectors, dtype=np.float32)
    scale = np.abs(v).max(axis=1) / 127.0 if v.size else np.zeros(len(v), np.float32)
    safe = np.where(scale > 0, scale, 1.0).astype(np.float32)
    q = np.rint(v / safe[:, None]).astype(np.int8)
    return q, scale.astype(np.float32)


def write_token_vectors(path: Path, chunks, shape: tuple[int, int]) -> None:
    """Stream float token vectors (an iterable of row blocks, ``shape`` in all) to disk as
    int8 + scales, one block at a time: a build's memory then follows its block, not its size."""
    total, dim = shape
    header = {"fortran_order": False}
    with (path / TOKEN_VECTORS).open("wb") as vf, (path / TOKEN_SCALES).open("wb") as sf:
        np.lib.format.write_array_header_1_0(
            vf, {**header, "descr": np.lib.format.dtype_to_descr(np.dtype(np.int8)),
                 "shape": (total, dim)})
        np.lib.format.write_array_header_1_0(
            sf, {**header, "descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)),
                 "shape": (total,)})
        written = 0
        for block in chunks:
            q, scale = quantise(block)
            vf.write(q.tobytes())
            sf.write(scale.tobytes())
            written += len(q)
        if written != total:
            raise ValueError(f"token vectors: {written} rows written, {total} expected")
        for fh in (vf, sf):
            fh.flush()
            os.fsync(fh.fileno())


def _chunks(array: np.ndarray, rows: int = 65536):
    for i in range(0, len(array), rows):
        yield array[i:i + rows]


def _write_sentence_terms(path: Path, data: SegmentData) -> None:
    """Each sentence's distinct terms, so a question does not re-run ``terms()`` over the
    text of every candidate sentence."""
    vocab: dict[str, int] = {}
    ids: list[int] = []
    offsets = np.zeros(len(data.sentences) + 1, dtype=np.int64)
    for i, (row, start, end, _) in enumerate(data.sentences.tolist()):
        body = data.articles[row].body
        for t in dict.fromkeys(terms(body[start:end])):
            ids.append(vocab.setdefault(t, len(vocab)))
        offsets[i + 1] = len(ids)
    _write_bytes(path / TERM_VOCAB, json.dumps(list(vocab), ensure_ascii=False).encode())
    _write_array(path / SENT_TERMS, np.asarray(ids, dtype=np.int32))
    _write_array(path / SENT_TERM_OFFSETS, offsets)


def _write_array(path: Path, array: np.ndarray) -> None:
    with path.open("wb") as fh:
        np.save(fh, np.ascontiguousarray(array))
        fh.flush()
        os.fsync(fh.fileno())


def read_articles(path: Path) -> list[Article]:
    """The articles a segment holds, bodies included."""
    raw = json.loads((path / ARTICLES).read_text(encoding="utf-8"))
    return [Article(id=r["id"], path=r["path"], body=r["body"], sha256=r["sha256"],
                    title=r.get("title"), outlet=r.get("outlet"), author=r.get("author"),
                    published=r.get("published"), url=r.get("url")) for r in raw]


def _check_sizes(path: Path, checksum_below: int | None = None) -> None:
    """Every required file present, every file at its recorded size and, when it is no larger
    than ``checksum_below`` bytes (None: every file), with its recorded checksum; else
    SegmentError naming the file."""
    try:
        sizes = json.loads((path / SIZES).read_text())
    except (UnicodeDecodeError, ValueError):
        raise SegmentError(f"{path.name}/{SIZES} is damaged") from None
    if not isinstance(sizes, dict):
        raise SegmentError(f"{path.name}/{SIZES} is damaged")
    for name in REQUIRED:
        if name not in sizes:
            raise SegmentError(f"{path.name}/{name} is missing")
    for name, recorded in sizes.items():
        size, digest = (recorded, None) if isinstance(recorded, int) else recorded
        actual = (path / name).stat().st_size
        if actual != size:
            raise SegmentError(f"{path.name}/{name} is {actual} bytes, expected {size}")
        if digest is not None and (checksum_below is None or size <= checksum_below) \
                and _sha256(path / name) != digest:
            raise SegmentError(f"{path.name}/{name} is damaged (its checksum does not match)")


def load_segment(path: Path) -> Segment:
    try:
        # Files read into memory are checked against their checksums as they load; the large
        # ones left on disk by size (hashing gigabytes would hold up every start).
        _check_sizes(path, checksum_below=ROWFILE_THRESHOLD)
        articles = read_articles(path)

        def arr(name: str) -> np.ndarray:
            # Small arrays are read into memory (gathering rows from a file costs more than
            # the search itself); large ones stay on disk, rows read per question (RowFile).
            if (path / name).stat().st_size > ROWFILE_THRESHOLD:
                return RowFile(path / name)  # type: ignore[return-value]
            return np.load(path / name, allow_pickle=False)

        tokens, scales = arr(TOKEN_VECTORS), arr(TOKEN_SCALES)
        if not isinstance(tokens, RowFile):
            # Small segments keep float32 in memory: no conversion per question.
            tokens, scales = tokens.astype(np.float32) * np.asarray(scales)[:, None], None
        data = SegmentData(articles, np.asarray(arr(SENTENCES)), np.asarray(arr(PASSAGES)),
                           arr(SENT_VECTORS), arr(PASSAGE_VECTORS), arr(TOKEN_IDS),
                           tokens, np.asarray(arr(TOKEN_OFFSETS)), scales)
        vector_index = vectors_module.configure_search(faiss.read_index(str(path / FAISS_FILE)))
        bm25 = None
        if (path / BM25_DIR).is_dir():
            bm25 = bm25s.BM25.load(str(path / BM25_DIR), mmap=False, load_vocab=True)
        term_df = json.loads((path / TERM_COUNTS).read_text())
        vocab = json.loads((path / TERM_VOCAB).read_text(encoding="utf-8"))
        sent_terms = (np.asarray(arr(SENT_TERMS)), np.asarray(arr(SENT_TERM_OFFSETS)))
        piece_counts = np.asarray(arr(PIECE_COUNTS))
        words = (json.loads((path / WORDS).read_text(encoding="utf-8"))
                 if (path / WORDS).is_file() else None)
        if words is not None and not isinstance(words, dict):
            raise ValueError(f"{WORDS} is not an object")
    except SegmentError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise SegmentError(f"segment {path.name} cannot be read ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    n = data.sentences.shape[0]
    t = data.token_ids.shape[0]
    if (data.sentence_vectors.shape[0] != n or data.token_offsets.shape[0] != n + 1
            or data.passage_vectors.shape[0] != data.passages.shape[0]
            or vector_index.ntotal != data.passages.shape[0]
            or data.token_vectors.shape[0] != t or sent_terms[1].shape[0] != n + 1
            or (data.token_scales is not None and data.token_scales.shape[0] != t)):
        raise SegmentError(f"segment {path.name} is inconsistent (array sizes disagree)")
    return Segment(path, data, vector_index, bm25, term_df, piece_counts=piece_counts,
                   term_vocab=vocab, sentence_terms=sent_terms, words=words)


def segment_intact(path: Path) -> bool:
    """Whether a segment can be reused by a build: every file present, at its recorded size
    and checksum (a file damaged in place is re-embedded, not served), JSON files framed as
    JSON, array headers readable. Reading the segment costs about 1 s per GB of index."""
    try:
        _check_sizes(path)
        for name in (ARTICLES, TERM_COUNTS, TERM_VOCAB, CATALOG):
            with (path / name).open("rb") as fh:
                head = fh.read(1)
                fh.seek(-1, os.SEEK_END)
                tail = fh.read(1)
            if (head, tail) not in ((b"[", b"]"), (b"{", b"}")):
                return False
        for name in ARRAYS:
            np.load(path / name, mmap_mode="r", allow_pickle=False)
        with (path / FAISS_FILE).open("rb") as fh:
            fourcc = fh.read(4)  # FAISS files start with the index type's four letters
        if len(fourcc) != 4 or not fourcc.isalnum():
            return False
    except (SegmentError, OSError, ValueError, TypeError, KeyError):
        return False
    return True


def damaged_segments(segments_dir: Path, ids: Iterable[str]) -> list[str]:
    """The segments of ``ids`` that are not intact (``segment_intact``): what `index
    status`, the container's start check and the loader all call a damaged index."""
    return [seg_id for seg_id in ids if not segment_intact(segments_dir / seg_id)]


def _vocab_ids(tokenised: list[list[str]]) -> tuple[list[list[int]], dict[str, int]]:
    vocab: dict[str, int] = {"": 0}
    ids = [[vocab.setdefault(t, len(vocab)) for t in toks] for toks in tokenised]
    return ids, vocab


def _passage_text(data: SegmentData, row: int) -> str:
    first, last, _ = data.passages[row]
    art = data.articles[int(data.sentences[first, 0])]
    return art.body[int(data.sentences[first, 1]):int(data.sentences[last, 2])]


def _write_bytes(path: Path, data: bytes) -> None:
    with path.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
