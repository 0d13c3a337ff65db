"""Watch the corpus folder and rebuild the index when articles are added, edited or removed.

Changes are debounced: a rebuild starts once the folder has been quiet for ``quiet``
seconds (a file being copied in fires many events), or ``max_delay`` seconds after the
first change if it never goes quiet. Events that arrive during a rebuild are gathered
into the next one, so the last state of the folder is always the one indexed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import watchfiles

from index.load import SUPPORTED_SUFFIXES, reading_roots

if TYPE_CHECKING:
    from bot.health import Metrics

log = logging.getLogger(__name__)

OnChange = Callable[[set[Path]], Any]


def is_article_path(path: Path) -> bool:
    """Files the index reads; editor swap files, dotfiles and partial downloads are not."""
    return path.suffix.lower() in SUPPORTED_SUFFIXES and not path.name.startswith((".", "~"))


def watch_corpus(corpus_dir: Path, on_change: OnChange, stop: threading.Event, *,
                 quiet: float = 1.0, max_delay: float = 10.0,
                 force_polling: bool | None = None,
                 stale: Callable[[], bool] | None = None) -> None:
    """Call ``on_change(paths)`` after each debounced burst of changes, until ``stop`` is set.

    Every folder articles are read from is watched: the corpus and its inboxes (see
    ``index.load.reading_roots``). When that set changes (an inbox created, the corpus
    folder replaced by another of the same name), watching starts over on the new folders.
    ``stale``, asked once watching has started (and after each start-over), says whether
    the index already misses changes, such as those made during a first build; it is
    then rebuilt without waiting for an event.

    ``force_polling`` (or WATCHFILES_FORCE_POLLING=1) is for folders whose events do not
    reach the container, such as some bind mounts on macOS and network shares.
    An exception from ``on_change`` is logged and watching goes on.
    """
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise FileNotFoundError(f"corpus folder {corpus_dir} does not exist; create it first")
    if quiet < MIN_QUIET:
        raise ValueError(f"quiet must be at least {MIN_QUIET} s, not {quiet}")
    pending: set[Path] = set()
    first = 0.0
    while not stop.is_set():
        roots = _folders(corpus_dir)
        if not roots:  # between a folder's removal and its replacement
            stop.wait(1.0)
            continue
        checked = stale is None
        try:
            for changes in watchfiles.watch(
                    *(path for path, _ in roots),
                    watch_filter=lambda _c, p: is_article_path(Path(p)),
                    stop_event=stop, recursive=False, rust_timeout=int(quiet * 1000),
                    yield_on_timeout=True, debounce=int(quiet * 1000), step=50,
                    force_polling=force_polling, raise_interrupt=False):
                now = time.monotonic()
                if not checked:  # the watcher is running: nothing from here on is missed
                    checked = True
                    if stale is not None and _asked(stale):
                        changes = {(watchfiles.Change.modified, str(corpus_dir))}
                if changes:
                    if not pending:
                        first = now
                    pending.update(Path(p) for _change, p in changes)
                    if now - first < max_delay:
                        continue
                if pending:
                    batch, pending = pending, set()
                    _fire(on_change, batch)
                if _folders(corpus_dir) != roots:
                    log.info("the folders read changed (an inbox made, the corpus folder "
                             "replaced?); watching them afresh", extra={"event": "watch.roots"})
                    break
        except (FileNotFoundError, RuntimeError, OSError) as exc:
            # The folder went away (volume remounted, renamed): wait for it to come back.
            if stop.is_set():
                break
            log.warning("watching %s failed: %s; retrying", corpus_dir, exc,
                        extra={"event": "watch.error"})
            stop.wait(2.0)
    if pending:
        log.info("stopped watching with %d change(s) not yet indexed", len(pending),
                 extra={"event": "watch.stop"})


# Below this the watcher's debounce and timeout round to nothing and changes never flush.
MIN_QUIET = 0.05


def _folders(corpus_dir: Path) -> list[tuple[Path, tuple[int, int]]]:
    """The folders articles are read from, each with its identity (device, inode), so a
    folder replaced under the same name is told apart."""
    out = []
    for folder in reading_roots(corpus_dir) if corpus_dir.is_dir() else []:
        try:
            st = folder.stat()
        except OSError:
            continue
        out.append((folder, (st.st_dev, st.st_ino)))
    return out


def _asked(stale: Callable[[], bool]) -> bool:
    try:
        return stale()
    except Exception:
        log.exception("checking whether the index is up to date failed; rebuilding")
        return True


def _fire(on_change: OnChange, batch: set[Path]) -> None:
    names = sorted(p.name for p in batch)
    log.info("corpus changed: %s", ", ".join(names[:10]) + (" …" if len(names) > 10 else ""),
             extra={"event": "watch.change", "files": len(batch)})
    try:
        on_change(batch)
    except Exception:
        log.exception("rebuild after a corpus change failed; the previous index stays in use",
                      extra={"event": "watch.rebuild_failed"})


def rebuilder(rebuild: Callable[[Path], Any], corpus_dir: Path,
              metrics: Metrics | None = None) -> OnChange:
    """An ``on_change`` running ``rebuild(corpus_dir)`` (``Answerer.rebuild``), logged."""

    def on_change(_paths: set[Path]) -> None:
        try:
            report = rebuild(corpus_dir)
        except Exception:
            if metrics is not None:
                metrics.observe_rebuild(False)
            raise
        summary = report.as_dict() if hasattr(report, "as_dict") else {}
        if metrics is not None:
            metrics.observe_rebuild(True, summary.get("articles"), summary.get("chunks"))
        log.info("index rebuilt", extra={"event": "index.rebuilt", **{
            k: v for k, v in summary.items() if isinstance(v, (int, float))}})

    return on_change


def start_watch_thread(corpus_dir: Path, on_change: OnChange, stop: threading.Event,
                       **kw: Any) -> threading.Thread:
    thread = threading.Thread(target=watch_corpus, args=(corpus_dir, on_change, stop),
                              kwargs=kw, name="corpus-watch", daemon=True)
    thread.start()
    return thread


def index_staleness(corpus_dir: Path, index_dir: Path, model: str | None = None) -> str | None:
    """Why the index no longer matches the corpus, or None when it does; reads no model.

    Cheap enough for every container start: it hashes the corpus files and compares them,
    the model's fingerprint and how passages are cut with the index manifest.
    """
    from index.chunk import cut_is_current
    from index.diff import corpus_diff
    from index.embed import TUNED_MODEL_NAME, tuned_record
    from index.segment import damaged_segments
    from index.store import IndexDir, IndexError_

    try:
        manifest = IndexDir(Path(index_dir)).read_manifest()
    except IndexError_ as exc:
        return str(exc)
    if model is not None and manifest.model != model:
        return f"the index was built with {manifest.model}, the bot now uses {model}"
    # The packaged model by its weights' SHA-256 (read from its record, not the model), so a
    # retrained release is seen even under the same name.
    if model is None and manifest.model_fingerprint != tuned_record()["model_sha256"]:
        return (f"the index was built with {manifest.model} (weights "
                f"{manifest.model_fingerprint[:12]}…), the bot now uses {TUNED_MODEL_NAME}")
    # A release that cuts passages another way (longer windows, new cleaning) re-cuts every
    # article; without this an unchanged corpus would keep the old windows until it changed.
    if not cut_is_current(manifest.chunking, manifest.cleaning):
        return ("the index was cut into passages by another release of the bot; a build "
                "cuts and embeds every article again")
    store = IndexDir(Path(index_dir))
    if (damaged := damaged_segments(store.segments_dir, manifest.segments)):
        return f"the index is damaged (segment {damaged[0]}); a build repairs it"
    # The same comparison `index build` makes: duplicate names and files that could not be
    # read last time (unchanged since) are not "added", so they do not force a rebuild.
    return corpus_diff(Path(corpus_dir), manifest).describe()


if __name__ == "__main__":
    import argparse
    import os
    import sys

    parser = argparse.ArgumentParser(
        description="Exit 0 when the index matches the corpus, 3 (with the reason) when not.")
    parser.add_argument("--corpus", default=os.environ.get("DOSSIER_CORPUS_DIR") or "corpus")
    parser.add_argument("--index", default=os.environ.get("DOSSIER_INDEX_DIR")
                        or os.path.join(".dossier", "index"))
    args = parser.parse_args()
    reason = index_staleness(Path(args.corpus), Path(args.index),
                             os.environ.get("DOSSIER_EMBED_MODEL") or None)
    if reason:
        print(reason)
    sys.exit(3 if reason else 0)  # 1 stays a crash, which the entrypoint treats as stale
