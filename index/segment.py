"""An immutable segment of the index: the articles added by one build, with their vectors.

A generation of the index is a list of segments plus tombstones (articles that were changed
or removed since their segment was written). Segments are never modified after they are
written, so a build only writes what changed, and a reader never sees a half-written file.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import bm25s
import faiss
import numpy as np

from index import vectors as vectors_module
from index.model import Article
from index.text import terms

# bm25s sets its own logger to DEBUG on import, which would print on every build.
logging.getLogger("bm25s").setLevel(logging.WARNING)

MMAP_THRESHOLD = 256 << 20  # bytes

# Files of a segment, with what they hold. Arrays are loaded memory-mapped.
ARTICLES = "articles.json"  # metadata and body of each article
SENTENCES = "sentences.npy"  # int64 (n, 4): article row, start, end, block
PASSAGES = "passages.npy"  # int64 (m, 3): first sentence, last sentence, centre sentence
SENT_VECTORS = "sentence_vectors.npy"  # float32 (n, d)
PASSAGE_VECTORS = "passage_vectors.npy"  # float32 (m, d)
TOKEN_IDS = "token_ids.npy"  # int32 (t,): word pieces of every sentence, concatenated
TOKEN_VECTORS = "token_vectors.npy"  # float16 (t, d)
TOKEN_OFFSETS = "token_offsets.npy"  # int64 (n + 1,): sentence i owns tokens [o[i], o[i+1])
TERM_COUNTS = "term_df.json"  # document frequency of each stemmed term over passages
FAISS_FILE = "passages.faiss"
BM25_DIR = "bm25"
SIZES = "sizes.json"  # byte size of every file above, to detect truncation cheaply


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
    token_vectors: np.ndarray
    token_offsets: np.ndarray


class Segment:
    """A loaded, read-only segment."""

    def __init__(self, path: Path, data: SegmentData, vector_index: faiss.Index,
                 bm25: bm25s.BM25 | None, term_df: dict[str, int]) -> None:
        self.path = path
        self.id = path.name
        self.articles = data.articles
        self.sentences = data.sentences
        self.passages = data.passages
        self.sentence_vectors = data.sentence_vectors
        self.passage_vectors = data.passage_vectors
        self.token_ids = data.token_ids
        self.token_vectors = data.token_vectors
        self.token_offsets = data.token_offsets
        self.vector_index = vector_index
        self.bm25 = bm25
        self.term_df = term_df
        self.article_row = {a.id: i for i, a in enumerate(self.articles)}

    @property
    def n_passages(self) -> int:
        return int(self.passages.shape[0])

    def passage_text(self, row: int) -> str:
        first, last, _ = self.passages[row]
        art = self.articles[int(self.sentences[first, 0])]
        return art.body[int(self.sentences[first, 1]):int(self.sentences[last, 2])]

    def passage_article(self, row: int) -> Article:
        return self.articles[int(self.sentences[int(self.passages[row, 0]), 0])]


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
        (TOKEN_IDS, data.token_ids), (TOKEN_VECTORS, data.token_vectors.astype(np.float16)),
        (TOKEN_OFFSETS, data.token_offsets),
    ):
        with (path / name).open("wb") as fh:
            np.save(fh, np.ascontiguousarray(array))
            fh.flush()
            os.fsync(fh.fileno())
    texts = [_passage_text(data, i) for i in range(data.passages.shape[0])]
    tokenised = [terms(t) for t in texts]
    df = Counter(t for toks in tokenised for t in set(toks))
    _write_bytes(path / TERM_COUNTS, json.dumps(df).encode())
    faiss.write_index(build_vector_index(data.passage_vectors), str(path / FAISS_FILE))
    if texts:
        bm25 = bm25s.BM25()
        bm25.index(bm25s.tokenization.Tokenized(*_vocab_ids(tokenised)), show_progress=False)
        bm25.save(str(path / BM25_DIR))
    sizes = {p.name: p.stat().st_size for p in path.iterdir() if p.is_file()}
    _write_bytes(path / SIZES, json.dumps(sizes).encode())
    _fsync_dir(path)


def load_segment(path: Path) -> Segment:
    try:
        sizes = json.loads((path / SIZES).read_text())
        for name, size in sizes.items():
            actual = (path / name).stat().st_size
            if actual != size:
                raise SegmentError(f"{path.name}/{name} is {actual} bytes, expected {size}")
        raw = json.loads((path / ARTICLES).read_text(encoding="utf-8"))
        articles = [
            Article(id=r["id"], path=r["path"], body=r["body"], sha256=r["sha256"],
                    title=r.get("title"), outlet=r.get("outlet"), author=r.get("author"),
                    published=r.get("published"), url=r.get("url"))
            for r in raw
        ]

        def arr(name: str) -> np.ndarray:
            # Small arrays are read into memory (gathering rows from a memory map costs more
            # than the search itself); large ones stay mapped so memory follows use.
            mapped = (path / name).stat().st_size > MMAP_THRESHOLD
            return np.load(path / name, mmap_mode="r" if mapped else None, allow_pickle=False)

        data = SegmentData(articles, np.asarray(arr(SENTENCES)), np.asarray(arr(PASSAGES)),
                           arr(SENT_VECTORS), arr(PASSAGE_VECTORS), arr(TOKEN_IDS),
                           _as_float32_in_memory(arr(TOKEN_VECTORS)),
                           np.asarray(arr(TOKEN_OFFSETS)))
        vector_index = vectors_module.configure_search(faiss.read_index(str(path / FAISS_FILE)))
        bm25 = None
        if (path / BM25_DIR).is_dir():
            bm25 = bm25s.BM25.load(str(path / BM25_DIR), mmap=False, load_vocab=True)
        term_df = json.loads((path / TERM_COUNTS).read_text())
    except SegmentError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise SegmentError(f"segment {path.name} cannot be read ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    n = data.sentences.shape[0]
    if (data.sentence_vectors.shape[0] != n or data.token_offsets.shape[0] != n + 1
            or data.passage_vectors.shape[0] != data.passages.shape[0]
            or vector_index.ntotal != data.passages.shape[0]):
        raise SegmentError(f"segment {path.name} is inconsistent (array sizes disagree)")
    return Segment(path, data, vector_index, bm25, term_df)


def _as_float32_in_memory(array: np.ndarray) -> np.ndarray:
    """Token vectors are stored as float16 to halve the disk; in memory, small segments keep
    them as float32 so that scoring does not convert them again for every question."""
    return array if isinstance(array, np.memmap) else array.astype(np.float32)


def segment_intact(path: Path) -> bool:
    """A cheap check that a segment can be reused by a build: every file present at its
    recorded size, JSON files framed as JSON, array headers readable. (Cheap so that adding
    one article does not cost a read of the whole index.)"""
    try:
        sizes = json.loads((path / SIZES).read_text())
        for name, size in sizes.items():
            if (path / name).stat().st_size != size:
                return False
        for name in (ARTICLES, TERM_COUNTS):
            with (path / name).open("rb") as fh:
                head = fh.read(1)
                fh.seek(-1, os.SEEK_END)
                tail = fh.read(1)
            if (head, tail) not in ((b"[", b"]"), (b"{", b"}")):
                return False
        for name in (SENTENCES, PASSAGES, SENT_VECTORS, PASSAGE_VECTORS, TOKEN_IDS,
                     TOKEN_VECTORS, TOKEN_OFFSETS):
            np.load(path / name, mmap_mode="r", allow_pickle=False)
        with (path / FAISS_FILE).open("rb") as fh:
            fourcc = fh.read(4)  # FAISS files start with the index type's four letters
        if len(fourcc) != 4 or not fourcc.isalnum():
            return False
    except (OSError, ValueError, TypeError, KeyError):
        return False
    return True


def build_vector_index(vectors: np.ndarray) -> faiss.Index:
    """Inner product on unit vectors = cosine similarity: exact while small, IVF above
    ``index.vectors.EXACT_MAX`` passages (see index.vectors)."""
    return vectors_module.build_vector_index(vectors)


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
