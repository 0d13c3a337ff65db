"""Size-tiered compaction: merge small segments with each other, never the big ones on an add.

Every incremental build writes one small segment. Segments are grouped into tiers by their live
passages (all below ``SMALL`` in tier 0, then one tier per factor of ``MERGE_FACTOR``); when a
tier holds ``MERGE_FACTOR`` segments they are merged into one of the next tier. A passage is
thus rewritten about once per tier (log of the corpus), the number of segments stays bounded by
(``MERGE_FACTOR`` - 1) per tier, and adding an article never rewrites the million-passage
segment. A segment whose passages are mostly dead (changed or removed articles) is rewritten
with the next merge, or alone.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from index.model import Article
from index.segment import (
    PASSAGE_VECTORS,
    PASSAGES,
    SENT_VECTORS,
    SENTENCES,
    TOKEN_IDS,
    TOKEN_OFFSETS,
    TOKEN_SCALES,
    TOKEN_VECTORS,
    SegmentData,
    read_articles,
    write_segment,
)
from index.store import IndexDir, Manifest

MERGE_FACTOR = 4
SMALL = 4096  # passages
MAX_DEAD_FRACTION = 0.5


def tier(live_passages: int) -> int:
    if live_passages < SMALL:
        return 0
    return 1 + int(math.log(live_passages / SMALL, MERGE_FACTOR))


def plan(segments: list[str], total: dict[str, int], live: dict[str, int]) -> list[str]:
    """Which segments to merge now (empty: none). ``total`` and ``live`` count passages."""
    dead_heavy = [s for s in segments
                  if total.get(s) and 1 - live.get(s, 0) / total[s] > MAX_DEAD_FRACTION]
    tiers: dict[int, list[str]] = {}
    for s in segments:
        if s not in dead_heavy:
            tiers.setdefault(tier(live.get(s, 0)), []).append(s)
    full = sorted(t for t, group in tiers.items() if len(group) >= MERGE_FACTOR)
    chosen = (tiers[full[0]] if full else []) + dead_heavy
    # Rewriting one dead-heavy segment alone is worth it; merging one segment with nothing
    # else only when it sheds dead passages.
    return chosen if len(chosen) >= 2 or dead_heavy else []


def maybe_compact(store: IndexDir, manifest: Manifest) -> Manifest:
    """Merge segments as ``plan`` says, until it says nothing more (a cascade is rare)."""
    for _ in range(len(manifest.segments)):
        live = {s: 0 for s in manifest.segments}
        for e in manifest.articles.values():
            live[e.segment] = live.get(e.segment, 0) + e.passages
        total = {s: _segment_passages(store, s) for s in manifest.segments}
        chosen = plan(list(manifest.segments), total, live)
        if not chosen:
            break
        manifest = merge(store, manifest, chosen)
    return manifest


def merge(store: IndexDir, manifest: Manifest, chosen: list[str]) -> Manifest:
    """Write the live articles of ``chosen`` as one new segment, in the place of the first."""
    parts = [p for seg in chosen if (p := _live_part(store, seg, manifest)) is not None]
    articles = dict(manifest.articles)
    segments = list(manifest.segments)
    at = min(segments.index(s) for s in chosen)
    segments = [s for s in segments if s not in chosen]
    if parts:
        merged = _concat(parts)
        merged.stats = {a.id: (articles[a.id].size, articles[a.id].stamp_ns)
                        for a in merged.articles}
        path = store.new_segment_path()
        write_segment(path, merged)
        segments.insert(min(at, len(segments)), path.name)
        articles.update(store.catalog(path.name))
    return Manifest(**{**vars(manifest), "segments": tuple(segments), "articles": articles})


def _segment_passages(store: IndexDir, seg: str) -> int:
    """Passages a segment holds, live or dead: read from the array header alone."""
    try:
        return int(np.load(store.segments_dir / seg / PASSAGES, mmap_mode="r").shape[0])
    except (OSError, ValueError):
        return 0


def _live_part(store: IndexDir, seg: str, manifest: Manifest) -> SegmentData | None:
    """The rows of a segment that belong to its live articles, token vectors kept as int8."""
    path: Path = store.segments_dir / seg
    arts = read_articles(path)
    keep_art = np.array([(e := manifest.articles.get(a.id)) is not None and e.segment == seg
                         for a in arts], dtype=bool)
    if not keep_art.any():
        return None

    def arr(name: str) -> np.ndarray:
        return np.load(path / name, mmap_mode="r", allow_pickle=False)

    all_sent = np.asarray(arr(SENTENCES))
    new_row = np.cumsum(keep_art) - 1
    s_mask = keep_art[all_sent[:, 0]]
    new_sent = np.cumsum(s_mask) - 1
    all_pass = np.asarray(arr(PASSAGES))
    p_mask = s_mask[all_pass[:, 0]]
    sentences = all_sent[s_mask].copy()
    sentences[:, 0] = new_row[sentences[:, 0]]
    offsets = np.asarray(arr(TOKEN_OFFSETS))
    t_mask = np.repeat(s_mask, np.diff(offsets))
    lengths = np.diff(offsets)[s_mask]
    new_offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    return SegmentData(
        articles=[a for a, k in zip(arts, keep_art, strict=True) if k], sentences=sentences,
        passages=new_sent[all_pass[p_mask]],
        sentence_vectors=np.asarray(arr(SENT_VECTORS)[s_mask]),
        passage_vectors=np.asarray(arr(PASSAGE_VECTORS)[p_mask]),
        token_ids=np.asarray(arr(TOKEN_IDS)[t_mask]),
        token_vectors=np.asarray(arr(TOKEN_VECTORS)[t_mask]),
        token_offsets=new_offsets,
        token_scales=np.asarray(arr(TOKEN_SCALES)[t_mask]),
    )


def _concat(parts: list[SegmentData]) -> SegmentData:
    articles: list[Article] = []
    sentences, passages, offs = [], [], [np.zeros(1, np.int64)]
    n_art = n_sent = n_tok = 0
    for p in parts:
        s = p.sentences.copy()
        s[:, 0] += n_art
        sentences.append(s)
        passages.append(p.passages + n_sent)
        offs.append(p.token_offsets[1:] + n_tok)
        articles.extend(p.articles)
        n_art += len(p.articles)
        n_sent += len(p.sentences)
        n_tok += int(p.token_offsets[-1])
    return SegmentData(
        articles, np.vstack(sentences), np.vstack(passages),
        np.vstack([p.sentence_vectors for p in parts]),
        np.vstack([p.passage_vectors for p in parts]),
        np.concatenate([p.token_ids for p in parts]),
        np.concatenate([p.token_vectors for p in parts]),
        np.concatenate(offs).astype(np.int64),
        token_scales=np.concatenate([p.token_scales for p in parts]))
