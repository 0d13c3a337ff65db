"""Watching the corpus: a dropped-in article is answered from within seconds, atomically."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import edit_manifest, manifest_path, poll
from test_ops_health import parse_metrics

from bot.answer import Answer, Answerer
from bot.health import Metrics
from bot.watch import index_staleness, rebuilder, start_watch_thread, watch_corpus

REPO = Path(__file__).resolve().parent.parent
DOSSIER_BOT = REPO / ".venv" / "bin" / "dossier-bot"


def bot_command() -> list[str]:
    """The installed entry point; in a worktree without its own .venv, this interpreter."""
    if DOSSIER_BOT.exists():
        return [str(DOSSIER_BOT)]
    return [sys.executable, "-c", "from bot.cli import main; main()"]

NEW_ARTICLE = """\
---
title: "Lighthouse on Kalvik island repainted"
outlet: "Harbour Gazette"
author: "Mira Solberg"
published: 2022-03-20
url: "https://example.org/kalvik-lighthouse"
---
The lighthouse on Kalvik island was repainted bright orange in March 2022.

The harbour master, Tor Evensen, said the orange paint makes the tower easier for fishing
boats to see in fog. The work took eleven days and cost 40,000 kroner.
"""
NEW_QUESTION = "What colour was the Kalvik lighthouse painted?"
ON_TOPIC = "Did Russia ask China for military aid?"



def quotes_from(answer: Answer, article_id: str) -> bool:
    return any(q.article.id == article_id for q in answer.quotes)


@pytest.fixture
def stop() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def test_changes_are_debounced_into_one_call_and_junk_ignored(tmp_path: Path,
                                                              stop: threading.Event) -> None:
    calls: list[set[str]] = []
    thread = start_watch_thread(tmp_path, lambda paths: calls.append({p.name for p in paths}),
                                stop, quiet=0.4)
    time.sleep(0.3)  # let the watcher start; events before it are not ours to see
    for n in range(4):  # a burst, as when several files are copied in
        (tmp_path / f"a{n}.md").write_text(f"article {n}")
        time.sleep(0.05)
    (tmp_path / ".a0.md.swp").write_text("editor junk")
    (tmp_path / "notes.odt").write_text("not an article type")
    poll(lambda: calls, 10, "a callback after the burst")
    (tmp_path / "a1.md").unlink()
    poll(lambda: len(calls) >= 2, 10, "a callback after the removal")
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert calls == [{"a0.md", "a1.md", "a2.md", "a3.md"}, {"a1.md"}]


def test_a_failing_rebuild_is_logged_and_watching_goes_on(tmp_path: Path, stop: threading.Event,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    seen: list[int] = []

    def on_change(paths: set[Path]) -> None:
        seen.append(len(paths))
        if len(seen) == 1:
            raise RuntimeError("disk full")

    thread = start_watch_thread(tmp_path, on_change, stop, quiet=0.3)
    time.sleep(0.3)
    (tmp_path / "one.txt").write_text("x")
    poll(lambda: seen, 10, "the first rebuild")
    (tmp_path / "two.txt").write_text("y")
    poll(lambda: len(seen) >= 2, 10, "a rebuild after the failed one")
    stop.set()
    thread.join(5)
    assert "previous index stays in use" in caplog.text


def test_an_index_already_stale_is_rebuilt_once_watching_has_started(
        tmp_path: Path, stop: threading.Event) -> None:
    calls: list[set[Path]] = []
    asked: list[float] = []

    def stale() -> bool:  # as when an article was dropped in during the first build
        asked.append(time.monotonic())
        return len(asked) == 1

    thread = start_watch_thread(tmp_path, calls.append, stop, quiet=0.2, stale=stale)
    poll(lambda: calls, 10, "a rebuild without any event")
    time.sleep(0.6)  # quiet ticks: asked once, not on every tick
    stop.set()
    thread.join(5)
    assert calls == [{tmp_path}] and len(asked) == 1


@contextmanager
def watched(corpus: Path, stop: threading.Event,
            caplog: pytest.LogCaptureFixture) -> Iterator[tuple[list[set[str]], Callable]]:
    """The names of each rebuild's files while ``corpus`` is watched, and a wait for the
    watcher to look at its folders afresh."""
    calls: list[set[str]] = []
    with caplog.at_level(logging.INFO, logger="bot.watch"):
        thread = start_watch_thread(corpus, lambda paths: calls.append({p.name for p in paths}),
                                    stop, quiet=0.2)
        time.sleep(0.3)

        def afresh() -> None:
            poll(lambda: "watching them afresh" in caplog.text, 10, "a new look at the folders")
            time.sleep(0.3)

        yield calls, afresh
    stop.set()
    thread.join(5)


def test_an_inbox_made_after_watching_began_is_watched(
        tmp_path: Path, stop: threading.Event, caplog: pytest.LogCaptureFixture) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    with watched(corpus, stop, caplog) as (calls, afresh):
        (corpus / "inbox").mkdir()  # as the first article added from chat makes it
        afresh()
        (corpus / "inbox" / "added.md").write_text("an article added from chat")
        poll(lambda: calls, 10, "a rebuild for the inbox's article")
    assert calls == [{"added.md"}]


def test_a_corpus_folder_replaced_under_the_same_name_is_watched_afresh(
        tmp_path: Path, stop: threading.Event, caplog: pytest.LogCaptureFixture) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    with watched(corpus, stop, caplog) as (calls, afresh):
        (tmp_path / "new").mkdir()
        corpus.rename(tmp_path / "old")  # a deploy swapping in a fresh copy
        (tmp_path / "new").rename(corpus)
        afresh()
        (corpus / "fresh.md").write_text("an article in the new folder")
        poll(lambda: any("fresh.md" in c for c in calls), 10, "a rebuild for the new folder")
        (tmp_path / "old" / "stale.md").write_text("the old folder is no longer read")
        time.sleep(0.8)
    assert not any("stale.md" in c for c in calls)


@pytest.mark.parametrize(("args", "message"), [
    (["--quiet-seconds", "0"], "0.05"),
    (["--quiet-seconds", "-1"], "0.05"),
    (["--index", "a-file"], "a-file is a file, not a folder"),
    (["--corpus", "a-file"], "a-file is a file, not a folder"),
])
def test_index_watch_refuses_bad_options_in_one_line(tmp_path: Path, args: list[str],
                                                     message: str) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "corpus").mkdir()
    done = subprocess.run([*bot_command(), "index", "watch", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_corpus_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        watch_corpus(tmp_path / "nope", lambda _p: None, threading.Event())


def test_dropped_article_is_answered_and_removal_forgotten(
        fresh_answerer: Answerer, corpus_copy: Path, stop: threading.Event) -> None:
    answerer = fresh_answerer
    assert not quotes_from(answerer.ask(NEW_QUESTION), "kalvik-lighthouse")
    metrics = Metrics()
    thread = start_watch_thread(corpus_copy, rebuilder(answerer.rebuild, corpus_copy, metrics),
                                stop, quiet=0.3)
    time.sleep(0.3)

    # Questions keep being answered, from a complete index, while the switch happens.
    failures: list[str] = []
    asking = threading.Event()

    def keep_asking() -> None:
        while not asking.is_set():
            try:
                if not answerer.ask(ON_TOPIC).answered:
                    failures.append("on-topic question declined during the rebuild")
            except Exception as exc:  # any error here is a failed switch
                failures.append(repr(exc))
            time.sleep(0.05)  # leave the CPU to the rebuild

    asker = threading.Thread(target=keep_asking)
    asker.start()
    try:
        (corpus_copy / "kalvik-lighthouse.md").write_text(NEW_ARTICLE)

        def answered_from_new() -> Answer | None:
            answer = answerer.ask(NEW_QUESTION)
            return answer if quotes_from(answer, "kalvik-lighthouse") else None

        answer = poll(answered_from_new, 60, "an answer from the new article")
    finally:
        asking.set()
        asker.join(30)
    assert failures == []
    assert "orange" in answer.quotes[0].text
    assert answer.quotes[0].article.outlet == "Harbour Gazette"
    assert parse_metrics(metrics.render())("dossier_index_rebuilds_total", result="ok") == 1

    (corpus_copy / "kalvik-lighthouse.md").unlink()
    poll(lambda: not quotes_from(answerer.ask(NEW_QUESTION), "kalvik-lighthouse"), 60,
         "the removed article disappearing from answers")
    assert all(s.article.id != "kalvik-lighthouse" for s in answerer.sources())
    stop.set()
    thread.join(10)
    assert not thread.is_alive()


def test_staleness_is_seen_without_the_model(fresh_answerer: Answerer, corpus_copy: Path,
                                             tmp_path: Path) -> None:
    index_dir = fresh_answerer.live.index_dir
    assert index_staleness(corpus_copy, index_dir) is None
    assert "No index" in (index_staleness(corpus_copy, tmp_path / "empty") or "")
    (corpus_copy / "kalvik-lighthouse.md").write_text(NEW_ARTICLE)
    assert index_staleness(corpus_copy, index_dir) == (
        "1 article(s) added, 0 changed, 0 removed since the index was built")
    first = sorted(corpus_copy.glob("*.md"))[0]
    first.write_text(first.read_text() + "\nA correction.\n")
    (corpus_copy / "kalvik-lighthouse.md").unlink()
    assert index_staleness(corpus_copy, index_dir) == (
        "0 article(s) added, 1 changed, 0 removed since the index was built")
    assert "now uses other-model" in (index_staleness(corpus_copy, index_dir,
                                                      "other-model") or "")


def test_an_index_cut_by_another_release_is_stale(fresh_answerer: Answerer, corpus_copy: Path,
                                                  tmp_path: Path) -> None:
    index_dir = tmp_path / "older-release"
    shutil.copytree(fresh_answerer.live.index_dir, index_dir)
    assert index_staleness(corpus_copy, index_dir) is None
    built = json.loads(manifest_path(index_dir).read_text())
    # The release before five-sentence windows cut three-sentence ones.
    edit_manifest(index_dir, chunking={**built["chunking"], "max_sentences": 3})
    assert "another release" in (index_staleness(corpus_copy, index_dir) or "")
    edit_manifest(index_dir, chunking=built["chunking"], cleaning=built["cleaning"] - 1)
    assert "another release" in (index_staleness(corpus_copy, index_dir) or "")
    edit_manifest(index_dir, cleaning=built["cleaning"])
    assert index_staleness(corpus_copy, index_dir) is None


def test_index_watch_command_rebuilds_on_change_and_stops_on_sigterm(
        fresh_answerer: Answerer, corpus_copy: Path, tmp_path: Path) -> None:
    index_dir = fresh_answerer.live.index_dir
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "DOSSIER_LOG_FORMAT": "json"}
    proc = subprocess.Popen(
        [*bot_command(), "index", "watch", "--json", "--quiet-seconds", "0.3",
         "--corpus", str(corpus_copy), "--index", str(index_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    lines: list[dict] = []
    reader = threading.Thread(target=lambda: lines.extend(
        json.loads(line) for line in proc.stdout if line.strip()))  # type: ignore[union-attr]
    reader.start()
    try:
        poll(lambda: lines, 90, "the first build report")
        assert lines[0]["embedded"] == 0 and lines[0]["articles"] == 5  # already up to date
        # At once: what changes while the watcher starts is caught by its first look.
        (corpus_copy / "kalvik-lighthouse.md").write_text(NEW_ARTICLE)
        poll(lambda: len(lines) >= 2, 60, "a build report after the new article")
        assert lines[1]["added"] == 1 and lines[1]["articles"] == 6 and lines[1]["embedded"] > 0
        assert index_staleness(corpus_copy, index_dir) is None
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(30)
        reader.join(5)
    assert rc == 0, proc.stderr.read()  # type: ignore[union-attr]
