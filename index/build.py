"""Incremental, atomic index builds: embed only what changed, switch generations atomically."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from index.chunk import ChunkParams, embedding_text, make_passages, split_sentences
from index.clean import CLEANING_VERSION
from index.embed import Embedder
from index.load import corpus_files, file_sha256, load_corpus
from index.model import Article, LoadProblem
from index.segment import (
    PASSAGES,
    SegmentData,
    load_segment,
    segment_intact,
    write_segment,
)
from index.store import (
    FORMAT_VERSION,
    ArticleEntry,
    IndexDir,
    IndexError_,
    Manifest,
    new_generation_name,
)

log = logging.getLogger(__name__)

# Called with (passages embedded so far, total to embed) while a build embeds.
Progress = Callable[[int, int], None]

MAX_SEGMENTS = 12  # beyond this, segments are merged so search stays one pass per few segments
MAX_DEAD_FRACTION = 0.5


@dataclass(frozen=True)
class BuildReport:
    articles: int
    chunks: int
    embedded: int
    removed: int
    seconds: float
    added: int = 0
    updated: int = 0
    changed: bool = False
    generation: str | None = None
    problems: tuple[LoadProblem, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, object]:
        return {
            "articles": self.articles, "chunks": self.chunks, "embedded": self.embedded,
            "removed": self.removed, "seconds": round(self.seconds, 3),
            "added": self.added, "updated": self.updated,
            "problems": [{"path": p.path, "reason": p.reason} for p in self.problems],
        }


def build_index(corpus_dir: Path, index_dir: Path, embedder: Embedder, *,
                params: ChunkParams | None = None, progress: Progress | None = None) -> BuildReport:
    started = time.perf_counter()
    params = params or ChunkParams()
    store = IndexDir(index_dir)
    if not corpus_dir.is_dir():
        raise FileNotFoundError(f"The corpus folder {corpus_dir} does not exist; create it and "
                                "put articles (.md, .txt, .html, .pdf) in it.")
    previous, repaired = _reusable_manifest(store, embedder, params)
    old = previous.articles if previous else {}

    files = corpus_files(corpus_dir)
    current: dict[str, tuple[Path, str]] = {}
    clashes: list[LoadProblem] = []
    for path in files:
        if path.stem in current:
            clashes.append(LoadProblem(path.name, (
                f"{current[path.stem][0].name} has the same name; rename one of them")))
            continue
        current[path.stem] = (path, file_sha256(path))
    keep = {aid: e for aid, e in old.items()
            if aid in current and current[aid][1] == e.sha256}
    known_bad = previous.skipped if previous else {}
    # A file that could not be read last time is not parsed again until it changes.
    still_bad = [LoadProblem(path.name, known_bad[path.name]["reason"])
                 for aid, (path, sha) in current.items()
                 if aid not in keep and known_bad.get(path.name, {}).get("sha256") == sha]
    retry = {p.path for p in still_bad}
    todo = [path for aid, (path, sha) in current.items()
            if aid not in keep and path.name not in retry]
    # Count removals against the index as it was, even when its vectors cannot be reused.
    was = _indexed_ids(store)
    removed = [aid for aid in (was if was is not None else old) if aid not in current]

    loaded = load_corpus(corpus_dir, todo)
    problems = (*clashes, *still_bad, *loaded.problems)
    # An indexed article whose file has become unreadable keeps serving its indexed version.
    unreadable = {Path(p.path).stem for p in (*still_bad, *loaded.problems)}
    for aid in unreadable & set(old) - set(keep):
        keep[aid] = old[aid]
    skipped = {p.path: {"sha256": file_sha256(corpus_dir / p.path), "reason": p.reason}
               for p in (*still_bad, *loaded.problems) if (corpus_dir / p.path).is_file()}
    fresh = list(loaded.articles)
    updated = sum(1 for a in fresh if a.id in old)
    data = _prepare(fresh, embedder, params, progress) if fresh else None

    if (previous is not None and not repaired and not fresh and not removed
            and len(keep) == len(old) and skipped == previous.skipped):
        return BuildReport(len(old), previous.passages, 0, 0, time.perf_counter() - started,
                           changed=False, generation=previous.generation, problems=problems)

    articles = dict(keep)
    segments = [s for s in (previous.segments if previous else ()) if
                any(e.segment == s for e in keep.values())]
    if data is not None:
        seg_path = store.new_segment_path()
        write_segment(seg_path, data)
        segments.append(seg_path.name)
        counts = _counts(data)
        for a in fresh:
            n_sent, n_pass = counts.get(a.id, (0, 0))
            articles[a.id] = ArticleEntry(seg_path.name, a.sha256, a.path, n_sent, n_pass)

    manifest = Manifest(
        generation=new_generation_name(), format=FORMAT_VERSION, model=embedder.name,
        model_fingerprint=embedder.fingerprint, dimension=embedder.dimension,
        chunking=params.as_dict(), cleaning=CLEANING_VERSION, built_at=time.time(),
        segments=tuple(segments), articles=articles, skipped=skipped,
    )
    manifest = _maybe_compact(store, manifest)
    store.publish(manifest)
    store.collect_garbage()
    return BuildReport(
        articles=len(articles), chunks=manifest.passages,
        embedded=int(data.passages.shape[0]) if data is not None else 0,
        removed=len(removed), seconds=time.perf_counter() - started,
        added=len(fresh) - updated, updated=updated, changed=True,
        generation=manifest.generation, problems=problems,
    )


def _indexed_ids(store: IndexDir) -> set[str] | None:
    try:
        return set(store.read_manifest().articles) if store.exists() else None
    except IndexError_:
        return None


def _reusable_manifest(store: IndexDir, embedder: Embedder,
                       params: ChunkParams) -> tuple[Manifest | None, bool]:
    """The current manifest as far as its vectors can be reused by this build (None when
    nothing can), and whether damaged segments were left out of it."""
    if not store.exists():
        return None, False
    try:
        manifest = store.read_manifest()
    except IndexError_ as exc:
        log.warning("Previous index not reusable, building from scratch: %s", exc)
        return None, False
    if (manifest.model_fingerprint != embedder.fingerprint
            or manifest.dimension != embedder.dimension
            or manifest.chunking != params.as_dict() or manifest.cleaning != CLEANING_VERSION):
        log.info("Model, chunking or cleaning changed since the last build; re-embedding all.")
        return None, False
    damaged = [s for s in manifest.segments if not segment_intact(store.segments_dir / s)]
    if damaged:
        # Only the articles stored in damaged segments are embedded again.
        log.warning("Index segments %s are damaged; their articles will be re-embedded.",
                    ", ".join(damaged))
        articles = {k: e for k, e in manifest.articles.items() if e.segment not in damaged}
        segments = tuple(s for s in manifest.segments if s not in damaged)
        return Manifest(**{**vars(manifest), "articles": articles, "segments": segments}), True
    return manifest, False


def _prepare(articles: list[Article], embedder: Embedder, params: ChunkParams,
             progress: Progress | None) -> SegmentData:
    """Clean, split and embed new articles into the arrays of one segment."""
    sent_rows: list[tuple[int, int, int, int]] = []
    pass_rows: list[tuple[int, int, int]] = []
    sent_texts: list[str] = []
    pass_texts: list[str] = []
    for row, article in enumerate(articles):
        sentences = split_sentences(article)
        base = len(sent_rows)
        for s in sentences:
            sent_rows.append((row, s.start, s.end, s.block))
            sent_texts.append(article.body[s.start:s.end])
        for p in make_passages(article, sentences, params):
            first = base + p.first_sentence
            last = first + p.n_sentences - 1
            centre = base + p.centre_sentence
            pass_rows.append((first, last, centre))
            pass_texts.append(embedding_text(article, sentences, p.centre_sentence))
    total = len(sent_texts) + len(pass_texts)
    done = 0
    step = 64
    sent_vecs: list[np.ndarray] = []
    token_ids: list[np.ndarray] = []
    token_vecs: list[np.ndarray] = []
    embed_tokens = getattr(embedder, "embed_with_tokens", None)
    for i in range(0, len(sent_texts), step):
        batch = sent_texts[i:i + step]
        if embed_tokens is not None:
            vecs, toks = embed_tokens(batch)
            token_ids.extend(t.ids for t in toks)
            token_vecs.extend(t.vectors for t in toks)
        else:
            vecs = embedder.embed_batch(batch)
            token_ids.extend(np.zeros(0, np.int32) for _ in batch)
            token_vecs.extend(np.zeros((0, embedder.dimension), np.float16) for _ in batch)
        sent_vecs.append(vecs)
        done += len(batch)
        if progress:
            progress(done, total)
    pass_vecs: list[np.ndarray] = []
    for i in range(0, len(pass_texts), step):
        batch = pass_texts[i:i + step]
        pass_vecs.append(embedder.embed_batch(batch))
        done += len(batch)
        if progress:
            progress(done, total)
    dim = embedder.dimension
    offsets = np.zeros(len(token_ids) + 1, dtype=np.int64)
    np.cumsum([len(t) for t in token_ids], out=offsets[1:])
    return SegmentData(
        articles=articles,
        sentences=np.asarray(sent_rows, dtype=np.int64).reshape(-1, 4),
        passages=np.asarray(pass_rows, dtype=np.int64).reshape(-1, 3),
        sentence_vectors=np.vstack(sent_vecs) if sent_vecs else np.zeros((0, dim), np.float32),
        passage_vectors=np.vstack(pass_vecs) if pass_vecs else np.zeros((0, dim), np.float32),
        token_ids=np.concatenate(token_ids) if token_ids else np.zeros(0, np.int32),
        token_vectors=(np.vstack(token_vecs) if token_vecs else np.zeros((0, dim), np.float16)
                       ).astype(np.float16),
        token_offsets=offsets,
    )


def _counts(data: SegmentData) -> dict[str, tuple[int, int]]:
    sent_per = np.bincount(data.sentences[:, 0], minlength=len(data.articles))
    first_rows = data.sentences[data.passages[:, 0], 0] if len(data.passages) else np.zeros(0, int)
    pass_per = np.bincount(first_rows, minlength=len(data.articles))
    return {a.id: (int(sent_per[i]), int(pass_per[i])) for i, a in enumerate(data.articles)}


def _maybe_compact(store: IndexDir, manifest: Manifest) -> Manifest:
    """Merge segments when there are many, or when most of their passages are dead."""
    live = {s: 0 for s in manifest.segments}
    for e in manifest.articles.values():
        live[e.segment] += e.passages
    if len(manifest.segments) <= MAX_SEGMENTS:
        dead_heavy = False
        for seg in manifest.segments:
            total = _segment_passages(store, seg)
            if total and 1 - live[seg] / total > MAX_DEAD_FRACTION:
                dead_heavy = True
        if not dead_heavy:
            return manifest
    parts = [_live_part(store, seg, manifest) for seg in manifest.segments]
    merged = _concat([p for p in parts if p is not None])
    seg_path = store.new_segment_path()
    write_segment(seg_path, merged)
    articles = {aid: ArticleEntry(seg_path.name, e.sha256, e.path, e.sentences, e.passages)
                for aid, e in manifest.articles.items()}
    return Manifest(**{**vars(manifest), "segments": (seg_path.name,), "articles": articles})


def _segment_passages(store: IndexDir, seg: str) -> int:
    """Passages a segment holds, live or dead: read from the array header alone."""
    try:
        return int(np.load(store.segments_dir / seg / PASSAGES, mmap_mode="r").shape[0])
    except (OSError, ValueError):
        return 0


def _live_part(store: IndexDir, seg: str, manifest: Manifest) -> SegmentData | None:
    segment = load_segment(store.segments_dir / seg)
    rows = [i for i, a in enumerate(segment.articles)
            if manifest.articles.get(a.id, None) is not None
            and manifest.articles[a.id].segment == seg]
    if not rows:
        return None
    keep_art = np.zeros(len(segment.articles), bool)
    keep_art[rows] = True
    new_row = np.cumsum(keep_art) - 1
    s_mask = keep_art[segment.sentences[:, 0]]
    new_sent = np.cumsum(s_mask) - 1
    p_mask = s_mask[segment.passages[:, 0]]
    sentences = np.array(segment.sentences[s_mask])
    sentences[:, 0] = new_row[sentences[:, 0]]
    passages = new_sent[np.array(segment.passages[p_mask])]
    tok_ids, tok_vecs = [], []
    offsets = [0]
    for i in np.flatnonzero(s_mask):
        a, b = segment.token_offsets[i], segment.token_offsets[i + 1]
        tok_ids.append(np.asarray(segment.token_ids[a:b]))
        tok_vecs.append(np.asarray(segment.token_vectors[a:b]))
        offsets.append(offsets[-1] + (b - a))
    dim = segment.sentence_vectors.shape[1]
    return SegmentData(
        articles=[segment.articles[i] for i in rows], sentences=sentences, passages=passages,
        sentence_vectors=np.asarray(segment.sentence_vectors[s_mask]),
        passage_vectors=np.asarray(segment.passage_vectors[p_mask]),
        token_ids=np.concatenate(tok_ids) if tok_ids else np.zeros(0, np.int32),
        token_vectors=np.vstack(tok_vecs) if tok_vecs else np.zeros((0, dim), np.float16),
        token_offsets=np.asarray(offsets, dtype=np.int64),
    )


def _concat(parts: list[SegmentData]) -> SegmentData:
    articles: list[Article] = []
    sentences, passages, svec, pvec, tids, tvec, offs = [], [], [], [], [], [], [np.zeros(1, int)]
    n_art = n_sent = n_tok = 0
    for p in parts:
        s = p.sentences.copy()
        s[:, 0] += n_art
        sentences.append(s)
        passages.append(p.passages + n_sent)
        svec.append(p.sentence_vectors)
        pvec.append(p.passage_vectors)
        tids.append(p.token_ids)
        tvec.append(p.token_vectors)
        offs.append(p.token_offsets[1:] + n_tok)
        articles.extend(p.articles)
        n_art += len(p.articles)
        n_sent += len(p.sentences)
        n_tok += int(p.token_offsets[-1])
    return SegmentData(articles, np.vstack(sentences), np.vstack(passages), np.vstack(svec),
                       np.vstack(pvec), np.concatenate(tids), np.vstack(tvec),
                       np.concatenate(offs).astype(np.int64))
