"""What `index status` reports: the index in service and the corpus changes since."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from index.load import corpus_files, file_sha256
from index.store import IndexDir


def index_status(corpus_dir: Path, index_dir: Path) -> dict:
    store = IndexDir(index_dir)
    files = {p.stem: p for p in corpus_files(corpus_dir)}
    if not store.exists():
        return {"built": False, "index": str(index_dir), "corpus": str(corpus_dir),
                "articles": 0, "passages": 0, "added": sorted(p.name for p in files.values()),
                "changed": [], "removed": []}
    manifest = store.read_manifest()
    present = {p.name for p in files.values()}
    still_bad = {name for name, info in manifest.skipped.items()
                 if name in present and file_sha256(files[Path(name).stem]) == info["sha256"]}
    added = sorted(p.name for aid, p in files.items()
                   if aid not in manifest.articles and p.name not in still_bad)
    known = manifest.articles
    changed = sorted(p.name for aid, p in files.items()
                     if aid in known and file_sha256(p) != known[aid].sha256)
    removed = sorted(e.path for aid, e in manifest.articles.items() if aid not in files)
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
        "added": added,
        "changed": changed,
        "removed": removed,
        "unreadable": [{"path": n, "reason": manifest.skipped[n]["reason"]}
                       for n in sorted(still_bad)],
        "up_to_date": not (added or changed or removed),
    }
