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
        if build_if_missing and _upgraded_from_untuned(settings, manifest):
            # Built by an earlier release with the wheel's untuned model, over this corpus:
            # an upgrade, not a choice, so it is re-embedded here instead of refusing every
            # question. Any other model mismatch stays an error that says what to run.
            say(f"The index at {settings.index_dir} was built with the untuned model of an "
                f"earlier release: re-embedding {settings.corpus_dir} with the tuned one "
                "(once)…")
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


def _upgraded_from_untuned(settings: Settings, manifest) -> bool:
    """The index holds the untuned model's vectors, the bot runs the packaged tuned model
    (no DOSSIER_EMBED_MODEL), and the corpus folder still holds every article indexed: a
    folder that merely shares the default name is never indexed in its place."""
    from index.diff import corpus_diff

    if (settings.embed_model is not None or manifest.model_fingerprint != PACKAGED_MODEL_SHA256
            or not settings.corpus_dir.is_dir()):
        return False
    return not corpus_diff(settings.corpus_dir, manifest).removed


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
