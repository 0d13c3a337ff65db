"""Adding articles from chat (bot/intake.py) against pages served on 127.0.0.1 and the real
index: what is added becomes answerable; what is refused says why and leaves nothing behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fakes.articles import (
    FERRY,
    FERRY_QUESTION,
    KEEPERS_QUESTION,
    article_server,
    tiny_pdf,
)

from bot.answer import Answerer
from bot.egress import AddressPolicy
from bot.intake import Intake, IntakeError, inbox_dir, write_atomically

# The pages are served on 127.0.0.1: fetching them needs the intranet switch
# (DOSSIER_INTAKE_ALLOW_PRIVATE); tests/test_intake_guard.py checks what happens without it.
INTRANET = AddressPolicy(allow_private=True)


def test_a_page_becomes_answerable_and_a_second_copy_is_a_duplicate(
        fresh_answerer: Answerer, corpus_copy: Path) -> None:
    intake = Intake(fresh_answerer, corpus_copy, policy=INTRANET)
    with article_server() as base:
        added = intake.add_url(f"{base}/moved")  # a redirect to /article.html
        assert added.path.parent == corpus_copy / "inbox"
        assert (added.title, added.outlet, added.published) == (
            "Skerryvore keepers vote to unionise", "The Island Courier", "2024-03-05")
        assert added.passages > 0
        assert "Skerryvore keepers vote to unionise" in added.describe()
        answer = fresh_answerer.ask(KEEPERS_QUESTION)
        assert answer.answered and answer.quotes[0].article.id == added.path.stem
        with pytest.raises(IntakeError, match="Already in the dossier"):
            intake.add_url(f"{base}/article.html")
    assert sorted(p.name for p in (corpus_copy / "inbox").iterdir()) == [added.path.name]


def test_an_uploaded_pdf_becomes_answerable(fresh_answerer: Answerer, corpus_copy: Path) -> None:
    added = Intake(fresh_answerer, corpus_copy).add_file(tiny_pdf(FERRY), "ferry.pdf",
                                                         "application/pdf")
    assert added.title == "Tiree ferry timetable changes"
    answer = fresh_answerer.ask(FERRY_QUESTION)
    assert answer.answered and answer.quotes[0].article.id == added.path.stem


@pytest.mark.parametrize(("path", "reason"), [
    ("/missing", "not found (404)"),
    ("/login.html", "No article text"),
    ("/photo.png", "Unsupported type (image/png)"),
    ("/watch", "Unsupported type (video/mp4)"),  # endless: refused on its headers
    ("/huge.html", "too large to add: over the 20 MB limit"),
])
def test_bad_links_get_their_reason_and_leave_nothing(answerer: Answerer, tmp_path: Path,
                                                      path: str, reason: str) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    with article_server() as base, pytest.raises(IntakeError, match=reason.replace(
            "(", r"\(").replace(")", r"\)")):
        Intake(answerer, corpus, policy=INTRANET).add_url(base + path)
    assert list(corpus.rglob("*")) == []


@pytest.mark.parametrize(("data", "name", "reason"), [
    (b"MZ\x90\x00" + bytes(300), "setup.exe", "Unsupported type (.exe)"),
    (b"", "notes.txt", "empty"),
    (b"%PDF-1.4 this is not really a PDF", "broken.pdf", "cannot be read|No article text"),
    (b"too short to be an article", "note.md", "No article text"),
])
def test_bad_files_get_their_reason(answerer: Answerer, tmp_path: Path, data: bytes, name: str,
                                    reason: str) -> None:
    with pytest.raises(IntakeError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        Intake(answerer, tmp_path).add_file(data, name)
    assert not (tmp_path / "inbox").exists()


def test_not_a_web_address(answerer: Answerer, tmp_path: Path) -> None:
    for url in ("file:///etc/passwd", "ftp://example.org/a", "article.html"):
        with pytest.raises(IntakeError, match="not a web address"):
            Intake(answerer, tmp_path).add_url(url)


def test_a_failed_write_leaves_no_partial_file(tmp_path: Path, monkeypatch) -> None:
    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError):
        write_atomically(tmp_path / "inbox", "a.md", b"x" * 1000)
    assert list((tmp_path / "inbox").iterdir()) == []


def test_a_read_only_corpus_gets_its_inbox_beside_it(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    assert inbox_dir(corpus) == corpus / "inbox"
    corpus.chmod(0o555)
    try:
        if os.access(corpus, os.W_OK):
            pytest.skip("running as root: a read-only folder is still writable")
        assert inbox_dir(corpus) == tmp_path / "corpus-inbox"
    finally:
        corpus.chmod(0o755)


def test_a_markdown_file_is_read_as_the_corpus_reads_it(fresh_answerer: Answerer,
                                                        corpus_copy: Path) -> None:
    intake = Intake(fresh_answerer, corpus_copy)
    own = sorted(corpus_copy.glob("*.md"))[1]
    # A copy of a corpus file, front matter and all, is the same article.
    with pytest.raises(IntakeError, match="Already in the dossier"):
        intake.add_file(own.read_bytes(), "copy.md", "text/markdown")
    added = intake.add_file((
        "---\ntitle: Ferry timetable changes\noutlet: Island Courier\nauthor: Iona MacLeod\n"
        f"published: 2024-03-05\n---\n{FERRY}\n").encode(), "notes.md", "text/markdown")
    assert (added.title, added.outlet, added.published) == (
        "Ferry timetable changes", "Island Courier", "2024-03-05")
    answer = fresh_answerer.ask(FERRY_QUESTION)
    assert answer.quotes[0].article.id == added.path.stem
    assert all("---" not in q.text and "outlet:" not in q.text for q in answer.quotes)


def test_an_add_whose_rebuild_fails_after_the_watcher_indexed_it_leaves_nothing_answerable(
        fresh_answerer: Answerer, corpus_copy: Path, monkeypatch) -> None:
    real = fresh_answerer.rebuild
    calls: list[Path] = []

    def indexed_then_failed(corpus_dir: Path):
        calls.append(corpus_dir)
        if len(calls) == 1:
            real(corpus_dir)  # the watcher's rebuild took the new file in first
            raise OSError(28, "No space left on device")
        return real(corpus_dir)

    monkeypatch.setattr(fresh_answerer, "rebuild", indexed_then_failed)
    with pytest.raises(OSError, match="No space"):
        Intake(fresh_answerer, corpus_copy).add_file(FERRY.encode(), "ferry.txt")
    assert list((corpus_copy / "inbox").iterdir()) == []
    # Told nothing was added, so nothing was: one more rebuild dropped the indexed copy.
    assert len(calls) == 2
    assert not any(s.article.path.startswith("inbox") for s in fresh_answerer.sources())
    answer = fresh_answerer.ask(FERRY_QUESTION)
    assert all(not q.article.path.startswith("inbox") for q in answer.quotes)


def test_an_article_another_process_stored_in_the_shared_inbox_is_not_added_twice(
        fresh_answerer: Answerer, corpus_copy: Path) -> None:
    import subprocess
    import sys
    import time

    from bot.intake import body_hash, extract, kind_of

    digest = body_hash(extract(FERRY.encode(), kind_of("ferry.txt", None), name="ferry.txt").body)
    inbox = corpus_copy / "inbox"
    inbox.mkdir()
    # The other bot holds the inbox's lock while it stores the article and rebuilds.
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(corpus_copy)!r}, os.O_RDONLY)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "time.sleep(1.5)\n"
        f"open({str(inbox / 'ferry-notes')!r} + '-' + sys.argv[1][:8] + '.md', 'w')"
        ".write('stored by the other bot')\n"), digest],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with pytest.raises(IntakeError, match="Already in the dossier: ferry-notes-"):
            Intake(fresh_answerer, corpus_copy).add_file(FERRY.encode(), "ferry.txt")
        # It waited for the other bot's add instead of racing it.
        assert time.monotonic() - started > 0.5
    finally:
        holder.wait(10)
    assert [p.name for p in inbox.iterdir()] == [f"ferry-notes-{digest[:8]}.md"]


def test_two_adapters_adding_one_article_at_once_add_it_once(fresh_answerer: Answerer,
                                                            corpus_copy: Path) -> None:
    import threading

    results: list[str] = []

    def add(name: str) -> None:  # Slack's and Discord's intakes: one each, as serve has
        try:
            Intake(fresh_answerer, corpus_copy).add_file(FERRY.encode(), name)
            results.append("added")
        except IntakeError as exc:
            results.append(str(exc))

    threads = [threading.Thread(target=add, args=(n,)) for n in ("slack.txt", "discord.txt")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(r.split(":")[0] for r in results) == ["Already in the dossier", "added"]
    assert len(list((corpus_copy / "inbox").iterdir())) == 1


def test_an_inbox_that_cannot_be_written_is_named_with_what_to_do(
        answerer: Answerer, tmp_path: Path, monkeypatch) -> None:
    import bot.intake

    def read_only(folder: Path, name: str, data: bytes) -> Path:
        raise OSError(30, "Read-only file system", str(folder))

    monkeypatch.setattr(bot.intake, "write_atomically", read_only)
    with pytest.raises(IntakeError, match=r"cannot be stored in .*\(Read-only file system\); "
                                          r"an admin can point DOSSIER_INBOX_DIR"):
        Intake(answerer, tmp_path).add_file(FERRY.encode(), "ferry.txt")


def test_an_article_the_corpus_loader_would_skip_is_refused_before_it_is_stored(
        answerer: Answerer, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DOSSIER_MAX_ARTICLE_MB", "0.0002")  # about 200 bytes
    with pytest.raises(IntakeError, match="too large to add"):
        Intake(answerer, tmp_path).add_file(FERRY.encode(), "ferry.txt")
    assert not (tmp_path / "inbox").exists()
