"""Wiring shared by the CLI and the servers: settings -> embedder -> live index -> answerer."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

from bot.answer import Answerer
from bot.config import Settings
from index.build import BuildReport, Progress
from index.embed import PACKAGED_MODEL_SHA256, Embedder, load_embedder
from index.live import LiveIndex
from index.load import corpus_files

log = logging.getLogger(__name__)


def make_embedder(settings: Settings) -> Embedder:
    return load_embedder(settings.embed_model)


def make_live_index(settings: Settings) -> LiveIndex:
    """The model is loaded lazily, on first use, so `--help` and config errors stay instant."""
    return LiveIndex(settings.index_dir, lambda: make_embedder(settings))


def make_answerer(settings: Settings, *, build_if_missing: bool = True,
                  say: Callable[[str], None] | None = None,
                  progress: Progress | None = None) -> Answerer:
    """An answerer over the index; builds the index first when there is none yet."""
    say = say or (lambda msg: print(msg, file=sys.stderr))
    live = make_live_index(settings)
    if live.dir.exists():
        manifest = live.check()  # a damaged or foreign index is reported before the model loads
        upgrade = _earlier_release(settings, manifest) if build_if_missing else None
        if upgrade:
            # Built by an earlier release over this corpus: an upgrade, not a choice, so it is
            # rebuilt here rather than refusing every question (another model) or answering
            # from windows the ranker was not fitted on (another cut). Any other model
            # mismatch stays an error that says what to run.
            say(f"The index at {settings.index_dir} {upgrade}: re-embedding "
                f"{settings.corpus_dir} (once)…")
            describe_problems(live.rebuild(settings.corpus_dir, progress=progress), say)
    else:
        if not settings.corpus_dir.is_dir():
            raise FileNotFoundError(
                f"No index at {settings.index_dir}, and no corpus folder {settings.corpus_dir} "
                "to build one from; set DOSSIER_CORPUS_DIR or pass --corpus.")
        if not build_if_missing:
            from index.store import IndexMissing

            raise IndexMissing(f"No index at {settings.index_dir}; build it with "
                               f"`dossier-bot index build --index {settings.index_dir}`.")
        n = len(corpus_files(settings.corpus_dir))
        say(f"No index yet at {settings.index_dir}: building it from {n} article(s) in "
            f"{settings.corpus_dir} (first run only)…")
        report = live.rebuild(settings.corpus_dir, progress=progress)
        describe_problems(report, say)
    live.current()
    return Answerer(live)


def _earlier_release(settings: Settings, manifest) -> str | None:
    """What an earlier release did otherwise in building this index, when the bot should
    rebuild it: it holds the untuned model's vectors while the bot runs the packaged tuned
    model (no DOSSIER_EMBED_MODEL), or its passages are cut another way. Only over a corpus
    folder that still holds every article indexed: a folder that merely shares the default
    name is never indexed in its place."""
    from index.chunk import cut_is_current
    from index.diff import corpus_diff

    if settings.embed_model is None and manifest.model_fingerprint == PACKAGED_MODEL_SHA256:
        reason = "was built with the untuned model of an earlier release"
    elif not cut_is_current(manifest.chunking, manifest.cleaning):
        reason = "was cut into passages by an earlier release"
    else:
        return None
    if not settings.corpus_dir.is_dir() or corpus_diff(settings.corpus_dir, manifest).removed:
        return None
    return reason


def describe_problems(report: BuildReport, say: Callable[[str], None]) -> None:
    from bot.render import one_line

    for p in report.problems:  # file names come from anyone who can drop a file in
        say(f"Skipped {one_line(p.path)}: {one_line(p.reason)}")


def corpus_or_default(path: Path | None, settings: Settings) -> Path:
    return path if path is not None else settings.corpus_dir


def os_problem(exc: OSError) -> str:
    """An OSError as one line for the user: what failed on which path."""
    where = f" {exc.filename}" if exc.filename else ""
    return (f"cannot write or read{where}: {exc.strerror or exc}; check the folder's "
            "permissions and free space (an index folder must be writable).")
