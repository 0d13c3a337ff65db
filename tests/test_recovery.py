"""An index that repairs itself: one build at a time, nothing left by a failed build, damage
detected by checksum and rebuilt, a garbled CURRENT survived, new generations picked up."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import index.segment as segment_module
from bot.answer import Answerer
from bot.status import index_status
from bot.watch import index_staleness
from index.build import build_index
from index.live import LiveIndex
from index.store import (
    CATALOG,
    CURRENT,
    GENERATIONS,
    SEGMENTS,
    IndexBusy,
    IndexDir,
    IndexError_,
)

REPO = Path(__file__).resolve().parent.parent

ARTICLES = {
    "001-khorgos.txt": "Kazakh customs stop a convoy\n\nKazakh customs officers stopped a convoy "
                       "of forty freight wagons at Khorgos on Tuesday. The wagons carried crates "
                       "of artillery shells that the manifest described as farm machinery.\n",
    "002-piraeus.txt": "Port inquiry opens\n\nInspectors will visit the port of Piraeus next "
                       "month to examine the cargo records of forty vessels. The company denied "
                       "any wrongdoing and said it would cooperate with the inquiry.\n",
}
QUESTION = "How many freight wagons did Kazakh customs officers stop?"


@pytest.fixture
def corpus(tmp_path) -> Path:
    root = tmp_path / "corpus"
    root.mkdir()
    for name, text in ARTICLES.items():
        (root / name).write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory, embedder) -> tuple[Path, Path]:
    """A small corpus and its index, built once; tests damage copies."""
    root = tmp_path_factory.mktemp("recovery")
    corpus = root / "corpus"
    corpus.mkdir()
    for name, text in ARTICLES.items():
        (corpus / name).write_text(text, encoding="utf-8")
    build_index(corpus, root / "index", embedder)
    return corpus, root / "index"


def index_files(index_dir: Path) -> list[Path]:
    return sorted(p for p in index_dir.rglob("*") if p.is_file() and p.name != ".build.lock")


def garble(path: Path) -> None:
    """Damage a file in place, keeping its size."""
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    for i in range(mid, min(len(data), mid + 8)):
        data[i] ^= 0x5A
    if len(data) == 0:
        return
    path.write_bytes(bytes(data))


def answers_from(index_dir: Path, embedder) -> str:
    live = LiveIndex(index_dir, embedder)
    live.current()  # loading errors surface here, as IndexError_
    answer = Answerer(live).ask(QUESTION)
    return answer.quotes[0].text if answer.quotes else ""


# --- one build at a time --------------------------------------------------------------------


def test_two_concurrent_builds_embed_once_and_leave_no_orphans(corpus, tmp_path, embedder):
    index_dir = tmp_path / "index"
    reports: list = []
    errors: list = []

    def run() -> None:
        try:
            reports.append(build_index(corpus, index_dir, embedder))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    embedded = sorted(r.embedded for r in reports)
    assert embedded[0] == 0 and embedded[1] > 0  # the second found the work done
    manifest = IndexDir(index_dir).read_manifest()
    assert sorted(p.name for p in (index_dir / SEGMENTS).iterdir()) == sorted(manifest.segments)
    assert len(list((index_dir / GENERATIONS).glob("*.json"))) == 1


def test_a_build_while_another_holds_the_lock_says_which_process(corpus, tmp_path, embedder):
    store = IndexDir(tmp_path / "index")
    with store.build_lock(), pytest.raises(IndexBusy, match=f"process {os.getpid()}"):
        build_index(corpus, store.root, embedder, wait=0.3)


# --- failed builds --------------------------------------------------------------------------


def test_a_disk_full_build_leaves_nothing_and_the_next_build_succeeds(
        built, tmp_path, embedder, monkeypatch):
    corpus, base = built
    index_dir = tmp_path / "index"
    shutil.copytree(base, index_dir)
    before = sorted(p.name for p in (index_dir / SEGMENTS).iterdir())
    current = (index_dir / CURRENT).read_text()
    (corpus / "003-new.txt").write_text(
        "New headline\n\nA third article arrived with a sentence about grain exports.\n")
    try:
        writes = {"n": 0}
        real = segment_module._write_array

        def full_disk(path, array):
            writes["n"] += 1
            if writes["n"] > 3:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
            real(path, array)

        monkeypatch.setattr(segment_module, "_write_array", full_disk)
        with pytest.raises(IndexError_, match=r"disk .* is full"):
            build_index(corpus, index_dir, embedder)
        assert sorted(p.name for p in (index_dir / SEGMENTS).iterdir()) == before
        assert (index_dir / CURRENT).read_text() == current
        monkeypatch.undo()
        report = build_index(corpus, index_dir, embedder)
        assert report.added == 1 and report.embedded > 0
    finally:
        (corpus / "003-new.txt").unlink()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_build_on_a_really_full_tmpfs(built, tmp_path, embedder):
    corpus, _ = built
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip("this container may not mount a tmpfs (the simulated ENOSPC test runs)")
    try:
        with pytest.raises(IndexError_, match="full"):
            build_index(corpus, mount / "index", embedder)
        leftovers = list((mount / "index" / SEGMENTS).glob("*")) if (
            mount / "index" / SEGMENTS).exists() else []
        assert leftovers == []
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_what_a_killed_build_left_is_cleaned_by_the_next(built, tmp_path, embedder):
    corpus, base = built
    index_dir = tmp_path / "index"
    shutil.copytree(base, index_dir)
    partial = index_dir / SEGMENTS / "s20260101T000000-dead00"
    partial.mkdir()
    (partial / "sentences.npy").write_bytes(b"\x93NUMPY half")
    (index_dir / f".{CURRENT}.abcd.tmp").write_text("g-half")
    build_index(corpus, index_dir, embedder)
    assert not partial.exists()
    assert not list(index_dir.glob(".*.tmp"))


# --- damage ---------------------------------------------------------------------------------


def test_same_size_damage_of_any_index_file_is_reported_then_rebuilt(built, tmp_path, embedder):
    corpus, base = built
    expected = answers_from(base, embedder)
    assert "forty freight wagons" in expected
    names = [p.relative_to(base) for p in index_files(base)]
    assert any(n.parts[0] == SEGMENTS for n in names) and Path(CURRENT) in names
    for i, name in enumerate(names):
        index_dir = tmp_path / f"index{i}"
        shutil.copytree(base, index_dir)
        garble(index_dir / name)
        # A reader either serves an intact generation or says, in one line, what is wrong.
        try:
            text = answers_from(index_dir, embedder)
        except IndexError_ as exc:
            assert "\n" not in str(exc) and "rebuild" in str(exc), (name, exc)
        else:
            assert text == expected, name
        report = build_index(corpus, index_dir, embedder)
        if name.parts[0] == SEGMENTS:
            assert report.embedded > 0, name  # the damaged segment's articles re-embedded
            if name.name != CATALOG:  # (a damaged catalog no longer says what it held)
                assert (report.added, report.updated > 0) == (0, True), name  # not "added"
        assert answers_from(index_dir, embedder) == expected, name
        assert LiveIndex(index_dir, embedder).check()
        shutil.rmtree(index_dir)


def test_a_garbled_current_falls_back_and_the_next_build_repairs_it(built, tmp_path, embedder):
    corpus, base = built
    index_dir = tmp_path / "index"
    shutil.copytree(base, index_dir)
    good = (index_dir / CURRENT).read_text().strip()
    (index_dir / CURRENT).write_bytes(b"\xff\xfe\x00garbage\x9c\n")
    store = IndexDir(index_dir)
    assert store.read_manifest().generation == good
    assert "forty freight wagons" in answers_from(index_dir, embedder)
    assert index_status(corpus, index_dir)["up_to_date"]
    report = build_index(corpus, index_dir, embedder)
    assert report.embedded == 0
    assert store.current_is_sound()
    (index_dir / CURRENT).write_text("g20990101T000000-000000\n")  # dangling
    assert store.read_manifest().segments


# --- one corpus diff ------------------------------------------------------------------------


def test_build_status_and_start_check_agree_on_unreadable_and_duplicate_files(
        corpus, tmp_path, embedder):
    (corpus / "003-bad.txt").write_bytes(b"\xff\xfe not utf-8 \x00\x00")
    (corpus / "001-khorgos.md").write_text("# Same name\n\nAnother file with the same name.\n")
    (corpus / "notes.odt").write_bytes(b"PK")
    index_dir = tmp_path / "index"
    report = build_index(corpus, index_dir, embedder)
    reasons = {p.path: p.reason for p in report.problems}
    # The first of a name in sorted order is indexed: the .txt is the one left out.
    assert set(reasons) == {"003-bad.txt", "001-khorgos.txt", "notes.odt"}
    assert index_staleness(corpus, index_dir, embedder.name) is None
    status = index_status(corpus, index_dir)
    assert status["up_to_date"] and not status["added"]
    assert {p["path"] for p in status["unreadable"] + status["ignored"]} == set(reasons)
    again = build_index(corpus, index_dir, embedder)
    assert not again.changed and {p.path for p in again.problems} == set(reasons)


def test_an_indexed_article_whose_file_breaks_keeps_serving_and_the_report_says_so(
        corpus, tmp_path, embedder):
    index_dir = tmp_path / "index"
    build_index(corpus, index_dir, embedder)
    (corpus / "001-khorgos.txt").write_bytes(b"\xff\xfe an editor saved it as UTF-16 \x00\x00")

    for _ in range(2):  # the same report when the file is still broken at the next build
        report = build_index(corpus, index_dir, embedder)
        (problem,) = report.problems
        assert problem.path == "001-khorgos.txt"
        assert problem.reason.count("the version indexed before stays in service") == 1
    answer = Answerer(LiveIndex(index_dir, embedder)).ask(QUESTION)
    assert answer.answered and answer.quotes[0].article.id == "001-khorgos"


def test_an_article_with_nothing_left_after_cleaning_is_reported(corpus, tmp_path, embedder):
    (corpus / "003-menu.html").write_text(
        "<html><body><article><p>Home</p><p>World</p><p>Sport</p></article></body></html>")
    report = build_index(corpus, tmp_path / "index", embedder)
    reasons = {p.path: p.reason for p in report.problems}
    assert "003-menu.html" in reasons
    assert report.articles == 2


# --- size ----------------------------------------------------------------------------------


def test_an_8_mb_article_is_skipped_quickly_with_its_reason(corpus, tmp_path, embedder):
    line = "The shipment of grain left the port of Odesa under a naval escort on Monday. "
    (corpus / "003-dump.txt").write_text("Data dump\n\n" + line * (8 * 1024 * 1024 // len(line)))
    report = build_index(corpus, tmp_path / "index", embedder)
    reasons = {p.path: p.reason for p in report.problems}
    assert "limit per article" in reasons["003-dump.txt"]
    assert report.articles == 2
    assert report.seconds < 60


# --- long-running readers -------------------------------------------------------------------


def test_ask_json_stdin_picks_up_a_generation_built_while_it_runs(corpus, tmp_path, embedder):
    index_dir = tmp_path / "index"
    build_index(corpus, index_dir, embedder)
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from bot.cli import main; main()", "ask", "--json",
         "--index", str(index_dir), "--corpus", str(corpus), "-"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        question = "How many bales of Egyptian cotton were seized in Mersin?"
        proc.stdin.write(question + "\n")
        proc.stdin.flush()
        first = json.loads(proc.stdout.readline())
        assert not any("Mersin" in q["text"] for q in first["quotes"])
        (corpus / "003-mersin.txt").write_text(
            "Cotton seized\n\nTurkish police seized nine hundred bales of Egyptian cotton in "
            "Mersin on Friday, customs officials said.\n")
        build_index(corpus, index_dir, embedder)
        proc.stdin.write(question + "\n")
        proc.stdin.flush()
        second = json.loads(proc.stdout.readline())
        assert any("Mersin" in q["text"] for q in second["quotes"]), second
    finally:
        proc.stdin.close()
        proc.wait(60)


def test_falling_back_to_an_older_generation_is_said_once(built, tmp_path, embedder, caplog):
    corpus, base = built
    index_dir = tmp_path / "index"
    shutil.copytree(base, index_dir)
    store = IndexDir(index_dir)
    old = store.read_manifest().generation
    more = tmp_path / "more"
    shutil.copytree(corpus, more)
    (more / "kalvik.md").write_text("# Kalvik\n\nThe lighthouse on Kalvik island was "
                                    "repainted orange in 2022.\n")
    new = build_index(more, index_dir, embedder).generation
    (index_dir / GENERATIONS / f"{new}.json").write_text("{not json")
    with caplog.at_level("WARNING", logger="index.store"):
        assert store.read_manifest().generation == old
        assert store.read_manifest().generation == old  # a command reads it more than once
    said = [r.getMessage() for r in caplog.records if "serving generation" in r.getMessage()]
    assert len(said) == 1 and f"(serving generation {old} instead)" in said[0]
