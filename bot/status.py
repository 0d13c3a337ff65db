"""What `index status` reports: the index in service and the corpus changes since."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from index.build import require_corpus
from index.chunk import cut_is_current
from index.diff import CorpusDiff, corpus_diff
from index.load import shown_path
from index.segment import damaged_segments
from index.store import IndexDir


def index_status(corpus_dir: Path, index_dir: Path) -> dict:
    require_corpus(corpus_dir)  # else every article would read as "removed"
    store = IndexDir(index_dir)
    if not store.exists():
        diff = corpus_diff(corpus_dir, None)
        return {"built": False, "index": str(index_dir), "corpus": str(corpus_dir),
                "articles": 0, "passages": 0,
                "added": _shown(diff, diff.added, corpus_dir), "changed": [], "removed": [],
                "ignored": _problems(diff.ignored)}
    manifest = store.read_manifest()
    diff = corpus_diff(corpus_dir, manifest)
    damaged = damaged_segments(store.segments_dir, manifest.segments)
    cut = cut_is_current(manifest.chunking, manifest.cleaning)
    return {
        "built": True,
        "index": str(index_dir),
        "corpus": str(corpus_dir),
        "generation": manifest.generation,
        "built_at": dt.datetime.fromtimestamp(manifest.built_at, dt.UTC).isoformat(
            timespec="seconds"),
        "model": manifest.model,
        "articles": len(manifest.articles),
        "passages": manifest.passages,
        "segments": len(manifest.segments),
        "added": _shown(diff, diff.added, corpus_dir),
        "changed": _shown(diff, diff.changed, corpus_dir),
        "removed": sorted(manifest.articles[a].path for a in diff.removed),
        "unreadable": sorted(_problems(diff.still_bad), key=lambda p: p["path"]),
        "ignored": _problems(diff.ignored),
        "damaged": damaged,  # segments that fail their checks: `index build` repairs them
        # False after an upgrade that cuts passages another way: `index build` re-cuts all.
        "cut_current": cut,
        "up_to_date": diff.up_to_date and not damaged and cut,
    }


def _shown(diff: CorpusDiff, ids: tuple[str, ...], corpus_dir: Path) -> list[str]:
    # inbox/ named: an operator looking for the file in the corpus folder finds it there.
    return sorted(shown_path(diff.files[a].path, corpus_dir) for a in ids)


def _problems(problems) -> list[dict[str, str]]:
    return [{"path": p.path, "reason": p.reason} for p in problems]
