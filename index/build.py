"""Incremental, atomic index builds: embed only what changed, switch generations atomically."""

from __future__ import annotations

import errno
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from index.chunk import (
    ChunkParams,
    cut_is_current,
    embedding_text,
    make_passages,
    split_sentences,
)
from index.clean import CLEANING_VERSION
from index.compact import maybe_compact
from index.diff import corpus_diff
from index.embed import Embedder
from index.load import load_corpus
from index.model import Article, LoadProblem, Sentence
from index.segment import SegmentData, quantise, segment_intact, write_segment
from index.store import (
    FORMAT_VERSION,
    IndexDir,
    IndexError_,
    Manifest,
    new_generation_name,
)

log = logging.getLogger(__name__)

# Called with (passages embedded so far, total to embed) while a build embeds.
Progress = Callable[[int, int], None]



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


def require_corpus(corpus_dir: Path) -> None:
    """Fail with a message that says how to fix it when the corpus folder is missing."""
    if not corpus_dir.is_dir():
        raise FileNotFoundError(f"The corpus folder {corpus_dir} does not exist; create it and "
                                "put articles (.md, .txt, .html, .pdf, .docx) in it.")


def build_index(corpus_dir: Path, index_dir: Path, embedder: Embedder, *,
                params: ChunkParams | None = None, progress: Progress | None = None,
                wait: float | None = None) -> BuildReport:
    """Bring the index up to date with the corpus. One build at a time: a second one waits
    for the first (``wait`` seconds at most; None: as long as it takes), then finds the
    work done. A failed build (disk full, killed) leaves nothing the next one trips on."""
    params = params or ChunkParams()
    store = IndexDir(index_dir)
    require_corpus(corpus_dir)
    with store.build_lock(wait=wait):
        started = time.perf_counter()  # the build's own time, not the wait for another's
        _collect_garbage(store)  # what a failed build left (its space too) goes first
        try:
            return _build(corpus_dir, store, embedder, params, progress, started)
        except IndexError_:
            raise
        except Exception as exc:
            free = _free_bytes(store.root)
            _collect_garbage(store)  # this build's partial segment goes now, not next time
            if not isinstance(exc, (OSError, RuntimeError)):
                raise
            if (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or free < DISK_FULL:
                raise IndexError_(f"The disk holding {store.root} is full ({exc}); free some "
                                  "space and run `dossier-bot index build` again. The index "
                                  "in service is unchanged.") from None
            raise


# Free space under which a failed write is put down to a full disk (numpy, FAISS and bm25s
# report a short write without ENOSPC).
DISK_FULL = 1 << 20


def _free_bytes(path: Path) -> int:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return 0


def _build(corpus_dir: Path, store: IndexDir, embedder: Embedder, params: ChunkParams,
           progress: Progress | None, started: float) -> BuildReport:
    previous, repaired = _reusable_manifest(store, embedder, params)
    old = previous.articles if previous else {}

    diff = corpus_diff(corpus_dir, previous)
    current = diff.files
    keep = {aid: old[aid] for aid in diff.unchanged}
    # Touched, copied or re-saved with the same content: the entry takes the file's new size
    # and stamp, or every later build and status would read the whole file again.
    restamped = {aid: replace(e, size=current[aid].size, stamp_ns=current[aid].stamp_ns)
                 for aid, e in keep.items() if current[aid].stamp_ns >= 0
                 and (e.size, e.stamp_ns) != (current[aid].size, current[aid].stamp_ns)}
    keep.update(restamped)
    still_bad = list(diff.still_bad)
    # Count removals against the index as it was, even when its vectors cannot be reused.
    was = set(old) if previous is not None and not repaired else _indexed_ids(store)
    removed = [aid for aid in (was if was is not None else old) if aid not in current]

    loaded = load_corpus(corpus_dir, diff.todo)
    fresh = list(loaded.articles)
    sentences = {a.id: split_sentences(a) for a in fresh}
    # An article whose text is all page furniture would be an entry with nothing to quote.
    empty = [LoadProblem(current[a.id].path.name, "no article text is left once page "
                         "furniture is removed (0 passages)") for a in fresh
             if not sentences[a.id]]
    fresh = [a for a in fresh if sentences[a.id]]
    # An indexed article whose file has become unreadable keeps serving its indexed version,
    # and its report says so: "skipped" alone reads as if it had left the dossier.
    unreadable = {Path(p.path).stem for p in (*still_bad, *loaded.problems, *empty)}
    serving = unreadable & set(old) - set(keep)
    for aid in serving:
        keep[aid] = old[aid]
    bad = (*still_bad, *loaded.problems, *empty)
    problems = (*diff.ignored, *(
        LoadProblem(p.path, f"{p.reason}; the version indexed before stays in service until "
                    "the file is fixed") if Path(p.path).stem in serving else p for p in bad))
    hashed = {f.path.name: f.sha256 for f in current.values()}  # each file hashed once
    skipped = {p.path: {"sha256": hashed[p.path], "reason": p.reason,
                        **({"limits": p.limits} if p.limits else {})}
               for p in bad if p.path in hashed}
    # Against what was indexed, damaged segments included: a repaired article is not "added".
    updated = sum(1 for a in fresh if a.id in (was if was is not None else old))
    data = _prepare(fresh, embedder, params, progress, sentences) if fresh else None
    if data is not None:
        data.stats = {a.id: (current[a.id].size, current[a.id].stamp_ns) for a in fresh}

    # No article, vector or skipped file differs (new stamps alone are not a change to report).
    same = (previous is not None and not repaired and not fresh and not removed
            and len(keep) == len(old) and skipped == previous.skipped)
    if same and not restamped and store.current_is_sound():
        return BuildReport(len(old), previous.passages, 0, 0, time.perf_counter() - started,
                           changed=False, generation=previous.generation, problems=problems)

    articles = dict(keep)
    in_use = {e.segment for e in keep.values()}
    segments = [s for s in (previous.segments if previous else ()) if s in in_use]
    if data is not None:
        seg_path = store.new_segment_path()
        write_segment(seg_path, data)
        segments.append(seg_path.name)
        articles.update(store.catalog(seg_path.name))

    manifest = Manifest(
        generation=new_generation_name(), format=FORMAT_VERSION, model=embedder.name,
        model_fingerprint=embedder.fingerprint, dimension=embedder.dimension,
        chunking=params.as_dict(), cleaning=CLEANING_VERSION, built_at=time.time(),
        segments=tuple(segments), articles=articles, skipped=skipped,
    )
    manifest = maybe_compact(store, manifest)
    store.publish(manifest)
    _collect_garbage(store)
    return BuildReport(
        articles=len(articles), chunks=manifest.passages,
        embedded=int(data.passages.shape[0]) if data is not None else 0,
        removed=len(removed), seconds=time.perf_counter() - started,
        added=len(fresh) - updated, updated=updated, changed=not same,
        generation=manifest.generation, problems=problems,
    )


def _collect_garbage(store: IndexDir) -> None:
    try:
        store.collect_garbage()
    except (OSError, IndexError_) as exc:  # never worth failing a build over
        log.warning("Index clean-up skipped: %s", exc)


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
    intact: dict[str, bool] = {}

    def keep(seg: str) -> bool:
        if seg not in intact:
            intact[seg] = segment_intact(store.segments_dir / seg)
        return intact[seg]

    try:
        manifest = store.read_manifest(keep=keep)
    except IndexError_ as exc:
        log.warning("Previous index not reusable, building from scratch: %s", exc)
        return None, False
    if (manifest.model_fingerprint != embedder.fingerprint
            or manifest.dimension != embedder.dimension
            or not cut_is_current(manifest.chunking, manifest.cleaning, params)):
        log.info("Model, chunking or cleaning changed since the last build; re-embedding all.")
        return None, False
    damaged = [s for s, ok in intact.items() if not ok]
    if damaged:
        # Only the articles stored in damaged segments are embedded again.
        log.warning("Index segments %s are damaged; their articles will be re-embedded.",
                    ", ".join(damaged))
    return manifest, bool(damaged)


def _prepare(articles: list[Article], embedder: Embedder, params: ChunkParams,
             progress: Progress | None,
             split: dict[str, list[Sentence]] | None = None) -> SegmentData:
    """Clean, split and embed new articles into the arrays of one segment."""
    sent_rows: list[tuple[int, int, int, int]] = []
    pass_rows: list[tuple[int, int, int]] = []
    sent_texts: list[str] = []
    pass_texts: list[str] = []
    for row, article in enumerate(articles):
        sentences = split[article.id] if split else split_sentences(article)
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
    # Progress is counted in passages, what a user is told the build makes: each passage is
    # two embeddings (its sentence, with word pieces, and its window).
    total = len(sent_texts) + len(pass_texts)
    n_passages = len(pass_texts)

    def report(done: int) -> None:
        if progress:
            progress(done * n_passages // max(1, total), n_passages)

    done = 0
    step = 64
    sent_vecs: list[np.ndarray] = []
    token_ids: list[np.ndarray] = []
    token_vecs: list[np.ndarray] = []  # int8, quantised per batch (a quarter of float32)
    token_scales: list[np.ndarray] = []
    embed_tokens = getattr(embedder, "embed_with_tokens", None)
    for i in range(0, len(sent_texts), step):
        batch = sent_texts[i:i + step]
        if embed_tokens is not None:
            vecs, toks = embed_tokens(batch)
            token_ids.extend(t.ids for t in toks)
            if toks:
                q, scale = quantise(np.vstack([t.vectors for t in toks]))
                token_vecs.append(q)
                token_scales.append(scale)
        else:
            vecs = embedder.embed_batch(batch)
            token_ids.extend(np.zeros(0, np.int32) for _ in batch)
        sent_vecs.append(vecs)
        done += len(batch)
        report(done)
    pass_vecs: list[np.ndarray] = []
    for i in range(0, len(pass_texts), step):
        batch = pass_texts[i:i + step]
        pass_vecs.append(embedder.embed_batch(batch))
        done += len(batch)
        report(done)
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
        token_vectors=np.vstack(token_vecs) if token_vecs else np.zeros((0, dim), np.int8),
        token_offsets=offsets,
        token_scales=(np.concatenate(token_scales) if token_scales
                      else np.zeros(0, np.float32)),
    )
