"""The index directory: segments, generations, and the atomic switch between them.

Layout::

    <index>/CURRENT               name of the generation in service (replaced atomically)
    <index>/generations/<g>.json  manifest of generation g: model, chunking, segments, and per
                                  segment the articles no longer live in it (tombstones)
    <index>/segments/<s>/         immutable segment folders (see index.segment); each holds
                                  catalog.json, the entries of the articles written into it

A build writes new segments and a new manifest, then renames a temporary file over CURRENT.
A crash at any moment leaves CURRENT naming the previous, complete generation. Article
entries live in the (immutable, cached) segment catalogs, so the manifest a build reads and
writes grows with the number of segments and changes, not with the corpus.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

log = logging.getLogger(__name__)
# (index folder, fallback generation) pairs already warned about in this process
_FALLBACKS_SAID: set[tuple[str, str]] = set()

FORMAT_VERSION = 2  # 2: int8 token vectors, per-segment catalogs and term lists
CURRENT = "CURRENT"
GENERATIONS = "generations"
SEGMENTS = "segments"
CATALOG = "catalog.json"
LOCK = ".build.lock"  # held by the one build that may write segments and switch CURRENT


class IndexError_(RuntimeError):
    """Base for index problems; the message is one line that says what to do."""


class IndexMissing(IndexError_):
    pass


class IndexCorrupt(IndexError_):
    pass


class IndexMismatch(IndexError_):
    pass


class IndexBusy(IndexError_):
    """Another process is building this index."""


@dataclass(frozen=True)
class ArticleEntry:
    segment: str
    sha256: str
    path: str
    sentences: int
    passages: int
    size: int = -1  # corpus file size and stamp when hashed (-1: unknown, hash it again)
    stamp_ns: int = -1  # see index.diff.stamp


Catalog = Callable[[str], dict[str, ArticleEntry]]  # segment id -> its catalog


@dataclass(frozen=True)
class Manifest:
    generation: str
    format: int
    model: str
    model_fingerprint: str
    dimension: int
    chunking: dict[str, int]
    cleaning: int
    built_at: float
    segments: tuple[str, ...]
    articles: dict[str, ArticleEntry] = field(default_factory=dict)
    # corpus files that could not be read: name -> {"sha256", "reason"}; retried when changed
    skipped: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def passages(self) -> int:
        return sum(a.passages for a in self.articles.values())

    def to_json(self, catalog: Catalog) -> str:
        """The manifest names segments; each segment's catalog lists the articles written into
        it, and ``dead`` the ones among them that are no longer live in this generation."""
        cats = {seg: catalog(seg) for seg in self.segments}
        dead: dict[str, list[str]] = {}
        for seg, cat in cats.items():
            gone = [aid for aid in cat
                    if (e := self.articles.get(aid)) is None or e.segment != seg]
            if gone:
                dead[seg] = sorted(gone)
        # Articles whose entry differs from their segment's catalog: most often only a file's
        # size and stamp, refreshed after a change that left its content as it was, kept in
        # two numbers ("stamps"); any other difference as a whole entry ("entries", under the
        # key names of the format's first release, which older code reads).
        stamps: dict[str, list[int]] = {}
        extra: dict[str, dict] = {}
        for aid, e in sorted(self.articles.items()):
            listed = cats.get(e.segment, {}).get(aid)
            if listed == e:
                continue
            if listed is not None and replace(listed, size=e.size, stamp_ns=e.stamp_ns) == e:
                stamps[aid] = [e.size, e.stamp_ns]
            else:
                fields = vars(e)
                extra[aid] = {("mtime_ns" if k == "stamp_ns" else k): v
                              for k, v in fields.items()}
        return json.dumps({
            "format": self.format, "generation": self.generation, "model": self.model,
            "model_fingerprint": self.model_fingerprint, "dimension": self.dimension,
            "chunking": self.chunking, "cleaning": self.cleaning, "built_at": self.built_at,
            "segments": list(self.segments), "dead": dead, "entries": extra,
            "stamps": stamps, "skipped": dict(sorted(self.skipped.items())),
        }, indent=1)

    @classmethod
    def from_json(cls, text: str, catalog: Catalog) -> Manifest:
        raw = json.loads(text)
        if int(raw["format"]) != FORMAT_VERSION:
            # An older layout: only the version is needed to say "rebuild".
            return cls(generation=str(raw.get("generation")), format=int(raw["format"]),
                       model="", model_fingerprint="", dimension=0, chunking={}, cleaning=0,
                       built_at=0.0, segments=())
        segments = tuple(raw["segments"])
        articles: dict[str, ArticleEntry] = {}
        for seg in segments:
            dead = set(raw["dead"].get(seg, ()))
            for aid, entry in catalog(seg).items():
                if aid not in dead:
                    articles[aid] = entry
        for aid, fields in raw["entries"].items():
            fields = dict(fields)
            fields["stamp_ns"] = fields.pop("mtime_ns", fields.get("stamp_ns", -1))
            articles[aid] = ArticleEntry(**fields)
        for aid, (size, stamp) in raw.get("stamps", {}).items():
            if aid in articles:
                articles[aid] = replace(articles[aid], size=int(size), stamp_ns=int(stamp))
        return cls(
            generation=raw["generation"], format=int(raw["format"]), model=raw["model"],
            model_fingerprint=raw["model_fingerprint"], dimension=int(raw["dimension"]),
            chunking=dict(raw["chunking"]), cleaning=int(raw["cleaning"]),
            built_at=float(raw["built_at"]), segments=segments,
            articles=articles, skipped=dict(raw.get("skipped", {})),
        )


def write_catalog(segment_dir: Path, entries: dict[str, ArticleEntry]) -> None:
    """Write a new segment's catalog (into its folder, before the folder is referenced)."""
    rows = {aid: [e.path, e.sha256, e.sentences, e.passages, e.size, e.stamp_ns]
            for aid, e in entries.items()}
    with (segment_dir / CATALOG).open("w", encoding="utf-8") as fh:
        fh.write(json.dumps({"articles": rows}, ensure_ascii=False))
        fh.flush()
        os.fsync(fh.fileno())


_CATALOGS: dict[tuple[str, int, int], dict[str, ArticleEntry]] = {}


def read_catalog(segment_dir: Path) -> dict[str, ArticleEntry]:
    """A segment's article entries. Segments are immutable, so catalogs are cached in the
    process (keyed by path, size and mtime, in case a folder is replaced by hand)."""
    path = segment_dir / CATALOG
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    found = _CATALOGS.get(key)
    if found is None:
        raw = json.loads(path.read_text(encoding="utf-8"))["articles"]
        found = {aid: ArticleEntry(segment_dir.name, sha, p, int(ns), int(np_), int(size),
                                   int(mtime))
                 for aid, (p, sha, ns, np_, size, mtime) in raw.items()}
        if len(_CATALOGS) >= 256:
            _CATALOGS.clear()
        _CATALOGS[key] = found
    return found


_WARNED: set[tuple[str, str]] = set()


class IndexDir:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def segments_dir(self) -> Path:
        return self.root / SEGMENTS

    def exists(self) -> bool:
        return (self.root / CURRENT).is_file()

    def current_generation(self) -> str | None:
        """The generation in service: the one CURRENT names or, when CURRENT is unreadable,
        garbled or names a manifest that is gone, the newest intact generation (logged)."""
        name = self._pointer()
        if name is not None and (self.root / GENERATIONS / f"{name}.json").is_file():
            return name
        if name is None and not (self.root / CURRENT).exists():
            return None
        fallback = self.newest_intact_generation()
        if fallback is None:
            raise IndexCorrupt(f"{self.root / CURRENT} is damaged and no intact generation is "
                               f"left; rebuild with `dossier-bot index build --index "
                               f"{self.root}`")
        if (str(self.root), fallback) not in _WARNED:  # once, not on every question
            _WARNED.add((str(self.root), fallback))
            log.warning("%s is damaged or names a missing generation; serving %s, the newest "
                        "intact one (the next `index build` repairs it)", self.root / CURRENT,
                        fallback)
        return fallback

    def current_is_sound(self) -> bool:
        """Whether CURRENT names a generation whose manifest reads (a build rewrites it if
        not)."""
        name = self._pointer()
        try:
            json.loads((self.root / GENERATIONS / f"{name}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return name is not None

    def _pointer(self) -> str | None:
        """CURRENT's generation name, or None when it is missing, unreadable or garbled."""
        try:
            raw = (self.root / CURRENT).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("%s cannot be read (%s)", self.root / CURRENT, exc)
            return None
        try:
            name = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            return None
        valid = name and len(name) < 100 and all(c.isalnum() or c in "-_T" for c in name)
        return name if valid else None

    def newest_intact_generation(self) -> str | None:
        """The most recently built generation whose manifest parses and whose segments all
        pass ``segment_ok`` (by default: their folders exist)."""
        gens = self.root / GENERATIONS
        if not gens.is_dir():
            return None
        candidates: list[tuple[float, str]] = []
        for path in gens.glob("*.json"):
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
                segments = raw["segments"]
                built = float(raw["built_at"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if all((self.segments_dir / seg / CATALOG).is_file() for seg in segments):
                candidates.append((built, path.stem))
        return max(candidates)[1] if candidates else None

    @contextlib.contextmanager
    def build_lock(self, *, wait: float | None = None) -> Iterator[None]:
        """Hold the index's build lock: one build at a time writes segments, switches CURRENT
        and collects garbage. Another build waits (``wait`` seconds at most, None: for as
        long as it takes), logging which process holds the lock; on timeout, ``IndexBusy``."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / LOCK
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _lock_holder(fd)
                log.warning("Another build (process %s) is writing the index at %s; waiting "
                            "for it to finish", holder, self.root)
                if not _wait_for_lock(fd, wait):
                    raise IndexBusy(f"The index at {self.root} is being built by process "
                                    f"{holder}; try again when it has finished.") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield
        finally:
            os.close(fd)  # releases the lock, also when the process is killed

    def catalog(self, segment: str) -> dict[str, ArticleEntry]:
        return read_catalog(self.segments_dir / segment)

    def read_manifest(self, generation: str | None = None, *,
                      keep: Callable[[str], bool] | None = None) -> Manifest:
        """The manifest of ``generation`` (default: the one in service), its article entries
        read from the segment catalogs. Segments for which ``keep`` says False are left out,
        with their articles (a build re-embeds those)."""
        if generation is None:
            try:
                return self._read_manifest(self.current_generation(), keep)
            except IndexCorrupt as exc:
                # The generation in service is damaged: fall back to the newest intact one.
                fallback = self.newest_intact_generation()
                if fallback is None or fallback == self._pointer():
                    raise
                key = (str(self.root), fallback)
                if key not in _FALLBACKS_SAID:  # read more than once per command: said once
                    _FALLBACKS_SAID.add(key)
                    log.warning("%s (serving generation %s instead)", str(exc).rstrip("."),
                                fallback)
                return self._read_manifest(fallback, keep)
        return self._read_manifest(generation, keep)

    def _read_manifest(self, generation: str | None,
                       keep: Callable[[str], bool] | None) -> Manifest:
        if generation is None:
            raise IndexMissing(f"No index at {self.root}; build it with "
                               f"`dossier-bot index build --index {self.root}`.")
        path = self.root / GENERATIONS / f"{generation}.json"
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise IndexCorrupt(f"The index at {self.root} is damaged (generation {generation} "
                               "is not text); rebuild it with `dossier-bot index build`.") from None
        except FileNotFoundError:
            raise IndexCorrupt(f"The index at {self.root} names generation {generation}, which "
                               "is missing; rebuild it with `dossier-bot index build`.") from None
        except OSError as exc:
            raise IndexCorrupt(f"The index manifest {path} cannot be read ({exc}); "
                               "rebuild it with `dossier-bot index build`.") from None

        def catalog(seg: str) -> dict[str, ArticleEntry]:
            return self.catalog(seg) if keep is None or keep(seg) else {}

        try:
            manifest = Manifest.from_json(text, catalog)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexCorrupt(f"The index at {self.root} is damaged (generation {generation}: "
                               f"{type(exc).__name__}); rebuild it with "
                               "`dossier-bot index build`.") from None
        if keep is not None:
            manifest = Manifest(**{**vars(manifest), "segments": tuple(
                s for s in manifest.segments if keep(s))})
        if manifest.format != FORMAT_VERSION:
            raise IndexMismatch(
                f"The index at {self.root} has format {manifest.format}, this dossier-bot reads "
                f"format {FORMAT_VERSION}; rebuild it with `dossier-bot index build`.")
        return manifest

    def new_segment_path(self) -> Path:
        self.segments_dir.mkdir(parents=True, exist_ok=True)
        return self.segments_dir / _new_name("s")

    def publish(self, manifest: Manifest) -> None:
        """Write a generation manifest and switch CURRENT to it, atomically."""
        gens = self.root / GENERATIONS
        gens.mkdir(parents=True, exist_ok=True)
        _atomic_write(gens / f"{manifest.generation}.json", manifest.to_json(self.catalog))
        _atomic_write(self.root / CURRENT, manifest.generation + "\n")

    def collect_garbage(self, keep: int = 2) -> None:
        """Drop generations older than the last ``keep``, segments none of them use, and what
        failed builds left behind (partial segments, temporary files). Call it only while
        holding ``build_lock``: then no other build has a segment in flight, so anything
        unreferenced is garbage and goes at once (a disk-full build frees its space)."""
        gens = self.root / GENERATIONS
        for tmp in (*self.root.glob(".*.tmp"), *(gens.glob(".*.tmp") if gens.is_dir() else ())):
            tmp.unlink(missing_ok=True)
        manifests = sorted(gens.glob("*.json"), key=lambda p: p.stat().st_mtime,
                           reverse=True) if gens.is_dir() else []
        current = self.current_generation() if manifests else None
        kept = [p for p in manifests if p.stem == current][:1]
        kept += [p for p in manifests if p.stem != current][: max(0, keep - 1)]
        in_use: set[str] = set()
        for p in kept:
            try:
                in_use.update(json.loads(p.read_text())["segments"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
        for p in manifests:
            if p not in kept:
                p.unlink(missing_ok=True)
        if self.segments_dir.is_dir():
            for seg in self.segments_dir.iterdir():
                if seg.name not in in_use:
                    shutil.rmtree(seg, ignore_errors=True)


def _lock_holder(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
    except OSError:
        return "unknown"


def _wait_for_lock(fd: int, wait: float | None) -> bool:
    if wait is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return True
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)


def new_generation_name() -> str:
    return _new_name("g")


def _new_name(prefix: str) -> str:
    return f"{prefix}{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
