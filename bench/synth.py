"""Synthetic dossiers for the scale benchmark, made from the real articles' sentences.

Every synthetic article is a shuffled recombination of real sentences of ``corpus/``
(drawn without replacement within an article, grouped into paragraphs of 1-4 sentences),
with front matter like the real files. The text is therefore news-like and its lexical
statistics are those of one story, which is the hard case for BM25: the question's words
("China", "Russia", "aid") occur in a large share of all passages.

Vectors: embedding a million passages with MiniLM on two cores takes hours, so
``PoolEmbedder`` embeds each distinct real sentence once with the real model and reuses
that (exact) vector and its token vectors wherever the sentence recurs; a passage (a window
of consecutive sentences) gets the normalised sum of its sentences' vectors. Those vectors
keep the structure of real embeddings (clusters, topical neighbours), which matters for
measuring ANN recall, where random unit vectors would be an unrealistically hard case.
Embedding throughput of the real model is measured separately (bench.embed).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np

from index.chunk import ChunkParams, make_passages, split_sentences
from index.embed import TokenVectors
from index.load import load_corpus
from index.model import Article, Sentence
from index.segment import SegmentData

OUTLETS = ("Impakter", "SOFREP", "US News", "The Wire Desk", "Global Affairs Daily",
           "Policy Review", "Eastern Europe Monitor", "Asia Times Digest")
AUTHORS = ("Claude Forthomme", "Jane Doe", "Alex Chen", "Maria Rossi", "Tom Becker",
           "Priya Nair", None)


@dataclass(frozen=True)
class Pool:
    """Distinct real sentences of a corpus (the raw material of every synthetic article)."""

    sentences: tuple[str, ...]
    words: np.ndarray  # words per sentence (for the passage word limit)
    digest: str  # identifies the pool, to cache its vectors

    @classmethod
    def from_corpus(cls, corpus_dir: Path) -> Pool:
        seen: dict[str, None] = {}
        for article in load_corpus(corpus_dir).articles:
            for s in split_sentences(article):
                text = article.body[s.start:s.end]
                if _stable(text):
                    seen.setdefault(text)
        sentences = tuple(seen)
        digest = hashlib.sha256("\x00".join(sentences).encode()).hexdigest()[:16]
        words = np.array([len(s.split()) for s in sentences], dtype=np.int32)
        return cls(sentences, words, digest)


def _stable(text: str) -> bool:
    """A sentence the splitter keeps whole wherever it is put: one line, a capital or a
    digit first, a full stop last, and split alone into itself."""
    from index.chunk import _split_span

    if "\n" in text or len(text.split()) < 3 or not _STARTS.match(text) or not _ENDS.search(text):
        return False
    return _split_span(text, 0, len(text)) == [(0, len(text))]


_STARTS = re.compile(r"[A-Z0-9“\"‘']")
_ENDS = re.compile(r"[.!?][”\"’')]?$")


@dataclass(frozen=True)
class PoolVectors:
    """The real model's output for every pool sentence, computed once and cached on disk."""

    vectors: np.ndarray  # float32 (n, d), unit length
    token_ids: list[np.ndarray]
    token_vectors: list[np.ndarray]

    @classmethod
    def load_or_embed(cls, pool: Pool, embedder, cache_dir: Path | None = None) -> PoolVectors:
        key = f"pool-{pool.digest}-{embedder.fingerprint[:12]}.npz"
        path = cache_dir / key if cache_dir else None
        if path is not None and path.is_file():
            with np.load(path) as z:
                offsets = z["offsets"]
                ids, vecs = z["token_ids"], z["token_vectors"]
                return cls(z["vectors"],
                           [ids[a:b] for a, b in pairwise(offsets)],
                           [vecs[a:b] for a, b in pairwise(offsets)])
        vectors, toks = embedder.embed_with_tokens(list(pool.sentences))
        out = cls(vectors, [t.ids for t in toks], [t.vectors for t in toks])
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            offsets = np.concatenate([[0], np.cumsum([len(t) for t in out.token_ids])])
            np.savez(path, vectors=vectors, offsets=offsets,
                     token_ids=np.concatenate(out.token_ids),
                     token_vectors=np.vstack(out.token_vectors))
        return out


@dataclass(frozen=True)
class SynthArticle:
    name: str  # file name in the synthetic corpus
    text: str  # the whole file: front matter and body
    body: str
    sentences: tuple[int, ...]  # pool index of each sentence, in order
    blocks: tuple[int, ...]  # paragraph of each sentence
    starts: tuple[int, ...]  # offset of each sentence in the body


def synth_articles(pool: Pool, n_sentences: int, *, seed: int = 0, mean_len: int = 40,
                   prefix: str = "syn") -> Iterator[SynthArticle]:
    """Articles totalling ``n_sentences`` sentences (one passage per sentence)."""
    rng = np.random.default_rng(seed)
    n_pool = len(pool.sentences)
    made = 0
    i = 0
    while made < n_sentences:
        size = int(min(n_pool, max(5, rng.poisson(mean_len)), n_sentences - made))
        size = max(1, size)
        yield make_article(pool, rng, f"{prefix}{i:07d}", size)
        made += size
        i += 1


def make_article(pool: Pool, rng: np.random.Generator, stem: str, size: int) -> SynthArticle:
    picks = rng.choice(len(pool.sentences), size=size, replace=False)
    parts: list[str] = []
    starts: list[int] = []
    blocks: list[int] = []
    pos = 0
    block = 0
    k = 0
    while k < size:
        para = int(min(size - k, rng.integers(1, 5)))
        for j in range(para):
            if j:
                parts.append(" ")
                pos += 1
            starts.append(pos)
            blocks.append(block)
            s = pool.sentences[int(picks[k + j])]
            parts.append(s)
            pos += len(s)
        k += para
        block += 1
        if k < size:
            parts.append("\n\n")
            pos += 2
    body = "".join(parts) + "\n"
    title = title_of(pool.sentences[int(picks[0])])
    day = int(rng.integers(0, 900))
    published = f"{2022 + day // 365}-{1 + (day % 365) // 31:02d}-{1 + day % 28:02d}"
    outlet = OUTLETS[int(rng.integers(len(OUTLETS)))]
    author = AUTHORS[int(rng.integers(len(AUTHORS)))]
    front = {"title": title, "outlet": outlet, "author": author, "published": published,
             "url": f"https://example.org/{stem}"}
    head = "---\n" + "".join(f"{k}: {json.dumps(v) if v is not None else ''}\n"
                             for k, v in front.items()) + "---\n"
    return SynthArticle(f"{stem}.md", head + body, body, tuple(int(p) for p in picks),
                        tuple(blocks), tuple(starts))


def title_of(sentence: str) -> str:
    """A synthetic article's title: the first words of its first sentence."""
    words = sentence.split()
    return " ".join(words[: min(9, len(words))]).rstrip(",.;:")


def write_corpus(corpus_dir: Path, articles: list[SynthArticle]) -> None:
    corpus_dir.mkdir(parents=True, exist_ok=True)
    for a in articles:
        (corpus_dir / a.name).write_text(a.text, encoding="utf-8")


def article_record(a: SynthArticle) -> Article:
    """The Article that ``index.load`` makes of this file (checked by the tests)."""
    data = a.text.encode("utf-8")
    meta = {}
    for line in a.text.split("---\n", 2)[1].splitlines():
        key, _, value = line.partition(": ")
        meta[key] = json.loads(value) if value else None
    return Article(id=a.name.rsplit(".", 1)[0], path=a.name, body=a.body,
                   sha256=hashlib.sha256(data).hexdigest(), title=meta["title"],
                   outlet=meta["outlet"], author=meta["author"], published=meta["published"],
                   url=meta["url"])


def segment_data(pool: Pool, pv: PoolVectors, articles: list[SynthArticle],
                 params: ChunkParams | None = None, *,
                 token_vectors: bool = True) -> SegmentData:
    """The arrays a build would compute for these articles, without sentence splitting or
    embedding: sentences are known (pool sentences), vectors come from the pool.

    ``token_vectors=False`` leaves the token-vector array empty (it is written separately,
    streamed, by ``stream_token_vectors``: at a million passages it exceeds this machine's
    memory).
    """
    params = params or ChunkParams()
    sent_rows: list[tuple[int, int, int, int]] = []
    pool_idx: list[int] = []
    pass_rows: list[tuple[int, int, int]] = []
    records: list[Article] = []
    for row, a in enumerate(articles):
        art = article_record(a)
        records.append(art)
        base = len(sent_rows)
        sents = []
        for p, start, block in zip(a.sentences, a.starts, a.blocks, strict=True):
            end = start + len(pool.sentences[p])
            sent_rows.append((row, start, end, block))
            pool_idx.append(p)
            sents.append(Sentence(art.id, start, end, block))
        for p in make_passages(art, sents, params):
            first = base + p.first_sentence
            pass_rows.append((first, first + p.n_sentences - 1, base + p.centre_sentence))
    sentences = np.asarray(sent_rows, dtype=np.int64).reshape(-1, 4)
    passages = np.asarray(pass_rows, dtype=np.int64).reshape(-1, 3)
    idx = np.asarray(pool_idx, dtype=np.int64)
    sent_vecs = pv.vectors[idx]
    title_rows = np.repeat([a.sentences[0] for a in articles], [len(a.sentences) for a in articles])
    pass_vecs = passage_vectors(sent_vecs, _embedded_spans(sentences, passages),
                                pv.vectors[title_rows])
    lengths = np.array([len(t) for t in pv.token_ids], dtype=np.int64)[idx]
    offsets = np.zeros(len(idx) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    token_ids = np.concatenate([pv.token_ids[i] for i in idx]) if len(idx) else np.zeros(
        0, np.int32)
    dim = pv.vectors.shape[1]
    tok_vecs = (np.vstack([pv.token_vectors[i] for i in idx]) if token_vectors and len(idx)
                else np.zeros((0, dim), np.float16))
    return SegmentData(records, sentences, passages, sent_vecs, pass_vecs,
                       token_ids.astype(np.int32), tok_vecs.astype(np.float16), offsets)


def _embedded_spans(sentences: np.ndarray, passages: np.ndarray, reach: int = 2) -> np.ndarray:
    """(first, last) sentence of the text embedded for each passage, as
    ``index.chunk.embedding_text`` picks it: the centre sentence and up to ``reach``
    sentences before it in the same block (the title is added separately)."""
    centre = passages[:, 2]
    lo = centre.copy()
    for _ in range(reach):
        prev = np.maximum(lo - 1, 0)
        same = (lo > 0) & (sentences[prev, 0] == sentences[centre, 0]) & (
            sentences[prev, 3] == sentences[centre, 3])
        lo = np.where(same, prev, lo)
    return np.column_stack([lo, centre])


def passage_vectors(sent_vecs: np.ndarray, spans: np.ndarray,
                    title_vecs: np.ndarray | None = None) -> np.ndarray:
    """Normalised sum of the vectors of each span's sentences (and of its article's title,
    approximated by its first sentence): a stand-in for embedding the passage text."""
    csum = np.zeros((len(sent_vecs) + 1, sent_vecs.shape[1]), dtype=np.float32)
    np.cumsum(sent_vecs, axis=0, out=csum[1:])
    out = csum[spans[:, 1] + 1] - csum[spans[:, 0]]
    if title_vecs is not None:
        out += title_vecs
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out.astype(np.float32)


def stream_token_vectors(segment_dir: Path, pool_idx: np.ndarray, pv: PoolVectors,
                         chunk: int = 20_000) -> None:
    """Write the segment's token vectors chunk by chunk (as ``index.segment`` stores them:
    int8 + scales) and record the new file sizes."""
    from index.segment import record_sizes, write_token_vectors

    lengths = np.array([len(t) for t in pv.token_ids], dtype=np.int64)
    total = int(lengths[pool_idx].sum())
    dim = pv.vectors.shape[1]
    # Plain writes, not a memmap: a memmap's written pages would count as this process's RSS.
    blocks = (np.vstack([pv.token_vectors[p] for p in pool_idx[i:i + chunk]])
              for i in range(0, len(pool_idx), chunk))
    write_token_vectors(segment_dir, blocks, (total, dim))
    record_sizes(segment_dir)


class PoolEmbedder:
    """An Embedder for synthetic dossiers: real vectors for pool sentences, summed vectors for
    windows of them, and the real model for any other text (counted in ``misses``).

    It reports the real model's name and fingerprint, so an index built with it is reused by
    a later build with the real model (which then embeds only the added articles).
    """

    def __init__(self, real, pool: Pool, pv: PoolVectors) -> None:
        self.real = real
        self.name = real.name
        self.fingerprint = real.fingerprint
        self.dimension = real.dimension
        self._model = getattr(real, "_model", None)
        self.pv = pv
        self._sentences = pool.sentences
        self._index = {s: i for i, s in enumerate(pool.sentences)}
        self._titles = {title_of(s): i for i, s in enumerate(pool.sentences)}
        self._by_prefix: dict[str, list[int]] = {}
        for i, s in enumerate(pool.sentences):
            self._by_prefix.setdefault(s[:16], []).append(i)
        self.misses = 0
        self.hits = 0

    def _split(self, text: str) -> list[int] | None:
        """Pool sentences that make up ``text`` (separated by whitespace), or None; a leading
        "Title. " (as ``embedding_text`` writes it) counts as the sentence it was cut from."""
        parts = self._split_from(text, 0)
        cut = text.find(". ")
        while parts is None and 0 < cut < 200:
            title = self._titles.get(text[:cut])
            rest = self._split_from(text, cut + 2) if title is not None else None
            if rest:
                parts = [title, *rest]
            cut = text.find(". ", cut + 1)
        return parts

    def _split_from(self, text: str, pos: int) -> list[int] | None:
        out: list[int] = []
        n = len(text)
        while pos < n:
            while pos < n and text[pos].isspace():
                pos += 1
            if pos >= n:
                break
            found = [i for i in self._by_prefix.get(text[pos:pos + 16], ())
                     if text.startswith(self._sentences[i], pos)]
            if not found:
                return None
            best = max(found, key=lambda i: len(self._sentences[i]))
            out.append(best)
            pos += len(self._sentences[best])
        return out or None

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), np.float32)
        todo: list[int] = []
        for k, text in enumerate(texts):
            parts = self._split(text)
            if parts is None:
                todo.append(k)
                continue
            v = self.pv.vectors[parts].sum(axis=0)
            out[k] = v / max(float(np.linalg.norm(v)), 1e-12)
        self.hits += len(texts) - len(todo)
        if todo:
            self.misses += len(todo)
            out[todo] = self.real.embed_batch([texts[k] for k in todo])
        return out

    def embed_with_tokens(self, texts: list[str]) -> tuple[np.ndarray, list[TokenVectors]]:
        vecs = np.zeros((len(texts), self.dimension), np.float32)
        toks: list[TokenVectors | None] = [None] * len(texts)
        todo: list[int] = []
        for k, text in enumerate(texts):
            i = self._index.get(text)
            parts = [i] if i is not None else self._split(text)
            if parts is None:
                todo.append(k)
                continue
            v = self.pv.vectors[parts].sum(axis=0)
            vecs[k] = v / max(float(np.linalg.norm(v)), 1e-12)
            if len(parts) == 1:
                toks[k] = TokenVectors(self.pv.token_ids[parts[0]],
                                       self.pv.token_vectors[parts[0]])
            else:  # sentences the splitter merged: their word pieces, in order
                toks[k] = TokenVectors(np.concatenate([self.pv.token_ids[p] for p in parts]),
                                       np.vstack([self.pv.token_vectors[p] for p in parts]))
        self.hits += len(texts) - len(todo)
        if todo:
            self.misses += len(todo)
            v, t = self.real.embed_with_tokens([texts[k] for k in todo])
            for j, k in enumerate(todo):
                vecs[k] = v[j]
                toks[k] = t[j]
        return vecs, toks  # type: ignore[return-value]
