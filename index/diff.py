"""What changed between the corpus folder and an index manifest: the one computation behind
`index build`, `index status`, the watcher and the container's start check, so they agree on
duplicate names, skipped files and unreadable ones."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from index.documents import limits_key
from index.load import alike, file_sha256, name_key, scan_corpus, shown_path
from index.model import LoadProblem
from index.store import ArticleEntry, Manifest

RACY_NS = 2_000_000_000  # a file modified this close to its hashing may change unseen


@dataclass(frozen=True)
class CorpusFile:
    path: Path
    sha256: str
    size: int
    stamp_ns: int  # see ``stamp``; -1: changed too recently to trust, hashed again next time


@dataclass(frozen=True)
class CorpusDiff:
    files: dict[str, CorpusFile]  # article id -> its file (the first of a name)
    unchanged: frozenset[str]  # indexed with this very content
    added: tuple[str, ...]  # ids not in the index
    changed: tuple[str, ...]  # ids indexed with other content
    removed: tuple[str, ...]  # ids indexed whose file is gone
    still_bad: tuple[LoadProblem, ...]  # unreadable last time and unchanged since: not retried
    ignored: tuple[LoadProblem, ...] = field(default_factory=tuple)  # never read: see reasons

    @property
    def todo(self) -> list[Path]:
        """The files a build must read: added and changed ones."""
        return [self.files[aid].path for aid in (*self.added, *self.changed)]

    @property
    def up_to_date(self) -> bool:
        return not (self.added or self.changed or self.removed)

    def describe(self) -> str | None:
        """One line saying what is out of date, or None."""
        if self.up_to_date:
            return None
        return (f"{len(self.added)} article(s) added, {len(self.changed)} changed, "
                f"{len(self.removed)} removed since the index was built")


def corpus_diff(corpus_dir: Path, manifest: Manifest | None) -> CorpusDiff:
    """Compare the corpus with ``manifest`` (None: no index yet). A file whose size and
    modification time match its indexed entry is not read again."""
    paths, ignored = scan_corpus(corpus_dir)
    indexed = manifest.articles if manifest is not None else {}
    skipped = manifest.skipped if manifest is not None else {}
    files: dict[str, CorpusFile] = {}
    problems = list(ignored)
    taken: dict[str, Path] = {}  # name_key of each name -> its first file
    for path in paths:
        if (first := taken.setdefault(name_key(path.stem), path)) is not path:
            problems.append(LoadProblem(shown_path(path, corpus_dir), (
                f"{shown_path(first, corpus_dir)} has the same name"
                f"{alike(first.stem, path.stem)}; rename one of them")))
            continue
        files[path.stem] = _hash(path, indexed.get(path.stem), corpus_dir)
    first_with: dict[str, CorpusFile] = {}
    for aid, f in list(files.items()):
        # The same bytes under two names: indexed once, or every answer quotes them twice.
        if (first := first_with.setdefault(f.sha256, f)) is not f:
            problems.append(LoadProblem(shown_path(f.path, corpus_dir), (
                f"the same file as {shown_path(first.path, corpus_dir)}; it is indexed once")))
            del files[aid]
    unchanged = frozenset(aid for aid, f in files.items()
                          if aid in indexed and indexed[aid].sha256 == f.sha256)
    # Unreadable last time and unchanged since: not read again, unless it failed on reading
    # limits that have changed since (a PDF given more time now).
    limits = limits_key()
    still_bad = tuple(LoadProblem(f.path.name, entry["reason"], entry.get("limits"))
                      for aid, f in files.items() if aid not in unchanged
                      and (entry := skipped.get(f.path.name, {})).get("sha256") == f.sha256
                      and entry.get("limits", _unrecorded(f.path, limits)) == limits)
    bad = {p.path for p in still_bad}
    todo = [aid for aid, f in files.items() if aid not in unchanged and f.path.name not in bad]
    return CorpusDiff(
        files=files, unchanged=unchanged,
        added=tuple(a for a in todo if a not in indexed),
        changed=tuple(a for a in todo if a in indexed),
        removed=tuple(sorted(a for a in indexed if a not in files)),
        still_bad=still_bad, ignored=tuple(problems))


def _unrecorded(path: Path, limits: str) -> str | None:
    """The limits a skipped file failed on, where the index recorded none: a PDF's are
    unknown (indexes before they were recorded), so it is read once more; other files fail
    on their bytes alone."""
    return None if path.suffix.lower() == ".pdf" else limits


def _hash(path: Path, entry: ArticleEntry | None, corpus_dir: Path) -> CorpusFile:
    """An unchanged size and ``stamp`` since the last build means unchanged content, so the
    file is not read again (adding one article then reads one file, not the corpus). A file
    changed within ``RACY_NS`` of being hashed records an unknown stamp."""
    st = path.stat()
    now = stamp(st)
    # The entry's path is the file's relative to the corpus folder (inbox/x.md for an inbox's).
    if (entry is not None and entry.path == os.path.relpath(path, corpus_dir)
            and entry.stamp_ns >= 0
            and (entry.size, entry.stamp_ns) == (st.st_size, now)):
        return CorpusFile(path, entry.sha256, entry.size, entry.stamp_ns)
    sha = file_sha256(path)
    racy = now > time.time_ns() - RACY_NS
    return CorpusFile(path, sha, st.st_size, -1 if racy else now)


def stamp(st: os.stat_result) -> int:
    """When a file last changed, as far as its metadata tells: the later of its modification
    time and its status-change time. The modification time alone can be set back (`touch -d`,
    `cp -p`, unpacking an archive) over new content; the change time cannot, on POSIX. On
    Windows the second is the creation time, and the modification time decides, as before."""
    return max(st.st_mtime_ns, st.st_ctime_ns)
