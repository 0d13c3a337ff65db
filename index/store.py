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

import json
import os
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

FORMAT_VERSION = 2  # 2: int8 token vectors, per-segment catalogs and term lists
CURRENT = "CURRENT"
GENERATIONS = "generations"
SEGMENTS = "segments"
CATALOG = "catalog.json"


class IndexError_(RuntimeError):
    """Base for index problems; the message is one line that says what to do."""


class IndexMissing(IndexError_):
    pass


class IndexCorrupt(IndexError_):
    pass


class IndexMismatch(IndexError_):
    pass


@dataclass(frozen=True)
class ArticleEntry:
    segment: str
    sha256: str
    path: str
    sentences: int
    passages: int
    size: int = -1  # corpus file size and mtime when hashed (-1: unknown, hash it again)
    mtime_ns: int = -1


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
        # Articles whose entry differs from their segment's catalog (none today; kept exact).
        extra = {aid: vars(e) for aid, e in sorted(self.articles.items())
                 if cats.get(e.segment, {}).get(aid) != e}
        return json.dumps({
            "format": self.format, "generation": self.generation, "model": self.model,
            "model_fingerprint": self.model_fingerprint, "dimension": self.dimension,
            "chunking": self.chunking, "cleaning": self.cleaning, "built_at": self.built_at,
            "segments": list(self.segments), "dead": dead, "entries": extra,
            "skipped": dict(sorted(self.skipped.items())),
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
        articles.update({k: ArticleEntry(**v) for k, v in raw["entries"].items()})
        return cls(
            generation=raw["generation"], format=int(raw["format"]), model=raw["model"],
            model_fingerprint=raw["model_fingerprint"], dimension=int(raw["dimension"]),
            chunking=dict(raw["chunking"]), cleaning=int(raw["cleaning"]),
            built_at=float(raw["built_at"]), segments=segments,
            articles=articles, skipped=dict(raw.get("skipped", {})),
        )


def write_catalog(segment_dir: Path, entries: dict[str, ArticleEntry]) -> None:
    """Write a new segment's catalog (into its folder, before the folder is referenced)."""
    rows = {aid: [e.path, e.sha256, e.sentences, e.passages, e.size, e.mtime_ns]
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


class IndexDir:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def segments_dir(self) -> Path:
        return self.root / SEGMENTS

    def exists(self) -> bool:
        return (self.root / CURRENT).is_file()

    def current_generation(self) -> str | None:
        try:
            name = (self.root / CURRENT).read_text().strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise IndexCorrupt(f"{self.root / CURRENT} cannot be read ({exc}); rebuild with "
                               f"`dossier-bot index build --index {self.root}`") from None
        return name or None

    def catalog(self, segment: str) -> dict[str, ArticleEntry]:
        return read_catalog(self.segments_dir / segment)

    def read_manifest(self, generation: str | None = None, *,
                      keep: Callable[[str], bool] | None = None) -> Manifest:
        """The manifest of ``generation`` (default: the one in service), its article entries
        read from the segment catalogs. Segments for which ``keep`` says False are left out,
        with their articles (a build re-embeds those)."""
        generation = generation or self.current_generation()
        if generation is None:
            raise IndexMissing(f"No index at {self.root}; build it with "
                               f"`dossier-bot index build --index {self.root}`.")
        path = self.root / GENERATIONS / f"{generation}.json"
        try:
            text = path.read_text()
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
        """Drop generations older than the last ``keep`` and segments none of them use."""
        gens = self.root / GENERATIONS
        if not gens.is_dir():
            return
        current = self.current_generation()
        manifests = sorted(gens.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
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
            cutoff = time.time() - 3600  # a segment this young may belong to a build in flight
            for seg in self.segments_dir.iterdir():
                if seg.name not in in_use and seg.stat().st_mtime < cutoff:
                    shutil.rmtree(seg, ignore_errors=True)


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
