"""What `index status` reports: the index in service and the corpus changes since."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from index.build import require_corpus
from index.diff import corpus_diff
from index.segment import damaged_segments
from index.store import IndexDir


def index_status(corpus_dir: Path, index_dir: Path) -> dict:
    require_corpus(corpus_dir)  # else every article would read as "removed"
    store = IndexDir(index_dir)
    if not store.exists():
        diff = corpus_diff(corpus_dir, None)
        return {"built": False, "index": str(index_dir), "corpus": str(corpus_dir),
                "articles": 0, "passages": 0,
                "added": sorted(diff.files[a].path.name for a in diff.added),
                "changed": [], "removed": [], "ignored": _problems(diff.ignored)}
    manifest = store.read_manifest()
    diff = corpus_diff(corpus_dir, manifest)
    damaged = damaged_segments(store.segments_dir, manifest.segments)
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
        "added": sorted(diff.files[a].path.name for a in diff.added),
        "changed": sorted(diff.files[a].path.name for a in diff.changed),
        "removed": sorted(manifest.articles[a].path for a in diff.removed),
        "unreadable": sorted(_problems(diff.still_bad), key=lambda p: p["path"]),
        "ignored": _problems(diff.ignored),
        "damaged": damaged,  # segments that fail their checks: `index build` repairs them
        "up_to_date": diff.up_to_date and not damaged,
    }


def _problems(problems) -> list[dict[str, str]]:
    return [{"path": p.path, "reason": p.reason} for p in problems]
