"""A live view of the index for a running process: load, search, reload, rebuild.

Readers take ``current()`` (an immutable snapshot) per question; a reload or rebuild builds a
new snapshot off to the side and swaps one reference, so a question in flight finishes on
the generation it started with.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from index.build import BuildReport, Progress, build_index
from index.embed import Embedder
from index.model import Article
from index.rows import warm_page_cache
from index.search import Ranker, RankerFactory, Retriever, SearchResult
from index.segment import Segment, SegmentError, damaged_segments, load_segment
from index.store import IndexCorrupt, IndexDir, IndexMismatch, Manifest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    manifest: Manifest
    articles: tuple[Article, ...]
    retriever: Ranker

    @property
    def generation(self) -> str:
        return self.manifest.generation

    def search(self, question: str) -> SearchResult:
        return self.retriever.search(question)

    def passage_counts(self) -> dict[str, int]:
        return {aid: e.passages for aid, e in self.manifest.articles.items()}


class LiveIndex:
    def __init__(self, index_dir: Path, embedder: Embedder | Callable[[], Embedder], *,
                 ranker: RankerFactory = Retriever) -> None:
        self.dir = IndexDir(index_dir)
        self._ranker = ranker  # builds the ranker of each generation it loads
        self._embedder_source = embedder
        # Either an embedder, or a factory called on first use (the model loads lazily).
        self._embedder: Embedder | None = (
            embedder if hasattr(embedder, "embed_batch") else None)  # type: ignore[assignment]
        self._lock = threading.Lock()
        self._segments: dict[str, Segment] = {}
        self._snapshot: Snapshot | None = None

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = self._embedder_source()  # type: ignore[operator]
        return self._embedder

    @property
    def index_dir(self) -> Path:
        return self.dir.root

    def loaded(self) -> bool:
        return self._snapshot is not None

    def check(self) -> Manifest:
        """Validate the index on disk without loading the model (fast, for early errors)."""
        manifest = self.dir.read_manifest()
        for seg_id in damaged_segments(self.dir.segments_dir, manifest.segments)[:1]:
            raise IndexCorrupt(f"The index at {self.dir.root} is damaged (segment {seg_id}); "
                               "rebuild it with `dossier-bot index build`.")
        return manifest

    def current(self) -> Snapshot:
        snap = self._snapshot
        if snap is None:
            with self._lock:
                if self._snapshot is None:
                    self._snapshot = self._load(self.dir.read_manifest())
                snap = self._snapshot
        return snap

    def reload_if_changed(self) -> bool:
        """Switch to the generation named on disk if it is newer than the one in service.

        A generation that cannot be loaded is logged and skipped: the old one keeps serving.
        """
        try:
            name = self.dir.current_generation()
        except IndexCorrupt as exc:
            log.warning("Index pointer unreadable, keeping the index in service: %s", exc)
            return False
        if name is None or (self._snapshot is not None and name == self._snapshot.generation):
            return False
        with self._lock:
            if self._snapshot is not None and name == self._snapshot.generation:
                return False
            try:
                snap = self._load(self.dir.read_manifest(name))
            except (IndexCorrupt, IndexMismatch) as exc:
                if self._snapshot is None:
                    raise
                log.error("New index generation %s cannot be loaded, keeping %s: %s",
                          name, self._snapshot.generation, exc)
                return False
            self._snapshot = snap
        log.info("Index generation %s in service (%d articles, %d passages)",
                 snap.generation, len(snap.articles), snap.manifest.passages)
        return True

    def rebuild(self, corpus_dir: Path, progress: Progress | None = None) -> BuildReport:
        report = build_index(corpus_dir, self.dir.root, self.embedder, progress=progress)
        if report.changed or self._snapshot is None:
            self.reload_if_changed()
        return report

    def _load(self, manifest: Manifest) -> Snapshot:
        embedder = self.embedder
        if manifest.model_fingerprint != embedder.fingerprint:
            raise IndexMismatch(
                f"The index at {self.dir.root} was built with the model {manifest.model} "
                f"(weights {manifest.model_fingerprint[:12]}…), but {embedder.name} is loaded; "
                "rebuild it with `dossier-bot index build`.")
        if manifest.dimension != embedder.dimension:
            raise IndexMismatch(
                f"The index holds {manifest.dimension}-dimensional vectors but the model makes "
                f"{embedder.dimension}; rebuild it with `dossier-bot index build`.")
        segments: list[Segment] = []
        fresh: list[Segment] = []
        for seg_id in manifest.segments:
            seg = self._segments.get(seg_id)
            if seg is None:
                try:
                    seg = load_segment(self.dir.segments_dir / seg_id)
                except SegmentError as exc:
                    raise IndexCorrupt(f"The index at {self.dir.root} is damaged: {exc}; rebuild "
                                       "it with `dossier-bot index build`.") from None
                seg.metadata_terms()  # at load, not in the first question that needs it
                fresh.append(seg)
            if seg.sentence_vectors.shape[1:] != (manifest.dimension,):
                raise IndexCorrupt(f"Segment {seg_id} holds vectors of the wrong size; rebuild "
                                   "with `dossier-bot index build`.")
            segments.append(seg)
        live: dict[str, set[str]] = {}
        for aid, entry in manifest.articles.items():
            live.setdefault(entry.segment, set()).add(aid)
        by_id = {a.id: a for s in segments for a in s.articles if a.id in live.get(s.id, ())}
        articles = tuple(by_id[aid] for aid in sorted(manifest.articles) if aid in by_id)
        self._segments = {s.id: s for s in segments}
        # Large segments stay on disk; read them once in the background so new questions do
        # not wait on the disk (a no-op for small dossiers, which live in memory).
        warm_page_cache([f for s in fresh for f in s.on_disk()])
        return Snapshot(manifest, articles, self._ranker(segments, live, embedder))
